"""What the store hands back is what went in (review28 F4, F2).

Masked arrays keep their mask, fill value and hardness, ``numpy.matrix`` and
``numpy.recarray`` their class, in task results, ``save_result`` and job arguments
(blob and native encodings), without pickle; other ndarray subclasses are pickled
as anything else is. A task record whose result is stored as another type (a
``defaultdict`` as a dict) says so in its provenance, and a resumed job runs that
task again instead of handing the program the flattened copy.
"""

from __future__ import annotations

import collections
import enum
import pickle
from pathlib import Path
from typing import Any

import h5py
import msgpack
import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Gate

from qshpc.program.session import Session
from qshpc.store import JobReader, JobWriter, TaskRecord, create_job, decode_blob, encode_blob
from qshpc.store.batch import Batch, Ends
from qshpc.store.chunk import ChunkBuilder, encode_meta
from qshpc.store.encoding_blob import (
    EXT_NDARRAY,
    SCATTER_MIN,
    PickleRefusedError,
    encode_blob_parts,
)
from qshpc.store.encoding_h5 import read_native, write_native
from qshpc.store.inputs import read_inputs

pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")

RUNTIME = {"mpi_size": 1, "ranks": [{"rank": 0, "host": "h0"}], "started": 1.0, "resume": False}

MASKED: dict[str, Any] = {
    "masked_greater": np.ma.masked_greater([50.0, 1e9, 70.0], 1e6),
    "nomask": np.ma.array([1, 2, 3]),
    "all_false_mask": np.ma.array([1, 2], mask=[False, False]),
    "fill_and_hard": np.ma.array([1.5, 2.5], mask=[True, False], fill_value=-1.0, hard_mask=True),
    "2d_strided": np.ma.array(np.arange(12.0).reshape(3, 4)[:, ::2], mask=[[1, 0], [0, 1], [0, 0]]),
    "0d": np.ma.array(5.0, mask=True),
    "empty": np.ma.array(np.zeros((0, 3), np.int16), mask=np.zeros((0, 3), bool)),
    "structured": np.ma.array(
        np.zeros(2, dtype=[("a", "f8"), ("b", [("c", "i4")])]), mask=[(1, (0,)), (0, (1,))]
    ),
    "complex": np.ma.masked_invalid(np.array([1 + 2j, np.nan, 3j])),
}


def _same_masked(a: Any, b: Any) -> None:
    assert type(b) is type(a)
    assert b.dtype == a.dtype and b.shape == a.shape
    assert (b._mask is np.ma.nomask) == (a._mask is np.ma.nomask)
    assert np.array_equal(np.ma.getmaskarray(b), np.ma.getmaskarray(a))
    assert b.data.tobytes() == np.ascontiguousarray(a.data).tobytes()
    assert repr(b._fill_value) == repr(a._fill_value)
    assert b.hardmask == a.hardmask
    assert repr(b) == repr(a)


@pytest.mark.parametrize("name", sorted(MASKED))
def test_a_masked_array_keeps_its_mask_in_a_blob(name: str) -> None:
    value = MASKED[name]
    back = decode_blob(encode_blob(value))  # no pickle: another user may read it
    _same_masked(value, back)
    assert back._sharedmask is False  # its mask is its own: changing it copies nothing
    if name == "masked_greater":
        assert back.mean() == 60.0  # was 333333373.3: the 1e9 read as a measurement


@pytest.mark.parametrize("name", sorted(MASKED))
def test_a_masked_array_keeps_its_mask_natively(name: str, tmp_path: Path) -> None:
    value = MASKED[name]
    with h5py.File(tmp_path / "n.h5", "w") as f:
        write_native(f, "v", {"readings": value, "more": [value, 1]})
    with h5py.File(tmp_path / "n.h5", "r") as f:
        back = read_native(f["v"], False, "n.h5")
    _same_masked(value, back["readings"])
    _same_masked(value, back["more"][0])


def test_the_masked_constant_is_itself() -> None:
    assert decode_blob(encode_blob(np.ma.masked)) is np.ma.masked
    fully = np.ma.masked_all(3).mean()  # what a mean of nothing gives
    assert decode_blob(encode_blob({"mean": fully}))["mean"] is np.ma.masked


