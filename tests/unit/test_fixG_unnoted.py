"""What the store loses of a value without noting it is found, and a journal read back is
checked (session 26, fixG; review45 F1, F3, F4, F8)."""

from __future__ import annotations

from pathlib import Path

import msgpack
import numpy as np
import pytest

from qshpc.cache.body import encode as cache_encode
from qshpc.errors import StoreError
from qshpc.store import JobWriter, create_job
from qshpc.store.chunk import INEXACT, ChunkBuilder, encode_meta
from qshpc.store.encoding_blob import decode_blob, encode_blob_noting
from qshpc.store.readback import read_value
from qshpc.store.unnoted import unnoted_loss
from tests.unit.test_fix42a_readback import RUNTIME, rec


def test_unnoted_losses_are_found() -> None:
    a = np.zeros(3)
    row = [1.0, 2.0]
    assert unnoted_loss(bytearray(3)) == "builtins.bytearray"
    assert unnoted_loss({"x": [(1, bytearray(b"ab"))]}) == "builtins.bytearray"
    assert unnoted_loss({"x": memoryview(b"ab")}) == "builtins.memoryview"
    assert unnoted_loss({"a": a, "b": a}) == "numpy.ndarray"
    assert unnoted_loss([row, {"r": row}]) == "builtins.list"
    # nothing lost: equal but distinct objects, immutable ones met twice, numpy scalars
    s, t = "x" * 100, (1, 2)
    assert unnoted_loss({"a": a, "b": a.copy(), "c": [s, s, t, t]}) is None
    assert unnoted_loss([np.float64(1.5)] * 4 + [None, b"b", {(1, 2): frozenset({3})}]) is None


@pytest.mark.filterwarnings("ignore:metadata on a dtype")
def test_dtype_metadata_is_noted() -> None:
    meta = np.dtype(float, metadata={"unit": "m"})
    assert encode_blob_noting(np.zeros(3, meta))[1] == "numpy.ndarray"
    assert encode_blob_noting({"a": np.zeros(1 << 18, meta)}, parts=True)[1] == "numpy.ndarray"
    assert encode_blob_noting(np.zeros(3))[1] is None


def test_an_aer_result_keeps_its_measurement_enums(tmp_path: Path) -> None:
    import h5py
    from qiskit import QuantumCircuit
    from qiskit.result.models import MeasLevel
    from qiskit_aer import AerSimulator

    from qshpc.store.encoding_h5 import read_native, write_native

    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    result = AerSimulator(seed_simulator=1).run([qc, qc], shots=5).result()
    blob, note = encode_blob_noting(result)
    back = decode_blob(blob)
    assert note is None and [type(e.meas_level) for e in back.results] == [MeasLevel] * 2
    assert back.get_counts(1) == result.get_counts(1)
    with h5py.File(tmp_path / "r.h5", "w") as f:  # a saved result, written natively
        write_native(f, "r", result)
    with h5py.File(tmp_path / "r.h5", "r") as f:
        native = read_native(f["r"], False, "r.h5")
    assert [type(e.meas_level) for e in native.results] == [MeasLevel] * 2
    result.results[0].meas_level = 2  # one int, one enum: pickled, as it was
    back = decode_blob(encode_blob_noting(result)[0], allow_pickle=True)
    assert [type(e.meas_level) for e in back.results] == [int, MeasLevel]


def _meta_fields(chunk_meta: bytes) -> list[object]:
    fields: list[object] = msgpack.unpackb(chunk_meta, raw=False, strict_map_key=False)
    return fields


def test_worker_and_rank0_note_what_they_lose() -> None:
    b = ChunkBuilder(1)
    meta = encode_meta("0", "k", "m.f", "h", None, None)
    b.add(meta, True, bytearray(10), 0.0, 1.0)  # small: its top only
    b.add(meta, True, {"x": [bytearray(30_000)]}, 0.0, 1.0)  # over 16 KiB: walked
    b.add(meta, True, {"x": bytearray(1 << 17)}, 0.0, 1.0)  # over 64 KiB: rank 0's
    b.add(meta, True, {"y": 1}, 0.0, 1.0)
    chunk = b.take([0.0] * 4)
    metas = [bytes(m) for m in b.meta]
    assert [INEXACT in str(_meta_fields(m)[5]) for m in metas] == [True, True, False, False]
    chunk.note(2, "builtins.bytearray")  # what Batch.add_chunk does for rank 0's
    rows = chunk.rows
    fields = [
        _meta_fields(chunk.meta[int(rows["off"][i]) : int(rows["off"][i] + rows["meta_len"][i])])
        for i in range(4)
    ]
    assert [INEXACT in (f[5] or {}) for f in fields] == [True, True, True, False]
    assert fields[3][0] == "0" and fields[3][5] is None


@pytest.mark.filterwarnings("ignore:metadata on a dtype")
def test_cache_pickles_a_value_holding_an_object_twice() -> None:
    a = np.zeros(5)
    assert cache_encode({"a": a, "b": a}).form == "pickle"
    assert cache_encode({"a": np.zeros(3, np.dtype(float, metadata={"u": 1}))}).form == "pickle"
    assert cache_encode({"a": a, "b": a.copy()}).form == "blob"


def test_a_changed_journal_byte_fails_the_read_back(tmp_path: Path) -> None:
    job = tmp_path / "j"
    create_job(job, {"id": "j", "title": "t", "created": 5.0, "seed": 3}, {})
    w = JobWriter.open(job, RUNTIME)
    a, d = np.arange(100_000.0), {"a": np.arange(50_000.0) + 0.5}
    wa, wd = w.append_task(rec(0, a)), w.append_task(rec(1, d))
    assert w.append_task(rec(2, bytearray(100_000))) is None  # stored as bytes: not offered
    assert wa is not None and wd is not None
    w.commit()
    wb = w.append_task(rec(3, np.ones(10_000)))
    assert wb is not None
    w.commit()

    def read(where: tuple[int, int, int]) -> object:
        src = w.large_source(where[1], where[2])
        try:
            return read_value(src, where[2])
        finally:
            src.close()

    assert np.array_equal(read(wa), a)  # (its frame checked once, then each blob)
    journal = job / "job.journal"
    data = bytearray(journal.read_bytes())
    at = data.find((np.arange(50_000.0) + 0.5).tobytes()[8000:8016])
    assert at > 0
    data[at] ^= 1  # a byte of the second result, after its frame was checked
    journal.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="do not match their checksum"):
        read(wd)
    assert np.array_equal(read(wa), a)  # the other, unchanged, reads back
    end = journal.stat().st_size
    with open(journal, "r+b") as fh:  # the last frame, not checked yet
        fh.seek(end - 100)
        fh.write(b"\0" * 8)
    with pytest.raises(StoreError, match="does not match its checksum"):
        read(wb)
    w.close()


def test_a_worker_counts_any_large_result_toward_its_early_send() -> None:
    # review45 F5 read chunk.py as counting arrays only: a dict, list or tuple is encoded
    # on the worker to learn its size, and that size counts (batchrun's _PARTIAL_BYTES)
    b = ChunkBuilder(1)
    meta = encode_meta("0", "k", "m.f", "h", None, None)
    big = np.ones(1 << 17)  # 1 MiB
    for value in ({"a": big}, [big], (big, 1), big):
        before = b.unencoded_bytes
        b.add(meta, True, value, 0.0, 1.0)
        assert b.unencoded_bytes - before >= big.nbytes
