"""The batched Aer pipeline behind Sampler and run_sweep.

One call: analyse each distinct circuit once, transpile the distinct circuits
once with this rank's cached pass manager, then run every experiment in at most
two Aer batches (exact ones with ``save_probabilities`` and one shot, sampled
ones with the shots asked for). Parametrized circuits are bound by Aer itself
(``parameter_binds``), so a sweep of K points is one transpile and one run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qshpc.aer.circuits import ExactPlan, circuit_sha256, marginal_to_dist, prepare_exact
from qshpc.aer.provenance import record_run
from qshpc.aer.results import QuasiDistribution
from qshpc.aer.simulator import SimSpec, get_simulator, transpile_for
from qshpc.errors import UserError

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

#: Shots used when exact probabilities were asked for but the circuit has a
#: mid-circuit measurement, a reset or classical control.
FALLBACK_SHOTS = 8192


@dataclass
class _Template:
    """One distinct circuit object and the experiments that use it."""

    circuit: QuantumCircuit
    plan: ExactPlan | None  # None in shots mode
    rows: list[tuple[int, tuple[float, ...]]] = field(default_factory=list)  # (output, values)


def physical_qubits(transpiled: QuantumCircuit, virtual: Sequence[int]) -> list[int]:
    """Map virtual qubit indices of the input circuit to the transpiled circuit's."""
    layout = transpiled.layout
    if layout is None:
        return list(virtual)
    final = layout.final_index_layout()
    return [final[v] for v in virtual]


def bind_dict(
    template: QuantumCircuit, transpiled: QuantumCircuit, rows: Sequence[Sequence[float]]
) -> dict[Any, list[float]]:
    """Aer ``parameter_binds`` entry for ``rows`` of values in ``template.parameters`` order."""
    params = list(template.parameters)
    for values in rows:
        if len(values) != len(params):
            raise UserError(
                f"circuit {template.name!r} has {len(params)} parameters "
                f"({', '.join(p.name for p in params)}); got {len(values)} values"
            )
    kept = set(transpiled.parameters)
    return {p: [float(v[i]) for v in rows] for i, p in enumerate(params) if p in kept}


def sample_distributions(
    circuits: Sequence[QuantumCircuit],
    parameter_values: Sequence[Sequence[float]],
    *,
    shots: int | None,
    seed: int | None,
    spec: SimSpec,
    optimization_level: int = 1,
    run_options: dict[str, Any] | None = None,
    primitive: str = "Sampler",
) -> tuple[list[QuasiDistribution], list[dict[str, Any]]]:
    """V1 quasi-distributions for circuits with their parameter values.

    Args:
        circuits: One circuit per experiment (the same object may repeat).
        parameter_values: One sequence of values per experiment.
        shots: None for exact probabilities, else the shots to sample.
        seed: ``seed_simulator`` (None lets Aer draw one).
        spec: This rank's simulator spec.
        optimization_level: Preset pass manager level.
        run_options: Extra Aer run options.
        primitive: Name recorded in provenance.

    Returns:
        ``(quasi_dists, metadata)`` in input order.
    """
    if shots is not None and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
        raise UserError(f"shots must be a positive int or None, got {shots!r}")
    start = time.perf_counter()
    templates: dict[int, _Template] = {}
    for out, (circ, values) in enumerate(zip(circuits, parameter_values, strict=True)):
        t = templates.get(id(circ))
        if t is None:
            t = _Template(circ, prepare_exact(circ) if shots is None else None)
            templates[id(circ)] = t
        t.rows.append((out, tuple(values)))
    tlist = list(templates.values())
    bodies = [t.plan.circuit if t.plan and t.plan.circuit is not None else t.circuit for t in tlist]
    transpiled = transpile_for(bodies, spec, optimization_level)

    dists: list[QuasiDistribution | None] = [None] * len(circuits)
    meta: list[dict[str, Any]] = [{} for _ in circuits]
    exact_runs: list[tuple[_Template, QuantumCircuit]] = []
    sampled_runs: list[tuple[_Template, QuantumCircuit]] = []
    for t, tc in zip(tlist, transpiled, strict=True):
        if t.plan is not None and t.plan.exact:
            if not t.plan.qubits:  # nothing measured: the empty register reads 0
                for out, _ in t.rows:
                    dists[out] = QuasiDistribution({0: 1.0})
                continue
            from qiskit_aer.library import SaveProbabilities

            qubits = physical_qubits(tc, t.plan.qubits)
            tc.append(SaveProbabilities(len(qubits)), [tc.qubits[q] for q in qubits])
            exact_runs.append((t, tc))
        else:
            sampled_runs.append((t, tc))

    used_seed = seed
    if exact_runs:
        res = _run(exact_runs, spec, 1, seed, run_options)
        for (t, out, _), data in zip(_expand(exact_runs), res.data_list, strict=True):
            assert t.plan is not None
            dists[out] = QuasiDistribution(marginal_to_dist(data["probabilities"], t.plan))
        used_seed = res.seed if used_seed is None else used_seed
    if sampled_runs:
        n = shots if shots is not None else FALLBACK_SHOTS
        res = _run(sampled_runs, spec, n, seed, run_options)
        for (t, out, _), data in zip(_expand(sampled_runs), res.data_list, strict=True):
            counts = data.get("counts", {})
            dists[out] = QuasiDistribution(
                {int(k, 16): c / n for k, c in counts.items()} or {0: 1.0}, shots=n
            )
            meta[out] = {"shots": n}
            if t.plan is not None:
                meta[out]["note"] = (
                    f"exact probabilities need the final state, but {t.plan.reason}: "
                    f"sampled with {n} shots instead"
                )
        used_seed = res.seed if used_seed is None else used_seed
    record_run(
        seed=used_seed,
        simulator=spec.as_dict(),
        circuit_hashes=[circuit_sha256(t.circuit) for t in tlist],
        wall_s=time.perf_counter() - start,
        shots=shots,
        primitive=primitive,
    )
    return [d if d is not None else QuasiDistribution() for d in dists], meta


