"""``Sampler``: the V1 call shape of ``qiskit.primitives.Sampler``, run on Aer.

Qiskit 2 removed the V1 reference Sampler that serverless programs call as
``Sampler().run(circuit).result().quasi_dists[0]``. This class keeps that shape:
exact probabilities by default (from the final state, like the reference
Sampler), sampled ones with ``shots``. It runs on this rank's cached
AerSimulator (a circuit Aer does not run as it is is transpiled first, with
this rank's cached pass manager: :mod:`qshpc.aer.isa`), seeds from the
running task, and records provenance. Shots of a circuit whose measurements
are all final are drawn from its exact marginal with the seed (so the counts
of a task do not depend on which other tasks shared its Aer run); other
circuits are sampled by Aer with ``seed_simulator``.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping, Sequence
from numbers import Real
from types import ModuleType
from typing import TYPE_CHECKING, Any

from qshpc.errors import UserError

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

    from qshpc.aer.results import DoneJob, SamplerResult

#: Options the Sampler reads itself; any other key is passed to Aer's ``run``.
SAMPLER_OPTIONS = ("shots", "seed", "method", "device", "precision", "optimization_level")
_DEFAULTS: dict[str, Any] = {
    "shots": None,
    "seed": None,
    "method": "statevector",
    "device": None,
    "precision": "double",
    "optimization_level": 1,
}
_job_ids = itertools.count()


def _flat(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` with Aer's V1 ``backend_options``/``run_options`` dicts opened into it.

    Aer's V1 ``Sampler(backend_options=..., run_options=...)`` takes them nested;
    passed on as they were, Aer's ``run`` failed with a TypeError. A flat key wins
    over ``backend_options``, ``run_options`` over both (as Aer's run options do).

    Raises:
        UserError: One of them is not a dict.
    """
    nested: dict[str, dict[str, Any]] = {"backend_options": {}, "run_options": {}}
    flat: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in nested:
            flat[key] = value
        elif value is not None:
            if not isinstance(value, Mapping):
                raise UserError(
                    f"options[{key!r}] must be a dict of Aer options (as Aer's V1 Sampler "
                    f"takes it), got {type(value).__name__}: {value!r:.60}; or give its "
                    "keys in options itself"
                )
            nested[key] = dict(value)
    return {**nested["backend_options"], **flat, **nested["run_options"]}


