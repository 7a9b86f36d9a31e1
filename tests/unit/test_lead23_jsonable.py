"""review29 F1: `qshpc result --json` of a masked array of nested or subarray fields (numpy's
MaskedArray.tolist cannot take them) is JSON, an element masked whole null."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qshpc.store.jsonable import to_jsonable


@pytest.mark.parametrize(
    "dtype",
    [[("a", "i4"), ("b", [("c", "f8"), ("d", "f8")])], [("a", "i4"), ("e", "f4", (2,))], "f8,2i4"],
)
def test_structured_masked_arrays_are_json(dtype: object) -> None:
    data = np.zeros(3, dtype)  # type: ignore[call-overload]
    plain = np.ma.array(data)
    assert json.loads(json.dumps(to_jsonable({"s": plain})))["s"] == to_jsonable(data)
    one = np.ma.array(data)
    one[1] = np.ma.masked
    listed = json.loads(json.dumps(to_jsonable(one)))
    assert listed[1] is None and listed[0] == listed[2] == to_jsonable(data)[0]


def test_plain_masked_arrays_are_as_before() -> None:
    assert to_jsonable(np.ma.masked_greater([1, 500, 3], 100)) == [1, None, 3]
    assert to_jsonable(np.ma.array([[1, 2], [3, 4]], mask=[[0, 1], [0, 0]])) == [[1, None], [3, 4]]


def test_status_counts_name_the_calls_an_ended_job_never_started() -> None:
    """review29 F11: a cancelled job of 12 calls, 4 done, said `4 done` and nothing of 8."""
    from qshpc.cli.jobs import _counts

    meta = {"state": "CANCELED", "task_counts": {"SUCCEEDED": 4, "FAILED": 2},
            "tasks_stopped": 2, "tasks_submitted": 12}  # fmt: skip
    assert _counts(meta) == "4 done, 2 stopped, 6 never started"
    assert _counts({**meta, "state": "RUNNING"}) == "4 done, 2 stopped"
    assert _counts({**meta, "tasks_submitted": 6}) == "4 done, 2 stopped"
