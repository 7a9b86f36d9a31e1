"""Circuits whose parameters Aer can bind from ``parameter_binds``.

Aer (0.17, 0.18) binds the parameters of single-qubit rotations and two-qubit
Pauli rotations only. A circuit whose parameter sits in a controlled rotation
(``crz``, ``cp``, ``cry``, ``cu``...) is run once, for all rows, with one
result instead of one per row, and no error. :func:`bindable` decomposes those
operations (into rotations and CNOTs: the same unitary), so one experiment
still serves every row. Control-flow bodies are read and decomposed too: a
``crx(t)`` inside an ``if_else`` made Aer return fewer results than rows (the
primitives failed with "Result for experiment 1 could not be found"), and Aer's
own SamplerV2 bound it wrongly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qshpc.errors import UserError

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

#: Parameterized operations whose parameters Aer binds (checked by tests/unit/test_primitives_v2.py).
BINDABLE = frozenset(
    {"p", "r", "rx", "rxx", "ry", "ryy", "rz", "rzx", "rzz", "u", "u1", "u2", "u3"}
)
_ROUNDS = 6


class UnbindableError(UserError, ValueError):
    """A parameter Aer cannot bind, in an operation that does not decompose (bad input)."""


def unbindable(circuit: QuantumCircuit) -> set[str]:
    """Names of the operations of ``circuit`` that hold a parameter Aer cannot bind."""
    if not circuit.parameters:
        return set()
    from qiskit.circuit import ParameterExpression  # type: ignore[import-untyped]

    names = set()
    for inst in circuit.data:
        op = inst.operation
        blocks = getattr(op, "blocks", ())
        if blocks:
            for block in blocks:
                names |= unbindable(block)
        elif op.name not in BINDABLE and any(isinstance(p, ParameterExpression) for p in op.params):
            names.add(op.name)
    return names


def unbound_definition(circuit: QuantumCircuit) -> str | None:
    """Why an operation of ``circuit`` cannot become gates Aer runs before its parameters
    are bound, or None.

    ``HamiltonianGate(H, t)`` with a ``Parameter`` time has no definition until ``t`` has a
    value (``TypeError: Unable to generate Unitary matrix for unbound t``): the transpile
    failed on the worker that met it, after other blocks ran, naming no PUB. Only
    operations that are no standard gate are looked at, in circuits with parameters.
    """
    if not circuit.parameters:
        return None
    from qiskit.circuit import ParameterExpression

    from qshpc.aer.shadowed import nonstandard_operations

    for op in nonstandard_operations(circuit):
        for block in getattr(op, "blocks", ()):
            reason = unbound_definition(block)
            if reason is not None:
                return reason
        if op.name in BINDABLE:
            continue
        free = sorted(
            {
                p.name
                for expr in op.params
                if isinstance(expr, ParameterExpression)
                for p in expr.parameters
            }
        )
        if not free:
            continue
        base = op
        while hasattr(base, "base_op") and hasattr(base, "modifiers"):
            # an AnnotatedOperation (``gate.control(2, annotated=True)``): no definition of
            # its own; the transpile synthesizes its base operation, then the modifiers
            base = base.base_op
        if getattr(type(base), "definition", None) is None:
            continue  # an Operation that is no Instruction (a Clifford): not built from one
        try:
            definition = base.definition  # built on first read
        except Exception as exc:
            return (
                f"its operation {op.name!r} ({type(op).__name__}) cannot be turned into gates "
                f"Aer runs while its parameters ({', '.join(free)}) have no values ({exc}); "
                "bind them before running (circuit.assign_parameters), one circuit per set "
                "of values"
            )
        # one level down: a to_gate() of a circuit holding a HamiltonianGate(H, t)
        reason = None if definition is None else unbound_definition(definition)
        if reason is not None:
            return reason
    return None


def bindable(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` (itself when nothing needs it) with unbindable operations decomposed.

    Raises:
        UnbindableError: An operation that still holds an unbindable parameter after
            several rounds of decomposition (a custom gate without a definition, a
            ``delay`` whose duration is a parameter).
    """
    names = unbindable(circuit)
    if not names:
        return circuit
    layout = circuit.layout
    rounds = 0
    while names:
        if rounds == _ROUNDS:
            raise UnbindableError(
                f"circuit {circuit.name!r}: Aer cannot bind the parameters of "
                f"{', '.join(sorted(names))}, and decomposing them did not help; "
                "bind the parameters before running, or use rotation gates"
            )
        circuit = _decompose(circuit, sorted(names))
        names = unbindable(circuit)
        rounds += 1
    if layout is not None and circuit.layout is None:
        # ``decompose`` keeps the qubits but drops the layout, which says where the
        # transpile (ElidePermutations at levels 2 and 3) left each input qubit.
        circuit._layout = layout
    return circuit


def _decompose(circuit: QuantumCircuit, names: list[str]) -> QuantumCircuit:
    """``circuit.decompose(gates_to_decompose=names)``, inside control-flow bodies as well."""
    out = circuit.decompose(gates_to_decompose=names)
    if not any(getattr(inst.operation, "blocks", ()) for inst in out.data):
        return out
    rebuilt = out.copy_empty_like()
    for inst in out.data:
        blocks = getattr(inst.operation, "blocks", ())
        if blocks and any(unbindable(block) for block in blocks):
            new = inst.operation.replace_blocks([_decompose(b, names) for b in blocks])
            inst = inst.replace(operation=new)
        rebuilt.append(inst)
    return rebuilt


__all__ = ["BINDABLE", "UnbindableError", "bindable", "unbindable"]
