"""The blob encoding: msgpack with extension types (encoding-type ``qshpc-msgpack``).

Plain values (None, bool, int, float, str, bytes, list, dict) are msgpack's own
types; dict keys keep their types (an int key stays int). Extension types:

====  ==============  ====================================================
code  Python type     payload
====  ==============  ====================================================
1     numpy.ndarray   msgpack ``[descr, shape, data]`` (``data`` is bytes, or a
                      list of bytes pieces for arrays over 2 GiB)
2     numpy scalar    msgpack ``[descr, raw bytes]``
3     complex         little-endian ``<dd``
4     tuple           msgpack array of the items
5     set             msgpack array of the items
6     frozenset       msgpack array of the items
7     int > 64 bits   signed big-endian two's complement bytes
8     QuantumCircuit  QPY bytes (``qiskit.qpy.dump``)
9     list of         QPY bytes of the whole list (only for a top-level list
      circuits        whose items are all circuits)
10    anything else   pickle (refused on load unless ``allow_pickle=True``)
11    Qiskit primitive  ``[kind, parts]`` (:mod:`qshpc.store.qiskit_results`):
      result types    PrimitiveResult, PubResult, DataBin, BitArray...
12    Qiskit objects  ``[kind, format, parts]`` (:mod:`qshpc.store.qiskit_objects`):
                      SparsePauliOp, Statevector, Parameter, V1 results...
13    masked array    ``["array", data, mask, fill_value, hard_mask]``: ``data`` the
                      ndarray, ``mask`` None for ``nomask`` or the bool array,
                      ``fill_value`` None (not set) or a 0-d array; or
                      ``["constant"]``, ``numpy.ma.masked``
14    ndarray view    ``[kind, array]``: ``kind`` ``"matrix"`` (``numpy.matrix``) or
                      ``"recarray"`` (``numpy.recarray``), the array its plain view;
                      ``"transposed"`` (session 27): a Fortran-ordered ndarray, the
                      array its transpose (C order), read back as ``array.T``
====  ==============  ====================================================

Subclasses of dict, list, str, int, float and bytes are stored as their base type,
but for the typed ones of code 12 (``QuasiDistribution``, ``Counts``...) and
``numpy.float64``, a numpy scalar (2) as the others are (before session 24 it was
stored as a ``float``: a resumed job's task result came back a ``float``). A ``numpy.memmap`` is stored as the array it maps; other ndarray
subclasses (and masked arrays of object dtype, or over a subclass) are pickled (10),
as anything else is: storing them as plain arrays lost what they add (a unit, a mask).
Blobs written before codes 13 and 14 read as they did (masked arrays and matrices
were plain arrays then).

:func:`encode_blob_noting` also says whether the bytes give the value back with its
types (None) or a type they store as another.
``descr`` is ``numpy.lib.format.dtype_to_descr`` of the dtype, so structured
dtypes survive.
"""

from __future__ import annotations

import itertools
import pickle
import struct
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgpack

from qshpc._lazy import loaded
from qshpc.errors import SchemaVersionError, SerializationError, StoreError
from qshpc.store import _qpy, qiskit_objects, qiskit_results
from qshpc.store.nesting import CONTAINERS as _NESTED
from qshpc.store.nesting import MAX_DEPTH, check_stored

if TYPE_CHECKING:
    import numpy as np

# numpy is looked up in ``sys.modules`` where values are encoded, imported where arrays
# are decoded: a worker of a program that never imports numpy does not load it (0.08-0.10
# CPU s), and a value cannot be a numpy object if numpy was never imported.

ENCODING_TYPE = "qshpc-msgpack"
ENCODING_VERSION = "1"

EXT_NDARRAY = 1
EXT_NPSCALAR = 2
EXT_COMPLEX = 3
EXT_TUPLE = 4
EXT_SET = 5
EXT_FROZENSET = 6
EXT_BIGINT = 7
EXT_CIRCUIT = 8
EXT_CIRCUITS = 9
EXT_PICKLE = 10
EXT_QISKIT_RESULT = 11
EXT_QISKIT_OBJECT = 12
EXT_MASKED = 13
EXT_NDVIEW = 14

_PIECE = 1 << 30  # bytes per bin object for huge arrays (msgpack bins stop at 4 GiB)


class PickleRefusedError(StoreError):
    """Raised when pickled data is met and ``allow_pickle`` is False.

    ``what``: the class the pickle rebuilds (``numpy.char.chararray``), when plain to see.
    """

    what: str | None = None


