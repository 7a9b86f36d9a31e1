"""Session 13's refactors (mend13): the shared helpers keep what the copies did."""

from __future__ import annotations

import os
import pickle
import socket
from typing import Any

import numpy as np
import pytest

from qshpc.runtime.results import Results, for_the_trip, writeable
from qshpc.store.lock import Holder, pid_gone
from qshpc.task import context


def test_a_holder_says_whether_it_runs_on_this_host() -> None:
    """``Holder.on_this_host`` (what the worker's rank-0 watch and the takeover check ask)."""
    here = Holder(host=socket.gethostname(), pid=os.getpid())
    assert here.on_this_host() and not pid_gone(here)
    assert not Holder(host=socket.gethostname() + "-elsewhere", pid=os.getpid()).on_this_host()


def _batch(values: list[Any]) -> Results:
    results = Results(rank=1, host="h")
    for i, v in enumerate(values):
        results.add(f"t{i}", f"k{i}", "f", True, v, None, "", {}, None, 0.0, 1.0)
    return results


def _sent(results: Results, monkeypatch: pytest.MonkeyPatch, placed: bool) -> Any:
    """The values of the batch's message, as rank 0 unpickles them."""
    monkeypatch.setattr(context, "_placed_buffers", placed)
    msg = results.message(0, 0, [0.0] * len(results), None, True)
    return msg[3], pickle.loads(pickle.dumps(msg, protocol=5))[3]


def test_a_batch_with_a_read_only_slice_is_pickled_once_writeable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    placed = np.arange(10.0)
    placed.flags.writeable = False
    shared = [1, 2]
    values = [{"a": placed[:2]}, shared, shared, 3.5]
    sent, got = _sent(_batch(values), monkeypatch, placed=True)
    assert type(sent).__name__ == "_Pickled"  # one pass: what it pickled is what travels
    assert got[0]["a"].flags.writeable and got[0]["a"].tolist() == [0.0, 1.0]
    assert got[1] is got[2] and got[1:] == [shared, shared, 3.5]
    assert not placed.flags.writeable  # the task's own array is left as it was


def test_a_batch_with_nothing_to_change_travels_as_it_was_pickled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = [{"x": np.float64(i), "y": [i, "s"]} for i in range(64)]
    sent, got = _sent(_batch(values), monkeypatch, placed=True)
    assert sent.data == pickle.dumps(values, protocol=5)  # the pass's bytes, not a second pickle
    assert got == values
    # a large array: the list goes, for the transport to send the array out of band
    big = [np.arange(100_000.0)]
    sent, got = _sent(_batch(big), monkeypatch, placed=True)
    assert type(sent) is list and got[0].flags.writeable
    # no placed arrays in this process: no pass at all (the gate)
    plain = np.arange(4.0)
    plain.flags.writeable = False
    sent, got = _sent(_batch([plain]), monkeypatch, placed=False)
    assert type(sent) is list and sent[0] is plain and not got[0].flags.writeable


def test_a_value_pickle_cannot_carry_still_fails_in_the_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    placed = np.arange(4.0)
    placed.flags.writeable = False
    values = [placed[:1], lambda: 1]
    assert type(for_the_trip(values)) is list
    with pytest.raises(Exception):  # noqa: B017 (as mpi4py's pickling raises)
        pickle.dumps(for_the_trip(values), protocol=5)
    monkeypatch.setattr(context, "_placed_buffers", True)
    fn = values[1]
    assert writeable(fn) is fn
    assert writeable([1, 2]) == [1, 2]
    got = writeable({"a": placed[:2]})
    assert got["a"].flags.writeable and got["a"].tolist() == [0.0, 1.0]


def test_one_plain_copy_with_the_array_rule_and_depth_as_parameters() -> None:
    """``get``'s copy (arrays copied writeable, 8 deep, dict subclasses) and a placed
    object's thaw (read-only arrays as views, 64 deep, numpy scalars and circuits)."""
    from qshpc.program.backend import _copy_of
    from qshpc.program.copies import CANNOT
    from qshpc.program.refs import _shallow_copy

    placed = np.arange(3.0)
    placed.flags.writeable = False
    inner = [1, placed]
    got = _shallow_copy({"a": [inner, inner]})
    assert got["a"][0] is got["a"][1] and got["a"][0][1].flags.writeable
    thawed = _copy_of({"a": [inner, inner]})
    assert thawed["a"][0] is thawed["a"][1] and not thawed["a"][0][1].flags.writeable
    assert thawed["a"][0][1].base is placed  # a view, no copy of the data
    deep: Any = [placed]
    for _ in range(7):
        deep = [deep]  # the array 8 deep
    assert _shallow_copy(deep) is not None and _shallow_copy([deep]) is None
    assert _copy_of([deep]) is not CANNOT
    assert _copy_of({(1, 2): [1]}) is CANNOT and _shallow_copy({(1, 2): [1]}) == {(1, 2): [1]}
    assert _copy_of([np.float64(1.0)]) == [1.0] and _shallow_copy([np.float64(1.0)]) is None
