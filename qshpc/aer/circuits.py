"""Circuit analysis for exact sampling: final measurements, marginals, hashes.

The V1 reference Sampler returned exact probabilities: it removed the final
measurements, simulated the state, and took the marginal over the measured
qubits, keyed by the value of the classical bits they were measured into
(clbit 0 the least significant bit). :func:`prepare_exact` does the same
analysis so the Aer layer can ask Aer for that marginal with
``save_probabilities``; circuits whose outcome depends on a mid-circuit
measurement, a reset, classical control, a classical write (``store``), a
noise channel (``kraus``, ``superop``, ``quantum_channel``, ``roerror``: one
simulated shot is one random branch of it) or an ``initialize`` of a qubit that
was already used (a reset), also inside an instruction of their own, cannot be
handled that way and are sampled instead.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

_NONUNITARY = frozenset(
    {
        "reset",
        "if_else",
        "while_loop",
        "for_loop",
        "switch_case",
        "store",  # writes clbits (or variables) that the final measurements alone do not give
        "kraus",  # noise channels: one shot of the statevector method is one random branch
        "superop",
        "quantum_channel",
        "roerror",
    }
)
#: Operations that hold circuits of their own (their bodies are read too).
CONTROL_FLOW = frozenset({"if_else", "while_loop", "for_loop", "switch_case", "box"})
#: Operations that do nothing to the state (a measurement followed only by them is final).
_TRANSPARENT = frozenset({"barrier", "delay"})


@dataclass(frozen=True)
class ExactPlan:
    """How to read a V1-style distribution off a circuit's final state.

    Attributes:
        circuit: The circuit without its final measurements (None when not exact).
        qubits: Qubits (indices) whose marginal is needed, least significant first.
        clbit_masks: For each of ``qubits``, the bitmask of the clbits it was measured into.
        reason: Why the circuit cannot be handled exactly (None when it can).
    """

    circuit: QuantumCircuit | None
    qubits: tuple[int, ...]
    clbit_masks: tuple[int, ...]
    reason: str | None = None

    @property
    def exact(self) -> bool:
        """True when the distribution can be computed from the final state."""
        return self.reason is None


def prepare_exact(circuit: QuantumCircuit, *, unshadowed: bool = False) -> ExactPlan:
    """Split a circuit into its unitary part and its final measurements.

    A measurement is final when no later non-barrier operation acts on its qubit.
    When several final measurements write one clbit, the last one counts, as in
    the circuit. Clbits that no final measurement writes read 0.

    Only the tail of the circuit that holds its measurements is walked (in
    Python); the body is a copy with the final measurements deleted (in Rust):
    about 0.05 ms for a measured 12-qubit depth-12 circuit.

    Args:
        circuit: A circuit, measured or not.
        unshadowed: True when ``circuit`` is already :func:`qshpc.aer.shadowed.unshadow`'s
            form (from :func:`aer_runnable`): it is not walked for shadowing operations
            again.

    Returns:
        An :class:`ExactPlan`; ``plan.exact`` is False when the circuit holds a
        mid-circuit measurement, a reset or classical control flow. Boxes count
        as their bodies (:func:`unbox`): the plan's circuit has none. Custom
        operations named like standard gates count as their definitions
        (:func:`qshpc.aer.shadowed.unshadow`).

    Raises:
        ShadowedGateError: A custom operation named like a standard gate has no
            definition.
    """
    if not unshadowed:
        from qshpc.aer.shadowed import unshadow

        circuit = unshadow(circuit)
    ops = circuit.count_ops()
    if "box" in ops:
        circuit = unbox(circuit)
        ops = circuit.count_ops()
    for name in ops:
        if name in _NONUNITARY:
            return ExactPlan(None, (), (), f"it has a {name!r} operation")
    hidden = _hidden_nonunitary(circuit, ops)
    if hidden is not None:
        return ExactPlan(None, (), (), hidden)
    if "initialize" in ops and _initializes_used_qubit(circuit):
        return ExactPlan(
            None, (), (), "it has an 'initialize' of a qubit after operations on it (a reset)"
        )
    left = ops.get("measure", 0)
    data = circuit.data
    qubit_index = {q: i for i, q in enumerate(circuit.qubits)} if left else {}
    clbit_index = {c: i for i, c in enumerate(circuit.clbits)} if left else {}
    busy: set[int] = set()  # qubits with a later non-barrier operation
    written: dict[int, int] = {}  # clbit -> qubit of the last final measurement into it
    final: list[int] = []  # positions in circuit.data of final measurements, last first
    pos = len(data)
    only_tail = True  # the final measurements and barriers are a suffix of circuit.data
    while left and pos:
        pos -= 1
        inst = data[pos]
        name = inst.operation.name
        if name in _TRANSPARENT:
            continue
        if name == "measure":
            qubit = qubit_index[inst.qubits[0]]
            if qubit in busy:
                return ExactPlan(None, (), (), "it measures a qubit before the end")
            final.append(pos)
            written.setdefault(clbit_index[inst.clbits[0]], qubit)
            left -= 1
            continue
        only_tail = False
        busy.update(qubit_index[q] for q in inst.qubits)
    body = circuit.copy()
    if final and only_tail:
        del body.data[final[-1] :]
    else:
        for at in final:  # last first, so earlier positions stay valid
            del body.data[at]
    masks: dict[int, int] = {}
    for clbit, qubit in written.items():
        masks[qubit] = masks.get(qubit, 0) | (1 << clbit)
    order = sorted(masks, key=lambda q: min(c for c, w in written.items() if w == q))
    return ExactPlan(body, tuple(order), tuple(masks[q] for q in order))


def unbox(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` with every ``box`` replaced by its body (itself when it has none).

    A box groups operations (for annotations, a duration); to an ideal simulator it
    is its body. Aer (0.18) does not run boxes, and the preset pass manager refuses
    them for Aer's target ("The control-flow construct 'box' is not supported").
    Boxes inside other control-flow bodies are replaced too; the bits are the same.
    """
    if not _has_box(circuit):
        return circuit
    out = circuit.copy_empty_like()
    for inst in circuit.data:
        op = inst.operation
        if op.name == "box":
            out.compose(unbox(op.blocks[0]), inst.qubits, inst.clbits, inplace=True)
        elif getattr(op, "blocks", ()):
            out.append(inst.replace(operation=op.replace_blocks([unbox(b) for b in op.blocks])))
        else:
            out.append(inst)
    return out


