"""Session 12's mend12a: correctness leftovers of session 11 (results, get, QPY, fold).

Each test says what happened on main 7186ba2.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from qshpc import distribute_task, get, put
from qshpc.program import backend
from qshpc.program.backend import InlineBackend
from qshpc.program.refs import fresh
from qshpc.runtime.results import writeable

pytestmark = pytest.mark.timeout(120)


@distribute_task()
def parts(a: Any) -> dict[str, Any]:
    """Returns slices of its placed (read-only on a worker) array, nested."""
    return {"x": a[1:3], "t": (a[::2], [a[:1]])}


def test_slices_of_a_placed_array_nested_in_a_result_come_back_writeable() -> None:
    """On 7186ba2 a task's result holding slices of its ``put`` array came back
    read-only with workers (pickle keeps the flag) and writeable with one rank."""
    from tests.unit.test_dispatcher import ranks

    with ranks(1) as r:
        out = get(r.call(parts, r.d.put(np.arange(6.0))), timeout=60)
    arrays = [out["x"], out["t"][0], out["t"][1][0]]
    assert all(a.flags.writeable for a in arrays)
    assert [a.tolist() for a in arrays] == [[1.0, 2.0], [0.0, 2.0, 4.0], [0.0]]


def test_writeable_copies_only_a_value_holding_a_read_only_array() -> None:
    """What rank 0 gives the program for a call it ran itself (``QSHPC_ROOT_WORKS``)."""
    ro = np.arange(4.0)
    ro.flags.writeable = False
    plain = {"a": np.zeros(2), "b": [1, 2]}
    assert writeable(plain) is plain  # nothing to change: no copy
    got = writeable({"a": ro[:2], "same": [ro, ro]})
    assert got["a"].flags.writeable and got["a"].tolist() == [0.0, 1.0]
    assert got["same"][0] is got["same"][1]  # shared as in the task's result
    assert ro.flags.writeable is False  # the task's own array is left as it was


@distribute_task()
def box() -> dict[str, list[int]]:
    return {"k": [1, 2]}


@distribute_task()
def length(d: dict[str, list[int]]) -> int:
    return len(d["k"])


@pytest.mark.parametrize("workers", [0, 2])
def test_each_get_is_a_copy_of_its_own(workers: int) -> None:
    """Ray's ``get`` deserializes a result each time. On 7186ba2 every ``get(ref)``
    gave the same object: ``get(r)["k"].append(3)`` showed in the next ``get(r)``
    and in a task the reference was passed to (``length(r)`` gave 3), on any rank count."""
    from tests.unit.test_dispatcher import ranks

    def check(call: Any) -> None:
        ref = call(box)
        first = get(ref, timeout=60)
        first["k"].append(3)
        assert get(ref) == {"k": [1, 2]} and get(ref) is not first
        assert get([ref, ref])[0] == {"k": [1, 2]}
        assert get(call(length, ref), timeout=60) == 2  # the task gets the result as returned
        assert ref.result() is ref.result()  # the future's own result: one object

    if workers == 0:
        inline = InlineBackend()
        backend.activate(inline)
        try:
            check(lambda f, *a: f(*a))
        finally:
            backend.activate(None)
    else:
        with ranks(workers) as r:
            check(r.call)


class Point:
    def __init__(self, x: list[int]) -> None:
        self.x = x


def test_fresh_keeps_types_and_copies_what_it_can() -> None:
    from qiskit.result import QuasiDistribution

    q = QuasiDistribution({0: 0.25, 3: 0.75}, shots=100)
    c = fresh(q)
    assert type(c) is QuasiDistribution and c == q and c is not q and c.shots == 100
    assert c.stddev_upper_bound == q.stddev_upper_bound
    arr = np.arange(3)
    assert fresh(arr) is not arr and fresh(arr).tolist() == [0, 1, 2]
    nested = {"a": [1, {"b": (2, [3])}], "s": "x"}
    n2 = fresh(nested)
    assert n2 == nested and n2["a"][1]["b"][1] is not nested["a"][1]["b"][1]
    p = Point([1])
    p2 = fresh(p)
    assert type(p2) is Point and p2.x == [1] and p2.x is not p.x
    gen = (i for i in range(2))  # neither pickled nor deep-copied: as it is
    assert fresh(gen) is gen
    assert fresh(1.5) == 1.5 and fresh(None) is None


def test_a_placed_object_is_still_a_copy_per_get() -> None:
    inline = InlineBackend()
    backend.activate(inline)
    try:
        ref = put({"k": [1]})
        get(ref)["k"].append(2)
        assert get(ref) == {"k": [1]}
    finally:
        backend.activate(None)
