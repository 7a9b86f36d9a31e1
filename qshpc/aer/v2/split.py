"""The V2 kernels on a statevector split over k ranks: what Aer computes comes from a step.

A PUB too wide for one rank (or forced by ``QSHPC_DISTRIBUTE``) runs in one
``target={"ranks": k}`` call (:mod:`qshpc.primitives.blocks`). That call asks a
k-process step of the MPI Aer build (:func:`qshpc.aer.distributed.run.run_circuits`)
for exactly what the one-rank kernels ask this rank's Aer for, and hands it to
the same code:

* the sampler: the exact marginal of the measured qubits of each row; the
  shots are then drawn from it with the PUB's counter-based stream, as on one
  rank (:func:`qshpc.aer.v2.sample.draw_from_marginals`): the same seed gives the
  same shots. A circuit measuring more than ``SAMPLE_MAX_QUBITS`` qubits is
  sampled by Aer on one rank; here too, in the step, each row with the seed it
  gets on one rank (Aer's per-shot memory on 2 MPI ranks equals the PyPI Aer's in
  one process for the same circuit and seed);
* the estimator: ``<P>`` of each Pauli label of each row; the observables are
  then summed as on one rank.

Every row is bound here (one experiment per row: Aer's ``parameter_binds`` is
wrong under MPI) and transpiled once, by :func:`run_circuits`, to the gates a
step accepts. The step's ranks (host, peak memory) go to the task's provenance
under ``aer_steps``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from qshpc.aer.sizing import active_width
from qshpc.aer.v2 import seeds
from qshpc.aer.v2.estimate import Operator, estimate_block
from qshpc.aer.v2.sample import draw_from_marginals, pack_memories, sample_block

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

    from qshpc.aer.v2.prepared import Prepared


def _rows(
    body: QuantumCircuit | None, prepared: Prepared, values: np.ndarray
) -> tuple[list[QuantumCircuit], bool]:
    """``body`` (a form of the PUB's circuit) bound to each row; (circuits, one per row?)."""
    if body is None:
        raise ValueError(
            f"circuit {prepared.circuit.name!r} has no unitary body: {prepared.plan.reason}"
        )
    params = list(prepared.circuit.parameters)
    if not params:
        return [body], False
    return [
        body.assign_parameters(dict(zip(params, row.tolist(), strict=True)), strict=False)
        for row in np.asarray(values).reshape(len(values), -1)
    ], True


def _options(prepared: Prepared) -> dict[str, Any]:
    return {"precision": prepared.spec.precision}


def check_memory(width: int, ranks: int, precision: str) -> None:
    """Refuse a split whose held ranks on one node would need more than its memory together.

    The hosts are those of the ranks the running call holds (``current_task().step``).
    """
    from qshpc.aer.distributed.plan import check_hosts
    from qshpc.task.context import current_task

    task = current_task()
    step = None if task is None else task.step
    if step is not None and len(step.hosts) == ranks:
        check_hosts(width, step.hosts, precision)


def sample_split(
    prepared: Prepared, values: np.ndarray, shots: int, seed: int, pub: int, start: int, ranks: int
) -> list[np.ndarray]:
    """:func:`qshpc.aer.v2.sample.sample_block` with what a ``ranks``-rank step computes.

    As on one rank: a circuit with final measurements on at most ``SAMPLE_MAX_QUBITS``
    qubits gets its rows' exact marginals from the step and its shots drawn here;
    one measuring more is sampled by Aer in the step (``memory``), row r seeded as
    on one rank (``aer_seed(seed, pub, start + r)``).
    """
    from qshpc.aer.distributed.run import run_circuits
    from qshpc.aer.distributed.spec import Save

    check_memory(active_width(prepared.circuit), ranks, prepared.spec.precision)

    def marginals(rows: np.ndarray) -> list[np.ndarray]:
        circuits, per_row = _rows(prepared.plan.circuit, prepared, rows)
        qubits = list(prepared.plan.qubits)
        saves = [[Save("probabilities", qubits, "p")] for _ in circuits]
        step = run_circuits(
            circuits, ranks, shots=1, seed=0, saves=saves, options=_options(prepared)
        )
        probs = [np.asarray(step.probabilities(i, "p"), dtype=float) for i in range(len(circuits))]
        return probs if per_row else probs * len(rows)

    def sampled() -> list[np.ndarray]:
        if not len(values):
            return pack_memories(prepared, [], shots)
        circuits, per_row = _rows(prepared.runnable, prepared, values)
        if not per_row:
            circuits = circuits * len(values)  # one experiment per row, each its own seed
        options = {**_options(prepared), "memory": True}
        first = seeds.aer_seed(seed, pub, start)
        step = run_circuits(circuits, ranks, shots=shots, seed=first, options=options)
        return pack_memories(prepared, [step.memory(i) for i in range(len(circuits))], shots)

    if prepared.exact_sampling:
        draw = lambda: draw_from_marginals(prepared, values, shots, seed, pub, start, marginals)  # noqa: E731
        path = f"marginal, split over {ranks} ranks"
    else:
        draw, path = sampled, f"aer, split over {ranks} ranks"
    return sample_block(prepared, values, shots, seed, pub, start, draw=draw, path=path)


def _terms_of(label: Operator) -> list[tuple[str, float, float]]:
    """A saved operator's ``(Pauli label, real, imaginary)`` terms."""
    if isinstance(label, str):
        return [(label, 1.0, 0.0)]
    return [(lb, float(c), 0.0) for lb, c in zip(label[0], label[1], strict=True)]


def estimate_split(
    prepared: Prepared,
    values: np.ndarray,
    observables: Any,
    elem_row: np.ndarray,
    elem_obs: np.ndarray,
    ranks: int,
) -> np.ndarray:
    """:func:`qshpc.aer.v2.estimate.estimate_block` with the Pauli values of a ``ranks``-rank step."""
    from qshpc.aer.distributed.run import run_circuits
    from qshpc.aer.distributed.spec import Save

    check_memory(active_width(prepared.circuit), ranks, prepared.spec.precision)

    def pauli_values(
        prepared: Prepared, values: np.ndarray, labels: list[Operator], run_options: Any
    ) -> np.ndarray:
        rows = len(values)
        if rows == 0 or not labels:
            return np.zeros((rows, len(labels)))
        circuits, per_row = _rows(prepared.plan.circuit, prepared, values)
        qubits = list(range(prepared.circuit.num_qubits))
        row_saves = [
            Save("expectation_value", qubits, f"p{j}", _terms_of(label))
            for j, label in enumerate(labels)
        ]
        saves = [list(row_saves) for _ in circuits]
        step = run_circuits(
            circuits, ranks, shots=1, seed=0, saves=saves, options=_options(prepared)
        )
        table = np.array(
            [[step.value(i, f"p{j}") for j in range(len(labels))] for i in range(len(circuits))],
            dtype=float,
        )
        return table if per_row else np.repeat(table, rows, axis=0)

    return estimate_block(
        prepared,
        values,
        observables,
        elem_row,
        elem_obs,
        pauli_values=pauli_values,
        primitive=f"EstimatorV2 (split over {ranks} ranks)",
    )


def quasi_split(
    circuits: list[QuantumCircuit],
    rows: list[tuple[float, ...]],
    shots: int | None,
    seed: int | None,
    ranks: int,
    precision: str = "double",
) -> tuple[list[Any], list[dict[str, Any]], int | None]:
    """The V1 ``Sampler``'s distributions with the marginals of a ``ranks``-rank step.

    Every circuit must have final measurements only (at most ``SAMPLE_MAX_QUBITS``
    measured with ``shots``). As on one rank (:func:`qshpc.aer.engine.sample_distributions`):
    exact quasi-probabilities keyed by the classical value, or shots drawn from the
    marginal with the seed and the output's position: the same seed gives the same counts.

    Returns:
        ``(quasi_dists, metadata, the seed used)``.
    """
    from qshpc.aer.circuits import marginal_to_dist, prepare_exact
    from qshpc.aer.distributed.run import run_circuits
    from qshpc.aer.distributed.spec import Save
    from qshpc.aer.results import QuasiDistribution
    from qshpc.aer.sampling import draw_seed, sample_marginal

    check_memory(max(active_width(c) for c in circuits), ranks, precision)
    plans: dict[int, Any] = {}
    bound: list[QuantumCircuit] = []
    saves: list[list[Save]] = []
    todo: list[int] = []
    for out, (circuit, values) in enumerate(zip(circuits, rows, strict=True)):
        plan = plans.get(id(circuit))
        if plan is None:
            plan = plans[id(circuit)] = prepare_exact(circuit)
        if not plan.qubits:
            continue
        body = plan.circuit
        assert body is not None  # checked by the caller: final measurements only
        if values:
            body = body.assign_parameters(
                dict(zip(circuit.parameters, values, strict=True)), strict=False
            )
        bound.append(body)
        saves.append([Save("probabilities", list(plan.qubits), "p")])
        todo.append(out)
    if shots is not None and seed is None:
        seed = draw_seed()
    step = None
    if bound:
        options = {"precision": precision}
        step = run_circuits(bound, ranks, shots=1, seed=0, saves=saves, options=options)
    dists: list[Any] = [QuasiDistribution({0: 1.0}, shots=shots) for _ in circuits]
    meta: list[dict[str, Any]] = [{"shots": shots} if shots is not None else {} for _ in circuits]
    for i, out in enumerate(todo):
        assert step is not None
        plan = plans[id(circuits[out])]
        probs = np.asarray(step.probabilities(i, "p"), dtype=float)
        if shots is None:
            dists[out] = QuasiDistribution(marginal_to_dist(probs, plan))
            continue
        assert seed is not None
        counts = sample_marginal(probs, plan, shots, seed, out)
        dists[out] = QuasiDistribution({k: c / shots for k, c in counts.items()}, shots=shots)
    return dists, meta, seed


__all__ = ["check_memory", "estimate_split", "quasi_split", "sample_split"]
