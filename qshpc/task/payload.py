"""Pickling task arguments, with circuits carried as QPY.

Pickling a ``QuantumCircuit`` builds and walks a Python object per
instruction: a random 12-qubit depth-12 circuit takes about 0.5 ms to pickle
and 0.25-0.5 ms to unpickle, while QPY (written in Rust in Qiskit 2) takes
0.11 ms to dump and 0.07 ms to load, and the bytes are half the size. On a
worker running one circuit per task, that is the difference between the
framework's cost showing next to a 10 ms simulation or not.

Only circuits made of standard gates, measurements, resets, delays and
barriers go as QPY: QPY would turn an instance of a user's own ``Gate``
subclass into a plain ``Gate``, and pickle keeps it as it is. A circuit that
QPY cannot write (metadata that is not JSON, say) is pickled too.

A caller that needs the QPY bytes of the same circuits again (rank 0 keys a
cached call by them: :func:`qshpc.cache.keys.circuit_digest`) passes a dict to
:func:`dumps`, which receives ``id(circuit) -> (circuit, QPY bytes)`` for
each circuit it wrote as QPY, so that they are not dumped twice. The dict is
for the one call it was made for: the bytes are the circuit as it was then.
"""

from __future__ import annotations

import io
import pickle
import threading
from typing import Any, ClassVar

from qshpc.store import _qpy

_standard: frozenset[str] | None = None
#: ``id(circuit) -> (circuit, its QPY bytes)``: what :func:`dumps` wrote (see the module doc).
Qpy = dict[int, tuple[Any, bytes]]


def standard_names() -> frozenset[str]:
    """Operation names a circuit may hold to go as QPY (standard gates and the like)."""
    global _standard
    if _standard is None:
        from qiskit.circuit.library import (  # type: ignore[import-untyped]
            get_standard_gate_name_mapping,
        )

        _standard = frozenset(get_standard_gate_name_mapping()) | {"barrier"}
    return _standard


def load_circuit(data: bytes) -> Any:
    """The circuit from its QPY bytes (the unpickler calls this; inside
    :func:`loads_keyed`, the bytes are kept for the call's key)."""
    circuit = _qpy.load(data)[0]
    loaded: Qpy | None = getattr(_local, "loaded", None)
    if loaded is not None:
        loaded[id(circuit)] = (circuit, data)
    return circuit


def loads_keyed(data: bytes) -> tuple[Any, Qpy]:
    """``pickle.loads(data)``, and ``id(circuit) -> (circuit, QPY bytes)`` for each
    circuit it loaded from QPY: a worker keys the call by those bytes
    (:func:`qshpc.program.backend.task_key`) rather than dumping its circuits again.
    The dict is for that key only, made before the task can change a circuit."""
    loaded: Qpy = {}
    if b"load_circuit" not in data:  # no circuit as QPY in it
        return pickle.loads(data), loaded
    outer = getattr(_local, "loaded", None)
    _local.loaded = loaded
    try:
        return pickle.loads(data), loaded
    finally:
        _local.loaded = outer


class _CircuitPickler(pickle.Pickler):
    """Circuits as QPY. One per thread, reused: building a Pickler costs more
    than pickling a small argument tuple does."""

    def __init__(self, file: io.BytesIO, circuit_class: type) -> None:
        super().__init__(file, protocol=5)
        self.file = file
        self._circuit_class = circuit_class
        self.busy = False
        #: Receives the QPY bytes of each circuit written (see the module doc), or None.
        self.qpy: Qpy | None = None

    def reducer_override(self, obj: Any) -> Any:
        # Not called for plain ints, floats, strs, lists, dicts, tuples: cheap.
        if type(obj) is not self._circuit_class:
            if type(obj).__name__ in _AER_STATES:
                return _typed_reduce(obj)
            return NotImplemented
        circuit: Any = obj
        if not set(circuit.count_ops()) <= standard_names():
            return NotImplemented
        qpy = self.qpy
        known = qpy.get(id(obj)) if qpy is not None else None
        if known is not None and known[0] is obj:  # written a moment ago, for this call's key
            return (load_circuit, (known[1],))
        try:
            data = _qpy.dump(obj)
        except Exception:
            return NotImplemented
        if qpy is not None:
            qpy[id(obj)] = (obj, data)
        return (load_circuit, (data,))


#: Aer's states hold a C++ wrapper pickle refuses: they travel as their typed parts.
_AER_STATES = frozenset({"AerStatevector", "AerDensityMatrix"})


def _typed_reduce(obj: Any) -> Any:
    from qshpc.store import qiskit_objects

    if qiskit_objects.kind(obj) is None:  # (the kind registers its reducer with copyreg)
        return NotImplemented
    return qiskit_objects._reduce_typed(obj)


_local = threading.local()


def dumps(obj: Any, qpy: Qpy | None = None) -> bytes:
    """``pickle.dumps(obj, protocol=5)``, circuits inside as QPY (see the module doc).

    Args:
        obj: The value.
        qpy: Receives ``id(circuit) -> (circuit, QPY bytes)`` for every circuit
            written as QPY (see the module doc).
    """
    cls = _qpy.circuit_class()
    if cls is None:  # qiskit not imported: no circuit can be inside
        return pickle.dumps(obj, protocol=5)
    p: _CircuitPickler | None = getattr(_local, "pickler", None)
    if p is None or p.busy or p._circuit_class is not cls:
        if p is not None and p.busy:  # a dump inside a dump: a pickler of its own
            buf = io.BytesIO()
            inner = _CircuitPickler(buf, cls)
            inner.qpy = qpy
            inner.dump(obj)
            return buf.getvalue()
        p = _local.pickler = _CircuitPickler(io.BytesIO(), cls)
    p.busy = True
    p.qpy = qpy
    try:
        p.dump(obj)
        return p.file.getvalue()
    finally:
        p.clear_memo()  # the memo holds the objects: let them go
        p.file.seek(0)
        p.file.truncate()
        p.qpy = None
        p.busy = False


