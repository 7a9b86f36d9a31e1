"""review38 F10 under Slurm: ``qshpc submit io.py -- a b`` gives rank 0 and its tasks the
program's ``sys.argv``, ``['io.py', 'a', 'b']`` (the name in the staged folder, the job's
cwd), as ``python io.py a b`` there would."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.slurm.test_submit import wait

PROGRAM = """\
import sys
from qshpc import distribute_task, get, save_result

@distribute_task()
def task_argv():
    return sys.argv

save_result({"rank0": list(sys.argv), "task": get(task_argv())})
"""


def test_submit_gives_rank0_and_tasks_the_programs_argv(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "io.py").write_text(PROGRAM)
    out = run_cli(
        "submit", str(tmp_path / "io.py"), "--ntasks-per-node", "2", "--json", "--", "a", "b",
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    job = str(json.loads(out.stdout.strip().splitlines()[-1])["job_id"])
    assert wait(job) == "SUCCEEDED", run_cli("status", job).stdout
    res = json.loads(run_cli("result", job, "--json", timeout=60).stdout)
    assert res == {"rank0": ["io.py", "a", "b"], "task": ["io.py", "a", "b"]}


EXITS = """\
import os
from qshpc import distribute_task, get

@distribute_task()
def hard_exit(code):
    os._exit(code)

get(hard_exit(3))
"""


def test_a_task_calling_os_exit_under_slurm_is_named_as_a_possible_cause(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    """review36 F1 under Slurm: srun leaves the other tasks running; rank 0 loses the worker
    at its heartbeat timeout, naming the task, its function, and os._exit among the causes."""
    (tmp_path / "hard.py").write_text(EXITS)
    out = run_cli(
        "submit", str(tmp_path / "hard.py"), "--ntasks-per-node", "2", "--json",
        timeout=60, env={"QSHPC_WORKER_TIMEOUT_S": "3"},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    job = str(json.loads(out.stdout.strip().splitlines()[-1])["job_id"])
    assert wait(job) == "FAILED"
    error = json.loads(run_cli("status", job, "--json").stdout)["error"]
    assert "worker rank 1" in error and "[0] of hard_exit" in error, error
    assert "a task called os._exit" in error, error
