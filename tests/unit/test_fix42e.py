"""Session 26, fix42e: review44's findings F3, F4 and F6 (F1 is in tests/slurm and
tests/unit/test_dispatcher.py, F5 in tests/notebook)."""

from __future__ import annotations

import traceback

import pytest

from qshpc import distribute_task, get
from qshpc.errors import TaskError


@distribute_task()
def boom() -> None:
    raise ValueError("boom")


def test_each_get_of_a_failed_reference_raises_an_exception_with_its_own_traceback() -> None:
    """review44 F3: ``raise self._error`` raised one shared object, so each ``get`` added its
    frames to one traceback (12 frames after 3 caught gets, pointing at handled lines)."""
    ref = boom()
    caught: list[BaseException] = []
    depths: list[int] = []
    for _ in range(3):
        with pytest.raises(ValueError) as info:
            get(ref)
        caught.append(info.value)
        depths.append(len(traceback.extract_tb(info.value.__traceback__)))
    assert depths[0] == depths[1] == depths[2], depths  # was 4, 8, 12 frames
    assert len({id(e) for e in caught}) == 3
    first = caught[0]
    assert isinstance(first, TaskError) and "boom" in first.remote_traceback
    assert all(str(e) == str(first) and e.args == first.args for e in caught)
    assert all(type(e) is type(first) and e.remote_traceback == first.remote_traceback
               for e in caught)  # fmt: skip
    stored = ref.exception()
    assert stored is not None and stored.__traceback__ is None  # nothing raised it
