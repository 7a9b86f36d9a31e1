"""Parameter sweeps and expectation values as single Aer batches.

``run_sweep`` binds every point of a parameter grid inside Aer
(``parameter_binds``): one transpile of the template and one Aer run, instead of
one bind, transpile and run per point. With ``observables`` it returns exact
expectation values (``save_expectation_value``), else V1 quasi-distributions.
``Estimator`` is a small V1-shaped wrapper over the same machinery.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from qshpc.aer.circuits import circuit_sha256, prepare_exact, without_idle_reads
from qshpc.aer.engine import (
    bind_dict,
    check_runnable,
    check_values,
    physical_qubits,
    run_exact,
    sample_distributions,
)
from qshpc.aer.isa import aer_forms
from qshpc.aer.provenance import record_run, resolve_seed
from qshpc.aer.results import DoneJob, EstimatorResult, QuasiDistribution
from qshpc.aer.sampler import normalize_inputs
from qshpc.aer.simulator import SimSpec, level_of, sim_spec
from qshpc.errors import UserError
from qshpc.task.coop import seconds_for_others

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

_job_ids = itertools.count()


def run_sweep(
    circuit: QuantumCircuit,
    parameter_values: Sequence[Sequence[float]] | np.ndarray,
    shots: int | None = None,
    observables: Sequence[Any] | None = None,
    *,
    seed: int | None = None,
    method: str = "statevector",
    device: str | None = None,
    precision: str = "double",
    optimization_level: int = 1,
) -> list[QuasiDistribution] | np.ndarray:
    """Run one parametrized circuit at many parameter points in one Aer batch.

    Args:
        circuit: Template circuit with parameters (in ``circuit.parameters`` order).
        parameter_values: One row of values per point, shape ``(points, parameters)``.
        shots: None for exact results, else shots per point (distributions only).
        observables: Observables (``SparsePauliOp``, Pauli strings, ...) on all of
            the circuit's qubits; when given, exact expectation values are returned.
        seed: ``seed_simulator``; defaults to the running task's seed.
        method: Aer method.
        device: ``"auto"``, ``"CPU"`` or ``"GPU"``.
        precision: ``"double"`` or ``"single"``.
        optimization_level: Preset pass manager level.

    Returns:
        Without observables, one :class:`QuasiDistribution` per point; with them,
        an array of shape ``(points, len(observables))``.

    Raises:
        UserError: On shots with observables, a non-unitary circuit with
            observables, or values that do not match the parameters.
    """
    try:
        array = np.atleast_2d(np.asarray(parameter_values, dtype=float))
    except (ValueError, TypeError) as exc:
        raise UserError(
            f"run_sweep's parameter_values must be numbers, one row per point: {exc}"
        ) from exc
    if array.ndim != 2:
        raise UserError(
            f"run_sweep's parameter_values must have shape (points, parameters), got shape "
            f"{array.shape}: reshape them, e.g. values.reshape(-1, {len(circuit.parameters)})"
        )
    rows = [tuple(float(x) for x in row) for row in array]
    spec = sim_spec(method, device, precision)
    if observables is None:
        circuit = without_idle_reads(circuit)  # (qubits only measured read 0: as Sampler.run)
        dists, _ = sample_distributions(
            [circuit] * len(rows),
            rows,
            shots=shots,
            seed=resolve_seed(seed),
            spec=spec,
            optimization_level=optimization_level,
            primitive="run_sweep",
        )
        return dists
    if shots is not None:
        raise UserError(
            "run_sweep computes exact expectation values; leave shots=None with observables "
            "(or sample distributions without observables)"
        )
    values = expectation_values(
        [(circuit, list(observables), rows)], spec, resolve_seed(seed), optimization_level
    )
    return values[0]


def expectation_values(
    groups: Sequence[tuple[QuantumCircuit, list[Any], list[tuple[float, ...]]]],
    spec: SimSpec,
    seed: int | None,
    optimization_level: int = 1,
    primitive: str = "run_sweep",
    shots: int | None = None,
) -> list[np.ndarray]:
    """Exact expectation values, one Aer batch for all groups.

    Args:
        groups: ``(circuit, observables, rows)``: each circuit is transpiled once
            and evaluated for every observable at every row of parameter values.
        spec: This rank's simulator spec.
        seed: ``seed_simulator`` (recorded; exact values do not depend on it).
        optimization_level: Preset pass manager level.
        primitive: Name recorded in provenance.
        shots: Recorded (the V1 Estimator draws its noisy values from the exact ones).

    Returns:
        One array of shape ``(len(rows), len(observables))`` per group.
    """
    from qiskit.quantum_info import SparsePauliOp  # type: ignore[import-untyped]
    from qiskit_aer.library import SaveExpectationValue

    start = time.perf_counter()
    not_ours = seconds_for_others()
    bodies = []
    # A circuit object given for several groups (the V1 Estimator's pairs) is analysed
    # and hashed once; each group gets its own copy of the body (its saves go on it).
    first_body: dict[int, QuantumCircuit] = {}
    for circ, _, rows in groups:
        body = first_body.get(id(circ))
        if body is not None:
            check_values(circ, rows)
            bodies.append(body.copy())
            continue
        runnable = check_runnable(circ)  # the one unshadow of this circuit in the call
        check_values(circ, rows)
        plan = prepare_exact(runnable, unshadowed=True)
        if plan.circuit is None:
            raise UserError(f"expectation values need a unitary circuit, but {plan.reason}")
        first_body[id(circ)] = plan.circuit
        bodies.append(plan.circuit)
    digests: dict[int, str] = {}
    for circ, _, _ in groups:
        if id(circ) not in digests:
            digests[id(circ)] = circuit_sha256(circ)
    hashes = [digests[id(g[0])] for g in groups]
    keys = [f"{h}:body" for h in hashes]
    forms = aer_forms(bodies, spec, optimization_level, keys, unshadowed=True)
    binds: list[dict[Any, list[float]]] = []
    sames: list[Hashable] = []
    for (circ, observables, rows), (tc, moved), h in zip(groups, forms, hashes, strict=True):
        whole = range(circ.num_qubits)
        physical = physical_qubits(tc, whole) if moved else list(whole)
        qubits = [tc.qubits[q] for q in physical]
        same: list[Hashable] = [h, optimization_level, "ev", tuple(physical)]
        for k, obs in enumerate(observables):
            op = _pauli_op(obs, k)
            if op.num_qubits != circ.num_qubits:
                mapped = (
                    "; the circuit was transpiled onto a backend's qubits (it has a layout): "
                    "map each observable onto them with observable.apply_layout(circuit.layout)"
                    if getattr(circ, "layout", None) is not None and op.num_qubits < circ.num_qubits
                    else ""
                )  # (as SamplerV2/EstimatorV2 say it: qshpc.aer.v2.pubs._layout_hint)
                raise UserError(
                    f"observable {k} acts on {op.num_qubits} qubits, "
                    f"the circuit has {circ.num_qubits}{mapped}"
                )
            if qubits:
                tc.append(SaveExpectationValue(op, label=f"ev{k}"), qubits)
            # else no qubits: the value is the scalar (Aer saves nothing on no qubits)
            same.append((tuple(op.paulis.to_labels()), op.coeffs.tobytes()))
        binds.append(bind_dict(circ, tc, rows) if tc.parameters else {})
        sames.append(tuple(same))
    counts = [
        len(rows) if tc.parameters else 1
        for (_, _, rows), (tc, _) in zip(groups, forms, strict=True)
    ]
    experiments = [tc for tc, _ in forms]
    data, shared = run_exact(spec, experiments, binds, sum(counts), sames=sames)
    out: list[np.ndarray] = []
    index = 0
    for (circ, observables, rows), n in zip(groups, counts, strict=True):
        if circ.num_qubits == 0:
            scalars = [float(np.real(np.sum(SparsePauliOp(obs).coeffs))) for obs in observables]
            block = np.tile(scalars, (n, 1)).reshape(n, len(observables))
        else:
            block = np.array(
                [
                    [float(np.real(data[index + i][f"ev{k}"])) for k in range(len(observables))]
                    for i in range(n)
                ]
            ).reshape(n, len(observables))
        out.append(np.repeat(block, len(rows), axis=0) if n == 1 and len(rows) > 1 else block)
        index += n
    record_run(
        seed=seed,  # exact values: the seed plays no part, but a given one is recorded
        simulator=spec.as_dict(),
        circuit_hashes=hashes,
        wall_s=time.perf_counter() - start - (seconds_for_others() - not_ours),
        shots=shots,
        primitive=primitive,
        shared=shared,
    )
    return out


def _pauli_op(observable: Any, k: int) -> Any:
    """``observable`` as a Hermitian ``SparsePauliOp``.

    Raises:
        UserError: Qiskit's reason (a bad label, a non-Hermitian operator), naming the observable.
    """
    from qiskit.exceptions import QiskitError  # type: ignore[import-untyped]
    from qiskit.quantum_info import SparsePauliOp

    try:
        op = observable if isinstance(observable, SparsePauliOp) else SparsePauliOp(observable)
        if not np.allclose(op.simplify().coeffs.imag, 0.0):
            raise ValueError("its coefficients are not real: it is not Hermitian")
    except (QiskitError, ValueError, TypeError) as exc:
        raise UserError(f"observable {k} ({observable!r}): {exc}") from exc
    return op


class Estimator:
    """V1-shaped estimator on Aer: exact expectation values, or with ``shots`` values
    with shot noise as Aer's V1 ``Estimator(approximation=True)`` draws it.

    Args:
        options: ``method``, ``device``, ``precision``, ``optimization_level``,
            ``shots`` (None: exact values; N: each value drawn from a normal
            distribution about the exact one, of variance ``sum_k c_k**2 (1 - <P_k>**2) / N``
            over the observable's Pauli terms ``c_k P_k``, as Aer's V1 Estimator with
            ``approximation=True``; its ``metadata`` has ``variance`` and ``shots``),
            ``seed`` (the draws' seed: the same seed, the same values; without one
            the running task's seed).
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = {
            "method": "statevector",
            "device": None,
            "precision": "double",
            "optimization_level": 1,
            "seed": None,
            **_estimator_options(options or {}, "Estimator(options=...)"),
        }

    def run(
        self,
        circuits: QuantumCircuit | Sequence[QuantumCircuit],
        observables: Any | Sequence[Any],
        parameter_values: Sequence[float] | Sequence[Sequence[float]] | None = None,
        **run_options: Any,
    ) -> DoneJob[EstimatorResult]:
        """Estimate ``<observables[i]>`` on ``circuits[i]`` bound to ``parameter_values[i]``.

        Returns:
            A finished job; ``job.result().values`` holds one value per pair.
        """
        # (all checked again: ``options`` is a dict the program may change after __init__)
        opts = _estimator_options({**self.options, **run_options}, "Estimator.run(...)")
        shots = _shots(opts.get("shots"))
        circs, rows = normalize_inputs(circuits, parameter_values)
        obs = (
            [observables]
            if isinstance(observables, str) or not isinstance(observables, Sequence)
            else list(observables)
        )
        if len(obs) == 1 and len(circs) > 1:
            obs = obs * len(circs)
        if len(obs) != len(circs):
            raise UserError(f"{len(circs)} circuits but {len(obs)} observables")
        spec = sim_spec(opts["method"], opts["device"], opts["precision"])
        seed = resolve_seed(opts["seed"])
        level = level_of(opts["optimization_level"])
        if shots is None:
            groups = [(c, [o], [r]) for c, o, r in zip(circs, obs, rows, strict=True)]
            arrays = expectation_values(groups, spec, seed, level, "Estimator")
            values = np.array([a[0, 0] for a in arrays])
            metadata: list[dict[str, Any]] = [{} for _ in circs]
        else:
            values, metadata = _noisy_values(circs, obs, rows, spec, seed, level, shots)
        return DoneJob(EstimatorResult(values, metadata), job_id=f"estimator-{next(_job_ids)}")


#: What the V1 Estimator reads (``shots``: see :class:`Estimator`).
ESTIMATOR_OPTIONS = ("method", "device", "precision", "optimization_level", "seed", "shots")
#: Aer's V1 ``Estimator`` keywords that change no value here: its values are exact (or drawn
#: about the exact ones with ``shots``) whatever they say.
_ESTIMATOR_NO_EFFECT = ("approximation", "abelian_grouping", "skip_transpilation",
                        "transpile_options")  # fmt: skip


def _estimator_options(fields: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The V1 Estimator's options from ``fields`` (Aer's ``backend_options`` and
    ``run_options`` dicts opened, as the Sampler does), each one checked.

    An option it does not read was kept and ignored: ``noise_model`` gave noiseless
    values without a word (session 25's closing note). Aer's other options
    (``max_parallel_threads``, ``seed_simulator``, ``fusion_enable``, ``coupling_map``,
    ...) change no exact value (``seed_simulator`` is Aer's simulator seed, not the seed
    of its V1 Estimator's draws: ``seed``) and are accepted as before.

    Raises:
        UserError: A noise model, or a name that is no option of the V1 Estimator or of Aer.
    """
    from qshpc.aer.sampler import _flat
    from qshpc.aer.simulator import aer_backend_names, aer_option_names, with_nearest_names

    flat = _flat(fields)
    for key in list(flat):
        if key in ESTIMATOR_OPTIONS or key in _ESTIMATOR_NO_EFFECT:
            continue
        if key == "noise_model":
            if flat[key] is None:
                continue
            raise UserError(
                f"{where}: noise_model: the V1 Estimator computes noiseless expectation "
                "values and cannot apply a noise model; use qshpc.aer.EstimatorV2(options="
                '{"backend_options": {"noise_model": nm}}) (noisy values over the ranks), '
                'or qshpc.aer.Sampler(options={"noise_model": nm}) for noisy counts'
            )
        if key not in aer_option_names() and key not in aer_backend_names():
            raise UserError(
                f"{where}: unknown option {with_nearest_names(key)}: neither the V1 Estimator's "
                f"({', '.join(ESTIMATOR_OPTIONS)}) nor one of AerSimulator's"
            )
    return flat


def _shots(shots: Any) -> int | None:
    """The V1 Estimator's ``shots``: None (exact values) or a positive int.

    Raises:
        UserError: Anything else.
    """
    from numbers import Integral

    if shots is None:
        return None
    if isinstance(shots, bool) or not isinstance(shots, Integral) or shots < 1:
        raise UserError(f"shots must be a positive int (or None for exact values), got {shots!r}")
    return int(shots)


def _noisy_values(
    circs: list[QuantumCircuit],
    obs: list[Any],
    rows: list[tuple[float, ...]],
    spec: SimSpec,
    seed: int | None,
    level: int,
    shots: int,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The V1 Estimator's values with ``shots``, as Aer's V1 ``Estimator(approximation=True)``
    draws them: the exact ``<P_k>`` of every Pauli term ``c_k P_k`` of each observable, then
    one normal draw per pair (in order, from ``np.random.default_rng(seed)``) about
    ``sum_k c_k <P_k>``, of variance ``sum_k c_k**2 (1 - <P_k>**2) / shots``."""
    from qiskit.quantum_info import SparsePauliOp

    ops = [_pauli_op(o, k) for k, o in enumerate(obs)]
    groups = [
        (c, [SparsePauliOp(p) for p in op.paulis], [r])
        for c, op, r in zip(circs, ops, rows, strict=True)
    ]
    arrays = expectation_values(groups, spec, seed, level, "Estimator", shots=shots)
    rng = np.random.default_rng(seed)
    values = []
    metadata: list[dict[str, Any]] = []
    for op, terms in zip(ops, arrays, strict=True):
        coeffs = np.real(op.coeffs)
        evs = terms[0]
        # (clipped: a term's |<P>| a rounding above 1 gave Aer a NaN)
        variance = max(float(np.dot(coeffs**2, 1.0 - evs**2)), 0.0)
        values.append(rng.normal(float(np.dot(coeffs, evs)), np.sqrt(variance / shots)))
        metadata.append({"variance": variance, "shots": shots})
    return np.array(values, dtype=float), metadata


__all__ = ["Estimator", "expectation_values", "run_sweep"]
