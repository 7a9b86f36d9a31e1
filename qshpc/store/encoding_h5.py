"""The native HDF5 encoding (arguments, meta, the final ``/result``).

Every node carries ``encoding-type`` and ``encoding-version`` ("1") attrs, and
readers dispatch on them:

================  ========  ==================================================
encoding-type     node      holds
================  ========  ==================================================
dict              group     one member per item, in insertion order; a member
                            whose key is not a plain str name carries a ``key``
                            attr (the key, blob-encoded) so int keys stay int
list, tuple       group     members "0", "1", ...
list, tuple       dataset   homogeneous bool/int/float/complex/str items
                            (``item-type`` attr); empty sequences too
array             dataset   a numpy array of any dtype HDF5 holds
numpy-scalar      dataset   scalar dataset of the scalar's dtype
none, bool, int,  dataset   scalar dataset (none: empty dataset)
float, complex,
str, bytes
bigint            dataset   str of an int beyond 64 bits
qpy               dataset   uint8 QPY bytes; ``qpy-list`` attr: a list of circuits
                            (read as :class:`QPYBytes`, undecoded, when asked)
msgpack           dataset   uint8 blob encoding (sets, dicts and lists of more
                            than 1000 items, lists of dict subclasses such as
                            QuasiDistribution, dtypes HDF5 lacks, ndarray
                            subclasses: masked arrays, matrices)
pickle            dataset   uint8 pickle, refused unless ``allow_pickle=True``
================  ========  ==================================================

Qiskit's primitive results (``PrimitiveResult``, ``PubResult``, ``DataBin``,
``BitArray``...) have encoding-types of their own: see
:mod:`qshpc.store.qiskit_results`; so have common Qiskit objects
(``SparsePauliOp``, ``Statevector``, ``Parameter``, V1 results, ``NoiseModel``...):
see :mod:`qshpc.store.qiskit_objects`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from qshpc.errors import SchemaVersionError, SerializationError
from qshpc.store import _qpy, qiskit_objects, qiskit_results
from qshpc.store.encoding_blob import (
    decode_blob,
    encode_blob,
    iterator_hint,
    pickle_dumps,
    pickle_refused,
    unpickle,
)
from qshpc.store.h5names import escape, unescape
from qshpc.store.layout import ENC_TYPE, ENC_VERSION

VERSION = "1"
MAX_GROUP_ITEMS = 1000
_SCALARS: dict[type, str] = {bool: "bool", int: "int", float: "float", complex: "complex"}
_BLOB_TYPES = (
    dict,
    list,
    tuple,
    set,
    frozenset,
    str,
    bytes,
    bytearray,
    int,
    float,
    complex,
    np.ndarray,
    np.generic,
)
_ITEM_DTYPES: dict[str, Any] = {
    "bool": np.bool_,
    "int": np.int64,
    "float": np.float64,
    "complex": np.complex128,
}


@dataclass(frozen=True)
class QPYBytes:
    """Circuits as QPY bytes, not decoded: read with ``raw_qpy=True``, written back as they are.

    Copying a job's circuits from an arguments file this way needs no qiskit
    and no QPY dump (:func:`qshpc.jobs.prepare.prepare_job`).

    Attributes:
        data: The QPY bytes.
        is_list: They stand for a list of circuits (else for one circuit).
    """

    data: bytes
    is_list: bool


def _mark(obj: h5py.Group | h5py.Dataset, enc_type: str) -> None:
    obj.attrs[ENC_TYPE] = enc_type
    obj.attrs[ENC_VERSION] = VERSION


def _bytes_ds(parent: h5py.Group, name: str, data: bytes, enc_type: str) -> h5py.Dataset:
    ds = parent.create_dataset(name, data=np.frombuffer(data, dtype=np.uint8))
    _mark(ds, enc_type)
    return ds


def _item_type(items: list[Any] | tuple[Any, ...]) -> str | None:
    if not items:
        return "empty"
    kinds = {type(v) for v in items}
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    if kind is int and not all(-(2**63) <= v < 2**63 for v in items):
        return None
    if kind is str:
        return "str" if not any("\x00" in v for v in items) else None
    return _SCALARS.get(kind)


def write_native(parent: h5py.Group, name: str, value: Any) -> None:
    """Write ``value`` as member ``name`` of ``parent`` in the native encoding.

    Raises:
        SerializationError: When the value cannot be encoded (pickle failed too).
    """
    kind = type(value)
    if value is None:
        _mark(parent.create_dataset(name, data=h5py.Empty("f")), "none")
    elif kind in _SCALARS:
        if kind is int and not -(2**63) <= value < 2**63:
            _mark(parent.create_dataset(name, data=str(value)), "bigint")
        else:
            _mark(parent.create_dataset(name, data=value), _SCALARS[kind])
    elif kind is str and "\x00" not in value:
        _mark(parent.create_dataset(name, data=value, dtype=h5py.string_dtype()), "str")
    elif kind is bytes:
        _bytes_ds(parent, name, value, "bytes")
    elif kind is QPYBytes:
        _bytes_ds(parent, name, value.data, "qpy").attrs["qpy-list"] = value.is_list
    elif kind is dict and len(value) <= MAX_GROUP_ITEMS:
        _write_dict(parent, name, value)
    elif kind in (list, tuple) and _qpy.is_circuit_list(value):
        _bytes_ds(parent, name, _qpy.dump(value), "qpy").attrs["qpy-list"] = True
    elif kind in (list, tuple) and (item := _item_type(value)) is not None:
        _write_seq_ds(parent, name, value, item)
    elif kind in (list, tuple) and len(value) <= MAX_GROUP_ITEMS and not _all_opaque(value):
        g = parent.create_group(name)
        _mark(g, kind.__name__)
        for i, v in enumerate(value):
            write_native(g, str(i), v)
    elif (kind is np.ndarray or kind is np.memmap) and not value.dtype.hasobject:
        # not a subclass (a masked array's mask, a matrix): those are blobs (encoding_blob)
        _write_array(parent, name, value, "array")
    elif isinstance(value, np.generic) and not value.dtype.hasobject:
        _write_array(parent, name, np.asarray(value), "numpy-scalar")
    elif _qpy.is_circuit(value):
        _bytes_ds(parent, name, _qpy.dump(value), "qpy").attrs["qpy-list"] = False
    elif (container := qiskit_results.kind(value)) is not None:
        qiskit_results.write_h5(parent, name, value, container, write_native, _mark)
    elif isinstance(value, _BLOB_TYPES):
        # sets, big containers, subclasses, odd dtypes (pickle only for parts inside)
        _bytes_ds(parent, name, encode_blob(value), "msgpack")
    elif (typed := qiskit_objects.typed_parts(value)) is not None:
        qiskit_objects.write_h5(parent, name, typed[1], typed[0], write_native, _mark)
    else:
        try:
            data = pickle_dumps(value)
        except Exception as exc:
            raise SerializationError(
                f"cannot store {name!r} of type {type(value).__qualname__}: it is not a "
                f"plain value, array or circuit, and pickle failed: {exc}{iterator_hint(value)}"
            ) from exc
        _bytes_ds(parent, name, data, "pickle")


def _all_opaque(items: list[Any] | tuple[Any, ...]) -> bool:
    """True when every item is a dict subclass (a ``QuasiDistribution``, ``Counts``...).

    Each would be one blob dataset of its own (msgpack: HDF5 cannot hold the
    class); the list is one blob instead, as a list of over 1000 items is. One
    dataset and two attributes per item cost about 0.25 ms: the seed program's
    512 results took 0.12 s of the job's final rewrite, on its critical path.
    """
    return bool(items) and all(type(v) is not dict and isinstance(v, dict) for v in items)


def _write_dict(parent: h5py.Group, name: str, value: dict[Any, Any]) -> None:
    g = parent.create_group(name, track_order=True)
    _mark(g, "dict")
    for key, v in value.items():
        plain = type(key) is str
        member = escape(key) if plain else escape(str(key))
        if member in g:
            plain = False
            n = 1
            while f"{member}%23{n}" in g:
                n += 1
            member = f"{member}%23{n}"
        write_native(g, member, v)
        if not plain:
            g[member].attrs["key"] = np.void(encode_blob(key))


def _write_seq_ds(parent: h5py.Group, name: str, value: Any, item: str) -> None:
    if item == "str":
        ds = parent.create_dataset(name, data=list(value), dtype=h5py.string_dtype())
    elif item == "empty":
        ds = parent.create_dataset(name, shape=(0,), dtype="f8")
    else:
        ds = parent.create_dataset(name, data=np.asarray(value, dtype=_ITEM_DTYPES[item]))
    _mark(ds, type(value).__name__)
    ds.attrs["item-type"] = item


def _write_array(parent: h5py.Group, name: str, arr: np.ndarray[Any, Any], enc: str) -> None:
    try:
        ds = parent.create_dataset(name, data=arr)
    except (TypeError, ValueError):
        if name in parent:
            del parent[name]
        _bytes_ds(parent, name, encode_blob(arr if enc == "array" else arr[()]), "msgpack")
        return
    _mark(ds, enc)
    if arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous:
        ds.attrs["order"] = "F"  # its values as any array's; read back Fortran-ordered


def read_native(
    node: h5py.Group | h5py.Dataset, allow_pickle: bool, source: str, raw_qpy: bool = False
) -> Any:
    """Read a node written by :func:`write_native`.

    Args:
        node: The group or dataset.
        allow_pickle: Load pickled values (only from files you trust).
        source: The file path, for error messages.
        raw_qpy: Circuits stay QPY bytes (:class:`QPYBytes`; qiskit not imported),
            except inside Qiskit's result types.
    """
    enc = node.attrs.get(ENC_TYPE, "")
    enc = enc.decode() if isinstance(enc, bytes) else str(enc)
    where = f"{source}:{node.name}"
    if enc in qiskit_results.H5_TYPES:
        return qiskit_results.read_h5(node, enc, lambda c: read_native(c, allow_pickle, source))
    if enc in qiskit_objects.H5_TYPES:
        try:
            return qiskit_objects.read_h5(node, enc, lambda c: read_native(c, allow_pickle, source))
        except qiskit_objects.UnknownKind as exc:
            raise SchemaVersionError(f"{where} holds {exc}") from None
        except ImportError as exc:
            raise SerializationError(
                f"{where} holds a {enc} (a Qiskit object); reading it needs "
                f"{exc.name or 'qiskit'}: install it"
            ) from None
    if isinstance(node, h5py.Group):
        if enc == "dict":
            out: dict[Any, Any] = {}
            for member, child in node.items():
                kb = child.attrs.get("key")
                key = decode_blob(kb.tobytes(), allow_pickle, where) if kb is not None else None
                out[unescape(member) if kb is None else key] = read_native(
                    child, allow_pickle, source, raw_qpy
                )
            return out
        if enc not in ("list", "tuple", ""):  # a kind a newer qshpc writes: not a list
            raise SchemaVersionError(f"{where} has unknown encoding-type {enc!r}; upgrade qshpc")
        items = [node[k] for k in sorted(node.keys(), key=lambda s: int(s) if s.isdigit() else -1)]
        members = [read_native(c, allow_pickle, source, raw_qpy) for c in items]
        return tuple(members) if enc == "tuple" else members
    if enc == "none":
        return None
    if enc in ("bool", "int", "float", "complex"):
        return {"bool": bool, "int": int, "float": float, "complex": complex}[enc](node[()])
    if enc == "str":
        return node.asstr()[()]
    if enc == "bigint":
        return int(node.asstr()[()])
    if enc in ("list", "tuple"):
        item = str(node.attrs.get("item-type", ""))
        if item == "empty":
            seq: list[Any] = []
        elif item == "str":
            seq = list(node.asstr()[()])
        else:
            seq = node[()].tolist()
        return tuple(seq) if enc == "tuple" else seq
    raw = node[()]
    if enc == "array":  # h5py reads a scalar dataset as a numpy scalar: a 0-d array stays one
        if isinstance(raw, np.ndarray) and node.attrs.get("order") == "F":
            return np.asfortranarray(raw)  # (review48: it came back C-ordered)
        return raw if isinstance(raw, np.ndarray) else np.asarray(raw)
    if enc == "numpy-scalar":
        return raw[()] if isinstance(raw, np.ndarray) else raw
    data = raw.tobytes() if isinstance(raw, np.ndarray) else bytes(raw)
    if enc == "bytes":
        return data
    if enc == "qpy":
        if raw_qpy:
            return QPYBytes(data, bool(node.attrs.get("qpy-list", False)))
        circuits = _qpy.load(data)
        return circuits if bool(node.attrs.get("qpy-list", False)) else circuits[0]
    if enc == "msgpack":
        return decode_blob(data, allow_pickle, where)
    if enc == "pickle":
        if not allow_pickle:
            raise pickle_refused(source, data)
        return unpickle(data, source)
    if not enc:
        return raw
    raise SerializationError(f"{where} has unknown encoding-type {enc!r}; upgrade qshpc")
