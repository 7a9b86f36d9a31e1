"""One AerSimulator and one preset pass manager per rank, built once and reused.

``transpile()`` rebuilds its pass manager on every call (about 70 ms), and a new
``AerSimulator`` re-reads its configuration; tasks of a few milliseconds cannot
afford either. Both live in module-level caches keyed by what makes them differ.
Aer's threads are the running task's ``target={"cpu": k}``, else the cores of
this rank (``rank_info().cpus``), so the ranks of a node never oversubscribe it.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from qshpc.aer.binding import bindable
from qshpc.aer.device import resolve_device
from qshpc.errors import UserError
from qshpc.task.context import rank_info, task_threads

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]
    from qiskit.transpiler import StagedPassManager  # type: ignore[import-untyped]

METHODS = (
    "automatic",
    "statevector",
    "density_matrix",
    "matrix_product_state",
    "stabilizer",
    "extended_stabilizer",
    "unitary",
    "superop",
)
PRECISIONS = ("double", "single")

_lock = threading.Lock()
_simulators: dict[SimSpec, Any] = {}
_pass_managers: dict[tuple[SimSpec, int], StagedPassManager] = {}
_widths: dict[SimSpec, int] = {}  # the most qubits each simulator holds
# Transpiled circuits by (spec, level, content key), least recently used first.
_transpiled: OrderedDict[tuple[SimSpec, int, str], QuantumCircuit] = OrderedDict()
_CACHE_SIZE = 128
_CACHE_MAX_OPS = 20_000  # wider or deeper transpiled circuits are not kept


@dataclass(frozen=True)
class SimSpec:
    """What tells two simulators of one process apart.

    Attributes:
        method: Aer simulation method, e.g. ``"statevector"``.
        device: ``"CPU"`` or ``"GPU"``.
        precision: ``"double"`` or ``"single"``.
        threads: Aer's ``max_parallel_threads``: the task's ``cpu`` target, else the rank's cores.
        gpu: GPU ordinal bound on ``device="GPU"``, else None.
    """

    method: str
    device: str
    precision: str
    threads: int
    gpu: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for provenance (a fresh dict; built once per spec: every run records it)."""
        return dict(_spec_dict(self))


@functools.cache
def _spec_dict(spec: SimSpec) -> dict[str, Any]:
    return asdict(spec)


def sim_spec(
    method: str = "statevector", device: str | None = None, precision: str = "double"
) -> SimSpec:
    """Resolve the options of a caller into the spec of this rank's simulator.

    Args:
        method: Aer simulation method.
        device: ``"auto"``, ``"CPU"``, ``"GPU"`` or None (see :mod:`qshpc.aer.device`).
        precision: ``"double"`` or ``"single"``.

    Returns:
        The :class:`SimSpec`.

    Raises:
        UserError: On an unknown method, device or precision.
    """
    if method not in METHODS:
        raise UserError(f"unknown Aer method {method!r}; use one of {', '.join(METHODS)}")
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    dev, gpu = resolve_device(device)
    return SimSpec(method, dev, precision, max(1, task_threads()), gpu)


def get_simulator(spec: SimSpec) -> Any:
    """Return this process's AerSimulator for ``spec``, building it the first time.

    Args:
        spec: From :func:`sim_spec`.

    Returns:
        A ``qiskit_aer.AerSimulator``.
    """
    with _lock:
        sim = _simulators.get(spec)
        if sim is None:
            from qiskit_aer import AerSimulator

            options: dict[str, Any] = {
                "method": spec.method,
                "device": spec.device,
                "precision": spec.precision,
                "max_parallel_threads": spec.threads,
                # Small circuits gain most from running side by side; Aer caps this by
                # memory and by max_parallel_threads.
                "max_parallel_experiments": 0,
                # One thread draws all shots of an experiment, so seeded counts do not
                # depend on how many cores a rank has.
                "max_parallel_shots": 1,
            }
            # The GPU a rank binds (spec.gpu) is a run option, ``target_gpus``
            # (engine.run_aer): AerSimulator's constructor refuses it ("Invalid option
            # target_gpus", qiskit-aer-gpu 0.18.2 on an H200: every GPU task failed).
            sim = AerSimulator(**options)
            _simulators[spec] = sim
        return sim


@functools.cache
def aer_option_names() -> frozenset[str]:
    """``AerSimulator``'s run options (its ``_default_options``: what ``run`` reads)."""
    from qiskit_aer import AerSimulator

    return frozenset(vars(AerSimulator._default_options()))