def test_a_big_masked_array_keeps_its_mask_when_written_from_its_memory() -> None:
    data = np.arange(SCATTER_MIN // 8 * 2, dtype=np.float64)
    value = {"big": np.ma.masked_greater(data, 10.0)}
    parts = encode_blob_parts(value)
    back = decode_blob(b"".join(bytes(p) for p in parts))
    _same_masked(value["big"], back["big"])


def test_matrix_and_recarray_keep_their_class() -> None:
    m = np.matrix([[0, 1], [1, 0]])
    back = decode_blob(encode_blob({"rot": m}))["rot"]
    assert type(back) is np.matrix and (back * back).tolist() == [[1, 0], [0, 1]]
    r = np.rec.array([(1, 2.0), (3, 4.0)], dtype=[("x", "i4"), ("y", "f8")])
    back = decode_blob(encode_blob(r))
    assert type(back) is np.recarray and back.dtype == r.dtype and back.x.tolist() == [1, 3]


def test_matrix_natively(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "n.h5", "w") as f:
        write_native(f, "m", np.matrix([[1.0, 2.0]]))
    with h5py.File(tmp_path / "n.h5", "r") as f:
        back = read_native(f["m"], False, "n.h5")
    assert type(back) is np.matrix and back.tolist() == [[1.0, 2.0]]


class Tagged(np.ndarray):  # type: ignore[type-arg]
    """An ndarray subclass with state of its own (as a unit would be)."""

    unit = "s"


def test_another_ndarray_subclass_is_pickled_not_flattened() -> None:
    value = np.arange(3.0).view(Tagged)
    blob = encode_blob(value)
    with pytest.raises(PickleRefusedError):
        decode_blob(blob)
    back = decode_blob(blob, allow_pickle=True)
    assert type(back) is Tagged and back.tolist() == [0.0, 1.0, 2.0]


def test_a_memmap_is_stored_as_the_array_it_maps(tmp_path: Path) -> None:
    mm = np.memmap(tmp_path / "m.bin", dtype=np.int32, mode="w+", shape=(4,))
    mm[:] = [1, 2, 3, 4]
    back = decode_blob(encode_blob(mm))
    assert type(back) is np.ndarray and back.tolist() == [1, 2, 3, 4]


def test_blobs_written_before_read_as_they_did() -> None:
    # a masked array was stored as its data alone (code 1): still a plain array
    old = msgpack.packb(
        msgpack.ExtType(EXT_NDARRAY, msgpack.packb(["<f8", [2], np.array([1.0, 2.0]).tobytes()])),
        use_bin_type=True,
    )
    back = decode_blob(old)
    assert type(back) is np.ndarray and back.tolist() == [1.0, 2.0]


def test_arguments_keep_a_masked_array(tmp_path: Path) -> None:
    readings = np.ma.masked_greater([1.0, 500.0, 3.0], 100)
    job = tmp_path / "job"
    create_job(job, {"id": "j", "title": "t", "created": 5.0}, {"readings": readings})
    args = read_inputs(job).arguments
    _same_masked(readings, args["readings"])
    assert args["readings"].mean() == 2.0  # was 168.0


def test_save_result_keeps_a_masked_array(tmp_path: Path) -> None:
    job = tmp_path / "job"
    create_job(job, {"id": "j", "title": "t", "created": 5.0}, {})
    t1 = np.ma.masked_greater([50.0, 1e9, 70.0], 1e6)
    w = JobWriter.open(job, RUNTIME)
    w.save_result({"t1": t1, "rot": np.matrix([[0, 1], [1, 0]])})
    with JobReader.open(job) as r:  # running: the result event's blob
        _same_masked(t1, r.result()["t1"])
    w.finalize("SUCCEEDED")
    with JobReader.open(job) as r:  # final: /result, natively
        res = r.result()
    _same_masked(t1, res["t1"])
    assert type(res["rot"]) is np.matrix


class Color(enum.IntEnum):
    RED = 1


def _custom_gate_circuit() -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.append(Gate("mygate", 1, []), [0])
    return qc


INEXACT_VALUES: dict[str, tuple[Any, str | None]] = {
    "plain": ({"a": [1, 2.0, "x", None, (1, 2)], 3: {1, 2}}, None),
    "float64": ([np.float64(1.5), np.int64(2)], None),  # documented: the same value
    "array": (np.arange(3), None),
    "masked": (MASKED["masked_greater"], None),
    "matrix": (np.array([[1]]).view(np.matrix), None),
    "defaultdict": (collections.defaultdict(list, {"w": [1]}), "collections.defaultdict"),
    "counter_inside": ({"c": collections.Counter("aab")}, "collections.Counter"),
    "ordereddict": ([collections.OrderedDict(a=1)], "collections.OrderedDict"),
    # msgpack packs a bytearray itself, as bytes: not seen (store.md says so)
    "bytearray": (bytearray(b"ab"), None),
    "intenum": ({"c": Color.RED}, f"{__name__}.Color"),
    "circuit": (QuantumCircuit(1), None),
    "custom_gate": (_custom_gate_circuit(), "qiskit.circuit.quantumcircuit.QuantumCircuit"),
    "custom_gates": ([_custom_gate_circuit()], "qiskit.circuit.quantumcircuit.QuantumCircuit"),
}


@pytest.mark.parametrize("name", sorted(INEXACT_VALUES))
def test_the_encoding_says_when_it_is_not_exact(name: str) -> None:
    from qshpc.store.encoding_blob import encode_blob_noting

    value, inexact = INEXACT_VALUES[name]
    blob, said = encode_blob_noting(value)
    assert said == inexact
    assert blob == encode_blob(value)  # the same bytes
    parts, said = encode_blob_noting(value, parts=True)
    assert said == inexact and b"".join(bytes(p) for p in parts) == blob
    assert encode_blob_noting(1)[1] is None  # nothing left over for the next value


def _rec(i: int, result: Any) -> TaskRecord:
    return TaskRecord(
        task_id=str(i), key=f"key-{i}", function="m.f", state="SUCCEEDED", attempt=1, rank=0,
        host="h0", submitted=1.0, started=2.0, finished=3.0, result=result,
        provenance={"n": i},
    )  # fmt: skip


def test_a_record_says_its_result_is_not_exact(tmp_path: Path) -> None:
    from qshpc.store.chunk import INEXACT

    job = tmp_path / "job"
    create_job(job, {"id": "j", "title": "t", "created": 5.0}, {})
    w = JobWriter.open(job, RUNTIME)
    w.append_task(_rec(0, collections.defaultdict(list, {"w": [1]})))  # rank 0's own call
    w.append_task(_rec(1, {"w": [1]}))
    builder = ChunkBuilder(rank=1)  # a worker's records
    for i, value in ((2, collections.Counter("ab")), (3, MASKED["masked_greater"])):
        builder.add(encode_meta(str(i), f"key-{i}", "m.f", "h1", None, {"n": i}), True, value, 2, 3)
    w.append_chunk(pickle.loads(pickle.dumps(builder.take([1.0, 1.0]))))
    w.finalize("FAILED", "stopped")
    with JobReader.open(job) as r:
        prov = {t["task_id"]: t["provenance"] for t in r.tasks()}
        done = r.done_records()
    assert prov == {
        "0": {"n": 0, INEXACT: "collections.defaultdict"},
        "1": {"n": 1},
        "2": {"n": 2, INEXACT: "collections.Counter"},
        "3": {"n": 3},
    }
    session = Session(None, None, {}, done)
    assert session.done_result("key-0") is None  # runs again: it must be a defaultdict
    assert session.done_result("key-2") is None
    assert session.done_result("key-1") == ({"w": [1]},)
    (masked,) = session.done_result("key-3") or (None,)
    _same_masked(MASKED["masked_greater"], masked)
    assert (session.redone, session.skipped) == (2, 2)


def test_an_exact_record_is_written_as_before() -> None:
    rec = _rec(1, {"w": [1.0, np.float64(2)]})
    batch = Batch(Ends(), run=1)
    batch.add_record(rec)
    frame = batch.frame()
    meta = msgpack.unpackb(frame.meta, raw=False)
    assert meta[5] == {"n": 1}


def test_json_shows_a_masked_element_as_null() -> None:
    from qshpc.store import to_jsonable

    value = {"t1": MASKED["masked_greater"], "mean": np.ma.masked, "zero_d": np.array(3.0)}
    assert to_jsonable(value) == {"t1": [50.0, None, 70.0], "mean": None, "zero_d": 3.0}


def test_a_big_inexact_result_rank_0_encodes_is_noted_by_the_worker() -> None:
    from qshpc.store.chunk import INEXACT, SHIP_ENCODED_MAX

    value = collections.defaultdict(list, {i: [float(i)] for i in range(SHIP_ENCODED_MAX // 8)})
    builder = ChunkBuilder(rank=1)
    builder.add(encode_meta("0", "k", "m.f", "h1", None, None), True, value, 2.0, 3.0)
    chunk = builder.take([1.0])
    assert len(chunk.unencoded) == 1  # too big to travel twice: rank 0 encodes it
    assert msgpack.unpackb(chunk.meta, raw=False)[5] == {INEXACT: "collections.defaultdict"}
