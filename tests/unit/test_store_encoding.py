"""Round trips of every stored type, blob and native encodings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter

from qshpc.errors import StoreError
from qshpc.store import decode_blob, encode_blob, to_jsonable
from qshpc.store.encoding_h5 import read_native, write_native


def _bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def _param() -> QuantumCircuit:
    qc = QuantumCircuit(1, name="rot")
    qc.rx(Parameter("θ"), 0)
    return qc


VALUES: dict[str, Any] = {
    "none": None,
    "true": True,
    "int": -7,
    "bigint": 2**100 + 1,
    "neg_bigint": -(2**90),
    "float": 0.1,
    "nan-free float list": [0.5, 1.5],
    "complex": 1 + 2j,
    "str": "héllo ∑ 🚀",
    "empty str": "",
    "bytes": b"\x00\x01raw",
    "quasi": {0: 0.25, 3: 0.75},
    "counts": {"00": 510, "11": 514},
    "mixed keys": {1: "a", "1": "b", 2.5: "c", (1, 2): "d", None: "e", False: "f"},
    "nested": {"a": [1, [2, {"b": (3, 4)}]], "c": {"d": {"e": None}}},
    "list int": [1, 2, 3],
    "list bool": [True, False],
    "list str": ["x", "ÿ", ""],
    "list mixed": [1, "a", None, 2.0],
    "empty list": [],
    "empty dict": {},
    "tuple": (1, "a"),
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "f64": np.arange(6, dtype=np.float64).reshape(2, 3),
    "i8": np.array([-1, 2], dtype=np.int8),
    "u64": np.array([2**63], dtype=np.uint64),
    "c128": np.array([1j, 2], dtype=np.complex128),
    "bool arr": np.array([True, False]),
    "f32 3d": np.ones((2, 2, 2), dtype=np.float32),
    "empty arr": np.zeros((0, 3)),
    "structured": np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
    "unicode arr": np.array(["ab", "ç"]),
    "np int scalar": np.int64(5),
    "np f32 scalar": np.float32(1.5),
    "np bool scalar": np.bool_(True),
    "special keys": {"a/b": 1, ".": 2, "": 3, "%2F": 4, ".hidden": 5},
    "big dict": {i: float(i) for i in range(1500)},
    "big list of dicts": [{"i": i} for i in range(1200)],
}


def assert_same(a: Any, b: Any) -> None:
    """Equal values of the same types, arrays and circuits included."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        for k in a:
            assert type(k) is type(next(x for x in b if x == k and type(x) is type(k)))
            assert_same(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, QuantumCircuit):
        assert a == b and a.name == b.name
    else:
        assert a == b


@pytest.mark.parametrize("name", list(VALUES))
def test_blob_round_trip(name: str) -> None:
    value = VALUES[name]
    assert_same(decode_blob(encode_blob(value)), value)


@pytest.mark.parametrize("name", list(VALUES))
def test_native_round_trip(name: str, tmp_path: Path) -> None:
    value = VALUES[name]
    with h5py.File(tmp_path / "n.h5", "w") as f:
        write_native(f, "v", value)
    with h5py.File(tmp_path / "n.h5", "r") as f:
        assert_same(read_native(f["v"], False, "n.h5"), value)
        assert f["v"].attrs["encoding-version"] == "1"


@pytest.mark.parametrize("value", [_bell(), [_bell(), _param()], {"c": _bell(), "n": 1}])
def test_circuits_via_qpy(value: Any, tmp_path: Path) -> None:
    assert_same(decode_blob(encode_blob(value)), value)
    with h5py.File(tmp_path / "c.h5", "w") as f:
        write_native(f, "v", value)
    with h5py.File(tmp_path / "c.h5", "r") as f:
        node = f["v"]["c"] if isinstance(value, dict) else f["v"]
        assert node.attrs["encoding-type"] == "qpy"
        assert node.dtype == np.uint8
        assert_same(read_native(f["v"], False, "c.h5"), value)


def test_float64_subclass_stored_as_float() -> None:
    assert decode_blob(encode_blob({0: np.float64(0.5)})) == {0: 0.5}


def test_large_array_is_not_copied_into_pickle() -> None:
    arr = np.arange(10**6, dtype=np.int32)
    data = encode_blob(arr)
    assert len(data) < arr.nbytes + 100
    out = decode_blob(data)
    out[0] = 1  # writable
    np.testing.assert_array_equal(out[1:], arr[1:])


