"""EstimatorV2 kernel: exact expectation values of a block of parameter rows.

One Aer experiment per block: the circuit (final measurements removed) with
one ``save_expectation_value`` per distinct Pauli string the block's
observables use, every row of the block bound to it, so the state of each row
is simulated once whatever the number of observables. The values of the
observables are then sums over their terms, done with numpy for all elements
at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from qshpc.aer.engine import bind_dict, run_exact
from qshpc.aer.provenance import record_run
from qshpc.task.coop import seconds_for_others

if TYPE_CHECKING:
    from qshpc.aer.v2.prepared import Prepared

#: What one saved value is: a Pauli label, or a whole observable as ``(labels, coefficients)``.
Operator = str | tuple[tuple[str, ...], tuple[float, ...]]
#: ``<O_j>`` for each row of values and each operator: ``(prepared, values, operators, run_options)``.
PauliValues = Callable[
    ["Prepared", np.ndarray, list[Operator], "dict[str, Any] | None"], np.ndarray
]

#: An observable of more terms than this is saved as one operator (one Aer instruction that
#: sums its terms in C++) instead of one value per term: a projector ``"0" * 12`` is 4,096
#: Pauli terms, whose 4,096 save instructions took ~4 s to build and parse, against ~0.3 s.
WHOLE_ABOVE = 64


def estimate_block(
    prepared: Prepared,
    values: np.ndarray,
    observables: Sequence[tuple[Sequence[str], np.ndarray]],
    elem_row: np.ndarray,
    elem_obs: np.ndarray,
    run_options: dict[str, Any] | None = None,
    pauli_values: PauliValues | None = None,
    primitive: str = "EstimatorV2",
) -> np.ndarray:
    """Expectation values of ``observables[elem_obs[e]]`` at row ``elem_row[e]``, for every e.

    Args:
        prepared: The PUB's circuit on this rank.
        values: Parameter values of the block's rows, shape ``(k, num_parameters)``.
        observables: The block's distinct observables: Pauli labels (full length,
            qubit 0 rightmost) and real coefficients.
        elem_row: For each element, its row in ``values``.
        elem_obs: For each element, its observable in ``observables``.
        run_options: Extra Aer run options.
        pauli_values: Where ``<P_j>`` of each row comes from (default: this rank's Aer);
            a distributed run gives its own (:mod:`qshpc.aer.v2.split`).
        primitive: What to record as the primitive (provenance).

    Returns:
        One float per element.
    """
    begin = time.perf_counter()
    not_ours = seconds_for_others()
    paulis: dict[Operator, int] = {}
    term_pauli: list[np.ndarray] = []
    term_coeff: list[np.ndarray] = []
    whole_ok = _whole_pays(observables)
    for labels, coeffs in observables:
        if whole_ok and len(labels) > WHOLE_ABOVE:
            whole = (tuple(labels), tuple(float(c) for c in np.asarray(coeffs, dtype=float)))
            term_pauli.append(np.array([paulis.setdefault(whole, len(paulis))], int))
            term_coeff.append(np.ones(1))
            continue
        term_pauli.append(np.array([paulis.setdefault(lb, len(paulis)) for lb in labels], int))
        term_coeff.append(np.asarray(coeffs, dtype=float))
    table = _table(pauli_values or _pauli_values, prepared, values, list(paulis), run_options)
    evs = _combine(table, term_pauli, term_coeff, elem_row, elem_obs)
    record_run(
        seed=None,
        simulator=prepared.spec.as_dict(),
        circuit_hashes=[prepared.key],
        wall_s=time.perf_counter() - begin - (seconds_for_others() - not_ours),
        shots=None,
        primitive=primitive,
    )
    return evs


def _whole_pays(observables: Sequence[tuple[Sequence[str], np.ndarray]]) -> bool:
    """True when saving the large observables whole costs Aer at most twice the terms
    of one save per distinct Pauli: not when many large observables share their terms
    (a list of Hamiltonians over the same Paulis), where one value per Pauli serves all."""
    total = sum(len(labels) for labels, _ in observables)
    if not any(len(labels) > WHOLE_ABOVE for labels, _ in observables):
        return False
    distinct = len({lb for labels, _ in observables for lb in labels})
    return total <= 2 * distinct


def _table(
    pauli_values: PauliValues,
    prepared: Prepared,
    values: np.ndarray,
    labels: list[Operator],
    run_options: dict[str, Any] | None,
) -> np.ndarray:
    """``<P_j>`` of every row and label; the identity is 1 without asking Aer (on a circuit of
    no qubits, every label is the identity ``""`` and Aer saves no expectation value at all)."""
    asked = [j for j, label in enumerate(labels) if not isinstance(label, str) or label.strip("I")]
    if len(asked) == len(labels):
        return pauli_values(prepared, values, labels, run_options)
    table = np.ones((len(values), len(labels)))
    if asked:
        table[:, asked] = pauli_values(prepared, values, [labels[j] for j in asked], run_options)
    return table


def _pauli_values(
    prepared: Prepared,
    values: np.ndarray,
    labels: list[Operator],
    run_options: dict[str, Any] | None,
) -> np.ndarray:
    """``<P_j>`` for each row and label: shape ``(len(values), len(labels))``."""
    from qiskit.quantum_info import Pauli, SparsePauliOp  # type: ignore[import-untyped]
    from qiskit_aer.library import SaveExpectationValue

    rows = len(values)
    if rows == 0 or not labels:
        return np.zeros((rows, len(labels)))
    experiment = prepared.body().copy()
    physical = prepared.physical(experiment, range(prepared.circuit.num_qubits))
    qubits = [experiment.qubits[q] for q in physical]
    for j, label in enumerate(labels):
        op = Pauli(label) if isinstance(label, str) else SparsePauliOp(list(label[0]), label[1])
        experiment.append(SaveExpectationValue(op, label=f"p{j}"), qubits)
    bind = bind_dict(prepared.circuit, experiment, values.tolist()) if experiment.parameters else {}
    outputs = rows if bind else 1
    same = (prepared.key, prepared.level, "v2-ev", tuple(physical), tuple(labels))
    data, _ = run_exact(prepared.spec, [experiment], [bind], outputs, run_options, [same])
    keys = [f"p{j}" for j in range(len(labels))]
    if len(data) != outputs or any(keys[0] not in d for d in data):
        raise RuntimeError(
            f"Aer returned {len(data)} results for {outputs} rows of circuit "
            f"{prepared.circuit.name!r}: a parameter it did not bind?"
        )
    table = np.array([[float(np.real(d[k])) for k in keys] for d in data], dtype=float)
    return table if bind else np.repeat(table, rows, axis=0)


def _combine(
    table: np.ndarray,
    term_pauli: list[np.ndarray],
    term_coeff: list[np.ndarray],
    elem_row: np.ndarray,
    elem_obs: np.ndarray,
) -> np.ndarray:
    """Sum each element's observable over its terms (vectorized over elements)."""
    n = len(elem_row)
    if n == 0:
        return np.zeros(0)
    counts = np.array([len(t) for t in term_pauli], dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(counts)))
    paulis = np.concatenate(term_pauli) if term_pauli else np.zeros(0, int)
    coeffs = np.concatenate(term_coeff) if term_coeff else np.zeros(0)
    per_elem = counts[elem_obs]
    elem_of_term = np.repeat(np.arange(n), per_elem)
    first = np.concatenate(([0], np.cumsum(per_elem)[:-1]))
    within = np.arange(int(per_elem.sum())) - np.repeat(first, per_elem)
    pos = np.repeat(offsets[elem_obs], per_elem) + within
    weights = coeffs[pos] * table[np.asarray(elem_row)[elem_of_term], paulis[pos]]
    evs: np.ndarray = np.bincount(elem_of_term, weights=weights, minlength=n)
    return evs


__all__ = ["WHOLE_ABOVE", "Operator", "PauliValues", "estimate_block"]