class Sampler:
    """V1-shaped sampler on Aer.

    Args:
        options: Default run options: ``shots`` (None = exact), ``seed``,
            ``method`` (Aer method, default ``"statevector"``), ``device``
            (``"auto"``, ``"CPU"``, ``"GPU"``), ``precision`` (``"double"``,
            ``"single"``), ``optimization_level`` (default 1: the preset pass
            manager for circuits Aer does not run as they are); any other key
            is passed to ``AerSimulator.run``. ``backend_options`` and
            ``run_options`` dicts (Aer's V1 ``Sampler`` keywords) are opened into
            these; the names that describe the backend (``coupling_map``,
            ``basis_gates``, ...) change nothing.

    Example:
        >>> from qiskit import QuantumCircuit
        >>> qc = QuantumCircuit(2); _ = qc.h(0); _ = qc.cx(0, 1); qc.measure_all()
        >>> Sampler().run(qc).result().quasi_dists[0]
        QuasiDistribution({0: 0.5000000000000001, 3: 0.5000000000000001}, shots=None)
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self._options: dict[str, Any] = dict(_DEFAULTS)
        self.set_options(**dict(options or {}))

    @property
    def options(self) -> dict[str, Any]:
        """A copy of the default run options."""
        return dict(self._options)

    def set_options(self, **fields: Any) -> None:
        """Change default run options (same keys as ``options``)."""
        self._options.update(_flat(fields))

    def run(
        self,
        circuits: QuantumCircuit | Sequence[QuantumCircuit],
        parameter_values: Sequence[float] | Sequence[Sequence[float]] | None = None,
        **run_options: Any,
    ) -> DoneJob[SamplerResult]:
        """Sample circuits; the work is done before this returns.

        Args:
            circuits: A circuit or a list of circuits.
            parameter_values: As in V1: one sequence of values per circuit (in
                ``circuit.parameters`` order), or one sequence for a single
                circuit. A single circuit with a list of value sequences runs
                every point as one Aer batch (one transpile, Aer binds them).
            **run_options: Override ``options`` for this call (``shots``, ``seed``, ...).

        Returns:
            A finished job; ``job.result()`` is a :class:`SamplerResult`.

        Raises:
            UserError: On mismatched parameter values or bad options.
        """
        engine, provenance, results, simulator = _engine()
        opts = {**self._options, **_flat(run_options)}
        circs, rows = normalize_inputs(circuits, parameter_values)
        _require_measurements(circs)
        # The names that describe the backend (coupling_map, basis_gates, n_qubits, ...)
        # change no distribution; Aer's run would read n_qubits as the circuits' width.
        backend = simulator.aer_backend_names()
        aer_options = {
            k: v for k, v in opts.items() if k not in SAMPLER_OPTIONS and k not in backend
        }
        if aer_options.get("noise_model") is None:  # (a readout error reads 1 off |0> too)
            circs = _without_idle_reads(circs)
        spec = simulator.sim_spec(opts["method"], opts["device"], opts["precision"])
        ranks = _split_ranks(circs, spec, opts["shots"], aer_options)
        if ranks > 1:
            return self._run_split(circs, rows, opts, spec, ranks)
        dists, meta = engine.sample_distributions(
            circs,
            rows,
            shots=opts["shots"],
            seed=provenance.resolve_seed(opts["seed"]),
            spec=spec,
            optimization_level=simulator.level_of(opts["optimization_level"]),
            run_options=aer_options,
            primitive="Sampler",
        )
        done: DoneJob[SamplerResult] = results.DoneJob(
            results.SamplerResult(dists, meta), job_id=f"sampler-{next(_job_ids)}"
        )
        return done

    def _run_split(
        self,
        circs: list[Any],
        rows: list[tuple[float, ...]],
        opts: dict[str, Any],
        spec: Any,
        ranks: int,
    ) -> DoneJob[SamplerResult]:
        """Every circuit of the call over the ``ranks`` ranks the running call holds."""
        import time

        from qshpc.aer.circuits import circuit_sha256
        from qshpc.aer.provenance import record_run, resolve_seed
        from qshpc.aer.results import DoneJob, SamplerResult
        from qshpc.aer.v2.split import quasi_split

        start = time.perf_counter()
        dists, meta, seed = quasi_split(
            circs, rows, opts["shots"], resolve_seed(opts["seed"]), ranks, spec.precision
        )
        record_run(
            seed=seed,
            simulator=spec.as_dict(),
            circuit_hashes=[circuit_sha256(c) for c in {id(c): c for c in circs}.values()],
            wall_s=time.perf_counter() - start,
            shots=opts["shots"],
            primitive=f"Sampler (split over {ranks} ranks)",
        )
        return DoneJob(SamplerResult(dists, meta), job_id=f"sampler-{next(_job_ids)}")


@functools.cache
def _engine() -> tuple[ModuleType, ModuleType, ModuleType, ModuleType]:
    """The modules :meth:`Sampler.run` uses, imported at its first call (then one cached
    lookup), not with the class: rank 0 of the seed program only names Sampler inside its
    tasks, and importing them cost its way to the first task 27-39 ms of CPU (under load)."""
    from qshpc.aer import engine, provenance, results, simulator

    return engine, provenance, results, simulator


def _without_idle_reads(circs: list[QuantumCircuit]) -> list[QuantumCircuit]:
    """``circs`` without measurements of qubits nothing else acts on (they read 0:
    :func:`qshpc.aer.circuits.without_idle_reads`); one object per object given."""
    from qshpc.aer.circuits import without_idle_reads

    done: dict[int, QuantumCircuit] = {}
    for c in circs:
        if id(c) not in done:
            done[id(c)] = without_idle_reads(c)
    return [done[id(c)] for c in circs]


def _split_ranks(
    circuits: list[Any], spec: Any, shots: int | None, aer_options: dict[str, Any]
) -> int:
    """Ranks to split this call's circuits over (1: none), as for ``SamplerV2``.

    Only inside a call that holds ranks (``target={"ranks": k}``); the whole call
    then runs split, over all the ranks it holds. A circuit that needs a split that
    cannot be had here is refused, naming what is missing.

    Raises:
        UserError: What a needed split lacks (ranks, the MPI Aer, final measurements...).
    """
    from qshpc import settings
    from qshpc.aer.simulator import width_limit
    from qshpc.aer.sizing import active_width

    mode = settings.DISTRIBUTE.get()
    limit = width_limit(spec)
    # Sized by the qubits each acts on, as SamplerV2's (a 127-qubit ISA circuit on 3 of
    # them is a 3-qubit simulation: Aer drops idle qubits); by its declared width, a
    # transpiled circuit was refused as needing 10^25 ranks.
    zero = aer_options.get("noise_model") is None  # (else idle measurements stay: Sampler.run)
    width = {id(c): active_width(c, zero) for c in circuits}
    if mode == "auto" and all(w <= limit for w in width.values()):
        return 1
    from qshpc.aer.circuits import prepare_exact
    from qshpc.aer.distributed.plan import missing, one_node_lacks, ranks_for, refusal
    from qshpc.aer.sampling import SAMPLE_MAX_QUBITS
    from qshpc.task.context import current_task

    need = {id(c): ranks_for(width[id(c)], limit, spec.method, spec.device, spec.precision, mode)
            for c in circuits}  # fmt: skip
    k = max(need.values())
    if k == 1:
        return 1
    task = current_task()
    step = None if task is None else task.step
    have = 1 if step is None else int(step.size)
    where = None if step is not None else (
        "the V1 Sampler splits only inside a task that holds ranks: declare it "
        "@distribute_task(target={'ranks': k}), or use SamplerV2 from the program"
    )  # fmt: skip
    for c in circuits:
        if need[id(c)] == 1:
            continue
        lacks = missing(need[id(c)], have, where, in_task=True)
        if where is None and width[id(c)] > limit:
            lacks = one_node_lacks(lacks, width[id(c)], need[id(c)], spec.precision)
        plan = prepare_exact(c)
        if not plan.exact:
            lacks.append(
                f"a split circuit is sampled with its final measurements only: {plan.reason}"
            )
        elif shots is not None and len(plan.qubits) > SAMPLE_MAX_QUBITS:
            lacks.append(f"the V1 Sampler splits circuits measuring at most {SAMPLE_MAX_QUBITS} "
                         f"qubits with shots (this one measures {len(plan.qubits)}; SamplerV2 "
                         "takes more)")  # fmt: skip
        if aer_options:
            lacks.append(f"a split run takes no extra Aer options ({', '.join(aer_options)})")
        if lacks:
            raise UserError(refusal(c.name, width[id(c)], limit, need[id(c)], spec, lacks))
    return max(k, 1 << (have.bit_length() - 1))


def _require_measurements(circs: Sequence[QuantumCircuit]) -> None:
    """Refuse a circuit that measures nothing, as Qiskit's and Aer's V1 Samplers do.

    Its distribution (of the classical bits) would be ``{0: 1.0}`` whatever the
    state: a forgotten ``measure_all()`` read as a result. A circuit with an
    operation that may hold a measurement (control flow, an instruction of its
    own) is let through.
    """
    from qshpc.aer.circuits import standard_gate_names

    seen: set[int] = set()
    for i, circ in enumerate(circs):
        if id(circ) in seen:
            continue
        seen.add(id(circ))
        if circ.num_clbits == 0:
            why = "has no classical bits"
        else:
            ops = circ.count_ops()
            if "measure" in ops or not standard_gate_names().issuperset(ops):
                continue
            why = "measures no qubit"
        raise UserError(
            f"Sampler: circuit {i} ({circ.name!r}) {why}: the Sampler gives the distribution "
            "of measured classical bits, so it would read {0: 1.0} whatever the state; "
            "measure the qubits (circuit.measure_all()), as Qiskit's V1 Sampler required"
        )


def _is_circuit(obj: object) -> bool:
    return hasattr(obj, "num_qubits") and hasattr(obj, "data")


def normalize_inputs(
    circuits: Any, parameter_values: Any
) -> tuple[list[QuantumCircuit], list[tuple[float, ...]]]:
    """Pair circuits with parameter rows, the V1 way plus single-circuit broadcast.

    Args:
        circuits: A circuit or a sequence of circuits.
        parameter_values: None, one row for a single circuit, or one row per circuit
            (or many rows for a single circuit).

    Returns:
        ``(circuits, rows)`` of equal length.

    Raises:
        UserError: When the lengths do not match.
    """
    single = _is_circuit(circuits)
    circs: list[QuantumCircuit] = [circuits] if single else list(circuits)
    if not all(_is_circuit(c) for c in circs):
        raise UserError("Sampler.run takes a QuantumCircuit or a list of QuantumCircuits")
    if parameter_values is None:
        return circs, [() for _ in circs]
    values: list[Any] = list(parameter_values)
    if single and all(isinstance(v, Real) for v in values):
        return circs, [tuple(float(v) for v in values)]
    if any(isinstance(v, Real) for v in values):
        raise UserError("parameter_values: give one sequence of values per circuit")
    rows = [tuple(float(x) for x in v) for v in values]
    if single:
        return circs * len(rows), rows
    if len(rows) != len(circs):
        raise UserError(
            f"{len(circs)} circuits but {len(rows)} parameter value sets; give one per circuit"
        )
    return circs, rows


__all__ = ["SAMPLER_OPTIONS", "Sampler", "normalize_inputs"]
