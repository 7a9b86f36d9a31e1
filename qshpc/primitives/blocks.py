"""Blocks of PUB rows as tasks: the task functions, and how a run is spread or done here.

On rank 0 of a program with workers, each block is one call of
:data:`sampler_block` or :data:`estimator_block` (qshpc tasks: batched,
stored, retried, grouped like any other). Everywhere else (plain ``python``,
``--workers 0``, inside a task) the same kernels run here, one block per PUB.
A circuit travels as its QPY bytes with their SHA-256, the key under which
each rank keeps it analysed and transpiled (:mod:`qshpc.aer.v2.prepared`).

Those bytes hold each Parameter's UUID, random in every process, so the
result cache (:mod:`qshpc.cache.keys`) must not key a block by them: on rank 0
they are a :class:`CircuitQPY` (and the SHA-256 a :class:`CircuitKey`), which
the cache keys by :func:`qshpc.cache.keys.circuit_digest` of the circuit
(parameters by name), taken only when the cache asks. Both pickle as plain
``bytes`` and ``str``: the workers get the circuit's own QPY, unchanged.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from qshpc.aer.simulator import sim_spec
from qshpc.aer.v2 import assemble
from qshpc.aer.v2.estimate import estimate_block
from qshpc.aer.v2.prepared import key_of, prepare
from qshpc.aer.v2.pubs import EstimatorWork, PubError, SamplerWork, cut, memory_cap, sendable
from qshpc.aer.v2.sample import MAX_PROBABILITY_DOUBLES, sample_block
from qshpc.errors import UserError
from qshpc.primitives.options import BlockConfig, for_circuit
from qshpc.program.api import distribute_task
from qshpc.task.context import current_task, job_seed, rank_info
from qshpc.task.seeding import derive_seed

#: Rows of one estimator block at most (each row holds one float per Pauli in Aer's result).
ESTIMATOR_MAX_ROWS = 1 << 16
#: A PUB with few rows is split by elements only into parts of at least this many.
MIN_SPLIT_ELEMENTS = 16


@distribute_task(name="qshpc.SamplerV2")
def sampler_block(
    qpy: bytes,
    key: str,
    values: np.ndarray,
    shots: int,
    seed: int,
    pub: int,
    start: int,
    config: BlockConfig,
) -> list[np.ndarray]:
    """Shots of rows ``start ..`` of PUB ``pub``: per register, ``uint8 (rows, shots, bytes)``."""
    spec = sim_spec(config.method, config.device, config.precision)
    prepared = prepare(key, qpy, spec, config.level)
    return sample_block(prepared, values, shots, seed, pub, start, config.run_options, config.noisy)


@distribute_task(name="qshpc.EstimatorV2")
def estimator_block(
    qpy: bytes,
    key: str,
    values: np.ndarray,
    observables: list[tuple[list[str], np.ndarray]],
    elem_row: np.ndarray,
    elem_obs: np.ndarray,
    config: BlockConfig,
) -> np.ndarray:
    """Exact expectation values of a block's elements (see :func:`estimate_block`)."""
    spec = sim_spec(config.method, config.device, config.precision)
    prepared = prepare(key, qpy, spec, config.level)
    return estimate_block(prepared, values, observables, elem_row, elem_obs, config.run_options)


def sampler_split(
    qpy: bytes,
    key: str,
    values: np.ndarray,
    shots: int,
    seed: int,
    pub: int,
    start: int,
    config: BlockConfig,
) -> list[np.ndarray]:
    """:data:`sampler_block` over the ranks the call holds (the statevector split over them)."""
    from qshpc.aer.v2.split import sample_split

    spec = sim_spec(config.method, config.device, config.precision)
    prepared = prepare(key, qpy, spec, config.level)
    return sample_split(prepared, values, shots, seed, pub, start, _held())


def estimator_split(
    qpy: bytes,
    key: str,
    values: np.ndarray,
    observables: list[tuple[list[str], np.ndarray]],
    elem_row: np.ndarray,
    elem_obs: np.ndarray,
    config: BlockConfig,
) -> np.ndarray:
    """:data:`estimator_block` over the ranks the call holds (the statevector split over them)."""
    from qshpc.aer.v2.split import estimate_split

    spec = sim_spec(config.method, config.device, config.precision)
    prepared = prepare(key, qpy, spec, config.level)
    return estimate_split(prepared, values, observables, elem_row, elem_obs, _held())


