"""Session 11's hunt (hunt11a): researchers' programs on 1, 2 and 3 ranks and LocalClient.

Each test says what happened on main 8cc329b.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from qshpc import open_job
from qshpc.errors import dump_cause, load_cause
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


class _HoldsALock(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"failed with code {code}")
        self.code = code
        self.lock = threading.Lock()


def test_an_exception_with_an_attribute_that_cannot_travel_keeps_its_class() -> None:
    """On 8cc329b an exception holding a lock could not be pickled on the worker: rank 0
    got a plain TaskError, which ``except ItsClass`` missed (one rank caught it). Now
    it travels without that attribute."""
    exc = load_cause(dump_cause(_HoldsALock(7)))
    assert type(exc) is _HoldsALock
    assert exc.args == ("failed with code 7",)
    assert exc.code == 7
    assert not hasattr(exc, "lock")


LOCK_ERROR = """\
import threading
from qshpc import distribute_task, get, save_result

class HoldsALock(Exception):
    def __init__(self, code):
        super().__init__(f"failed with code {code}")
        self.code = code
        self.lock = threading.Lock()

@distribute_task()
def fails():
    raise HoldsALock(7)

try:
    get(fails())
except HoldsALock as exc:
    save_result({"code": exc.code, "args": list(exc.args)})
"""


@pytest.mark.mpi
def test_a_task_exception_holding_a_lock_is_caught_by_its_class_on_a_worker(
    qshpc_home: Path, tmp_path: Path
) -> None:
    prog = tmp_path / "lock_error.py"
    prog.write_text(LOCK_ERROR)
    out = run_cli("run", str(prog), ranks=2, timeout=100)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    res = open_job(job_dir_of(qshpc_home)).result()
    assert res == {"code": 7, "args": ["failed with code 7"]}
