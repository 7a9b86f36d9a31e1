"""``LocalClient.map``: one job record per argument set, run in turn; a failed element stops none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import qshpc
from qshpc import LocalClient, Program, open_job
from tests.conftest import run_cli

pytestmark = pytest.mark.mpi

SWEEP = """
from qshpc import distribute_task, get, get_arguments, save_result

@distribute_task()
def square(x):
    return x * x

x = get_arguments()["x"]
if x == 1:
    raise ValueError(f"element with x={x} fails")
save_result({"x": x, "square": get(square(x))})
"""


def test_map_failed_element_leaves_the_others(tmp_path: Path, qshpc_home: Path) -> None:
    (tmp_path / "sweep.py").write_text(SWEEP)
    program = Program(title="sweep", entrypoint="sweep.py", working_dir=str(tmp_path))
    jobs = LocalClient(workers=1).map(program, [{"x": 0}, {"x": 1}, {"x": 2}], seed=7)
    assert len(jobs) == 3
    metas = [j.info() for j in jobs]
    array_id = metas[0]["array_id"]
    assert [m["array_index"] for m in metas] == [0, 1, 2]
    assert {m["array_id"] for m in metas} == {array_id}
    assert all(m["array_size"] == 3 and m["seed"] == 7 for m in metas)
    assert [j.job_id for j in jobs] == [f"{array_id}-{i}" for i in range(3)]

    states = [j.wait(timeout=240) for j in jobs]
    assert states == ["SUCCEEDED", "FAILED", "SUCCEEDED"]
    assert jobs[0].result() == {"x": 0, "square": 0}
    assert jobs[2].result() == {"x": 2, "square": 4}
    assert "element with x=1 fails" in (jobs[1].error_message() or "")
    with pytest.raises(qshpc.JobFailedError, match="x=1 fails"):
        jobs[1].result()
    assert open_job(jobs[2].job_id).result()["square"] == 4

    listing = run_cli("list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    head = next(i for i, ln in enumerate(lines) if ln.startswith(f"array {array_id}"))
    assert "3 element(s): 1 FAILED, 2 SUCCEEDED" in lines[head]
    assert [ln.split()[0] for ln in lines[head + 1 : head + 4]] == [j.job_id for j in jobs]

    only = run_cli("list", "--array", array_id)
    assert only.returncode == 0, only.stderr
    assert sum(ln.startswith(f"{array_id}-") for ln in only.stdout.splitlines()) == 3
    assert run_cli("list", "--array", "nope").returncode == 2
    manifest = json.loads((qshpc_home / "arrays" / array_id / "array.json").read_text())
    assert manifest["elements"] == [j.job_id for j in jobs]

    # the array's folder goes with its last element (rm, or gc)
    for job in jobs[:2]:
        assert run_cli("rm", job.job_id).returncode == 0
        assert (qshpc_home / "arrays" / array_id).is_dir()
    gone = run_cli("gc", "--older-than", "0m")
    assert gone.returncode == 0, gone.stderr
    assert not jobs[2].job_dir.exists()
    assert not (qshpc_home / "arrays" / array_id).exists()


def test_map_refuses_bad_lists(tmp_path: Path) -> None:
    (tmp_path / "sweep.py").write_text(SWEEP)
    program = Program(title="sweep", entrypoint="sweep.py", working_dir=str(tmp_path))
    client = LocalClient(workers=0)
    with pytest.raises(qshpc.UserError, match="empty"):
        client.map(program, [])
    with pytest.raises(qshpc.UserError, match="list of argument dicts"):
        client.map(program, {"x": 1})  # type: ignore[arg-type]
    with pytest.raises(qshpc.UserError, match=r"arguments_list\[1\]"):
        client.map(program, [{"x": 1}, 5])  # type: ignore[list-item]
    with pytest.raises(qshpc.UserError, match="parallel"):
        client.map(program, [{"x": 1}], parallel=0)
