"""A worker's result message that does not unpickle on rank 0 (review28 F3): read again, part by part."""

from __future__ import annotations

import pickle
import sys
import types
from typing import Any

import cloudpickle
import numpy as np
import pytest

from qshpc import distribute_task, get
from qshpc.errors import SerializationError, TaskError
from qshpc.runtime.unload import Unloaded, reload, spoiled
from qshpc.store.batch import Batch, Ends
from qshpc.store.chunk import ChunkBuilder, encode_meta
from tests.unit.loopback_ranks import loopback_ranks
from tests.unit.test_payload_and_chunks import _records

pytestmark = pytest.mark.timeout(120)


class Boom:
    """Pickles anywhere; its state cannot be set back (a handle, a device array)."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __setstate__(self, state: Any) -> None:
        raise RuntimeError("cannot rebuild Boom here")


@distribute_task()
def boom_at_7(i: int) -> Any:
    if i == 7:
        return Boom(i)
    return np.full(20_000, float(i)) if i in (3, 9) else i


def test_a_value_that_does_not_unpickle_on_rank_0_fails_its_call_alone() -> None:
    with loopback_ranks(2) as (d, _, _):
        refs = [d.submit(boom_at_7, (i,), {}) for i in range(20)]
        for i, ref in enumerate(refs):
            if i == 7:
                with pytest.raises(SerializationError) as err:
                    get(ref, timeout=60)
                assert isinstance(err.value, TaskError)
                said = str(err.value).splitlines()[0]
                assert said.startswith("task 7 (boom_at_7) failed on rank "), said
                assert "cannot be loaded on rank 0" in said and "cannot rebuild Boom" in said
            elif i in (3, 9):
                assert get(ref, timeout=60).sum() == 20_000.0 * i
            else:
                assert get(ref, timeout=60) == i
        assert get(d.submit(boom_at_7, (1,), {}), timeout=60) == 1  # the dispatcher serves on
    assert d._error is None


def _module_thing() -> tuple[types.ModuleType, Any]:
    mod = types.ModuleType("only_on_the_worker")
    exec("class Thing:\n    def __init__(self, v):\n        self.v = v\n", mod.__dict__)
    return mod, mod.Thing


def test_reload_puts_stand_ins_and_tells_which_values_hold_one() -> None:
    mod, thing = _module_thing()
    sys.modules[mod.__name__] = mod
    try:
        by_value = cloudpickle.dumps(Boom(5))  # how a class of the program's file travels
        values = [
            1,
            Boom(2),
            {"x": [thing(3)]},
            np.arange(4.0),
            np.array([Boom(6)], dtype=object),
            _ByValue(by_value),
            "ok",
        ]
        message = ("R", 0, 0, values, None, [], True)
        bufs: list[Any] = []
        data = pickle.dumps(message, protocol=5, buffer_callback=bufs.append)
    finally:
        del sys.modules[mod.__name__]
    with pytest.raises(Exception, match="cannot rebuild Boom here"):
        pickle.loads(data, buffers=bufs)
    loaded, bad = reload(data, bufs)
    why = [spoiled(v, bad) for v in loaded[3]]
    assert why[0] is None and why[3] is None and why[6] is None
    assert "cannot rebuild Boom here" in (why[1] or "") and "state of its Boom" in (why[1] or "")
    assert "No module named 'only_on_the_worker'" in (why[2] or "")
    assert isinstance(loaded[3][2]["x"][0], Unloaded)
    assert "cannot rebuild Boom here" in (why[4] or "")
    assert "cannot rebuild Boom here" in (why[5] or "")  # a pickle inside the pickle
    assert loaded[3][3].tolist() == [0.0, 1.0, 2.0, 3.0]


class _ByValue:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return (pickle.loads, (self.data,))


@pytest.mark.parametrize("i", range(5))
def test_a_record_failed_on_rank_0_is_what_the_worker_would_have_written(i: int) -> None:
    error = "SerializationError: cannot be loaded on rank 0\n"

    def frame(on_rank_0: bool) -> Any:
        builder = ChunkBuilder(rank=1)
        recs = _records()
        for r in recs:
            meta = encode_meta(r.task_id, r.key, r.function, r.host, r.error, r.provenance)
            builder.add(meta, r.state == "SUCCEEDED", r.result, r.started, r.finished)
        r = recs[i]
        if not on_rank_0:
            builder.fail(i, encode_meta(r.task_id, r.key, r.function, r.host, error, r.provenance))
        chunk = builder.take(
            [r.submitted for r in recs], [r.attempt for r in recs], [r.seed for r in recs]
        )
        chunk = pickle.loads(pickle.dumps(chunk, protocol=5))
        if on_rank_0:
            chunk.fail(i, error)
        batch = Batch(Ends(records=5, meta=100, data=200, large=0), run=3)
        batch.add_chunk(chunk)
        return batch.frame()

    a, b = frame(False), frame(True)
    assert a.records.tobytes() == b.records.tobytes()
    assert a.meta == b.meta and a.data == b.data
    assert [b"".join(bytes(p) for p in x) for x in a.large] == [
        b"".join(bytes(p) for p in x) for x in b.large
    ]