def by_reference_to_main(data: bytes) -> bool:
    """True when pickled ``data`` names something of ``__main__`` (the program file).

    Workers never run the program's top-level code, so they cannot find
    ``__main__.Box``: such values must go by value (:func:`cloud_dumps`).
    """
    return b"__main__" in data


_cloud_pickler: type | None = None


def _code_with_file(make: Any, args: tuple[Any, ...], filename: str) -> Any:
    """A code object cloudpickle carried, with the file name it had where it was made."""
    return make(*args).replace(co_filename=filename)


def _keep_file(code: Any) -> tuple[Any, ...]:
    import cloudpickle.cloudpickle as cp

    make, args = cp._code_reduce(code)
    return (_code_with_file, (make, args, code.co_filename))


def cloud_dumps(obj: Any, buffer_callback: Any = None) -> bytes:
    """``cloudpickle.dumps(obj)``: functions, classes and instances of the program file by value.

    Code objects keep their file name (cloudpickle writes ``<dynamic-code>``
    instead), so that a task's traceback on a worker names the program's file
    and shows its lines. (Cache keys do not come from these bytes:
    :mod:`qshpc.cache.keys` digests functions without line numbers or paths.)
    """
    global _cloud_pickler
    if _cloud_pickler is None:
        import types
        from collections import ChainMap

        import cloudpickle
        import cloudpickle.cloudpickle as cp

        class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
            dispatch_table: ClassVar[ChainMap[Any, Any]] = ChainMap(
                {types.CodeType: _keep_file}, cloudpickle.Pickler.dispatch_table
            )

        # A cloudpickle without its code reducer: its own pickler (``<dynamic-code>``).
        _cloud_pickler = _Pickler if hasattr(cp, "_code_reduce") else cloudpickle.Pickler
    buf = io.BytesIO()
    _cloud_pickler(buf, protocol=5, buffer_callback=buffer_callback).dump(obj)
    return buf.getvalue()


def _writeable_reduce(obj: Any) -> Any:
    """A read-only numpy array's reduction as a writeable copy of it, in its memory order
    (review53 K5: ``copy()`` is C order, so a Fortran-ordered ``put`` array echoed by a task,
    or a read-only F result, came back C-ordered at workers >= 1 only); else NotImplemented."""
    kind = type(obj)
    if kind.__name__ == "ndarray" and kind.__module__ == "numpy" and not obj.flags.writeable:
        return obj.copy(order="K").__reduce_ex__(5)
    return NotImplemented


class WriteablePickler(pickle.Pickler):
    """``pickle.Pickler`` (protocol 5) that writes a read-only numpy array as a writeable copy.

    A value that travels, or is copied, as a task's result does on one rank: a slice
    of a placed (read-only) array arrives writeable, where pickle would keep the flag
    (on 3986114 and 8076006 ``get`` gave such a slice read-only under workers only,
    or under ``-n 1`` only). ``reducer_override`` is called for objects of other
    than the built-in types only (C pickler): a list of floats pickles at the speed
    of ``pickle.dumps``. :attr:`copied` tells whether it met such an array (the
    bytes then differ from ``pickle.dumps``'s).
    """

    #: True once a read-only numpy array was written as a writeable copy.
    copied = False

    def reducer_override(self, obj: Any) -> Any:
        reduced = _writeable_reduce(obj)
        if reduced is not NotImplemented:
            self.copied = True
        return reduced


def writeable_dumps(value: Any) -> bytes:
    """``pickle.dumps(value, protocol=5)``, each read-only numpy array as a writeable one."""
    out = io.BytesIO()
    WriteablePickler(out, protocol=5).dump(value)
    return out.getvalue()


_writeable_cloud: type | None = None


def writeable_cloud_dumps(value: Any) -> bytes:
    """``cloudpickle.dumps(value, protocol=5)``, each read-only numpy array as a writeable one.

    A result holding an instance of a class of the program travels by value; on
    8076006 its read-only arrays (slices of a ``put`` array) reached the program
    read-only under workers, and writeable with one rank or ``QSHPC_ROOT_WORKS``.
    """
    global _writeable_cloud
    if _writeable_cloud is None:
        import cloudpickle

        class _Writeable(cloudpickle.Pickler):  # type: ignore[misc]
            def reducer_override(self, obj: Any) -> Any:
                reduced = _writeable_reduce(obj)
                if reduced is NotImplemented:
                    return super().reducer_override(obj)
                return reduced

        _writeable_cloud = _Writeable
    out = io.BytesIO()
    _writeable_cloud(out, protocol=5).dump(value)
    return out.getvalue()


__all__ = [
    "Qpy",
    "WriteablePickler",
    "by_reference_to_main",
    "cloud_dumps",
    "dumps",
    "load_circuit",
    "loads_keyed",
    "standard_names",
    "writeable_cloud_dumps",
    "writeable_dumps",
]
