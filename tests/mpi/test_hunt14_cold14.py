"""A worker of a program that never imports numpy does not load it (issue 19, session 14).

On 14ae6e2 every worker loaded numpy through the store's record encoding (0.08-0.10
CPU s a worker). (The Slurm module, with ``subprocess``, stays on every rank: only it
may read Slurm's variables, so a rank cannot tell it is outside Slurm without it.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qshpc import Job
from qshpc.store import JobReader
from tests.conftest import job_dir_of, run_cli

pytestmark = pytest.mark.mpi

ONE_TASK = (
    "import sys\n"
    "from qshpc import distribute_task, get, save_result\n"
    "PROBE = ('numpy', 'h5py', 'qshpc.cli.app', 'typer')\n"
    "@distribute_task()\n"
    "def inc(x):\n"
    "    return {'value': x + 1, 'loaded': [m for m in PROBE if m in sys.modules],\n"
    "            'pair': (x, 2.5), 'big': 2**70}\n"
    "save_result(get(inc(1)))\n"
)


def test_a_numpy_free_one_task_job_keeps_numpy_off_its_workers(
    tmp_path: Path, qshpc_home: Path
) -> None:
    prog = tmp_path / "one.py"
    prog.write_text(ONE_TASK)
    env = {"QSHPC_TIMELINE": "1", "SLURM_JOB_ID": ""}
    out = run_cli("run", str(prog), ranks=3, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    job = job_dir_of(qshpc_home)
    result = Job(job).result()
    assert result["loaded"] == [], result  # on the worker, while the task ran
    assert (result["value"], result["pair"], result["big"]) == (2, (1, 2.5), 2**70)
    seen = {}
    for path in (job / "logs").glob("timeline-*.json"):
        data = json.loads(path.read_text())
        seen[data["role"]] = set(data["modules"])
    assert set(seen) == {"rank-0", "rank-1", "rank-2"}, seen
    for worker in ("rank-1", "rank-2"):  # at the worker's end: its result was stored
        assert not seen[worker] & {"numpy", "h5py", "typer", "click"}, seen[worker]
    assert "h5py" in seen["rank-0"]  # rank 0 writes the store (numpy with it)
    with JobReader.open(job) as r:
        (task,) = r.tasks()
        assert task["state"] == "SUCCEEDED" and task["rank"] in (1, 2), task
        assert task["attempt"] == 1 and task["function"].endswith("inc"), task
        assert r.task_result(task["task_id"]) == result
