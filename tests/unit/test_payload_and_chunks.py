"""Task payloads (circuits as QPY) and store records encoded on workers."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

from qshpc.store import layout as L
from qshpc.store.batch import Batch, Ends
from qshpc.store.chunk import SHIP_ENCODED_MAX, ChunkBuilder, encode_meta
from qshpc.store.records import TaskRecord


def _circuit() -> Any:
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(3, name="ghz")
    qc.h(0)
    qc.cx(0, 1)
    qc.ccx(0, 1, 2)
    qc.rz(0.25, 2)
    qc.barrier()
    qc.measure_all()
    return qc


def test_circuits_travel_as_qpy_and_come_back_equal() -> None:
    from qshpc.task import payload

    qc = _circuit()
    data = payload.dumps(((qc, [qc, 3]), {"c": qc}))
    assert b"load_circuit" in data  # carried as QPY, not as pickled instructions
    (a, (b, n)), kw = pickle.loads(data)
    assert a == qc and b == qc and kw["c"] == qc and n == 3
    assert a.name == "ghz"


def test_custom_gates_and_odd_metadata_stay_pickled() -> None:
    from qiskit import QuantumCircuit

    from qshpc.task import payload

    custom = QuantumCircuit(1)
    custom.append(_my_gate(), [0])
    odd = _circuit()
    odd.metadata = {"when": object()}  # not JSON: QPY cannot write it
    for circuit in (custom, odd):
        data = payload.dumps(((circuit,), {}))
        assert b"load_circuit" not in data
    (back,), _ = pickle.loads(payload.dumps(((custom,), {})))
    assert type(back.data[0].operation).__name__ == "MyGate"


def test_without_qiskit_imported_payloads_are_plain_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    from qshpc.store import _qpy
    from qshpc.task import payload

    monkeypatch.setattr(_qpy, "circuit_class", lambda: None)
    value = ((1, "a", np.arange(3)), {"k": [1.5]})
    assert payload.dumps(value) == pickle.dumps(value, protocol=5)


def _my_gate() -> Any:
    from qiskit import QuantumCircuit
    from qiskit.circuit import Gate

    global MyGate

    class MyGate(Gate):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__("mine", 1, [])

        def _define(self) -> None:
            qc = QuantumCircuit(1)
            qc.x(0)
            self.definition = qc

    MyGate.__qualname__ = "MyGate"
    return MyGate()


def _records() -> list[TaskRecord]:
    big = np.arange(SHIP_ENCODED_MAX // 4, dtype=np.float64)  # rank 0 encodes this one
    mid = {i: i / 7 for i in range(L.RAW_RESULT_MIN // 8)}  # ~36 KiB encoded
    return [
        TaskRecord("0", "k0", "f", "SUCCEEDED", 1, 1, "h", 1.0, 2.0, 3.0, None, {0: 0.5, 3: 0.5}),
        TaskRecord("1", "k1", "f", "FAILED", 2, 1, "h", 1.0, 2.5, 3.5, 7, None, "Traceback\n"),
        TaskRecord("2", "k2", "f", "SUCCEEDED", 1, 1, "h", 1.5, 2.5, 4.0, 9, big, None, {"a": 1}),
        # Encoded on the worker, but over RAW_RESULT_MIN: /log/large, not /log/data.
        TaskRecord("3", "k3", "f", "SUCCEEDED", 1, 1, "h", 1.5, 2.5, 4.0, None, mid, None, None),
        TaskRecord("4", "k4", "f", "SUCCEEDED", 1, 1, "h", 1.5, 2.5, 4.0, None, [1.5], None, None),
    ]


def _frame_of(add: Any) -> Any:
    batch = Batch(Ends(records=5, meta=100, data=200, large=0), run=3)
    batch.add_record(_records()[0])  # a record of rank 0 first: order is kept
    add(batch)
    return batch.frame()


def test_a_chunk_encodes_exactly_what_add_record_writes() -> None:
    def by_records(batch: Batch) -> None:
        for rec in _records():
            batch.add_record(rec)

    def by_chunk(batch: Batch) -> None:
        builder = ChunkBuilder(rank=1)
        recs = _records()
        for r in recs:
            meta = encode_meta(r.task_id, r.key, r.function, r.host, r.error, r.provenance)
            ok = r.state == "SUCCEEDED"
            builder.add(meta, ok, r.result, r.started, r.finished)
        chunk = builder.take(
            [r.submitted for r in recs], [r.attempt for r in recs], [r.seed for r in recs]
        )
        assert len(chunk.unencoded) == 1  # the big array travels once, as a value
        batch.add_chunk(pickle.loads(pickle.dumps(chunk, protocol=5)))

    a, b = _frame_of(by_records), _frame_of(by_chunk)
    assert a.records.tobytes() == b.records.tobytes()
    assert a.meta == b.meta and a.data == b.data

    def blobs(frame: Any) -> list[bytes]:
        return [b"".join(bytes(p) for p in blob) for blob in frame.large]

    assert blobs(a) == blobs(b) and len(blobs(a)) == 2
    assert (b.records["run"] == 3).all()
    where = [int(w) for w in b.records["where"]]
    assert where == [L.WHERE_DATA, L.WHERE_DATA, L.WHERE_NONE, L.WHERE_LARGE, L.WHERE_LARGE,
                     L.WHERE_DATA]  # fmt: skip


def test_a_record_whose_value_cannot_travel_becomes_a_failure() -> None:
    builder = ChunkBuilder(rank=2)
    builder.add(encode_meta("0", "k", "f", "h", None, None), True, [1, 2], 1.0, 2.0)
    builder.fail(0, encode_meta("0", "k", "f", "h", "SerializationError: ...", None))
    chunk = builder.take([0.5])
    assert int(chunk.rows["state"][0]) == 1 and int(chunk.rows["where"][0]) == L.WHERE_NONE
    assert chunk.data == b"" and int(chunk.rows["res_len"][0]) == 0
