"""Session 11's hunt (hunt11a): researchers' programs on 1, 2 and 3 ranks and LocalClient.

Each test says what happened on main 8cc329b.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from qshpc.errors import dump_cause, load_cause
from tests.conftest import one_task_fails, run_program

pytestmark = [pytest.mark.timeout(120)]

LOCKED = """\
import threading

@distribute_task()
def locked():
    return threading.Lock()
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
    job, error = one_task_fails(qshpc_home, tmp_path, "locked", LOCKED, ranks=ranks)
    assert "task 0 (locked) failed on rank" in error
    assert "SerializationError: the return value of task 0 (locked, lock) cannot be" in error
    assert "Return plain data" in error
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
    res = run_program(qshpc_home, tmp_path / "lock_error.py", LOCK_ERROR, ranks=2).result()
    assert res == {"code": 7, "args": ["failed with code 7"]}