def _internal(task: Any) -> Any:
    """Mark ``task`` as the primitives' own: its calls take task ids ``p0``, ``p1``...

    A ``run`` on rank 0 with workers sends blocks as tasks, one without (plain
    ``python``, one rank) runs them here: were the blocks counted with the
    program's calls, the program's later calls would get other ids, so other
    seeds (``current_task().seed``, an unseeded primitive in a task), on one rank
    than on three.
    """
    task.id_prefix = "p"
    return task


sampler_block = _internal(sampler_block)
estimator_block = _internal(estimator_block)


def _held() -> int:
    task = current_task()
    step = None if task is None else task.step
    if step is None:  # pragma: no cover - the primitives send split blocks as ranks=k calls
        raise UserError("a split block runs in a call that holds ranks (target={'ranks': k})")
    return int(step.size)


_split_tasks: dict[tuple[str, int, bool | None], Any] = {}


def split_task(kind: str, ranks: int, cache: bool | None = None) -> Any:
    """The task of a PUB split over ``ranks`` ranks: one ``target={"ranks": k}`` call per PUB."""
    task = _split_tasks.get((kind, ranks, cache))
    if task is None:
        func = sampler_split if kind == "sampler" else estimator_split
        name = "qshpc.SamplerV2.split" if kind == "sampler" else "qshpc.EstimatorV2.split"
        task = _internal(distribute_task({"ranks": ranks}, name=name, cache=cache)(func))
        _split_tasks[(kind, ranks, cache)] = task
    return task


_block_tasks: dict[tuple[str, bool | None], Any] = {}


def block_task(kind: str, cache: bool | None = None) -> Any:
    """The block task of ``kind`` with the primitive's ``cache`` option.

    The same function under another switch: its calls have the same cache keys.
    """
    if cache is None:
        return sampler_block if kind == "sampler" else estimator_block
    task = _block_tasks.get((kind, cache))
    if task is None:
        base = sampler_block if kind == "sampler" else estimator_block
        task = _internal(distribute_task(name=base.name, cache=cache)(base.func))
        _block_tasks[(kind, cache)] = task
    return task


def cached_here(task: Any) -> Any:
    """``task`` when its calls made in this process go through the result cache, else None.

    Where the blocks run in this process (plain ``python``, ``--workers 0``,
    inside a task), a block whose task the cache covers is a call of that task
    like any other: looked up, recorded in the job's store (a hit with its
    provenance), stored. The others run the kernels directly, as before.
    """
    from qshpc.program import backend

    cache_for = getattr(backend.current(), "cache_for", None)
    return task if cache_for is not None and cache_for(task) is not None else None


# -- seeds ---------------------------------------------------------------------

_runs = itertools.count()
_local = threading.local()


def check_seed(explicit: Any, run_options: dict[str, Any]) -> Any:
    """The seed given (the primitive's, else ``run_options["seed_simulator"]``), checked.

    Called by ``run`` before anything starts (a ``mode=`` job too: a bad seed failed the
    job it had started).

    Raises:
        PubError: A seed that is not a non-negative int, a numpy Generator or None (a
            ``ValueError`` and a ``TypeError``, as Qiskit's samplers raise for a seed that
            is not an int or is negative).
    """
    if explicit is None:
        explicit = run_options.get("seed_simulator")
    if explicit is None or isinstance(explicit, np.random.Generator):
        return explicit
    if isinstance(explicit, bool) or not isinstance(explicit, (int, np.integer)) or explicit < 0:
        raise PubError(f"seed must be a non-negative int or None, got {explicit!r}")
    return explicit


def resolve_seed(explicit: Any, run_options: dict[str, Any]) -> int:
    """The seed of one ``run``: recorded in the result's metadata, so any run can be repeated.

    In order: the primitive's ``seed`` (an int, or a numpy Generator to draw one
    from), Aer's ``run_options["seed_simulator"]``, a seed derived from the running
    task's seed (inside a task) or from the job seed (``--seed``) and the number
    of primitive runs before this one, else a fresh random one.

    Raises:
        PubError: A seed that is not a non-negative int (see :func:`check_seed`).
    """
    explicit = check_seed(explicit, run_options)
    if isinstance(explicit, np.random.Generator):
        return int(explicit.integers(0, 2**63))
    if explicit is not None:
        return int(explicit)
    task = current_task()
    if task is not None and task.seed is not None:
        ident = (task.task_id, task.attempt)
        if getattr(_local, "task", None) != ident:
            _local.task, _local.count = ident, itertools.count()
        return derive_seed(task.seed, f"primitive-{next(_local.count)}")
    seed = job_seed()
    if seed is not None and task is None:
        return derive_seed(seed, f"primitive-{next(_runs)}")
    return secrets.randbits(63)


