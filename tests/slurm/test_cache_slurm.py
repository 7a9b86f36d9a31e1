"""The result cache on the dev Slurm cluster: a job array fills one cache at once, a rerun hits.

The Slurm work runs as an early launch (tests/early_jobs.py), overlapping the rest of the
session; the test checks what it saw.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.early_jobs import Context, Early
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


def _launch_array_and_rerun(ctx: Context) -> dict[str, Any]:
    """The array, its results and the cache's entries, then the rerun, from the session's
    start (tests/early_jobs.py): what the test checks. ``qshpc status`` every 2 s."""
    work = ctx.work / "work"
    work.mkdir()
    (work / "sweep.py").write_text(SWEEP)
    # Four elements whose points overlap: they read and fill the same entries at once.
    sets = [{"xs": list(range(i * 5, i * 5 + 12))} for i in range(4)]
    (work / "sets.json").write_text(json.dumps(sets))
    cache = ctx.work / "shared cache"
    out = ctx.qshpc(
        "submit", str(work / "sweep.py"), "--array", str(work / "sets.json"),
        "--ntasks-per-node", "2", "--time-min", "5", "--cache", "--cache-dir", str(cache),
        "--json", timeout=90,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    elements = json.loads(out.stdout)
    for e in elements:
        ctx.slurm_job(e["slurm_job_id"])
    seen: dict[str, Any] = {"sets": sets, "elements": elements}
    seen["metas"] = wait_all(
        [e["job_id"] for e in elements], cli=ctx.qshpc, sleep=ctx.sleep, every=2
    )
    seen["results"] = [
        ctx.qshpc("result", e["job_id"], "--json", timeout=60).stdout for e in elements
    ]
    seen["entries"] = ctx.qshpc("cache", "ls", "--cache-dir", str(cache), "--json").stdout
    (work / "all.json").write_text(json.dumps({"xs": list(range(27))}))
    out = ctx.qshpc(
        "submit", str(work / "sweep.py"), "--arguments", str(work / "all.json"),
        "--ntasks-per-node", "2", "--time-min", "5", "--cache", "--cache-dir", str(cache),
        "--json", timeout=90,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rerun = json.loads(out.stdout)
    ctx.slurm_job(rerun["slurm_job_id"])
    (seen["rerun"],) = wait_all([rerun["job_id"]], cli=ctx.qshpc, sleep=ctx.sleep, every=2)
    seen["rerun status"] = ctx.qshpc("status", rerun["job_id"], timeout=60).stdout
    return seen


@pytest.mark.early(launch=_launch_array_and_rerun)
def test_an_array_fills_one_cache_and_a_rerun_hits(
    slurm_env: dict[str, str], early_job: Early
) -> None:
    seen = early_job.outcome()
    elements, sets, metas = seen["elements"], seen["sets"], seen["metas"]
    assert [m["state"] for m in metas] == ["SUCCEEDED"] * 4, metas
    for res, args in zip(seen["results"], sets, strict=True):
        assert json.loads(res) == [{"x": x, "y": x * x + 1} for x in args["xs"]]
    entries = json.loads(seen["entries"])
    assert len(entries) == 27  # the points 0..26, each stored once
    assert {r["job"] for r in entries} <= {e["job_id"] for e in elements}
    meta = seen["rerun"]
    assert meta["state"] == "SUCCEEDED" and meta["tasks_from_cache"] == 27
    assert "27 done (27 from cache)" in seen["rerun status"]
