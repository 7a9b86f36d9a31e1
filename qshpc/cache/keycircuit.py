"""A circuit in a cache key: its QPY bytes, with what differs between processes made fixed.

See :func:`circuit_digest` and :mod:`qshpc.cache.keys`. The operations and layouts
keyed in parts are walked as values by the walk the caller passes
(:func:`qshpc.cache.keywalk.walk_value`), so this module does not import the walk.
"""

from __future__ import annotations

import hashlib
import re
import struct
import weakref
from collections.abc import Callable
from typing import Any

from qshpc.cache.keyenv import Put

#: How a value is walked into a hash (:func:`qshpc.cache.keywalk.walk_value`).
Walk = Callable[[Put, Any], None]

_AUTO_NAME = re.compile(r"circuit-\d+")


def circuit_digest(circuit: Any, data: bytes | None, walk: Walk, standard: bool = False) -> bytes:
    """Digest of a circuit's QPY bytes, with what differs between processes made fixed.

    ``data``: the circuit's QPY bytes (``qshpc.store._qpy.dump(circuit)``) when
    the caller has them already (the call's payload holds them): not dumped again.
    ``standard``: the caller counted the circuit's operations a moment ago and found
    standard gates only (:func:`qshpc.runtime.intake.keyable`): not counted again
    (:func:`_odd_positions` finds none then).

    A default name (``circuit-41``) becomes ``circuit``. In a parameterized
    circuit every parameter is replaced by one of the same name with a UUID
    derived from the name (a ``Parameter``'s own UUID is random), and every
    compound expression by a parameter named after the expression's text:
    QPY writes the terms of an expression in an order that can change from
    one dump to the next, while ``str`` of an expression is canonical
    (``v[1] + 2*v[0]``). That rewrite costs about a millisecond, so the
    digest of a parameterized circuit is kept per circuit object and reused
    while the circuit's own QPY bytes stay the same (a sweep passes one
    ansatz to every call). A circuit with a layout, or with two or more
    operations of no standard gate, is keyed in parts (see
    :func:`_laid_out_digest`, :func:`_split_digest`).
    """
    _qpy = _QPY or _qpy_module()
    if getattr(circuit, "_is_built", True) is False:  # an unbuilt BlueprintCircuit (QAOAAnsatz):
        circuit.data  # noqa: B018 - reading builds it, as QPY would: keyed as built (review43 M1)
    odd = None if standard else _odd_positions(circuit)
    if odd:
        return _split_digest(circuit, odd, walk)
    if data is None:
        data = _qpy.dump(circuit)
    layout = getattr(circuit, "_layout", None)
    if not circuit.num_parameters and layout is None:
        if _AUTO_NAME.fullmatch(circuit.name):
            unnamed = _without_name(data, circuit.name)
            data = unnamed if unnamed is not None else _qpy.dump(circuit.copy(name="circuit"))
        return hashlib.blake2b(_fixed_vars(circuit, data), digest_size=32).digest()
    own = hashlib.blake2b(data, digest_size=32).digest()
    memo = _memo.get(id(circuit))
    if memo is not None and memo[0]() is circuit and memo[1] == own:
        return memo[2]
    if layout is None:
        fixed = _fixed_vars(circuit, _qpy.dump(_fixed_parameters(circuit)))
        digest = hashlib.blake2b(fixed, digest_size=32).digest()
    else:
        digest = _laid_out_digest(circuit, layout, walk)
    try:
        ref = weakref.ref(circuit)
    except TypeError:  # pragma: no cover - circuits take weak references
        return digest
    if len(_memo) >= _MEMO_SIZE:
        _memo.pop(next(iter(_memo)))
    _memo[id(circuit)] = (ref, own, digest)
    return digest


#: :mod:`qshpc.store._qpy`, once a circuit was keyed (a function-level import costs each
#: key ~0.7 us; importing it with this module would load :mod:`qshpc.store` for every key).
_QPY: Any = None


def _qpy_module() -> Any:
    global _QPY
    from qshpc.store import _qpy

    _QPY = _qpy
    return _qpy