@functools.cache
def aer_backend_names() -> frozenset[str]:
    """The other names ``AerSimulator(**options)`` takes: they describe the backend.

    As Aer's ``set_option`` decides: a field of the default configuration
    (``coupling_map``, ``basis_gates``, ``n_qubits``, ``max_shots``, ...; Aer
    0.18's properties are None), ``custom_instructions``, and the constructor's
    ``configuration``, ``properties``, ``provider`` and ``target``. Aer's V2
    primitives do not transpile, so none of them changes what they compute.
    """
    from qiskit_aer import AerSimulator
    from qiskit_aer.backends.backendconfiguration import AerBackendConfiguration

    config = AerBackendConfiguration.from_dict(AerSimulator._DEFAULT_CONFIGURATION)
    fields = {k for k in dir(config) if not k.startswith("_")}
    fields = {k for k in fields if not callable(getattr(config, k, None))}
    fields |= set(config.to_dict())
    fields |= {"custom_instructions", "configuration", "properties", "provider", "target"}
    return frozenset(fields - aer_option_names())


def with_nearest_names(name: object) -> str:
    """``'name'``, with the nearest names ``AerSimulator(**options)`` takes when some are
    near (``'shotz' (did you mean 'shots'?)``), for a message refusing it."""
    import difflib

    valid = sorted(aer_option_names() | aer_backend_names())
    near = difflib.get_close_matches(str(name), valid, 3, 0.5)
    return f"{name!r} (did you mean {' or '.join(map(repr, near))}?)" if near else repr(name)


def get_pass_manager(spec: SimSpec, optimization_level: int = 1) -> StagedPassManager:
    """Return this process's preset pass manager for ``spec``'s simulator.

    Level 1 is the default: on 12-qubit depth-12 random circuits it transpiles in
    about 1.5 ms each and its output simulates faster than level 0's; level 2
    takes about 45 ms a circuit for no gain in simulation time.

    Args:
        spec: From :func:`sim_spec`.
        optimization_level: 0 to 3.

    Returns:
        A ``StagedPassManager`` targeting the simulator.
    """
    check_level(optimization_level)
    key = (spec, optimization_level)
    pm = _pass_managers.get(key)
    if pm is None:
        from qiskit.transpiler import generate_preset_pass_manager

        sim = get_simulator(spec)
        with _lock:
            pm = _pass_managers.get(key)
            if pm is None:
                # target=, not backend=: the generator reads backend.target once per
                # gate name, and AerSimulator builds a new Target on every read
                # (135 of them, 0.13 s a rank); the pass manager is the same.
                pm = generate_preset_pass_manager(
                    optimization_level=optimization_level, target=sim.target
                )
                _pass_managers[key] = pm
    return pm


def check_level(optimization_level: object) -> None:
    """Refuse a preset pass manager level other than 0, 1, 2 or 3 (bad input).

    Checked even when no circuit needs the pass manager (ISA circuits run as they
    are), so that a bad level is refused the same way whatever the circuits.
    """
    if isinstance(optimization_level, bool) or optimization_level not in (0, 1, 2, 3):
        raise UserError(f"optimization_level must be 0, 1, 2 or 3, got {optimization_level!r}")


def level_of(value: object) -> int:
    """A preset pass manager level given as an option, checked (:func:`check_level`)."""
    check_level(value)
    assert isinstance(value, (int, float))  # one of 0, 1, 2, 3 (or 1.0...) after the check
    return int(value)


def transpile_for(
    circuits: list[QuantumCircuit],
    spec: SimSpec,
    optimization_level: int = 1,
    keys: Sequence[str | None] | None = None,
) -> list[QuantumCircuit]:
    """Transpile circuits for this rank's simulator with the cached pass manager.

    Under MPI (more than one rank) the pass manager runs in this process only;
    the ranks are the parallelism.

    Args:
        circuits: The circuits.
        spec: This rank's simulator spec.
        optimization_level: Preset pass manager level.
        keys: Optional content keys (e.g. a QPY hash), one per circuit: a circuit
            whose key was transpiled before on this rank is not transpiled again
            (the tasks of a parameter sweep send one template many times). The
            caller gets its own copy either way, free to append to.
    """
    if not circuits:
        return []
    check_width(circuits, spec)
    pm = get_pass_manager(spec, optimization_level)
    processes = 1 if rank_info().size > 1 else None
    if keys is None:
        return [bindable(tc) for tc in pm.run(list(circuits), num_processes=processes)]
    out: list[QuantumCircuit | None] = [None] * len(circuits)
    todo: list[int] = []
    with _lock:
        for i, key in enumerate(keys):
            hit = None
            if key is not None:
                hit = _transpiled.get((spec, optimization_level, key))
                if hit is not None:
                    _transpiled.move_to_end((spec, optimization_level, key))
                    out[i] = hit.copy()
            if hit is None:
                todo.append(i)
    if todo:
        # A key given more than once in this call (the V1 Estimator's pairs of one
        # circuit) is transpiled once; the others get copies, as later calls would.
        first: dict[str, int] = {}
        run = []
        for i in todo:
            key = keys[i]
            if key is None or key not in first:
                if key is not None:
                    first[key] = i
                run.append(i)
        fresh = [bindable(tc) for tc in pm.run([circuits[i] for i in run], num_processes=processes)]
        with _lock:
            for i, tc in zip(run, fresh, strict=True):
                key = keys[i]
                if key is not None and len(tc.data) <= _CACHE_MAX_OPS:
                    _transpiled[(spec, optimization_level, key)] = tc
                    while len(_transpiled) > _CACHE_SIZE:
                        _transpiled.popitem(last=False)
                    tc = tc.copy()
                out[i] = tc
        for i in todo:
            key = keys[i]
            if out[i] is None and key is not None:
                same = out[first[key]]
                assert same is not None
                out[i] = same.copy()
    return [tc for tc in out if tc is not None]


