"""The body of an entry: the result, encoded so that a hit returns what the task returned.

The store's blob encoding (:mod:`qshpc.store.encoding_blob`) keeps plain
values, arrays and circuits, and stores subclasses of dict, list, str, int
and float as their base type (but ``QuasiDistribution``, ``Counts``... which
:mod:`qshpc.store.qiskit_objects` keeps typed since session 14). A cache hit
must be the result itself (a program may call ``binary_probabilities()`` on
it). So a result is encoded in one of three forms (the entry's header says
which), numpy scalars kept as such (``numpy.float64`` too: so does the job
store since session 24):

``blob``
    The blob encoding, when it returns the result as it is (:func:`faithful`):
    plain values, arrays, circuits of standard gates, and the Qiskit objects
    the store keeps typed (``SparsePauliOp``, ``Statevector``, ``Parameter``,
    V1 ``SamplerResult``... :mod:`qshpc.store.qiskit_objects`), which are
    shared with the group like any blob (no pickle).
    These bytes are also what the job store keeps for the task (the header's
    ``plain``; an entry written before session 24 that kept a ``numpy.float64``
    is not): a hit's record is written without encoding the result again.
``typed``
    Qiskit's result dicts (``QuasiDistribution``, ``ProbDistribution``,
    ``Counts``) and ``qshpc.aer``'s ``QuasiDistribution``: the blob of the
    plain dict, and the class and attributes in the header; the hit is
    rebuilt as that class (``__new__`` and the dict's own ``update``: no code
    of the entry runs). Shared with the group like a blob.
``pickle``
    Anything else (a ``bytearray`` too: the blob gives ``bytes`` back): the
    result pickled, inside the blob format (one pickle extension), which only
    its owner's lookups load. A result that pickle cannot write by name (it
    holds an instance of a class of the program file, on a worker; a class
    made inside a function) is the blob encoding's (which pickles such an
    object by value), when that stores nothing as another type; else it is
    not cached: the call runs again in a later job.
"""

from __future__ import annotations

import pickle
import sys
from typing import Any, NamedTuple

from qshpc._lazy import loaded

_EXACT = frozenset((type(None), bool, int, float, complex, str, bytes))
_CONTAINERS = frozenset((list, tuple, set, frozenset))
#: Dict subclasses rebuilt from their plain dict and attributes (module:qualname).
TYPED = frozenset((
    "qshpc.aer.results:QuasiDistribution",
    "qiskit.result.distributions.quasi:QuasiDistribution",
    "qiskit.result.distributions.probability:ProbDistribution",
    "qiskit.result.counts:Counts",
))  # fmt: skip


def faithful(value: Any, depth: int = 0) -> bool:
    """True when the blob encoding returns ``value`` with the same types throughout."""
    t = type(value)
    if t in _EXACT:
        return True
    if depth > 100:
        return False
    if t in _CONTAINERS:
        return all(faithful(v, depth + 1) for v in value)
    if t is dict:
        return all(faithful(k, depth + 1) and faithful(v, depth + 1) for k, v in value.items())
    np = loaded("numpy")
    if np is not None:
        if t is np.ndarray or isinstance(value, np.generic):  # dtype and shape kept
            return not value.dtype.hasobject and value.dtype.metadata is None
        if isinstance(value, np.ndarray):  # a subclass (np.matrix, masked arrays)
            return False
    circuit = sys.modules.get("qiskit.circuit")
    if circuit is not None and t is circuit.QuantumCircuit:
        return set(value.count_ops()) <= _standard_gates()  # QPY keeps standard gates only
    from qshpc.store import qiskit_objects

    # SparsePauliOp, Statevector, Parameter, V1 results...: typed (None: pickled by the blob
    # encoding, or none of them)
    typed = qiskit_objects.typed_parts(value)
    return typed is not None and faithful(typed[1], depth + 1)


_standard: frozenset[str] | None = None


def _standard_gates() -> frozenset[str]:
    global _standard
    if _standard is None:
        from qiskit.circuit.library import (  # type: ignore[import-untyped]
            get_standard_gate_name_mapping,
        )

        _standard = frozenset(get_standard_gate_name_mapping()) | {"barrier"}
    return _standard


def _class_name(t: type) -> str:
    return f"{t.__module__}:{t.__qualname__}"