def _fixed_vars(circuit: Any, data: bytes) -> bytes:
    """``data`` with the UUID of each realtime variable and stretch of ``circuit``
    (``add_var``, ``add_input``, ``add_stretch``...) replaced by one derived from its
    kind and name (review42 F2).

    ``Var.new`` draws a random UUID, new in every process, and QPY writes it: a
    circuit holding one had a new key in every run (never a cache hit, run again
    on every resume). Names are unique in a circuit, so two circuits that differ
    still differ; a variable a control-flow block declares for itself keeps its
    UUID (its call misses, as before).
    """
    if not (getattr(circuit, "num_vars", 0) or getattr(circuit, "num_stretches", 0)):
        return data
    import uuid

    found = list(circuit.iter_vars())
    if getattr(circuit, "num_stretches", 0):
        found += circuit.iter_stretches()
    for v in found:
        own = getattr(v, "var", None)
        if isinstance(own, uuid.UUID):
            fixed = uuid.uuid5(uuid.NAMESPACE_OID, f"{type(v).__name__}:{v.name}")
            data = data.replace(own.bytes, fixed.bytes)
    return data


#: Operations of no standard gate that are no custom gate either: QPY writes them
#: in the circuit's own stream (their blocks as circuits).
_CONTROL_FLOW = frozenset(("if_else", "while_loop", "for_loop", "switch_case", "box", "break_loop",
                           "continue_loop"))  # fmt: skip


def _odd_positions(circuit: Any) -> list[int]:
    """The positions of a circuit's operations that are no standard gate, when it
    has two or more, or one whose definition holds such operations (else none):
    see :func:`_split_digest`. Taken for every circuit a key holds: ~1 µs for a
    small one (the names counted in Rust; ``count_ops()`` would copy them into
    an ``OrderedDict`` too)."""
    rust: Any = getattr(circuit, "_data", None)
    counts = rust.count_ops() if hasattr(rust, "count_ops") else circuit.count_ops()
    std = _standard_names or _standard()
    for name in counts:
        if name not in std and name not in _CONTROL_FLOW:
            break
    else:
        return []  # standard gates only: QPY writes them in order
    odd = {n for n in counts if n not in std and n not in _CONTROL_FLOW}
    found = [i for i, inst in enumerate(circuit.data) if inst.operation.name in odd]
    if len(found) == 1 and _nested(circuit.data[found[0]].operation) is None:
        return []
    return found


def _nested(op: Any) -> Any:
    """The definition of ``op`` when it holds operations of no standard gate itself
    (a gate of gates): keyed in parts too (else None)."""
    from qiskit.circuit import QuantumCircuit  # type: ignore[import-untyped]

    definition = getattr(op, "_definition", None)  # not built here: QPY builds it
    if isinstance(definition, QuantumCircuit) and any(
        n not in _CONTROL_FLOW for n in definition.count_ops() if n not in _standard()
    ):
        return definition
    return None


def _standard() -> frozenset[str]:
    """The names of Qiskit's standard gates and instructions (QPY writes them by name)."""
    global _standard_names
    if _standard_names is None:
        from qiskit.circuit.library import (  # type: ignore[import-untyped]
            get_standard_gate_name_mapping,
        )

        _standard_names = frozenset(get_standard_gate_name_mapping()) | {"barrier"}
    return _standard_names


_standard_names: frozenset[str] | None = None