# -- where blocks run ------------------------------------------------------------


def worker_count() -> int:
    """Worker ranks this call can spread blocks over (0: run them here)."""
    if current_task() is not None:
        return 0
    info = rank_info()
    return info.size - 1 if info.rank == 0 else 0


class CircuitQPY(bytes):
    """A circuit's own QPY bytes, keyed in the result cache by the circuit's stable digest.

    Pickles as plain ``bytes``. ``circuit`` is the circuit the bytes were
    dumped from, in this call (a run dumps and submits at once).
    """

    _circuit: Any
    _digest: bytes | None

    def __new__(cls, data: bytes, circuit: Any) -> CircuitQPY:
        self = super().__new__(cls, data)
        self._circuit = circuit
        self._digest = None
        return self

    def __reduce__(self) -> tuple[type[bytes], tuple[bytes]]:
        return bytes, (bytes(self),)

    @property
    def circuit(self) -> Any:
        """The circuit these bytes were dumped from (a block run in this process uses it)."""
        return self._circuit

    def __qshpc_cache_digest__(self) -> bytes:
        """:func:`qshpc.cache.keys.circuit_digest` of the circuit (the same in every process)."""
        if self._digest is None:
            from qshpc.cache.keys import circuit_digest

            self._digest = circuit_digest(self._circuit)
        return self._digest


class CircuitKey(str):
    """The SHA-256 of a :class:`CircuitQPY`: nothing of its own for the result cache.

    It follows from the QPY bytes beside it, whose stable digest the cache
    key holds already; its text changes with the Parameters' random UUIDs.
    Pickles as plain ``str``.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[type[str], tuple[str]]:
        return str, (str(self),)

    def __qshpc_cache_digest__(self) -> bytes:
        return b""


class _Circuits:
    """QPY bytes and key of each distinct circuit object of a run (dumped once)."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[Any, CircuitQPY, CircuitKey]] = {}

    def get(self, circuit: Any) -> tuple[CircuitQPY, CircuitKey]:
        hit = self._seen.get(id(circuit))
        if hit is None or hit[0] is not circuit:
            from qshpc.store import _qpy

            sent = sendable(circuit)  # metadata QPY cannot write (np.int64) stays on rank 0
            qpy = CircuitQPY(_qpy.dump(sent), sent)
            hit = self._seen[id(circuit)] = (circuit, qpy, CircuitKey(key_of(qpy)))
        return hit[1], hit[2]


#: The refs of a run's blocks, how to assemble their outputs, and the PUB of each ref.
Submitted = tuple[list[Any], Callable[[list[Any]], Any], list[int]]


def spread_sampler(
    work: Sequence[SamplerWork],
    seed: int,
    config: BlockConfig,
    workers: int,
    per_block: int | None,
    wide: dict[int, int] | None = None,
    cache: bool | None = None,
) -> Submitted:
    """Send one task per block; return the refs and how to assemble their outputs.

    A PUB in ``wide`` (index -> ranks) is one ``ranks=k`` call of all its rows;
    ``cache``: the primitive's option (see :func:`block_task`).
    """
    from qshpc.aer.circuits import prepare_exact

    circuits = _Circuits()
    caps = [
        memory_cap(len(prepare_exact(w.runnable, unshadowed=True).qubits), MAX_PROBABILITY_DOUBLES)
        for w in work
    ]
    blocks = cut([w.size for w in work], workers, per_block, caps)
    if wide:
        blocks = [b for b in blocks if b[0] not in wide]
        blocks += [(pub, 0, work[pub].size) for pub in sorted(wide)]
    configs = [for_circuit(config, w.circuit) for w in work]  # method="automatic": per PUB
    refs = []
    for pub, start, stop in blocks:
        w = work[pub]
        qpy, key = circuits.get(w.circuit)
        if wide and pub in wide:
            task = split_task("sampler", wide[pub], cache)
        else:
            task = block_task("sampler", cache)
        refs.append(task(qpy, key, w.values[start:stop], w.shots, seed, pub, start, configs[pub]))

    def finish(outputs: list[Any]) -> Any:
        per_pub: list[list[tuple[int, int, list[np.ndarray]]]] = [[] for _ in work]
        for (pub, start, stop), arrays in zip(blocks, outputs, strict=True):
            per_pub[pub].append((start, stop, arrays))
        results = [
            assemble.sampler_pub_result(
                w, per_pub[w.index], _simulator(configs[w.index], per_pub[w.index])
            )
            for w in work
        ]
        return assemble.primitive_result(results, seed)

    return refs, finish, [pub for pub, _, _ in blocks]


