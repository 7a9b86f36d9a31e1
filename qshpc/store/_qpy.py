"""QPY helpers; qiskit is imported only when a circuit is actually met."""

from __future__ import annotations

import io
import struct
import sys
from typing import Any

from qshpc._lazy import loaded


def circuit_class() -> type | None:
    """Return ``QuantumCircuit`` if qiskit is already imported, else None.

    A value can only be a circuit if qiskit was imported by whoever built it, so
    this never imports qiskit itself.
    """
    mod = sys.modules.get("qiskit.circuit")
    if mod is None:
        return None
    cls: type = mod.QuantumCircuit
    return cls


def is_circuit(value: Any) -> bool:
    """True when ``value`` is a ``QuantumCircuit``."""
    cls = circuit_class()
    return cls is not None and isinstance(value, cls)


def is_circuit_list(value: Any) -> bool:
    """True when ``value`` is a non-empty list of ``QuantumCircuit``."""
    cls = circuit_class()
    return (
        cls is not None
        and type(value) is list
        and len(value) > 0
        and all(isinstance(v, cls) for v in value)
    )


_standard: frozenset[str] | None = None


def exact(circuit: Any) -> bool:
    """True when QPY gives ``circuit`` back as it is: a ``QuantumCircuit`` itself (not a
    subclass) of standard gates only (QPY rebuilds other gates as generic ones; the same
    check as the result cache's ``faithful``)."""
    global _standard
    cls = circuit_class()
    if cls is None or type(circuit) is not cls:
        return False
    if _standard is None:
        from qiskit.circuit.library import (  # type: ignore[import-untyped]
            get_standard_gate_name_mapping,
        )

        _standard = frozenset(get_standard_gate_name_mapping()) | {"barrier"}
    ops: Any = circuit.count_ops  # type: ignore[attr-defined]
    return set(ops()) <= _standard


def dump(circuits: Any) -> bytes:
    """QPY bytes of one circuit or a list of circuits.

    QPY writes a circuit's ``metadata`` as JSON: numpy scalars and arrays in it
    (``{"theta": np.float64(0.3)}``, what numerical code puts there) are written as
    the numbers and lists they hold, and come back as Python numbers and lists.
    Metadata that holds anything else JSON cannot write raises SerializationError.
    """
    qpy = _QISKIT_QPY or _qiskit_qpy()
    buf = io.BytesIO()
    try:
        qpy.dump(circuits, buf, metadata_serializer=_metadata_encoder())
    except (TypeError, ValueError) as exc:
        if "JSON" not in str(exc) and "json" not in str(exc):
            raise
        from qshpc.errors import SerializationError

        raise SerializationError(
            f"a circuit's metadata cannot be written ({exc}): QPY stores circuit.metadata as "
            "JSON; keep it to numbers, strings, lists and dicts with string keys"
        ) from None
    data = buf.getvalue()
    if not _whole(circuits, data):
        raise KeyboardInterrupt(_LOST)
    return data


#: Why :func:`dump` raises when Qiskit's writer lost an interrupt (see :func:`_whole`).
_LOST = (
    "interrupted while Qiskit's QPY writer read a circuit: it dropped the interrupt and "
    "wrote the circuit without its metadata or layout; nothing was sent"
)
#: QPY's file header (magic, QPY version, Qiskit version, circuit count, encoding), its
#: type key and its first circuit table entry (QPY 16 and later: the offset of the circuit).
_HEAD = struct.Struct("!6xB3xQ2xQ")  # (the fields read: version, count, offset)
#: QPY's CIRCUIT_HEADER_V12 up to the metadata size (read: name, global phase, metadata sizes).
_CIRCUIT_HEADER = struct.Struct("!HxH8xQ")
_LAYOUT = struct.Struct("!?iiiIi")  # QPY's LAYOUT_V2, last in a circuit
_NO_LAYOUT = _LAYOUT.pack(False, -1, -1, -1, 0, 0)


#: The QPY versions whose layout :func:`_whole` reads (16: the circuit table; 18: Qiskit
#: 2.x's). A later version is not checked: a header read wrong would stop every call.
_CHECKED_FROM, _CHECKED_TO = 16, 18


def _whole(circuits: Any, data: bytes) -> bool:
    """False when Qiskit's QPY writer (Rust) wrote a circuit without its metadata or layout.

    The writer reads ``circuit.metadata`` and ``circuit.layout`` (Python
    properties) and, when that read raises, writes no metadata (the circuit then
    fails to load: a ``JSONDecodeError`` on the worker) or no layout, and the
    exception is gone. The only exception those reads raise is an asynchronous
    one: a ``KeyboardInterrupt`` (Ctrl-C, or a signal handler that raises) landing
    in them. So an interrupt in a burst of calls gave one call a corrupt circuit and
    vanished. Metadata is JSON (``{}`` at least, never empty), and a circuit with a
    layout never ends with the no-layout record: a few byte compares, ~1 µs.
    Formats before QPY 16 (no circuit table) and after 18 are not checked.
    """
    try:
        version, count, at = _HEAD.unpack_from(data)
        if not _CHECKED_FROM <= version <= _CHECKED_TO:
            return True  # a layout this check was not written for: a later one is not read
        listed = circuits if type(circuits) is list else (circuits,)
        if count != len(listed):
            return True
        for i, circuit in enumerate(listed):
            if i:
                at = int.from_bytes(data[20 + 8 * i : 28 + 8 * i], "big")
            if not _CIRCUIT_HEADER.unpack_from(data, at)[2]:  # no metadata: not even "{}"
                return False
            if getattr(circuit, "_layout", None) is not None:
                last = i == count - 1
                end = len(data) if last else int.from_bytes(data[28 + 8 * i : 36 + 8 * i], "big")
                if data[end - _LAYOUT.size : end] == _NO_LAYOUT:
                    return False
    except (struct.error, IndexError, TypeError):
        return True  # a layout this check does not know: not checked
    return True