def _split_digest(circuit: Any, odd: list[int], walk: Walk) -> bytes:
    """Digest of a circuit with two or more operations of no standard gate, in parts.

    QPY writes such operations (a ``to_gate()`` subcircuit, a
    ``PauliEvolutionGate``, an ``Instruction("kraus")`` of an Aer noise model's
    error, a custom controlled gate) in a table of definitions whose order
    changes from one dump to the next (Qiskit's Rust writer: a hash map), so the
    same circuit had a new key at nearly every call. So the circuit without
    them is keyed as any circuit is, and each of them by its position, its bits
    and the digest of a circuit that holds it alone (one such operation has one
    QPY). Parameters are keyed by name in both, as always.
    """
    from qiskit.circuit import CircuitInstruction, QuantumCircuit

    skip = set(odd)
    rest = circuit.copy_empty_like()
    data = circuit.data
    for i, inst in enumerate(data):
        if i not in skip:
            rest._append(inst)
    h = hashlib.blake2b(digest_size=32)
    h.update(b"split")
    h.update(circuit_digest(rest, None, walk))
    plain = _plain_operations()
    for i in odd:
        inst = data[i]
        op = inst.operation
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        clbits = [circuit.find_bit(c).index for c in inst.clbits]
        h.update(b"%d;%r;%r;" % (i, qubits, clbits))
        if type(op) in plain:
            # A plain Gate or Instruction (to_gate(), Aer's kraus): its name, sizes,
            # params, label and definition are its whole state, walked at half the cost
            # of a circuit's QPY (a noise model holds hundreds of them).
            h.update(b"op")
            walk(h.update, op)
            continue
        definition = _nested(op)
        if definition is None:
            alone = QuantumCircuit(op.num_qubits, op.num_clbits, name="op")
            alone._append(CircuitInstruction(op, alone.qubits, alone.clbits))
            h.update(circuit_digest(alone, None, walk))
            continue
        # A gate of gates: what QPY writes of it besides its definition, and that apart.
        h.update(b"nested")
        walk(h.update, (type(op), op.name, op.num_qubits, op.num_clbits, op.label, list(op.params)))
        h.update(circuit_digest(definition, None, walk))
    return h.digest()


def _plain_operations() -> tuple[type, ...]:
    """Qiskit's ``Gate`` and ``Instruction`` themselves (not their subclasses)."""
    from qiskit.circuit import Gate, Instruction

    return (Gate, Instruction)


def _laid_out_digest(circuit: Any, layout: Any, walk: Walk) -> bytes:
    """Digest of a circuit with a layout (a transpiled one): its QPY bytes without
    the layout, and the layout walked as a value.

    QPY writes the registers of a layout's virtual qubits (``q``, ``ancilla``) in
    the order of a ``set`` of them, which follows the process's string hashing:
    the same transpiled circuit had one of two keys, by chance, in each run (a
    rerun missed about half the time). The layout decides results all the same
    (``observable.apply_layout(circuit.layout)``), so it is keyed apart.
    """
    from qshpc.store import _qpy

    bare = _fixed_parameters(circuit) if circuit.num_parameters else circuit.copy()
    bare.name = "circuit" if _AUTO_NAME.fullmatch(circuit.name) else circuit.name
    bare._layout = None
    h = hashlib.blake2b(_fixed_vars(circuit, _qpy.dump(bare)), digest_size=32)
    h.update(b"layout")
    try:
        h.update(_layout_digest(circuit, layout))
    except Exception:  # a layout of another shape than Qiskit 2's: walked as any value
        walk(h.update, layout)
    return h.digest()


def _layout_digest(circuit: Any, layout: Any) -> bytes:
    """What QPY writes of a ``TranspileLayout``, in a fixed order.

    Each physical qubit of the initial layout by its virtual qubit (register name,
    size and index, and its index in the circuit given to the transpiler), the
    final layout and the output qubits by their index in the circuit, and the
    number of input qubits: ~0.2 ms for 127 qubits, where walking the layout
    object took 6.5 ms.
    """
    h = hashlib.blake2b(digest_size=32)
    inputs = layout.input_qubit_mapping or {}

    def virtual(q: Any) -> bytes:
        reg, index = q._register, q._index
        name = b"-" if reg is None else b"%s/%d" % (reg.name.encode(), reg.size)
        return b"%s:%r:%r;" % (name, index, inputs.get(q))

    initial = layout.initial_layout
    if initial is not None:
        h.update(b"initial")
        for phys, q in sorted(initial.get_physical_bits().items()):
            h.update(b"%d=" % phys)
            h.update(virtual(q))
    h.update(b"inputs%d;" % len(inputs))
    final = layout.final_layout
    if final is not None:
        h.update(b"final")
        for phys, q in sorted(final.get_physical_bits().items()):
            h.update(b"%d=%d;" % (phys, circuit.find_bit(q).index))
    h.update(b"count%r;" % (layout._input_qubit_count,))
    out = layout._output_qubit_list
    if out is not None:
        h.update(b"out%r;" % ([circuit.find_bit(q).index for q in out],))
    return h.digest()