def pickle_refused(source: str, data: bytes | None = None) -> PickleRefusedError:
    """The error raised when pickled data is found in ``source`` without ``allow_pickle``;
    the pickle's ``data`` names its class (:func:`qshpc.store.pickled.pickled_class`)."""
    from qshpc.store.pickled import pickled_class

    what = pickled_class(data) if data is not None else None
    exc = PickleRefusedError(
        f"{source} contains pickled data{f' (a {what})' if what else ''}; pass "
        f"allow_pickle=True only if you trust who wrote {source}"
    )
    exc.what = what
    return exc


class ModuleMissingError(SerializationError):
    """A pickled value in ``source`` names a module that does not import here
    (``module``): most often one beside the program (``from helpers import Stat``),
    which its job imported from the program's folder."""

    def __init__(self, source: str, module: str | None, why: str, fix: str) -> None:
        self.source, self.module, self.why = source, module, why
        super().__init__(
            f"{source} holds a pickled object of a class from the module {module or '?'!r}, "
            f"which this process cannot import ({why}); {fix}"
        )


def unpickle(data: bytes, source: str) -> Any:
    """``pickle.loads(data)``; a module its classes need and this process cannot import
    is a :class:`ModuleMissingError` naming the fix (review31 F7: a bare
    ``No module named 'helpers'``)."""
    try:
        return pickle.loads(data)
    except ImportError as exc:
        fix = (
            "read it where the program imports it: from the program's folder, "
            "or with that folder on PYTHONPATH"
        )
        raise ModuleMissingError(source, exc.name, str(exc), fix) from exc


def _descr(dtype: np.dtype[Any]) -> Any:
    import numpy as np

    return np.lib.format.dtype_to_descr(dtype)


def _dtype(descr: Any) -> np.dtype[Any]:
    import numpy as np

    if isinstance(descr, list):
        descr = [tuple(d) for d in descr]
    return np.lib.format.descr_to_dtype(descr)


_local = threading.local()
#: A ``numpy.float64``'s code-2 body but its 8 bytes: ``_pack(["<f8", raw])`` (little-endian
#: machines; elsewhere it takes the general way).
_F64_HEAD = b"\x92\xa3<f8\xc4\x08" if sys.byteorder == "little" else b""
_F64 = struct.Struct("<d")


def _pack(value: Any) -> bytes:
    # One Packer per thread, reused: msgpack.packb builds a new one per call,
    # which is most of the cost of a small blob. ``_default`` packs nested
    # values while the thread's Packer is busy: those take a fresh one.
    packer: msgpack.Packer | None = getattr(_local, "packer", None)
    if packer is None:
        packer = _local.packer = msgpack.Packer(
            default=_default, strict_types=True, use_bin_type=True
        )
        _local.busy = False
    if _local.busy:
        data: bytes = msgpack.packb(value, default=_default, strict_types=True, use_bin_type=True)
        return data
    _local.busy = True
    try:
        out: bytes = packer.pack(value)
        return out
    except BaseException:
        packer.reset()
        raise
    finally:
        _local.busy = False


def _array_ext(arr: np.ndarray[Any, Any]) -> msgpack.ExtType:
    import numpy as np

    # not np.ascontiguousarray alone: it makes a 0-d array 1-d (np.array(3.0) came back [3.0])
    arr = np.ascontiguousarray(arr).reshape(arr.shape)
    raw: Any = memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else b""  # type: ignore[arg-type]
    if len(raw) > _PIECE:
        pieces = [raw[i : i + _PIECE] for i in range(0, len(raw), _PIECE)]
        return msgpack.ExtType(EXT_NDARRAY, _pack([_descr(arr.dtype), list(arr.shape), pieces]))
    # Same bytes as _pack([descr, shape, raw]), built with one copy of the data.
    head = _pack([_descr(arr.dtype), list(arr.shape), b""])
    return msgpack.ExtType(EXT_NDARRAY, b"".join((head[:-2], _bin_header(len(raw)), raw)))


def array_head(head: bytes, total: int) -> str | None:
    """``dtype shape`` of a blob of ``total`` bytes that is one array, from its first bytes
    (``head``); None for any other blob (nothing else of it is read)."""
    if len(head) < 7 or head[0] != 0xC9 or head[5] != EXT_NDARRAY:
        return None
    if int.from_bytes(head[1:5], "big") != total - 6:
        return None
    try:
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(head[6:])
        if unpacker.read_array_header() != 3:
            return None
        descr, shape = unpacker.unpack(), unpacker.unpack()
        return f"{_dtype(descr)} {tuple(shape)}"
    except Exception:  # cut short (a 4 KB head), or not what this qshpc writes
        return None


