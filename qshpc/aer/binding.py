"""Circuits whose parameters Aer can bind from ``parameter_binds``.

Aer (0.17, 0.18) binds the parameters of single-qubit rotations and two-qubit
Pauli rotations only. A circuit whose parameter sits in a controlled rotation
(``crz``, ``cp``, ``cry``, ``cu``...) is run once, for all rows, with one
result instead of one per row, and no error. :func:`bindable` decomposes those
operations (into rotations and CNOTs: the same unitary), so one experiment
still serves every row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

#: Parameterized operations whose parameters Aer binds (checked by tests/unit/test_primitives_v2.py).
BINDABLE = frozenset(
    {"p", "r", "rx", "rxx", "ry", "ryy", "rz", "rzx", "rzz", "u", "u1", "u2", "u3"}
)
_ROUNDS = 6


def unbindable(circuit: QuantumCircuit) -> set[str]:
    """Names of the operations of ``circuit`` that hold a parameter Aer cannot bind."""
    if not circuit.parameters:
        return set()
    from qiskit.circuit import ParameterExpression  # type: ignore[import-untyped]

    names = set()
    for inst in circuit.data:
        op = inst.operation
        if op.name not in BINDABLE and any(isinstance(p, ParameterExpression) for p in op.params):
            names.add(op.name)
    return names


def bindable(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` (itself when nothing needs it) with unbindable operations decomposed.

    Raises:
        ValueError: An operation that still holds an unbindable parameter after
            several rounds of decomposition (a custom gate without a definition).
    """
    names = unbindable(circuit)
    rounds = 0
    while names:
        if rounds == _ROUNDS:
            raise ValueError(
                f"circuit {circuit.name!r}: Aer cannot bind the parameters of "
                f"{', '.join(sorted(names))}, and decomposing them did not help; "
                "bind the parameters before running, or use rotation gates"
            )
        circuit = circuit.decompose(gates_to_decompose=sorted(names))
        names = unbindable(circuit)
        rounds += 1
    return circuit


__all__ = ["BINDABLE", "bindable", "unbindable"]