class Encoded(NamedTuple):
    """An entry's body and what its header says about it."""

    body: bytes
    #: ``blob``, ``typed`` or ``pickle``.
    form: str
    #: For ``typed``: the result's class and attributes.
    typed: dict[str, Any] | None
    #: ``body`` is ``encode_blob(value)`` exactly (not a pickle of its own): the job
    #: store can take these bytes for a hit's record. For ``typed``: ``body`` is
    #: ``encode_blob`` of the plain dict (:func:`store_blob` makes the record's bytes).
    plain: bool
    #: The value passed :func:`faithful` (``blob``, ``typed``): the body holds no pickle,
    #: and decodes with no code of the program's. A large hit of this user's may then be
    #: decoded when the program reads it (:meth:`qshpc.cache.store.CacheDir.get`).
    lazy: bool = False


def encode(value: Any) -> Encoded:
    """The body of an entry holding ``value``, its form (``blob``, ``typed`` or
    ``pickle``) and, for ``typed``, the class and attributes.

    Raises:
        SerializationError: The value can be neither encoded nor pickled.
    """
    from qshpc.store.qiskit_objects import parts_once

    with parts_once():  # a typed Qiskit object's parts: built by faithful, encoded as they are
        return _encode(value)


def _encode(value: Any) -> Encoded:
    from qshpc.store.encoding_blob import EXT_PICKLE, encode_blob

    t = type(value)
    if t is not dict and isinstance(value, dict) and _class_name(t) in TYPED:
        plain, attrs = dict(value), dict(vars(value))
        if faithful(plain) and faithful(attrs):
            body = encode_blob(plain)
            # not encode_blob(value): the job store keeps the class (qiskit_objects), and
            # a hit's record is made from these bytes (store_blob)
            return Encoded(body, "typed", {"class": _class_name(t), "attrs": attrs}, True, True)
    if faithful(value) and _one_each(value):
        return Encoded(encode_blob(value), "blob", None, True, True)
    import msgpack

    try:
        data = _pickle_without_refs(value)
    except _HoldsReference as exc:
        from qshpc.errors import SerializationError

        raise SerializationError(str(exc)) from None
    except Exception as exc:
        # Not pickled by name (a class of the program file on a worker, a class made in a
        # function): the blob encoding, which pickles such an object by value, when it
        # stores nothing as another type (its note, qshpc.store.encoding_blob.NOTED). Else
        # not cached: the blob's flattened copy was cached before, and a later job's hit
        # differed from what the task returned (a Counter as a dict; review28 F1). A
        # dataclass of the program stays cached (review29 F2).
        from qshpc.errors import SerializationError
        from qshpc.store.encoding_blob import NOTED

        noted = NOTED[0]
        body = encode_blob(value)  # (raises SerializationError itself)
        if NOTED[0] != noted:
            raise SerializationError(
                f"the result cannot be cached as it is: pickle cannot write it "
                f"({type(exc).__name__}: {exc}) and the store keeps its {NOTED[1]} as "
                "another type"
            ) from None
        return Encoded(body, "blob", None, True)
    packed: bytes = msgpack.packb(msgpack.ExtType(EXT_PICKLE, data), use_bin_type=True)
    return Encoded(packed, "pickle", None, False)


def _one_each(value: Any) -> bool:
    """True when ``value`` holds no object twice (the blob encoding writes it twice: it
    reads back as two; pickle keeps it one, review45 F3)."""
    if type(value) in _EXACT:
        return True
    from qshpc.store.unnoted import unnoted_loss

    return unnoted_loss(value) is None


class _HoldsReference(Exception):
    """A result that holds a reference of its job (see :func:`_pickle_without_refs`)."""


def _pickle_without_refs(value: Any) -> bytes:
    """``value`` pickled; refused when it holds an ``ObjectRef`` or a pending ``TaskRef``.

    Such a reference stands for an object of the job that made it, by an id
    (``qshpc.put``'s counter) that another job gives to another object: a hit
    would hand that other object over. The references record themselves while
    pickled (``qshpc.program.refs.collecting``, a layer above the cache: found in
    ``sys.modules``, where it is whenever a reference exists).

    Raises:
        _HoldsReference: It holds one.
    """
    refs = sys.modules.get("qshpc.program.refs")
    found = getattr(getattr(refs, "collecting", None), "found", None)
    if found is None:
        return pickle.dumps(value, protocol=5)
    was_on, n_objs, n_pending = found.on, len(found.objs), len(found.pending)
    found.on = True
    try:
        data = pickle.dumps(value, protocol=5)
        if len(found.objs) > n_objs or len(found.pending) > n_pending:
            raise _HoldsReference(
                "the result holds a reference (qshpc.put's ObjectRef, or a TaskRef not done) "
                "that names an object of this job alone: it is not cached"
            )
        return data
    finally:
        found.on = was_on
        del found.objs[n_objs:]
        del found.pending[n_pending:]


