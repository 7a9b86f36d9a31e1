"""review36 F6, F7: a status shows its sub-status; get/wait misuse is a ValueError, as Ray's."""

from __future__ import annotations

import json

import pytest

import qshpc
from qshpc import UsageError, UserError, distribute_task, get, put, wait
from qshpc.jobstate import JobStatus


def test_a_running_status_with_a_sub_status_shows_it_and_still_compares_as_before() -> None:
    """F6: print(job.status()) showed RUNNING where qiskit-serverless showed RUNNING: MAPPING."""
    status = JobStatus("RUNNING", True, "MAPPING")
    assert str(status) == "RUNNING: MAPPING" and f"{status}" == "RUNNING: MAPPING"
    assert repr(status) == "'RUNNING: MAPPING'" and f"{status:>18}" == "  RUNNING: MAPPING"
    assert status == "RUNNING" and status == "RUNNING: MAPPING" and status != "DONE"
    assert status.state == "RUNNING" and {"RUNNING": 1}[status] == 1
    assert json.dumps(status) == '"RUNNING"'  # the value stays the state's word
    done = JobStatus("SUCCEEDED", True)
    assert str(done) == "DONE" and repr(done) == "'DONE'" and done == "SUCCEEDED"


@distribute_task()
def square(x: int) -> int:
    return x * x


@pytest.mark.parametrize(
    "call",
    [
        lambda r: get(5),
        lambda r: get([r, 5]),
        lambda r: get([[r]]),
        lambda r: get(r, timeout=-1),
        lambda r: wait(r),
        lambda r: wait([r, r]),
        lambda r: wait([r, put(1)], num_returns=5),
        lambda r: wait(["x"]),
    ],
)
def test_misuse_of_get_and_wait_is_a_value_error_as_in_ray(call: object) -> None:
    """F7: ``except ValueError`` around them (a Ray program's) did not catch qshpc's UserError."""
    ref = square(3)
    with pytest.raises(ValueError) as info:
        call(ref)  # type: ignore[operator]
    assert isinstance(info.value, UsageError) and isinstance(info.value, UserError)
    assert "\n" not in str(info.value)
    assert qshpc.UsageError is UsageError
