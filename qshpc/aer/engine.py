"""The batched Aer pipeline behind Sampler and run_sweep.

One call: analyse each distinct circuit once, transpile the distinct circuits
once with this rank's cached pass manager, then run every experiment in at most
two Aer batches: circuits whose measurements are all final with
``save_probabilities`` and one shot (shots, when asked for, are drawn from that
marginal here), the others with the shots asked for. Parametrized circuits are
bound by Aer itself (``parameter_binds``), so a sweep of K points is one
transpile and one run. On a worker, the exact runs of several tasks share one
Aer run (:mod:`qshpc.task.coop`).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from qshpc.aer.circuits import (
    ExactPlan,
    aer_runnable,
    circuit_sha256,
    marginal_to_dist,
    prepare_exact,
)
from qshpc.aer.isa import aer_forms
from qshpc.aer.provenance import record_run
from qshpc.aer.results import QuasiDistribution
from qshpc.aer.sampling import SAMPLE_MAX_QUBITS, draw_seed, sample_marginal
from qshpc.aer.simulator import SimSpec, get_simulator
from qshpc.errors import UserError
from qshpc.task.coop import seconds_for_others, together

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

#: Shots used when exact probabilities were asked for but the circuit has a
#: mid-circuit measurement, a reset or classical control.
FALLBACK_SHOTS = 8192
#: Aer run options that change the distribution (exact probabilities are then sampled).
NOISY_OPTIONS = ("noise_model",)
#: Aer methods that save no probabilities: shots are Aer's own samples (as Aer's primitives).
NO_PROBABILITIES = frozenset({"extended_stabilizer"})


@dataclass
class _Template:
    """One distinct circuit object and the experiments that use it."""

    circuit: QuantumCircuit
    runnable: QuantumCircuit  # ``circuit`` unshadowed (check_runnable's form)
    plan: ExactPlan | None  # None in shots mode
    rows: list[tuple[int, tuple[float, ...]]] = field(default_factory=list)  # (output, values)
    same: Hashable = None  # equal for templates whose experiments are identical (see run_exact)


def physical_qubits(transpiled: QuantumCircuit, virtual: Sequence[int]) -> list[int]:
    """Map virtual qubit indices of the input circuit to the transpiled circuit's."""
    layout = transpiled.layout
    if layout is None:
        return list(virtual)
    final = layout.final_index_layout()
    return [final[v] for v in virtual]


def check_values(circuit: QuantumCircuit, rows: Sequence[Sequence[float]]) -> None:
    """Refuse parameter values that do not fit ``circuit``: a wrong count, NaN or infinity.

    Checked for every circuit before anything runs: Aer binds NaN without a word (a
    distribution of NaNs, or counts of a made-up state), and a circuit that measures
    nothing, or whose parameters a transpile removed, never reached the count check.

    Raises:
        UserError: Naming the circuit, the parameter and the value set.
    """
    params = _check_counts(circuit, rows)
    if not params or not rows or math.isfinite(sum(map(sum, rows))):
        return  # a NaN or an infinity makes the sum so (finite ones only when huge: checked below)
    array = np.asarray(rows, dtype=float)
    bad = ~np.isfinite(array)
    if bad.any():
        row, col = (int(x) for x in np.argwhere(bad)[0])
        raise UserError(
            f"circuit {circuit.name!r}: parameter {params[col].name} is {array[row, col]} in "
            f"value set {row} ({int(bad.sum())} value(s) are NaN or infinite); give finite values"
        )


def _check_counts(circuit: QuantumCircuit, rows: Sequence[Sequence[float]]) -> list[Any]:
    """``circuit``'s parameters, after checking that every row has a value for each."""
    params = list(circuit.parameters)
    for values in rows:
        if len(values) != len(params):
            raise UserError(
                f"circuit {circuit.name!r} has {len(params)} parameters "
                f"({', '.join(p.name for p in params)}); got {len(values)} values"
            )
    return params