def array_layout(head: bytes, total: int) -> tuple[np.dtype[Any], tuple[int, ...], int] | None:
    """The dtype, shape and payload offset of a blob of ``total`` bytes that is one array of
    plain values whose bytes lie in one piece (what :func:`_array_ext` writes for an array
    under 1 GiB), from its first bytes (``head``); None for any other blob."""
    if array_head(head, total) is None:
        return None
    try:
        import numpy as np

        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(head[6:])
        unpacker.read_array_header()
        descr, shape = unpacker.unpack(), unpacker.unpack()
        dtype = _dtype(descr)
        if dtype.hasobject:
            return None
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        expect = _pack([descr, shape, b""])[:-2] + _bin_header(nbytes)
    except Exception:
        return None
    at = 6 + len(expect)
    if at + nbytes != total or head[6:at] != expect:
        return None
    return dtype, tuple(int(d) for d in shape), at


def _bin_header(n: int) -> bytes:
    if n < 1 << 8:
        return struct.pack(">BB", 0xC4, n)
    if n < 1 << 16:
        return struct.pack(">BH", 0xC5, n)
    return struct.pack(">BI", 0xC6, n)


def _default(obj: Any) -> Any:
    """msgpack ``default``: everything msgpack does not pack by itself."""
    np = loaded("numpy")
    if np is not None:
        if type(obj) is np.float64 and _F64_HEAD:  # the common numpy scalar: its 8 bytes
            return msgpack.ExtType(EXT_NPSCALAR, _F64_HEAD + _F64.pack(obj))  # (tobytes: 2x)
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                return _pickle_ext(obj)
            if obj.dtype.metadata is not None:  # the descr leaves it out (review45 F8)
                _inexact(obj)
            if type(obj) is np.ndarray or type(obj) is np.memmap:
                if obj.ndim > 1 and obj.flags.f_contiguous and not obj.flags.c_contiguous:
                    # Fortran order kept, as pickle and np.save keep it (review48): its
                    # transpose (C order, no copy) is stored, and read back transposed
                    return msgpack.ExtType(EXT_NDVIEW, _pack(["transposed", obj.T]))
                return _array_ext(obj)
            return _subclass_ext(np, obj)
        if isinstance(obj, np.generic):
            if obj.dtype.hasobject:
                return _pickle_ext(obj)
            return msgpack.ExtType(EXT_NPSCALAR, _pack([_descr(obj.dtype), obj.tobytes()]))
    if type(obj) is complex:
        return msgpack.ExtType(EXT_COMPLEX, struct.pack("<dd", obj.real, obj.imag))
    if type(obj) is tuple:
        return msgpack.ExtType(EXT_TUPLE, _pack(list(obj)))
    if type(obj) is set:
        return msgpack.ExtType(EXT_SET, _pack(list(obj)))
    if type(obj) is frozenset:
        return msgpack.ExtType(EXT_FROZENSET, _pack(list(obj)))
    if type(obj) is int:  # msgpack only calls us for ints beyond 64 bits
        n = (obj.bit_length() + 8) // 8
        return msgpack.ExtType(EXT_BIGINT, obj.to_bytes(n, "big", signed=True))
    if _qpy.is_circuit(obj):
        if not _qpy.exact(obj):
            _inexact(obj)
        return msgpack.ExtType(EXT_CIRCUIT, _qpy.dump(obj))
    container = qiskit_results.kind(obj)
    if container is not None:
        parts = qiskit_results.to_parts(obj, container)
        return msgpack.ExtType(EXT_QISKIT_RESULT, _pack([container, parts]))
    typed = qiskit_objects.typed_parts(obj)  # before dict: QuasiDistribution, Counts... keep theirs
    if typed is not None:
        which, parts = typed
        return msgpack.ExtType(EXT_QISKIT_OBJECT, _pack([which, qiskit_objects.FORMAT, parts]))
    base = _base_type(obj)
    if base is not None:
        _inexact(obj)
        return base(obj)
    return _pickle_ext(obj)


def _base_type(obj: Any) -> type | None:
    """The plain type a subclass of dict, list, str, bytes, int or float is stored as."""
    if isinstance(obj, dict):
        return dict
    if isinstance(obj, list):
        return list
    if isinstance(obj, str):
        return str
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes
    if isinstance(obj, int) and not isinstance(obj, bool):
        return int
    if isinstance(obj, float):
        return float
    return None