#: ``qiskit.qpy``, once a circuit was dumped (``from qiskit import qpy`` at each dump, a
#: package's from-import, cost every cached call's key ~1 us).
_QISKIT_QPY: Any = None


def _qiskit_qpy() -> Any:
    global _QISKIT_QPY
    from qiskit import qpy  # type: ignore[import-untyped]

    _QISKIT_QPY = qpy
    return qpy


_encoder: type | None = None


def _metadata_encoder() -> type:
    """A JSON encoder class that writes numpy scalars and arrays as plain numbers and lists."""
    global _encoder
    if _encoder is None:
        import json

        class _MetadataEncoder(json.JSONEncoder):
            def default(self, o: Any) -> Any:
                numpy = loaded("numpy")
                if numpy is not None and isinstance(o, (numpy.generic, numpy.ndarray)):
                    return o.tolist()
                return super().default(o)

        _encoder = _MetadataEncoder
    return _encoder


def load(data: bytes) -> list[Any]:
    """Circuits from QPY bytes (always a list).

    Circuits decoded from the same bytes by :func:`remember` are handed out
    instead (once), without decoding again.
    """
    for i, (known, circuits) in enumerate(_decoded):
        if known == data:
            del _decoded[i]
            return circuits
    from qiskit import qpy

    return [with_annotated_parameters(c) for c in qpy.load(io.BytesIO(data))]


def with_annotated_parameters(circuit: Any) -> Any:
    """``circuit``, its parameter table holding its annotated operations' parameters.

    QPY (Qiskit 2.6) loads an ``AnnotatedOperation`` (a controlled or inverted gate
    kept unexpanded: ``AnnotatedOperation(RXGate(t), ControlModifier(1))``) with its
    base gate's parameters but leaves its use of them out of the circuit's table: a
    PUB with values for ``t`` then failed on a worker (``circuit has 0 parameters;
    got 1 values``) and worked with one rank, and ``assign_parameters({t: ...})``
    of such a loaded circuit raised, or, when another gate uses ``t`` too (so ``t``
    is in ``parameters``), left the annotated operation unbound. Each such
    instruction is set again in place (``circuit.data[i] = ...``, which records its
    parameters); nothing else of the circuit changes.

    Only instructions named ``annotated`` or a control-flow name are looked at, by
    name (``CircuitInstruction.name`` builds no Python operation): ~0 for a
    circuit with neither, ~40 ms per 100k instructions with control flow.
    """
    ops = circuit.count_ops()
    if "annotated" in ops or _CONTROL_FLOW.intersection(ops):
        _retrack(circuit)
    return circuit


def _retrack(circuit: Any) -> bool:
    """Set ``circuit``'s annotated operations with parameters again (see above), in its
    control-flow blocks too; True when one was."""
    found = [
        (i, inst)
        for i, inst in enumerate(circuit.data)
        if inst.name == "annotated" or inst.name in _CONTROL_FLOW
    ]
    changed = False
    for i, inst in found:
        op = inst.operation
        if inst.name == "annotated":
            if _expression_parameters(op):
                circuit.data[i] = inst
                changed = True
            continue
        blocks = list(op.blocks)  # its blocks are circuits QPY loaded the same way
        if any([_retrack(b) for b in blocks if _maybe(b)]):
            circuit.data[i] = inst.replace(operation=op.replace_blocks(blocks))
            changed = True
    return changed


def _maybe(circuit: Any) -> bool:
    ops = circuit.count_ops()
    return "annotated" in ops or bool(_CONTROL_FLOW.intersection(ops))


#: Instructions whose blocks are circuits of their own.
_CONTROL_FLOW = frozenset({"if_else", "while_loop", "for_loop", "switch_case", "box"})


def _expression_parameters(op: Any) -> set[Any]:
    """The Parameters in ``op``'s parameter expressions."""
    found: set[Any] = set()
    for p in op.params:
        found.update(getattr(p, "parameters", ()))
    return found


#: Circuits decoded ahead of their next :func:`load` (QPY bytes, circuits), at most a few.
_decoded: list[tuple[bytes, list[Any]]] = []
_MAX_DECODED = 8


def remember(data: bytes, circuits: list[Any]) -> None:
    """Keep ``circuits`` (decoded from ``data``) for the next :func:`load` of the same bytes.

    Rank 0 checks a job's circuits (decodes them) before it stores their bytes
    as they are; the program's read of the arguments then takes these circuits
    instead of decoding the same bytes a second time. Each is handed out once:
    circuits are mutable, and a later load of the bytes gets fresh ones.
    """
    _decoded.append((data, circuits))
    del _decoded[:-_MAX_DECODED]