def bind_dict(
    template: QuantumCircuit, transpiled: QuantumCircuit, rows: Sequence[Sequence[float]]
) -> dict[Any, list[float]]:
    """Aer ``parameter_binds`` entry for ``rows`` of values in ``template.parameters`` order."""
    params = _check_counts(template, rows)
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

    A circuit whose measurements are all final is simulated once for the
    marginal over its measured qubits (``save_probabilities``); with ``shots``
    the shots are then drawn from it (:mod:`qshpc.aer.sampling`). Those runs go
    through :func:`qshpc.task.coop.together`, so on a worker the runs of
    several tasks share one Aer run. Other circuits (mid-circuit measurements,
    resets, classical control, more than ``SAMPLE_MAX_QUBITS`` measured qubits
    with shots, or extra Aer run options such as a noise model) are sampled by
    Aer with ``seed_simulator``.

    Args:
        circuits: One circuit per experiment (the same object may repeat).
        parameter_values: One sequence of values per experiment.
        shots: None for exact probabilities, else the shots to sample.
        seed: The seed (None: one is drawn, or left to Aer, and recorded).
        spec: This rank's simulator spec.
        optimization_level: Preset pass manager level.
        run_options: Extra Aer run options.
        primitive: Name recorded in provenance.

    Returns:
        ``(quasi_dists, metadata)`` in input order.
    """
    if shots is not None:
        from numbers import Integral  # numpy's ints too, as Aer takes them

        if isinstance(shots, bool) or not isinstance(shots, Integral) or shots < 1:
            raise UserError(f"shots must be a positive int or None, got {shots!r}")
        shots = int(shots)
    start = time.perf_counter()
    not_ours = seconds_for_others()
    templates: dict[int, _Template] = {}
    for out, (circ, values) in enumerate(zip(circuits, parameter_values, strict=True)):
        t = templates.get(id(circ))
        if t is None:
            runnable = check_runnable(circ)  # the one unshadow of this circuit in the call
            t = _Template(circ, runnable, _plan(runnable, shots, run_options))
            templates[id(circ)] = t
        t.rows.append((out, tuple(values)))
    tlist = list(templates.values())
    for t in tlist:
        check_values(t.circuit, [v for _, v in t.rows])
    hashes = [circuit_sha256(t.circuit) for t in tlist]
    bodies = [
        t.plan.circuit if t.plan and t.plan.circuit is not None else t.runnable for t in tlist
    ]
    keys = [
        f"{h}:{'full' if b is t.runnable else 'body'}"
        for h, b, t in zip(hashes, bodies, tlist, strict=True)
    ]
    # ISA bodies run as they are (exact bodies are prepare_exact's own copies, so
    # appending to them below is safe); the others are transpiled copies.
    forms = aer_forms(bodies, spec, optimization_level, keys, unshadowed=True)

    dists: list[QuasiDistribution | None] = [None] * len(circuits)
    meta: list[dict[str, Any]] = [{} for _ in circuits]
    exact_runs: list[tuple[_Template, QuantumCircuit]] = []
    sampled_runs: list[tuple[_Template, QuantumCircuit]] = []
    for t, (tc, moved), key in zip(tlist, forms, keys, strict=True):
        if t.plan is not None and t.plan.exact:
            if not t.plan.qubits:  # nothing measured: the empty register reads 0
                for out, _ in t.rows:
                    dists[out] = QuasiDistribution({0: 1.0}, shots=shots)
                continue
            from qiskit_aer.library import SaveProbabilities

            qubits = physical_qubits(tc, t.plan.qubits) if moved else list(t.plan.qubits)
            tc.append(SaveProbabilities(len(qubits)), [tc.qubits[q] for q in qubits])
            t.same = (key, optimization_level, "probabilities", tuple(qubits))
            exact_runs.append((t, tc))
        else:
            sampled_runs.append((t, tc))

    used_seed = seed
    shared = 0
    if exact_runs:
        if shots is not None and used_seed is None:
            used_seed = draw_seed()
        exact, shared = _exact_data(exact_runs, spec, run_options)
        for (t, out, _), data in zip(_expand(exact_runs), exact, strict=True):
            assert t.plan is not None
            if shots is None:
                dists[out] = QuasiDistribution(marginal_to_dist(data["probabilities"], t.plan))
                continue
            assert used_seed is not None
            counts = sample_marginal(data["probabilities"], t.plan, shots, used_seed, out)
            dists[out] = QuasiDistribution({k: c / shots for k, c in counts.items()}, shots=shots)
            meta[out] = {"shots": shots}
    if sampled_runs:
        n = shots if shots is not None else FALLBACK_SHOTS
        res = _run(sampled_runs, spec, n, used_seed, run_options)
        for (t, out, _), data in zip(_expand(sampled_runs), res.data_list, strict=True):
            counts = data.get("counts", {})
            dists[out] = QuasiDistribution(
                {int(k, 16): c / n for k, c in counts.items()} or {0: 1.0}, shots=n
            )
            meta[out] = {"shots": n}
            if t.plan is not None and shots is None:
                meta[out]["note"] = (
                    f"exact probabilities need the final state, but {t.plan.reason}: "
                    f"sampled with {n} shots instead"
                )
        used_seed = res.seed if used_seed is None else used_seed
    record_run(
        seed=used_seed,
        simulator=spec.as_dict(),
        circuit_hashes=hashes,
        wall_s=time.perf_counter() - start - (seconds_for_others() - not_ours),
        shots=shots,
        primitive=primitive,
        shared=shared,
    )
    return [d if d is not None else QuasiDistribution() for d in dists], meta


def check_runnable(circuit: QuantumCircuit) -> QuantumCircuit:
    """Refuse a circuit Aer cannot run in any form (:func:`aer_refusal`), naming why.

    Returns:
        The form to run it in (:func:`aer_runnable`: unshadowed): pass it on, with
        ``unshadowed=True``, to ``prepare_exact`` and ``aer_forms``.

    Raises:
        UserError: The circuit's name and the reason.
    """
    runnable, reason = aer_runnable(circuit)
    if reason is not None:
        raise UserError(f"circuit {circuit.name!r} cannot run on Aer: {reason}")
    return runnable


def _plan(
    circuit: QuantumCircuit, shots: int | None, run_options: dict[str, Any] | None
) -> ExactPlan | None:
    """The exact plan of a circuit (``check_runnable``'s form), or None when Aer must sample
    it with shots."""
    if run_options and shots is not None:
        return None  # a noise model, say: the final state is not the distribution
    noisy = sorted(k for k in NOISY_OPTIONS if (run_options or {}).get(k) is not None)
    if noisy:  # exact probabilities: one noisy shot is one random trajectory
        return ExactPlan(None, (), (), f"Aer run options ({', '.join(noisy)}) change it")
    plan = prepare_exact(circuit, unshadowed=True)
    if shots is not None and (not plan.exact or len(plan.qubits) > SAMPLE_MAX_QUBITS):
        return None
    return plan


def _exact_data(
    runs: list[tuple[_Template, QuantumCircuit]],
    spec: SimSpec,
    run_options: dict[str, Any] | None,
) -> tuple[list[dict[str, Any]], int]:
    """Aer data of exact runs, one per output in ``_expand`` order (see :func:`run_exact`)."""
    experiments, binds, sames = _experiments(runs)
    return run_exact(spec, experiments, binds, len(_expand(runs)), run_options, sames)


def run_exact(
    spec: SimSpec,
    experiments: list[QuantumCircuit],
    binds: list[dict[Any, list[float]]],
    outputs: int,
    run_options: dict[str, Any] | None = None,
    sames: Sequence[Hashable] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Run deterministic experiments (one shot, ``save_*`` instructions), shared when possible.

    Without ``run_options`` the run goes through :func:`qshpc.task.coop.together`:
    on a worker, the exact runs of the tasks of a group share one Aer run. In
    that run, experiments with equal ``sames`` keys are one experiment: their
    parameter rows are bound together (a sweep spread over tasks is one Aer
    experiment with all its points, 4x cheaper a point than one experiment
    each), and identical unbound ones run once.

    Args:
        spec: This rank's simulator spec.
        experiments: Transpiled circuits with their save instructions.
        binds: Aer ``parameter_binds`` entry per experiment (``{}`` when unbound).
        outputs: Aer results these experiments give (one per experiment, or per bound row).
        run_options: Extra Aer options (then the run is not shared).
        sames: Per experiment, a key that is equal only for identical circuits with
            identical save instructions (e.g. the transpile key and the observable),
            or None (never merged).

    Returns:
        ``(data per output, Aer results of the shared run or 0 when not shared)``.
    """
    keys: list[Hashable] = list(sames) if sames is not None else [None] * len(experiments)
    item = _ExactItem(spec, experiments, binds, keys, run_options or None, outputs)
    if run_options:
        return _exact_batch([item])[0]
    return cast(
        "tuple[list[dict[str, Any]], int]", together(("aer-exact", spec), _exact_batch, item)
    )


@dataclass(frozen=True)
class _ExactItem:
    spec: SimSpec
    experiments: list[QuantumCircuit]
    binds: list[dict[Any, list[float]]]
    sames: list[Hashable]
    run_options: dict[str, Any] | None
    outputs: int  # Aer results: one per experiment, or per bound row


def _rows(bind: dict[Any, list[float]]) -> int:
    return len(next(iter(bind.values()))) if bind else 1


def _exact_batch(items: list[_ExactItem]) -> list[tuple[list[dict[str, Any]], int]]:
    """One Aer run of the exact experiments of several calls, identical ones merged.

    Returns each call's data, and the Aer results of the run when it held more
    than one call's experiments (else 0).
    """
    experiments: list[QuantumCircuit] = []
    binds: list[dict[Any, list[float]]] = []
    owners: list[list[tuple[int, int, int]]] = []  # per experiment: (item, first output, rows)
    merged: dict[Hashable, int] = {}
    for i, item in enumerate(items):
        pos = 0
        for circuit, bind, same in zip(item.experiments, item.binds, item.sames, strict=True):
            rows = _rows(bind)
            j = merged.get(same) if same is not None else None
            if j is not None and binds[j].keys() == bind.keys():
                for param, values in bind.items():
                    binds[j][param].extend(values)
                if not bind:  # identical and unbound: its result serves both
                    owners[j].append((i, pos, 0))
                else:
                    owners[j].append((i, pos, rows))
            else:
                if same is not None:
                    merged[same] = len(experiments)
                experiments.append(circuit)
                binds.append({param: list(values) for param, values in bind.items()})
                owners.append([(i, pos, rows)])
            pos += rows
    first = items[0]
    result = run_aer(first.spec, experiments, 1, None, binds, first.run_options)
    data = [result.data(k) for k in range(len(result.results))]
    out: list[list[dict[str, Any]]] = [[{}] * item.outputs for item in items]
    at = 0
    for owner in owners:
        start = at
        for i, pos, rows in owner:
            if rows == 0:  # an unbound duplicate: the experiment's one result
                out[i][pos] = data[start]
                continue
            out[i][pos : pos + rows] = data[at : at + rows]
            at += rows
    shared = len(data) if len(items) > 1 else 0
    return [(o, shared) for o in out]


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


def _experiments(
    runs: list[tuple[_Template, QuantumCircuit]],
) -> tuple[list[QuantumCircuit], list[dict[Any, list[float]]], list[Hashable]]:
    """Aer experiments: parametrized circuits bound by Aer, others repeated per occurrence.

    Returns:
        The experiments, their ``parameter_binds`` entries, and their identity keys.
    """
    experiments: list[QuantumCircuit] = []
    binds: list[dict[Any, list[float]]] = []
    sames: list[Hashable] = []
    for t, tc in runs:
        if tc.parameters:
            experiments.append(tc)
            binds.append(bind_dict(t.circuit, tc, [v for _, v in t.rows]))
            sames.append(t.same)
        else:
            for _, values in t.rows:
                if values and len(values) != len(t.circuit.parameters):
                    bind_dict(t.circuit, tc, [values])  # raises with the counts
                experiments.append(tc)
                binds.append({})
                sames.append(t.same)
    return experiments, binds, sames


def _run(
    runs: list[tuple[_Template, QuantumCircuit]],
    spec: SimSpec,
    shots: int,
    seed: int | None,
    run_options: dict[str, Any] | None,
) -> AerOutput:
    """One Aer batch of sampled experiments."""
    experiments, binds, _ = _experiments(runs)
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
    if spec.gpu is not None:  # the GPU this rank binds (a run option: the constructor refuses it)
        options["target_gpus"] = [spec.gpu]
    if any(binds):
        options["parameter_binds"] = binds
        if shots == 1 and spec.threads == 1 and not _parametrized_phase(experiments, binds):
            # Exact runs on one core: Aer binds each row at run time instead of building
            # a circuit per row (0.5 -> 0.3 ms a row for 10 qubits; results bit-identical).
            # With more cores, one experiment per row runs them side by side instead.
            options.setdefault("runtime_parameter_bind_enable", True)
    result = _execute(get_simulator(spec), experiments, options, spec.threads)
    if not result.success:
        status = str(result.status)
        if "invalid instructions" in status or "invalid parameters" in status:
            raise UserError(
                f"Aer's {spec.method!r} method cannot run this circuit ({status.strip()})"
                f"{_not_clifford(experiments, spec)}: use "
                "method='statevector' (the default) or 'automatic'; the stabilizer methods "
                "run Clifford circuits only, and 'unitary', 'superop' and "
                "'extended_stabilizer' give no probabilities to read a distribution from"
            )
        raise RuntimeError(f"Aer failed: {status}")
    return result


def _not_clifford(experiments: list[QuantumCircuit], spec: SimSpec) -> str:
    """For the stabilizer method: the operations of ``experiments`` that are no Clifford gate.

    Aer's own text names them only as "invalid parameters" once the transpile has made
    a ``t`` into an ``rz(pi/4)``; this names those (the first three).
    """
    if spec.method != "stabilizer":  # extended_stabilizer runs non-Clifford gates
        return ""
    from qshpc.aer.isa import basis, non_clifford_rz, stabilizer_spec

    names = basis(stabilizer_spec())
    found: list[str] = []
    for circuit in experiments:
        for inst in circuit.data:
            op = inst.operation
            bad = op.name not in names and not op.name.startswith("save_")
            if bad or non_clifford_rz(op):
                args = ", ".join(f"{float(p):.4g}" if _is_number(p) else str(p) for p in op.params)
                text = f"{op.name}({args})" if op.params else op.name
                if text not in found:
                    found.append(text)
            if len(found) == 3:
                break
    if not found:
        return ""
    return f"; not Clifford, as this rank runs it: {', '.join(found)}"


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _parametrized_phase(
    experiments: list[QuantumCircuit], binds: list[dict[Any, list[float]]]
) -> bool:
    """True when a bound experiment's global phase holds a parameter.

    Aer (0.17, 0.18) cannot bind such a phase at run time: the whole run fails
    with "Invalid parameterized qobj: instruction param position out of range".
    A circuit transpiled onto a device's basis has one whenever a parametrized
    gate became ``rz`` (``cp(t)`` onto rz/sx/x/cx: phase ``pi/2 + t/4``), so on
    ranks of one core every exact run of it failed where the same run on more
    cores (Aer binds when it builds each row's circuit) gave the values.
    """
    from qiskit.circuit import ParameterExpression  # type: ignore[import-untyped]

    return any(
        bind and isinstance(experiment.global_phase, ParameterExpression)
        for experiment, bind in zip(experiments, binds, strict=True)
    )


def _execute(
    sim: Any, experiments: list[QuantumCircuit], options: dict[str, Any], threads: int
) -> Any:
    """``sim.run(experiments, **options).result()``, on one core without the AerJob.

    ``run`` wraps the same call of Aer's controller in an ``AerJob`` whose work
    goes to Aer's one-thread pool: a future, a uuid and a hand-off to that
    thread and back for every run, paid by every group of tiny tasks. With
    one thread the run is made here, in the calling thread, by the very call the
    job would have made (same config, same results). With more threads it stays
    on Aer's thread, so that OpenMP keeps one team of threads per process.
    """
    direct = _direct_call(type(sim)) if threads == 1 else None
    if direct is None:
        return sim.run(experiments, **options).result()
    binds = options.pop("parameter_binds", None)
    return direct(sim, experiments, binds, options, f"qshpc-{next(_aer_runs)}")


_aer_runs = itertools.count()


def _direct_call(cls: type) -> Any:
    """Aer's ``_execute_circuits_job`` (what ``AerJob`` calls), when it has the signature
    this module was written against; else None (then ``run`` is used). Looked up once."""
    if cls in _direct:
        return _direct[cls]
    _direct[cls] = _lookup_direct(cls)
    return _direct[cls]


_direct: dict[type, Any] = {}


def _lookup_direct(cls: type) -> Any:
    import inspect

    fn = getattr(cls, "_execute_circuits_job", None)
    try:
        names = list(inspect.signature(fn).parameters) if fn is not None else []
    except (TypeError, ValueError):
        return None
    want = ["self", "circuits", "parameter_binds", "run_options", "job_id", "format_result"]
    return fn if names == want else None


__all__ = [
    "FALLBACK_SHOTS",
    "NOISY_OPTIONS",
    "AerOutput",
    "bind_dict",
    "check_runnable",
    "check_values",
    "physical_qubits",
    "run_aer",
    "run_exact",
    "sample_distributions",
]