#: ``[count, name]``: how many values were stored as another type so far, in every
#: thread, and the last one's type (``module.qualname``). Who encodes compares the count
#: before and after (:func:`encode_blob_noting`; the worker's hot path inline): two
#: loads of a module list, where a thread-local flag set and read around each encoding
#: cost 0.17 us a result (11% of a worker's encoding of a small result). Another thread
#: encoding meanwhile can only make it say too much (the name, or a task run again on
#: resume), never miss a value of its own.
NOTED: list[Any] = [0, None]


#: Each note's number, new every time (``next`` of a count is one step in C: notes of two
#: threads at once never give the count a number a reader saw before; ``+= 1`` could lose
#: one and bring it back, review29 F13).
_NOTES = itertools.count(1)


def _inexact(obj: Any) -> None:
    """Note that ``obj`` is stored as another type (:data:`NOTED`)."""
    NOTED[1] = f"{type(obj).__module__}.{type(obj).__qualname__}"
    NOTED[0] = next(_NOTES)


def _subclass_ext(np: Any, obj: Any) -> msgpack.ExtType:
    """A masked array or matrix typed (13, 14), a recarray as a view (14), anything else
    pickled (10): stored as a plain array, a subclass lost what it adds (a mask)."""
    t = type(obj)
    ma = sys.modules.get("numpy.ma")
    if ma is not None and t is ma.MaskedArray and obj._baseclass is np.ndarray:
        mask = None if obj._mask is ma.nomask else obj._mask
        fill = obj._fill_value
        if mask is None or type(mask) is np.ndarray:
            parts = ["array", obj.view(np.ndarray), mask, fill, bool(obj._hardmask)]
            return msgpack.ExtType(EXT_MASKED, _pack(parts))
    if ma is not None and t is ma.core.MaskedConstant:
        return msgpack.ExtType(EXT_MASKED, _pack(["constant"]))
    if t is np.matrix:
        return msgpack.ExtType(EXT_NDVIEW, _pack(["matrix", obj.view(np.ndarray)]))
    if t is np.recarray:
        return msgpack.ExtType(EXT_NDVIEW, _pack(["recarray", obj.view(np.ndarray)]))
    return _pickle_ext(obj)


def pickle_dumps(obj: Any) -> bytes:
    """``pickle.dumps(obj)``; what it cannot write by reference, cloudpickle writes by value.

    An instance of a class defined in the program file (``__main__.Point``, a
    dataclass a task returns) cannot be pickled by reference on a worker, which
    never runs the program: Ray stores it by value (cloudpickle), and so does
    qshpc now. On 724bf2f such a return failed the task ('attribute lookup
    Point on __main__ failed'). It loads with plain ``pickle.loads`` anywhere
    cloudpickle is installed, without the program.

    Raises:
        Exception: pickle's own error, when cloudpickle cannot write it either.
    """
    try:
        return pickle.dumps(obj, protocol=5)
    except Exception as exc:
        try:
            import cloudpickle

            return bytes(cloudpickle.dumps(obj, protocol=5))
        except Exception:
            raise exc from None


def iterator_hint(obj: Any, verb: str = "stored") -> str:
    """What to do instead, when ``obj`` is, or holds in its first two levels, a generator
    or another one-pass iterator (a value stored or sent must be read again: pass a
    list); else an empty string. An open file is an iterator too, but no list of its
    lines is what its reader wants: it gets no hint."""
    if _one_pass(obj, 2):
        return (
            f"; a generator or iterator is read once and cannot be {verb}: pass a list, list(...)"
        )
    return ""


def _one_pass(obj: Any, depth: int) -> bool:
    import io
    from collections.abc import Iterator

    if isinstance(obj, Iterator):
        return not isinstance(obj, io.IOBase)
    if depth <= 0:
        return False
    if isinstance(obj, dict):
        obj = list(obj.values())[:_HINT_ITEMS]
    elif isinstance(obj, (list, tuple)):
        obj = obj[:_HINT_ITEMS]
    else:
        return False
    return any(_one_pass(x, depth - 1) for x in obj)


#: Items of a container looked at by :func:`iterator_hint`.
_HINT_ITEMS = 64