def _has_box(circuit: QuantumCircuit) -> bool:
    ops = circuit.count_ops()
    if "box" in ops:
        return True
    if CONTROL_FLOW.isdisjoint(ops):
        return False
    return any(
        _has_box(block) for inst in circuit.data for block in getattr(inst.operation, "blocks", ())
    )


def without_idle_reads(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` without its measurements and resets of qubits nothing else acts on.

    ``transpile(bell, backend)`` then ``measure_all()`` measures the backend's 115
    qubits and acts on 3. The 112 others are ``|0>``: their measurements read 0,
    which is what their clbits hold when nothing writes them, and their resets do
    nothing. Without them the qubits are idle, which Aer's truncation (one rank) and
    :func:`qshpc.aer.distributed.compact.compact` (a split) drop, so the circuit
    runs as the 3-qubit one it is, as :func:`qshpc.aer.sizing.active_width` sized it.
    Counts keep every clbit. Which reads go: :func:`qshpc.aer.sizing.active_qubits`.
    Not for a noisy run: a readout error reads 1 off ``|0>`` too.

    Returns:
        ``circuit`` itself when it has no such read, else a copy without them.
    """
    from qshpc.aer.sizing import active_qubits

    if circuit.num_qubits <= 1:
        return circuit
    idle = active_qubits(circuit).idle_reads
    if not idle:
        return circuit
    out = circuit.copy_empty_like()
    out.metadata = circuit.metadata  # the caller's own object, as its results hand back
    skip = set(idle)
    data = circuit.data
    if not any(inst.name == "measure" for pos, inst in enumerate(data) if pos not in skip):
        # None would be left: Aer then returns no counts, and a `store`'s bit read 0
        # (review27: '00' where Aer gave '01'). The last measurement stays.
        measures = [pos for pos in idle if data[pos].name == "measure"]
        if measures:
            skip.discard(max(measures))
    for pos, inst in enumerate(data):
        if pos not in skip:
            out._append(inst)
    return out


def aer_refusal(circuit: QuantumCircuit) -> str | None:
    """Why Aer cannot run ``circuit`` whatever its form, or None.

    Aer (0.17, 0.18) runs no classical variables (``add_var``, ``add_input``,
    declared in a control-flow body too): a ``Bool`` one fails deep in its
    assembler (``'Bool' object has no attribute 'width'``), a ``Uint`` one
    aborts the whole process (``terminate called ... invalid cbit index``). Nor
    does it run stretches (``add_stretch``, delays of a stretch duration): a
    ``TypeError`` from its circuit builder. Nor an operation named like a standard
    gate that is not it and has no definition
    (:func:`qshpc.aer.shadowed.shadow_refusal`), nor one that has no definition
    while its parameters are unbound (:func:`qshpc.aer.binding.unbound_definition`).
    """
    return aer_runnable(circuit)[1]


def aer_runnable(circuit: QuantumCircuit) -> tuple[QuantumCircuit, str | None]:
    """``circuit`` in the form the Aer layer runs it, and why Aer cannot (:func:`aer_refusal`).

    The form is :func:`qshpc.aer.shadowed.unshadow`'s (``circuit`` itself when no
    operation shadows a standard gate, or when it is refused), got in the same walk
    as the refusal: pass it on (``prepare_exact(form, unshadowed=True)``,
    ``aer_forms(..., unshadowed=True)``) instead of walking the circuit again.

    Returns:
        ``(form, None)`` when Aer can run it, else ``(circuit, reason)``.
    """
    from qshpc.aer.binding import unbound_definition
    from qshpc.aer.shadowed import unshadow_or_refusal

    variables, stretches = _classical_names(circuit)
    if variables:
        return circuit, (
            f"it has classical variables ({', '.join(sorted(variables))}), which Aer cannot run "
            "(it fails on Bool ones and aborts the process on Uint ones); measure and store "
            "into the clbits of a ClassicalRegister instead"
        )
    if stretches:
        return circuit, (
            f"it has stretches ({', '.join(sorted(stretches))}), which Aer cannot run; give "
            "the delays fixed durations (to an ideal simulator a delay does nothing)"
        )
    switch = _switch_on_expression(circuit)
    if switch:
        return (
            circuit,
            f"it has a switch on a classical expression ({switch}), which Aer cannot run "
            "(its compiler fails: 'jump condition does not support'); switch on a "
            "ClassicalRegister or a clbit (with qc.switch(creg) as case), or compute the "
            "condition with if_test, which takes expressions",
        )
    form, reason = unshadow_or_refusal(circuit)
    reason = reason or unbound_definition(circuit)
    return (circuit, reason) if reason else (form, None)


def _switch_on_expression(circuit: QuantumCircuit) -> str | None:
    """The first ``switch`` target Aer cannot run (an expression, not a bit or register), or None.

    Aer's compiler takes a ``Clbit``, a ``ClassicalRegister`` or an ``expr.Var`` of
    one of them (``expr.lift(creg)``) as a switch target; ``expr.bit_and(creg, 3)``
    failed in its assembler, in every task of the PUB.
    """
    if CONTROL_FLOW.isdisjoint(circuit.count_ops()):
        return None
    from qiskit.circuit.classical import expr  # type: ignore[import-untyped]

    for inst in circuit.data:
        op = inst.operation
        target = getattr(op, "target", None) if op.name == "switch_case" else None
        if isinstance(target, expr.Expr) and not isinstance(target, expr.Var):
            op_name = getattr(getattr(target, "op", None), "name", None)
            return f"{type(target).__name__} {op_name}" if op_name else type(target).__name__
        for block in getattr(op, "blocks", ()):
            inner = _switch_on_expression(block)
            if inner:
                return inner
    return None


def _classical_names(circuit: QuantumCircuit) -> tuple[set[str], set[str]]:
    """Names of the classical variables and of the stretches of ``circuit`` and its bodies."""
    variables = {var.name for var in circuit.iter_vars()} if circuit.num_vars else set()
    stretches = {s.name for s in circuit.iter_stretches()} if circuit.num_stretches else set()
    if not CONTROL_FLOW.isdisjoint(circuit.count_ops()):
        for inst in circuit.data:
            for block in getattr(inst.operation, "blocks", ()):
                inner_vars, inner_stretches = _classical_names(block)
                variables |= inner_vars
                stretches |= inner_stretches
    return variables, stretches


#: Names whose operations the analysis above reads as they are.
_READ_AS_IS = _NONUNITARY | CONTROL_FLOW | _TRANSPARENT | {"measure", "initialize"}
_standard: frozenset[str] | None = None  # names of Qiskit's standard gates (read once)


def standard_gate_names() -> frozenset[str]:
    """Names of Qiskit's standard gates and instructions (read once)."""
    global _standard
    if _standard is None:
        from qiskit.circuit.library import get_standard_gate_name_mapping  # type: ignore[import-untyped]

        _standard = frozenset(get_standard_gate_name_mapping())
    return _standard


def _hidden_nonunitary(circuit: QuantumCircuit, ops: dict[str, int]) -> str | None:
    """Why ``circuit`` is not exact because of what a composite instruction holds, or None.

    ``QuantumCircuit.to_instruction()`` of a circuit with a measurement, a reset or a
    noise channel is one operation of its own name (``count_ops`` shows no
    ``measure``); transpiled, it is that measurement again, and one simulated
    shot is one random branch of it (the exact marginal and the expectation
    values would be those of one branch). A ``Gate`` is unitary (``to_gate`` refuses
    the rest); any other instruction is read through its definition.
    """
    standard = standard_gate_names()
    names = {n for n in ops if n not in _READ_AS_IS and n not in standard}
    if not names:
        return None
    from qiskit.circuit import Gate  # type: ignore[import-untyped]

    for inst in circuit.data:
        op = inst.operation
        if op.name not in names or isinstance(op, Gate):
            continue
        try:
            definition = getattr(op, "definition", None)
        except Exception:  # a definition that needs bound parameters: the transpile says
            continue
        if definition is None:
            continue  # Aer's own instructions (save_*, set_*): no branches
        inner = definition.count_ops()
        held = sorted((_NONUNITARY | {"measure", "initialize"}) & set(inner))
        if held:
            return f"it has a {op.name!r} operation holding a {held[0]!r} operation"
        deeper = _hidden_nonunitary(definition, inner)
        if deeper is not None:
            return deeper
    return None


def _initializes_used_qubit(circuit: QuantumCircuit) -> bool:
    """True when an ``initialize`` acts on a qubit an earlier operation acted on.

    ``initialize`` starts with a reset of its qubits: on fresh qubits that is
    nothing, after other operations it is a non-unitary channel (the statevector
    method takes one random branch of it per shot).
    """
    used: set[object] = set()
    for inst in circuit.data:
        name = inst.operation.name
        if name == "initialize" and not used.isdisjoint(inst.qubits):
            return True
        if name not in _TRANSPARENT:
            used.update(inst.qubits)
    return False


def register_keys(indices: np.ndarray, plan: ExactPlan) -> list[int]:
    """Classical register values of marginal indices (bit j of an index is ``plan.qubits[j]``)."""
    if all(mask == 1 << j for j, mask in enumerate(plan.clbit_masks)):
        return [int(k) for k in indices.tolist()]  # clbits 0..k-1 in qubit order
    keys = [0] * len(indices)
    for j, mask in enumerate(plan.clbit_masks):
        bits = ((indices >> j) & 1).tolist()
        keys = [k | mask if b else k for k, b in zip(keys, bits, strict=True)]
    return keys


def marginal_to_dist(probabilities: np.ndarray, plan: ExactPlan) -> dict[int, float]:
    """Key a marginal over ``plan.qubits`` by the classical register value.

    Args:
        probabilities: Length ``2**len(plan.qubits)``; index bit j is qubit ``plan.qubits[j]``.
        plan: From :func:`prepare_exact`.

    Returns:
        ``{register value: probability}`` without the exact zeros.
    """
    probs = np.asarray(probabilities, dtype=float).ravel()
    keys = register_keys(np.arange(probs.size, dtype=np.int64), plan)
    return {k: float(p) for k, p in zip(keys, probs.tolist(), strict=True) if p != 0.0}


def unstorable_metadata(circuit: QuantumCircuit) -> str | None:
    """Why QPY cannot write ``circuit.metadata`` (it writes it as JSON), or None.

    Aer's and Qiskit's primitives take any metadata and hand it back in each PUB
    result; numpy scalars and arrays (``np.int64(3)``) are the usual ones JSON refuses.
    """
    metadata = circuit.metadata
    if not metadata:
        return None
    import json

    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def sendable(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit``, or a copy without metadata when QPY cannot write its metadata.

    The blocks never read a circuit's metadata: each PUB result takes it from the
    PUB's own circuit on rank 0, as Aer's primitives do.
    """
    if unstorable_metadata(circuit) is None:
        return circuit
    bare = circuit.copy()
    bare.metadata = {}
    return bare


def circuit_sha256(circuit: QuantumCircuit) -> str:
    """SHA-256 of the circuit's QPY serialization (for provenance; metadata QPY cannot
    write left out, see :func:`sendable`)."""
    from qiskit import qpy

    buf = io.BytesIO()
    qpy.dump(sendable(circuit), buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


__all__ = [
    "CONTROL_FLOW",
    "ExactPlan",
    "aer_refusal",
    "aer_runnable",
    "circuit_sha256",
    "marginal_to_dist",
    "prepare_exact",
    "register_keys",
    "sendable",
    "standard_gate_names",
    "unbox",
    "unstorable_metadata",
    "without_idle_reads",
]