def _without_name(data: bytes, name: str) -> bytes | None:
    """QPY bytes of one circuit with its name (and the name's length) cut out.

    Cheaper than dumping a renamed copy. The offsets come from Qiskit's own
    format constants and are checked against the name: None (dump a renamed
    copy) when a QPY version places the name elsewhere.
    """
    sizes = _SIZES if _SIZES is not None else _sizes()  # (``()`` is falsy: review52 F12)
    if not sizes or len(data) < 7:
        return None
    start = sizes[0] + (sizes[1] if data[6] >= 16 else 0)  # QPY 16+: a table of offsets first
    at = start + sizes[2]
    raw = name.encode()
    if data[start : start + 2] != struct.pack("!H", len(raw)) or data[at : at + len(raw)] != raw:
        return None
    return b"".join((data[:start], data[start + 2 : at], data[at + len(raw) :]))


def _sizes() -> tuple[int, ...]:
    """Qiskit's QPY format sizes that place a circuit's name (see :func:`_without_name`),
    read once: the file header and type key, a circuit table entry, the circuit header
    (empty when this Qiskit names them otherwise: the renamed copy is dumped then)."""
    global _SIZES
    try:
        from qiskit.qpy import formats  # type: ignore[import-untyped]

        _SIZES = (
            formats.FILE_HEADER_V10_SIZE + formats.TYPE_KEY_SIZE,
            formats.CIRCUIT_TABLE_ENTRY_SIZE,
            formats.CIRCUIT_HEADER_V12_SIZE,
        )
    except AttributeError:
        _SIZES = ()
    return _SIZES


#: :func:`_sizes`, once read (a function-level import cost each key ~1 us); None: not yet.
_SIZES: tuple[int, ...] | None = None
_MEMO_SIZE = 256
_memo: dict[int, tuple[Callable[[], Any], bytes, bytes]] = {}
_fixed: dict[str, Any] = {}  # "type:text" -> the parameter that replaces it


def _expression_text(p: Any) -> str:
    """A parameter or expression as a key knows it: its kind and text, and an
    expression's parameters by kind and name too.

    The text alone names its parameters by name only: ``2*v[0]`` of a
    ``ParameterVector`` and of a ``Parameter("v[0]")`` read alike, and so do
    ``a*b + 1`` and ``Parameter("a*b") + 1``. Their circuits differ: a vector's
    elements sort by index, parameters by name (``v[10]`` before ``v[2]``), so
    ``assign_parameters(values)`` binds them to other values.
    """
    text = f"{type(p).__name__}:{p}"
    if type(p).__name__ != "ParameterExpression":
        return text  # a Parameter, a ParameterVectorElement: their kind is there
    kinds = sorted(f"{type(q).__name__}:{q}" for q in p.parameters)
    return f"{text}|{','.join(kinds)}"


def _fix(p: Any) -> Any:
    """The parameter with a fixed UUID that replaces parameter or expression ``p``."""
    text = _expression_text(p)
    q = _fixed.get(text)
    if q is None:
        import uuid

        from qiskit.circuit import Parameter

        if len(_fixed) >= 65536:
            _fixed.clear()
        q = _fixed[text] = Parameter(str(p), uuid=uuid.uuid5(uuid.NAMESPACE_OID, text))
    return q


def _fixed_parameters(circuit: Any) -> Any:
    """A copy of ``circuit`` whose QPY bytes are the same in every process (see above)."""
    from qiskit.circuit import CircuitInstruction, ParameterExpression

    name = "circuit" if _AUTO_NAME.fullmatch(circuit.name) else circuit.name
    compound = type(circuit.global_phase) is ParameterExpression or any(
        type(p) is ParameterExpression for inst in circuit.data for p in inst.params
    )
    if not compound:  # parameters only: Qiskit swaps them in Rust
        out = circuit.assign_parameters(
            {p: _fix(p) for p in circuit.parameters}, inplace=False, flat_input=True
        )
        out.name = name
        return out
    out = circuit.copy_empty_like(name=name)
    phase = circuit.global_phase
    out.global_phase = _fix(phase) if isinstance(phase, ParameterExpression) else phase
    for inst in circuit.data:
        params = inst.params
        if any(isinstance(p, ParameterExpression) for p in params):
            op = inst.operation.copy()
            op.params = [_fix(p) if isinstance(p, ParameterExpression) else p for p in params]
            inst = CircuitInstruction(op, inst.qubits, inst.clbits)
        out._append(inst)
    return out