def _expand(
    runs: list[tuple[_Template, QuantumCircuit]],
) -> list[tuple[_Template, int, tuple[float, ...]]]:
    """Experiments in Aer's result order: per Aer circuit, its parameter rows."""
    out: list[tuple[_Template, int, tuple[float, ...]]] = []
    for t, _ in runs:
        # bound: one Aer result per row; unbound: one experiment per occurrence
        out.extend((t, o, v) for o, v in t.rows)
    return out


@dataclass
class AerOutput:
    """Data of each experiment, in order, and the seed Aer used for the first."""

    data_list: list[dict[str, Any]]
    seed: int | None


def _run(
    runs: list[tuple[_Template, QuantumCircuit]],
    spec: SimSpec,
    shots: int,
    seed: int | None,
    run_options: dict[str, Any] | None,
) -> AerOutput:
    """One Aer batch: parametrized circuits bound by Aer, others repeated per occurrence."""
    experiments: list[QuantumCircuit] = []
    binds: list[dict[Any, list[float]]] = []
    for t, tc in runs:
        if tc.parameters:
            experiments.append(tc)
            binds.append(bind_dict(t.circuit, tc, [v for _, v in t.rows]))
        else:
            for _, values in t.rows:
                if values and len(values) != len(t.circuit.parameters):
                    bind_dict(t.circuit, tc, [values])  # raises with the counts
                experiments.append(tc)
                binds.append({})
    result = run_aer(spec, experiments, shots, seed, binds, run_options)
    data = [result.data(i) for i in range(len(result.results))]
    first = result.results[0].seed_simulator if result.results else None
    return AerOutput(data, int(first) if first is not None else None)


def run_aer(
    spec: SimSpec,
    experiments: list[QuantumCircuit],
    shots: int,
    seed: int | None,
    binds: list[dict[Any, list[float]]],
    run_options: dict[str, Any] | None = None,
) -> Any:
    """One run of this rank's simulator; returns Aer's ``Result`` (raises when it failed)."""
    options: dict[str, Any] = dict(run_options or {})
    options["shots"] = shots
    if seed is not None:
        options["seed_simulator"] = seed
    if any(binds):
        options["parameter_binds"] = binds
    result = get_simulator(spec).run(experiments, **options).result()
    if not result.success:
        raise RuntimeError(f"Aer failed: {result.status}")
    return result


__all__ = [
    "FALLBACK_SHOTS",
    "AerOutput",
    "bind_dict",
    "physical_qubits",
    "run_aer",
    "sample_distributions",
]