def restore(value: Any, typed: dict[str, Any]) -> Any:
    """The result a ``typed`` body stands for: ``value`` (a plain dict) as its class again.

    Raises:
        ValueError: A class that is not one of :data:`TYPED`.
    """
    name = str(typed.get("class"))
    cls = _RESTORED.get(name)
    if cls is None:
        if name not in TYPED or type(value) is not dict:
            raise ValueError(f"not a result type the cache rebuilds: {name}")
        import importlib

        module, _, qualname = name.partition(":")
        cls = _RESTORED[name] = getattr(importlib.import_module(module), qualname)
    elif type(value) is not dict:
        raise ValueError(f"not a result type the cache rebuilds: {name}")
    out = cls.__new__(cls)
    dict.update(out, value)
    out.__dict__.update(typed.get("attrs") or {})
    return out


#: The classes of :data:`TYPED` that :func:`restore` met, by name (an import each hit: ~0.5 us).
_RESTORED: dict[str, Any] = {}


def store_blob(body: bytes | memoryview, typed: dict[str, Any]) -> bytes | None:
    """What the job store keeps for the result a ``typed`` body stands for, made from the
    body's bytes (no decode, no encode of its values): ``encode_blob(restore(decode(body),
    typed))``, byte for byte, when ``body`` is ``encode_blob`` of the plain dict (the
    header's ``plain``). None for a class :data:`TYPED` does not name.

    The store keeps such a dict as its typed parts (:mod:`qshpc.store.qiskit_objects`):
    ``[kind, FORMAT, {"data": the dict, "attrs": its attributes}]`` in an extension.
    """
    name = str(typed.get("class"))
    head = _STORE_HEADS.get(name) or _store_head(name)
    if head is None:
        return None
    attrs = typed.get("attrs") or {}
    if type(attrs) is not dict:
        return None
    packed = (_ENCODE_BLOB or _encode_blob())({str(k): v for k, v in attrs.items()})
    size = len(head) + len(body) + len(_ATTRS_KEY) + len(packed)
    return b"".join((ext_header(_EXT_QISKIT_OBJECT, size), head, body, _ATTRS_KEY, packed))


#: :func:`qshpc.store.encoding_blob.encode_blob`, once a record was made (an import each
#: hit: ~0.5 us).
_ENCODE_BLOB: Any = None


def _encode_blob() -> Any:
    global _ENCODE_BLOB
    from qshpc.store.encoding_blob import encode_blob

    _ENCODE_BLOB = encode_blob
    return encode_blob


#: The bytes before the body in :func:`store_blob`'s extension, per class name.
_STORE_HEADS: dict[str, bytes] = {}
_ATTRS_KEY = b"\xa5attrs"  # msgpack's "attrs"
_EXT_QISKIT_OBJECT = 12  # qshpc.store.encoding_blob.EXT_QISKIT_OBJECT (checked by a test)


def _store_head(name: str) -> bytes | None:
    """``[kind, FORMAT, {"data": `` as msgpack writes it, for the class ``name`` (None: a
    class :data:`TYPED` does not name)."""
    import msgpack

    from qshpc.store.qiskit_objects import FORMAT, kind_of_class

    which = kind_of_class(name) if name in TYPED else None
    if which is None:
        return None
    pack = msgpack.packb
    head: bytes = b"".join((b"\x93", pack(which), pack(FORMAT), b"\x82", pack("data")))
    _STORE_HEADS[name] = head
    return head


def ext_header(code: int, size: int) -> bytes:
    """The header msgpack writes before an extension of type ``code`` holding ``size`` bytes
    (``msgpack.packb(ExtType(code, data))`` is this header and ``data``)."""
    if size in _FIXEXT:
        return bytes((_FIXEXT[size], code))
    if size < 0x100:
        return bytes((0xC7, size, code))
    if size < 0x10000:
        return b"\xc8" + size.to_bytes(2, "big") + bytes((code,))
    return b"\xc9" + size.to_bytes(4, "big") + bytes((code,))


_FIXEXT = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}


__all__ = ["TYPED", "Encoded", "encode", "faithful", "restore", "store_blob"]
