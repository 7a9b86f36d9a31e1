"""fixP under Slurm: a call lost with its worker is stored FAILED (review49 F5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.slurm.test_fix42e_slurm import _submit_on_two_nodes
from tests.slurm.test_submit import wait

pytestmark = pytest.mark.slurm

LOSES_ONE = """\
import os, signal, time
from qshpc import distribute_task, get, save_result

@distribute_task()
def work(i):
    if i == 3:
        time.sleep(1)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(3)
    return i

out = []
for r in [work(i) for i in range(5)]:
    try:
        out.append(get(r))
    except Exception as exc:
        out.append(type(exc).__name__)
save_result(out)
"""


def test_a_call_lost_with_its_worker_is_counted_failed(
    multinode_env: dict[str, str], tmp_path: Path
) -> None:
    """Under Slurm the other ranks go on: the program took the TaskError(WorkerLostError)
    and the job SUCCEEDED, but ``qshpc status`` said "4 done, 1 never started", FAILED 0."""
    job = str(_submit_on_two_nodes(tmp_path / "loses.py", LOSES_ONE)["job_id"])
    assert wait(job) == "SUCCEEDED", run_cli("status", job).stdout
    assert json.loads(run_cli("result", job, "--json").stdout) == [0, 1, 2, "TaskError", 4]
    meta = json.loads(run_cli("status", job, "--json").stdout)
    assert meta["task_counts"] == {"SUCCEEDED": 4, "FAILED": 1}, meta
    assert "4 done, 1 failed" in run_cli("status", job).stdout