def _pickle_ext(obj: Any) -> msgpack.ExtType:
    try:
        return msgpack.ExtType(EXT_PICKLE, pickle_dumps(obj))
    except Exception as exc:
        raise SerializationError(
            f"cannot store a value of type {type(obj).__qualname__}: it is not a plain "
            f"value, array or circuit, and pickle failed: {exc}{iterator_hint(obj)}"
        ) from exc


def encode_blob(value: Any) -> bytes:
    """Encode ``value`` with the blob encoding (msgpack + extension types).

    Args:
        value: Any value; types without an encoding of their own are pickled.

    Returns:
        The encoded bytes.

    Raises:
        SerializationError: When the value cannot be encoded at all.
    """
    if type(value) is list and value and _qpy.is_circuit_list(value):
        inexact = [c for c in value if not _qpy.exact(c)]
        if inexact:
            _inexact(inexact[0])
        try:
            return _pack(msgpack.ExtType(EXT_CIRCUITS, _qpy.dump(value)))
        except _PASSED_ON:
            raise
        except Exception as exc:  # QPY's: its metadata JSON (TypeError), QpyError
            raise _encode_error(value, exc) from exc
    try:
        out = _pack(value)
    except _PASSED_ON:
        raise
    except Exception as exc:
        if isinstance(value, _NESTED):  # its words for a value too deep, or holding itself
            check_stored(value)
        raise _encode_error(value, exc) from exc
    # The one depth limit (review38 F2: what is written reads back). A value N levels deep
    # takes N bytes at least, so a short one is shallow: the walk is left out of the
    # commonest results (a dict of a few values: the walk cost 3 us, 5x its encoding).
    if len(out) > MAX_DEPTH and isinstance(value, _NESTED):
        check_stored(value)
    return out


def encode_blob_noting(value: Any, parts: bool = False) -> tuple[Any, str | None]:
    """:func:`encode_blob` (``parts``: :func:`encode_blob_parts`), and None when the bytes
    give ``value`` back with its types, else a type they store as another
    (``module.qualname``: a ``defaultdict`` stored as a dict, a circuit of custom gates).

    A resumed job runs again a task whose stored result is not exact (its record says
    so): it must get what the task returned.

    Raises:
        SerializationError: As :func:`encode_blob`.
    """
    noted = NOTED[0]
    out = encode_blob_parts(value) if parts else encode_blob(value)
    return out, None if NOTED[0] == noted else NOTED[1]


#: Arrays at least this big are written from their own memory by :func:`encode_blob_parts`.
SCATTER_MIN = 1 << 20
_SCATTER_DEPTH = 4
_SCATTER_ITEMS = 10_000

Buffer = bytes | memoryview


def blob_len(parts: list[Buffer]) -> int:
    """Length of a blob given as parts."""
    return sum(len(p) for p in parts)


def encode_blob_parts(value: Any) -> list[Buffer]:
    """:func:`encode_blob` as buffers whose concatenation is the same bytes.

    Arrays of :data:`SCATTER_MIN` bytes or more, at the top or inside dicts
    and lists (a few levels down), are not copied: their parts are views of
    the arrays' own memory, so storing a 1 GiB result takes no second GiB.
    """
    if not _scatters(value, 0):
        return [encode_blob(value)]
    if isinstance(value, _NESTED):
        check_stored(value)
    parts: list[Buffer] = []
    try:
        _scatter(value, parts, 0)
    except _PASSED_ON:
        raise
    except Exception as exc:
        raise _encode_error(value, exc) from exc
    out: list[Buffer] = []
    small: list[Buffer] = []
    for p in parts:  # join the small pieces between the arrays
        if len(p) >= SCATTER_MIN:
            if small:
                out.append(b"".join(small))
                small = []
            out.append(p)
        else:
            small.append(p)
    if small:
        out.append(b"".join(small))
    return out


def _big_array(value: Any) -> bool:
    np = loaded("numpy")
    return (
        np is not None
        and (type(value) is np.ndarray or type(value) is np.memmap)  # not a subclass: a mask
        and not value.dtype.hasobject
        and value.nbytes >= SCATTER_MIN
        and value.flags.c_contiguous
    )


#: Values that never hold an array (skipped without a call: most results are made of them).
_LEAVES = frozenset({float, int, str, bool, type(None), complex, bytes})


