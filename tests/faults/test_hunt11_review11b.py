"""Session 11's review of hunt11b (review11b): what the merge of d6d5e64 left.

Each test says what happened on main 3986114 (hunt11b merged).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from qshpc import distribute_task, get
from qshpc.program import backend
from qshpc.program.backend import InlineBackend

pytestmark = pytest.mark.timeout(120)


@distribute_task()
def bump(arr: Any) -> float:
    """Changes the array it was given in place (its own copy under one rank)."""
    arr[0] += 5.0
    return float(arr[0])


def test_one_rank_calls_get_writeable_copies_also_after_a_get() -> None:
    """docs/bad-input.md: under plain ``python`` or one rank a task's arrays are writeable
    copies. On 3986114 that held only until the program called ``get(ref)``: the get
    froze the object in place, and every later call got a read-only array (``bump``
    worked, then raised ``ValueError: assignment destination is read-only``)."""
    inline = InlineBackend()
    backend.activate(inline)
    try:
        ref = inline.put(np.zeros(3))
        assert get(bump(ref), timeout=60) == 5.0
        seen = get(ref)
        assert not seen.flags.writeable and seen[0] == 0.0  # the program's get: read-only
        assert get(bump(ref), timeout=60) == 5.0  # each call its own writeable copy
        assert get(ref)[0] == 0.0
    finally:
        backend.activate(None)


@distribute_task()
def writes_in_place(arr: Any) -> float:
    """Writes into the array it was given, as a program written for one rank does."""
    arr[0] = 1.0
    return float(arr[0])


def test_a_write_into_a_placed_array_on_a_worker_names_the_fix() -> None:
    """On a worker an array from ``put`` is read-only (as in Ray). On 3986114 the task
    failed with numpy's words alone, ``ValueError: assignment destination is read-only``:
    neither that ``put`` made it so nor what to do; the line now names ``arr.copy()``."""
    from qshpc.errors import TaskError
    from tests.unit.test_dispatcher import ranks

    with ranks(1) as r:
        ref = r.d.put(np.zeros(3))
        with pytest.raises(TaskError) as info:
            get(r.call(writes_in_place, ref), timeout=60)
    line = str(info.value).splitlines()[0]
    assert "assignment destination is read-only" in line
    assert "put()" in line and "arr = arr.copy()" in line
    assert isinstance(info.value, ValueError)  # still caught as numpy's ValueError