def spread_estimator(
    work: Sequence[EstimatorWork],
    seed: int,
    config: BlockConfig,
    workers: int,
    per_block: int | None,
    wide: dict[int, int] | None = None,
    cache: bool | None = None,
) -> Submitted:
    """Send one task per block of parameter rows; return the refs and the assembly.

    A PUB with fewer rows than the tasks the workers want (one row against a
    thousand observables, say) has its elements split further, so that every
    worker gets some (each such task simulates its rows again: cheap next to
    the observables). A PUB in ``wide`` (index -> ranks) is one ``ranks=k`` call
    of all its elements; ``cache``: the primitive's option (see :func:`block_task`).
    """
    circuits = _Circuits()
    caps = [ESTIMATOR_MAX_ROWS] * len(work)
    blocks = cut([w.rows for w in work], workers, per_block, caps)
    if wide:
        blocks = [b for b in blocks if b[0] not in wide]
    per_pub_blocks = [0] * len(work)
    for pub, _, _ in blocks:
        per_pub_blocks[pub] += 1
    configs = [for_circuit(config, w.circuit) for w in work]  # method="automatic": per PUB
    refs = []
    block = block_task("estimator", cache)
    picked: list[tuple[int, np.ndarray]] = []
    for pub in sorted(wide or ()):
        w = work[pub]
        qpy, key = circuits.get(w.circuit)
        task = split_task("estimator", (wide or {})[pub], cache)
        refs.append(task(qpy, key, w.values, w.observables, w.elem_row, w.elem_obs, configs[pub]))
        picked.append((pub, np.arange(len(w.elem_row))))
    for pub, start, stop in blocks:
        w = work[pub]
        qpy, key = circuits.get(w.circuit)
        elements = w.elements_of(start, stop)
        split = 1
        if per_block is None and per_pub_blocks[pub] < 4 * workers:
            wanted = -(-4 * workers // per_pub_blocks[pub])
            split = max(1, min(wanted, len(elements) // MIN_SPLIT_ELEMENTS))
        for part in np.array_split(elements, split) if split > 1 else [elements]:
            rows, local_row = np.unique(w.elem_row[part], return_inverse=True)
            used, local_obs = np.unique(w.elem_obs[part], return_inverse=True)
            observables = [w.observables[int(o)] for o in used]
            refs.append(
                block(qpy, key, w.values[rows], observables, local_row, local_obs, configs[pub])
            )
            picked.append((pub, part))

    def finish(outputs: list[Any]) -> Any:
        per_pub: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in work]
        for (pub, elements), evs in zip(picked, outputs, strict=True):
            per_pub[pub].append((elements, evs))
        results = [
            assemble.estimator_pub_result(
                w, per_pub[w.index], seed, _simulator(configs[w.index], per_pub[w.index])
            )
            for w in work
        ]
        return assemble.primitive_result(results, seed)

    return refs, finish, [pub for pub, _ in picked]


@contextmanager
def pub_errors(pub: int) -> Iterator[None]:
    """Name PUB ``pub`` in an error raised while it runs here (as a block's error names it).

    A task's error (a block run as a cached call) gets ``PUB i: `` before its message;
    a qshpc ``UserError`` (Aer's method cannot run the circuit...) becomes a
    ``PubError`` with it; any other error gets a note naming the PUB.
    """
    from qshpc.errors import TaskError
    from qshpc.primitives.jobs import name_pub

    try:
        yield
    except TaskError as exc:
        name_pub(exc, pub)
        raise
    except PubError:
        raise
    except UserError as exc:
        raise PubError(f"PUB {pub}: {exc}") from exc
    except Exception as exc:
        exc.add_note(f"(while PUB {pub} ran)")
        raise


def _simulator(config: BlockConfig, blocks: Sequence[Any]) -> dict[str, Any]:
    """A PUB result's ``simulator_metadata``: the run's simulator and the PUB's task count.

    ``device``, when one was asked, is the device it resolves to (``"CPU"`` where a GPU
    was asked and none is usable: the blocks ran there, after the warning), not the one
    asked. Resolved here, as each rank resolves it (the same build and GPUs per node; each
    task's own is in its provenance, ``qshpc report``).
    """
    from qshpc.aer.device import resolve_device

    device = None if config.device is None else resolve_device(config.device)[0]
    return assemble.simulator_metadata(
        config.method, config.precision, device, config.noisy, len(blocks)
    )


def inline_sampler(
    work: Sequence[SamplerWork],
    seed: int,
    config: BlockConfig,
    wide: dict[int, int] | None = None,
    task: Any = None,
) -> Any:
    """Run every PUB here, one block each (a PUB in ``wide`` over the ranks this call holds).

    ``task``: the block task whose calls the result cache covers here
    (:func:`cached_here`): each PUB not in ``wide`` is then one call of it (the
    key and record of the same block sent to a worker), else None.
    """
    given = config
    circuits = _Circuits()
    results = []
    for w in work:
        with pub_errors(w.index):
            config = for_circuit(given, w.circuit)  # method="automatic": per PUB
            spec = sim_spec(config.method, config.device, config.precision)
            qpy, key = circuits.get(w.circuit)
            if task is not None and not (wide and w.index in wide):
                ref = task(qpy, key, w.values, w.shots, seed, w.index, 0, config)
                results.append(
                    assemble.sampler_pub_result(
                        w, [(0, w.size, ref.result())], _simulator(config, [w])
                    )
                )
                continue
            prepared = prepare(key, w.circuit, spec, config.level)
            if wide and w.index in wide:
                from qshpc.aer.v2.split import sample_split

                arrays = sample_split(prepared, w.values, w.shots, seed, w.index, 0, wide[w.index])
            else:
                arrays = sample_block(
                    prepared, w.values, w.shots, seed, w.index, 0, config.run_options, config.noisy
                )
            results.append(
                assemble.sampler_pub_result(w, [(0, w.size, arrays)], _simulator(config, [w]))
            )
    return assemble.primitive_result(results, seed)


def inline_estimator(
    work: Sequence[EstimatorWork],
    seed: int,
    config: BlockConfig,
    wide: dict[int, int] | None = None,
    task: Any = None,
) -> Any:
    """Run every PUB here, one block each (a PUB in ``wide`` over the ranks this call holds).

    ``task``: as for :func:`inline_sampler`.
    """
    given = config
    circuits = _Circuits()
    results = []
    for w in work:
        with pub_errors(w.index):
            config = for_circuit(given, w.circuit)  # method="automatic": per PUB
            spec = sim_spec(config.method, config.device, config.precision)
            qpy, key = circuits.get(w.circuit)
            if task is not None and not (wide and w.index in wide):
                ref = task(qpy, key, w.values, w.observables, w.elem_row, w.elem_obs, config)
                evs, everything = ref.result(), np.arange(len(w.elem_row))
                results.append(
                    assemble.estimator_pub_result(
                        w, [(everything, evs)], seed, _simulator(config, [w])
                    )
                )
                continue
            prepared = prepare(key, w.circuit, spec, config.level)
            if wide and w.index in wide:
                from qshpc.aer.v2.split import estimate_split

                evs = estimate_split(
                    prepared, w.values, w.observables, w.elem_row, w.elem_obs, wide[w.index]
                )
            else:
                evs = estimate_block(
                    prepared, w.values, w.observables, w.elem_row, w.elem_obs, config.run_options
                )
            everything = np.arange(len(w.elem_row))
            results.append(
                assemble.estimator_pub_result(w, [(everything, evs)], seed, _simulator(config, [w]))
            )
    return assemble.primitive_result(results, seed)


__all__ = [
    "CircuitKey",
    "CircuitQPY",
    "block_task",
    "cached_here",
    "check_seed",
    "estimator_block",
    "estimator_split",
    "inline_estimator",
    "inline_sampler",
    "resolve_seed",
    "sampler_block",
    "sampler_split",
    "split_task",
    "spread_estimator",
    "spread_sampler",
    "worker_count",
]