def _scatters(value: Any, depth: int) -> bool:
    t = type(value)
    if t in _LEAVES:
        return False
    if _big_array(value):
        return True
    if depth >= _SCATTER_DEPTH:
        return False
    if t is dict and len(value) <= _SCATTER_ITEMS:
        items = value.values()
    elif t is list and len(value) <= _SCATTER_ITEMS:
        if depth == 0 and value and _qpy.is_circuit_list(value):
            return False  # a top-level list of circuits is one QPY blob
        items = value
    else:
        return False
    leaves = _LEAVES
    for v in items:
        if type(v) not in leaves and _scatters(v, depth + 1):
            return True
    return False


def _ext_header(code: int, n: int) -> bytes:
    if n in (1, 2, 4, 8, 16):
        return struct.pack(">Bb", {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}[n], code)
    if n < 1 << 8:
        return struct.pack(">BBb", 0xC7, n, code)
    if n < 1 << 16:
        return struct.pack(">BHb", 0xC8, n, code)
    return struct.pack(">BIb", 0xC9, n, code)


def _scatter(value: Any, parts: list[Buffer], depth: int) -> None:
    """Append the encoding of ``value`` to ``parts`` (msgpack's bytes, arrays not copied)."""
    if _big_array(value):
        import numpy as np

        if value.dtype.metadata is not None:  # as _default
            _inexact(value)
        raw = memoryview(value.reshape(-1).view(np.uint8))
        if len(raw) > _PIECE:
            pieces = [raw[i : i + _PIECE] for i in range(0, len(raw), _PIECE)]
            head = _pack([_descr(value.dtype), list(value.shape)])
            body: list[Buffer] = [b"\x93", head[1:], _array_header(len(pieces))]
            for piece in pieces:
                body += [_bin_header(len(piece)), piece]
        else:
            head = _pack([_descr(value.dtype), list(value.shape), b""])
            body = [head[:-2], _bin_header(len(raw)), raw]
        parts.append(_ext_header(EXT_NDARRAY, blob_len(body)))
        parts.extend(body)
    elif type(value) is dict and depth < _SCATTER_DEPTH and _scatters(value, depth):
        parts.append(_map_header(len(value)))
        for k, v in value.items():
            parts.append(_pack(k))
            _scatter(v, parts, depth + 1)
    elif type(value) is list and depth < _SCATTER_DEPTH and _scatters(value, depth):
        parts.append(_array_header(len(value)))
        for v in value:
            _scatter(v, parts, depth + 1)
    else:
        parts.append(_pack(value))


def _map_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x80 | n])
    return struct.pack(">BH", 0xDE, n) if n < 1 << 16 else struct.pack(">BI", 0xDF, n)


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    return struct.pack(">BH", 0xDC, n) if n < 1 << 16 else struct.pack(">BI", 0xDD, n)


#: Raised through :func:`encode_blob` as they are; any other exception of an encoding
#: (msgpack's TypeError/ValueError, QPY's QpyError or its metadata JSON's TypeError, a
#: ``to_parts`` of a Qiskit object) is a :class:`SerializationError` naming the value,
#: which callers that fail the task alone catch (a worker's ``Results`` caught them all,
#: rank 0's inline ``Session.record`` only SerializationError).
_PASSED_ON = (SerializationError, MemoryError)


def _encode_error(value: Any, exc: BaseException) -> SerializationError:
    why = str(exc)
    if "recursion limit" in why:
        why = (
            "it nests lists, dicts or tuples more than 500 levels deep, or holds itself "
            "(a list or dict inside itself): store a flatter copy"
        )
    return SerializationError(f"cannot encode a value of type {type(value).__qualname__}: {why}")


_F64_HEAD_LE = b"\x92\xa3<f8\xc4\x08"
#: ``numpy.float64``, once a blob held one (a float64 is read back in ~0.3 us: the hook's
#: call; an import statement there added 0.1 us).
_F64_TYPE: Any = None


def _f64_type() -> Any:
    global _F64_TYPE
    import numpy as np

    _F64_TYPE = np.float64
    return _F64_TYPE