@pytest.mark.parametrize("piece", [1000, 4096, 1 << 16])
def test_arrays_over_a_piece_round_trip(piece: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrays over ``_PIECE`` bytes (1 GiB) are stored as a list of pieces; here a small
    ``_PIECE``: whole pieces and a part, alone, nested, from bytes, bytearray or memoryview,
    through ``encode_blob`` and ``encode_blob_parts`` (the store's), each read back writable."""
    from qshpc.store import encoding_blob

    monkeypatch.setattr(encoding_blob, "_PIECE", piece)
    record = np.zeros(9000, dtype=[("a", "<i4"), ("b", "<f8")])
    record["a"] = np.arange(9000)
    arrays = [
        np.arange(40_000, dtype=np.float64),
        np.arange(60_000, dtype=np.int16).reshape(3, 20_000),
        record,
        np.arange(300_001, dtype=np.uint8),
    ]
    for arr in arrays:
        for value in (arr, {"x": arr, "y": [1, arr]}):
            blob = encode_blob(value)
            parts = b"".join(bytes(p) for p in encoding_blob.encode_blob_parts(value))
            assert parts == blob
            assert len(blob) > arr.nbytes  # the pieces' headers: not a single bin
            for data in (blob, bytearray(blob), memoryview(blob)):
                out = decode_blob(data)
                got = out if isinstance(value, np.ndarray) else out["y"][1]
                assert got.dtype == arr.dtype and got.shape == arr.shape
                np.testing.assert_array_equal(got, arr)
                got[0] = got[1]  # writable
    blob = encode_blob(arrays[0])
    for bad in (blob[:-1], blob[: -piece - 3], blob + b"\0"):
        with pytest.raises(StoreError):
            decode_blob(bad)


class Custom:
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Custom) and other.x == self.x

    __hash__ = None  # type: ignore[assignment]


def test_pickle_refused_without_allow_pickle(tmp_path: Path) -> None:
    blob = encode_blob({"obj": Custom(3)})
    with pytest.raises(StoreError, match="allow_pickle=True only if you trust"):
        decode_blob(blob)
    assert decode_blob(blob, allow_pickle=True) == {"obj": Custom(3)}
    path = tmp_path / "p.h5"
    with h5py.File(path, "w") as f:
        write_native(f, "v", Custom(4))
        assert f["v"].attrs["encoding-type"] == "pickle"
    with h5py.File(path, "r") as f:
        with pytest.raises(StoreError, match=r"p\.h5"):
            read_native(f["v"], False, str(path))
        assert read_native(f["v"], True, str(path)) == Custom(4)


def test_to_jsonable() -> None:
    value = {
        0: np.float64(0.5),
        "a": np.arange(3),
        "c": 1 + 2j,
        "t": (1, {2}),
        "nan": float("nan"),
        "b": b"\x00",
        "qc": _bell(),
    }
    out = to_jsonable(value)
    json.dumps(out)
    assert out["0"] == 0.5 and out["a"] == [0, 1, 2] and out["c"] == [1.0, 2.0]
    assert out["t"] == [1, [2]] and out["nan"] == "nan" and out["b"] == {"bytes_base64": "AA=="}
    assert out["qc"]["num_qubits"] == 2 and out["qc"]["qpy_base64"]


def test_a_list_of_dict_subclasses_is_one_blob(tmp_path: Path) -> None:
    """The seed's results (QuasiDistributions) are one dataset, not one per item; same values."""
    from qiskit.result import QuasiDistribution

    value = {"results": [QuasiDistribution({0: 0.25, 3: 0.75}) for _ in range(300)], "n": 300}
    with h5py.File(tmp_path / "q.h5", "w") as f:
        write_native(f, "v", value)
    with h5py.File(tmp_path / "q.h5", "r") as f:
        node = f["v"]["results"]
        assert isinstance(node, h5py.Dataset) and node.attrs["encoding-type"] == "msgpack"
        back = read_native(f["v"], False, "q.h5")
    assert back == {"results": [{0: 0.25, 3: 0.75}] * 300, "n": 300}
    mixed = [QuasiDistribution({0: 1.0}), {"plain": 1}]  # a plain dict stays native: a group
    with h5py.File(tmp_path / "m.h5", "w") as f:
        write_native(f, "v", mixed)
        assert isinstance(f["v"], h5py.Group)
