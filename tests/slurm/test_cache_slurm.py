"""The result cache on the dev Slurm cluster: a job array fills one cache at once, a rerun hits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.slurm.test_array import wait_all

pytestmark = pytest.mark.slurm

SWEEP = """
from qshpc import distribute_task, get, get_arguments, save_result

@distribute_task()
def point(x):
    return {"x": x, "y": x * x + 1}

xs = get_arguments()["xs"]
save_result(get([point(x) for x in xs]))
"""


def test_an_array_fills_one_cache_and_a_rerun_hits(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "sweep.py").write_text(SWEEP)
    # Four elements whose points overlap: they read and fill the same entries at once.
    sets = [{"xs": list(range(i * 5, i * 5 + 12))} for i in range(4)]
    (work / "sets.json").write_text(json.dumps(sets))
    cache = tmp_path / "shared cache"
    out = run_cli(
        "submit", str(work / "sweep.py"), "--array", str(work / "sets.json"),
        "--ntasks-per-node", "2", "--time-min", "5", "--cache", "--cache-dir", str(cache),
        "--json", timeout=90,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    elements = json.loads(out.stdout)
    metas = wait_all([e["job_id"] for e in elements])
    assert [m["state"] for m in metas] == ["SUCCEEDED"] * 4, metas
    for e, args in zip(elements, sets, strict=True):
        res = json.loads(run_cli("result", e["job_id"], "--json", timeout=60).stdout)
        assert res == [{"x": x, "y": x * x + 1} for x in args["xs"]]
    entries = json.loads(run_cli("cache", "ls", "--cache-dir", str(cache), "--json").stdout)
    assert len(entries) == 27  # the points 0..26, each stored once
    assert {r["job"] for r in entries} <= {e["job_id"] for e in elements}
    (work / "all.json").write_text(json.dumps({"xs": list(range(27))}))
    out = run_cli(
        "submit", str(work / "sweep.py"), "--arguments", str(work / "all.json"),
        "--ntasks-per-node", "2", "--time-min", "5", "--cache", "--cache-dir", str(cache),
        "--json", timeout=90,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)["job_id"]
    (meta,) = wait_all([job])
    assert meta["state"] == "SUCCEEDED" and meta["tasks_from_cache"] == 27
    assert "27 done (27 from cache)" in run_cli("status", job, timeout=60).stdout