def _ext_hook(allow_pickle: bool, source: str) -> Callable[[int, bytes], Any]:
    def unpack(data: bytes) -> Any:
        return msgpack.unpackb(data, ext_hook=hook, strict_map_key=False, raw=False)

    def hook(code: int, data: bytes) -> Any:
        if code == EXT_NPSCALAR and data.startswith(_F64_HEAD_LE) and len(data) == 15:
            return (_F64_TYPE or _f64_type())(_F64.unpack_from(data, 7)[0])  # (the common one)
        if code == EXT_NDARRAY:
            return _load_array(data, hook)
        if code == EXT_NPSCALAR:
            import numpy as np

            descr, raw = unpack(data)
            return np.frombuffer(raw, dtype=_dtype(descr))[0]
        if code == EXT_COMPLEX:
            re, im = struct.unpack("<dd", data)
            return complex(re, im)
        if code == EXT_TUPLE:
            return tuple(unpack(data))
        if code == EXT_SET:
            return set(unpack(data))
        if code == EXT_FROZENSET:
            return frozenset(unpack(data))
        if code == EXT_BIGINT:
            return int.from_bytes(data, "big", signed=True)
        if code == EXT_CIRCUIT:
            return _qpy.load(data)[0]
        if code == EXT_CIRCUITS:
            return _qpy.load(data)
        if code == EXT_QISKIT_RESULT:
            container, parts = unpack(data)
            return qiskit_results.from_parts(container, parts)
        if code == EXT_QISKIT_OBJECT:
            typed, version, parts = unpack(data)
            try:
                return qiskit_objects.from_parts(typed, version, parts)
            except qiskit_objects.UnknownKind as exc:
                raise SchemaVersionError(f"{source} holds {exc}") from None
            except ImportError as exc:
                raise StoreError(
                    f"{source} holds a {typed} (a Qiskit object); reading it needs "
                    f"{exc.name or 'qiskit'}: install it"
                ) from None
        if code == EXT_MASKED:
            return _load_masked(unpack(data), source)
        if code == EXT_NDVIEW:
            return _load_view(unpack(data), source)
        if code == EXT_PICKLE:
            if not allow_pickle:
                raise pickle_refused(source, data)
            return unpickle(data, source)
        raise StoreError(f"{source} holds an unknown blob extension type {code}; upgrade qshpc")

    return hook


def _load_masked(parts: list[Any], source: str) -> Any:
    """A masked array as :func:`_subclass_ext` wrote it: its mask, fill value and
    hardness as they were (``nomask`` stays ``nomask``, an unset fill value unset)."""
    import numpy as np

    if parts[0] == "constant":
        return np.ma.masked
    if parts[0] != "array":
        raise SchemaVersionError(
            f"{source} holds a masked array of kind {parts[0]!r}; upgrade qshpc"
        )
    _, data, mask, fill, hard = parts
    out: Any = np.ma.MaskedArray(data, mask=np.ma.nomask if mask is None else mask, copy=False)
    out._fill_value = fill
    out._hardmask = hard
    out._sharedmask = False  # the mask was decoded for it alone
    return out


def _load_view(parts: list[Any], source: str) -> Any:
    """A ``numpy.matrix`` or ``numpy.recarray`` as :func:`_subclass_ext` wrote it, or a
    Fortran-ordered array (stored as its transpose)."""
    import numpy as np

    kind, arr = parts
    if kind == "matrix":
        return arr.view(np.matrix)  # np.asmatrix would warn that matrix is not recommended
    if kind == "recarray":
        return arr.view(np.recarray)
    if kind == "transposed":  # a Fortran-ordered array, stored as its transpose
        return arr.T
    raise SchemaVersionError(f"{source} holds an array of kind {kind!r}; upgrade qshpc")


def _load_array(
    data: bytes | memoryview, hook: Callable[[int, bytes], Any]
) -> np.ndarray[Any, Any]:
    """Decode an EXT_NDARRAY payload with a single copy of the array bytes."""
    import numpy as np

    opts: dict[str, Any] = {"ext_hook": hook, "strict_map_key": False, "raw": False}
    reader = msgpack.Unpacker(**opts)
    reader.feed(memoryview(data)[:4096])  # array header, descr and shape come first
    peeked: tuple[Any, np.dtype[Any], Any, int] | None = None
    try:
        if reader.read_array_header() == 3:
            descr, shape = reader.unpack(), reader.unpack()
            dtype = _dtype(descr)
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            peeked = (descr, dtype, shape, nbytes)
    except (msgpack.OutOfData, ValueError, TypeError):
        pass
    if peeked is not None:
        descr, dtype, shape, nbytes = peeked
        head = _pack([descr, shape, b""])[:-2] + _bin_header(nbytes)
        if len(data) == len(head) + nbytes and bytes(data[: len(head)]) == head:
            raw: Any = memoryview(data)[len(head) :]
            return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        pieced = _load_pieces(data, reader, dtype, shape, nbytes)
        if pieced is not None:
            return pieced
    # a descr too long for the peek, or a layout the writer does not make: errors as before
    descr, shape, raw = msgpack.unpackb(data, **opts)
    dtype = _dtype(descr)
    raw = b"".join(raw) if isinstance(raw, list) else raw
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