def check_width(circuits: list[QuantumCircuit], spec: SimSpec) -> None:
    """Refuse a circuit wider than this rank's simulator can hold, before transpiling.

    Aer sizes its simulator to this node's memory (30 statevector qubits in
    24 GiB); the transpiler, given a wider circuit for that target, panics in
    Rust rather than raising. The message says why and what to change.

    Raises:
        UserError: With the circuit, its width, the limit and the memory needed.
    """
    from qshpc.aer.sizing import active_width

    limit = width_limit(spec)
    width, wide = max(((active_width(c), c) for c in circuits), key=lambda wc: wc[0])
    if width <= limit:
        return
    from qshpc.aer.sizing import GIB, estimate_memory_bytes

    need = ""
    if spec.method in ("statevector", "density_matrix", "unitary", "superop", "automatic"):
        method = "statevector" if spec.method == "automatic" else spec.method
        gib = estimate_memory_bytes(width, method, spec.precision) / GIB
        need = f" (it would need about {gib:,.0f} GiB)"
    split = ""
    if spec.method in ("statevector", "automatic") and spec.device == "CPU":
        split = _split_hint(width, limit)
    raise UserError(
        f"circuit {wide.name!r} acts on {width} qubits: more than the {limit} that "
        f"Aer's {spec.method} method can hold in this node's memory{need}; use fewer "
        "qubits, method='matrix_product_state' (low entanglement) or method='stabilizer' "
        f"(Clifford circuits){split}"
    )


def width_limit(spec: SimSpec) -> int:
    """The most qubits ``spec``'s simulator holds on this node (Aer's limit, cached)."""
    limit = _widths.get(spec)
    if limit is None:  # AerSimulator.num_qubits builds a Target each time: about 1 ms
        limit = _widths[spec] = int(get_simulator(spec).configuration().n_qubits)
    return limit


def _split_hint(width: int, limit: int) -> str:
    """What splitting the statevector over ranks would take, and what is missing for it."""
    from qshpc import settings
    from qshpc.aer.distributed.plan import MAX_SPLIT_RANKS, missing, ranks_needed

    k = ranks_needed(width, limit)
    if k > MAX_SPLIT_RANKS:  # no advice to split over a billion nodes
        return ""
    have = rank_info().size
    lacks = missing(k, have)
    if settings.DISTRIBUTE.get() == "never":
        lacks.insert(0, "QSHPC_DISTRIBUTE=never forbids it")
    state = "; ".join(lacks) if lacks else f"this job has {have} ranks and an MPI build of Aer"
    return (
        f"; or split its statevector over at least {k:,} ranks, each with this node's memory "
        f"({state}): SamplerV2/EstimatorV2 called from the program do that by themselves "
        "(QSHPC_DISTRIBUTE), and so does run_circuits in a task declared "
        "@distribute_task(target={'ranks': k}) (docs/distributed.md)"
    )


def warm() -> None:
    """Build the default simulator and level-1 pass manager now (about 0.1 s).

    Workers call this while rank 0 is still starting, so that the first task
    does not pay for it.
    """
    get_pass_manager(sim_spec(), 1)


def reset_caches() -> None:
    """Drop the cached simulators and pass managers (for tests)."""
    with _lock:
        _simulators.clear()
        _pass_managers.clear()
        _widths.clear()
        _transpiled.clear()


__all__ = [
    "METHODS",
    "PRECISIONS",
    "SimSpec",
    "aer_backend_names",
    "aer_option_names",
    "check_level",
    "check_width",
    "get_pass_manager",
    "get_simulator",
    "level_of",
    "reset_caches",
    "sim_spec",
    "transpile_for",
    "warm",
    "width_limit",
    "with_nearest_names",
]
