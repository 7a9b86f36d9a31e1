"""Circuit analysis for exact sampling: final measurements, marginals, hashes.

The V1 reference Sampler returned exact probabilities: it removed the final
measurements, simulated the state, and took the marginal over the measured
qubits, keyed by the value of the classical bits they were measured into
(clbit 0 the least significant bit). :func:`prepare_exact` does the same
analysis so the Aer layer can ask Aer for that marginal with
``save_probabilities``; circuits whose outcome depends on a mid-circuit
measurement, a reset or classical control cannot be handled that way and are
sampled instead.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

_NONUNITARY = frozenset({"reset", "if_else", "while_loop", "for_loop", "switch_case", "box"})
_TRANSPARENT = frozenset({"barrier"})


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


def prepare_exact(circuit: QuantumCircuit) -> ExactPlan:
    """Split a circuit into its unitary part and its final measurements.

    A measurement is final when no later non-barrier operation acts on its qubit.
    When several final measurements write one clbit, the last one counts, as in
    the circuit. Clbits that no final measurement writes read 0.

    Args:
        circuit: A circuit, measured or not.

    Returns:
        An :class:`ExactPlan`; ``plan.exact`` is False when the circuit holds a
        mid-circuit measurement, a reset or classical control flow.
    """
    qubit_index = {q: i for i, q in enumerate(circuit.qubits)}
    clbit_index = {c: i for i, c in enumerate(circuit.clbits)}
    busy: set[int] = set()  # qubits with a later non-barrier operation
    written: dict[int, int] = {}  # clbit -> qubit of the last final measurement into it
    final: set[int] = set()  # positions in circuit.data of final measurements
    for pos in range(len(circuit.data) - 1, -1, -1):
        inst = circuit.data[pos]
        name = inst.operation.name
        qubits = [qubit_index[q] for q in inst.qubits]
        if name in _TRANSPARENT:
            continue
        if name in _NONUNITARY or getattr(inst.operation, "condition", None) is not None:
            return ExactPlan(None, (), (), f"it has a {name!r} operation")
        if name == "measure":
            if qubits[0] in busy:
                return ExactPlan(None, (), (), "it measures a qubit before the end")
            final.add(pos)
            written.setdefault(clbit_index[inst.clbits[0]], qubits[0])
            continue
        busy.update(qubits)
    body = circuit.copy_empty_like()
    for pos, inst in enumerate(circuit.data):
        if pos not in final:
            body.append(inst)
    masks: dict[int, int] = {}
    for clbit, qubit in written.items():
        masks[qubit] = masks.get(qubit, 0) | (1 << clbit)
    order = sorted(masks, key=lambda q: min(c for c, w in written.items() if w == q))
    return ExactPlan(body, tuple(order), tuple(masks[q] for q in order))


def marginal_to_dist(probabilities: np.ndarray, plan: ExactPlan) -> dict[int, float]:
    """Key a marginal over ``plan.qubits`` by the classical register value.

    Args:
        probabilities: Length ``2**len(plan.qubits)``; index bit j is qubit ``plan.qubits[j]``.
        plan: From :func:`prepare_exact`.

    Returns:
        ``{register value: probability}`` without the exact zeros.
    """
    probs = np.asarray(probabilities, dtype=float).ravel()
    index = np.arange(probs.size, dtype=np.int64)
    if all(mask == 1 << j for j, mask in enumerate(plan.clbit_masks)):
        keys = [int(k) for k in index]  # clbits 0..k-1 in qubit order: the index is the key
    else:
        keys = [0] * probs.size
        for j, mask in enumerate(plan.clbit_masks):
            bits = (index >> j) & 1
            keys = [k | mask if b else k for k, b in zip(keys, bits.tolist(), strict=True)]
    return {k: float(p) for k, p in zip(keys, probs.tolist(), strict=True) if p != 0.0}


def circuit_sha256(circuit: QuantumCircuit) -> str:
    """SHA-256 of the circuit's QPY serialization (for provenance)."""
    from qiskit import qpy

    buf = io.BytesIO()
    qpy.dump(circuit, buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


__all__ = ["ExactPlan", "circuit_sha256", "marginal_to_dist", "prepare_exact"]
