"""Session 11's hunt (hunt11a): researchers' programs on 1, 2 and 3 ranks and LocalClient.

Each test says what happened on main 8cc329b.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qshpc import open_job
from tests.conftest import job_dir_of, run_cli

pytestmark = [pytest.mark.timeout(120)]

UNSENDABLE = """\
import threading
from qshpc import distribute_task, get, save_result, TaskError

@distribute_task()
def locked():
    return threading.Lock()

@distribute_task()
def fine(i):
    return i

ref = locked()
out = [get(fine(i)) for i in range(3)]
try:
    get(ref)
except TaskError as exc:
    out.append(str(exc).splitlines()[0])
save_result(out)
"""


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 2])
def test_a_result_that_cannot_be_stored_fails_its_task_on_every_shape(
    ranks: int, qshpc_home: Path, tmp_path: Path
) -> None:
    """On 8cc329b, with one rank (or rank 0 working) a task returning what cannot be
    stored (a lock) raised SerializationError at the call (``ref = locked()``), from
    msgpack's frames, naming no task, and the job FAILED; on a worker the same call
    failed alone (``get`` raised TaskError naming the task). Now every shape fails the
    task alone, with the worker's message."""
    prog = tmp_path / "unsendable.py"
    prog.write_text(UNSENDABLE)
    out = run_cli("run", str(prog), ranks=ranks, timeout=100)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    job = open_job(job_dir_of(qshpc_home))
    res = job.result()
    assert res[:3] == [0, 1, 2]
    assert "task 0 (locked) failed on rank" in res[3]
    assert "SerializationError: the return value of task 0 (locked, lock) cannot be" in res[3]
    assert "Return plain data" in res[3]
    assert [t["state"] for t in job.tasks() if t["task_id"] == "0"] == ["FAILED"]