_BIN_HEADS = {0xC4: ">B", 0xC5: ">H", 0xC6: ">I"}


def _load_pieces(
    data: bytes | memoryview,
    reader: msgpack.Unpacker,
    dtype: np.dtype[Any],
    shape: Any,
    nbytes: int,
) -> np.ndarray[Any, Any] | None:
    """An array over :data:`_PIECE` bytes, its payload's rest (after descr and shape, which
    ``reader`` read) a list of bins: each piece is copied once, into the array returned
    (unpacking the list, joining it and copying the join were three copies of the array).
    None when the rest is not laid out so."""
    import numpy as np

    try:
        count, pos = reader.read_array_header(), reader.tell()
        if dtype.hasobject or nbytes < 0:
            return None
        out = np.empty(nbytes, np.uint8)
        view, filled = memoryview(data), 0
        for _ in range(count):
            fmt = _BIN_HEADS.get(view[pos]) if pos < len(view) else None
            if fmt is None:
                return None
            size = 1 + struct.calcsize(fmt)
            n = int(struct.unpack(fmt, view[pos + 1 : pos + size])[0])
            pos += size
            if filled + n > nbytes or pos + n > len(view):
                return None
            out[filled : filled + n] = np.frombuffer(view[pos : pos + n], np.uint8)
            filled, pos = filled + n, pos + n
        if filled != nbytes or pos != len(view):
            return None
        return out.view(dtype).reshape(shape)
    except (msgpack.OutOfData, msgpack.UnpackValueError, ValueError, TypeError, struct.error):
        return None


class DecodeMemoryError(StoreError, MemoryError):
    """Not enough memory to decode a stored value; its bytes are not damaged (review49 F2:
    the error said "corrupt blob-encoded value (Unable to allocate 38.1 MiB ...)", which
    sends the user to a new job that computes everything again). A :class:`MemoryError`
    too, for the code that tells memory apart."""


def _no_memory(source: str, n: int, exc: BaseException) -> DecodeMemoryError:
    # review53 N4: a MemoryError with no text read "(400000025 bytes stored: )"
    why = str(exc) or f"{type(exc).__name__}, with no message"
    return DecodeMemoryError(
        f"{source}: not enough memory to decode a stored value ({n} bytes stored: {why}); "
        "its bytes are not damaged: free memory (or raise the limit: ulimit -v, the batch "
        "job's --mem) and try again"
    )


def blob_decoder(
    allow_pickle: bool = False, source: str = "this data"
) -> Callable[[bytes | memoryview], Any]:
    """:func:`decode_blob` with its arguments bound, for decoding many blobs in a row."""
    hook = _ext_hook(allow_pickle, source)

    def decode(data: bytes | memoryview) -> Any:
        try:
            return msgpack.unpackb(data, ext_hook=hook, strict_map_key=False, raw=False)
        except StoreError:
            raise
        except MemoryError as exc:
            raise _no_memory(source, len(data), exc) from exc
        except Exception as exc:
            raise StoreError(f"{source}: corrupt blob-encoded value ({exc})") from exc

    return decode


def decode_blob(
    data: bytes | bytearray | memoryview, allow_pickle: bool = False, source: str = "this data"
) -> Any:
    """Decode bytes written by :func:`encode_blob`.

    Args:
        data: The encoded bytes.
        allow_pickle: Load pickled parts; only for data from someone you trust.
        source: What the data is, for error messages (e.g. the file path).

    Returns:
        The value.

    Raises:
        StoreError: On pickled data without ``allow_pickle``, or corrupt data.
    """
    try:
        hook = _ext_hook(allow_pickle, source)
        view = memoryview(data).cast("B")
        if len(view) > 6 and view[0] == 0xC9 and view[5] == EXT_NDARRAY:
            if int.from_bytes(view[1:5], "big") == len(view) - 6:
                # An array alone (a task's result): its payload read in place, not
                # first copied into a bytes object by msgpack for the ext hook.
                return _load_array(view[6:], hook)
        return msgpack.unpackb(data, ext_hook=hook, strict_map_key=False, raw=False)
    except StoreError:
        raise
    except MemoryError as exc:
        raise _no_memory(source, len(data), exc) from exc
    except Exception as exc:
        raise StoreError(f"{source}: corrupt blob-encoded value ({exc})") from exc
