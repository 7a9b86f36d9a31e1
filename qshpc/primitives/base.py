"""What SamplerV2 and EstimatorV2 share: the ``mode=`` check, width checks, where work runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from qshpc.aer.v2.pubs import PubError
from qshpc.primitives.jobs import LocalJob, TasksJob, new_id
from qshpc.primitives.options import BlockConfig, Options, for_circuit


class PrimitiveSettings:
    """The ``seed``, ``options`` and ``mode`` properties both primitives expose."""

    _seed: Any
    _options: Options
    _mode: Any

    @property
    def seed(self) -> Any:
        """The seed given at construction (None: see the class doc)."""
        return self._seed

    @property
    def options(self) -> Options:
        """The options (Aer's names)."""
        return self._options

    @property
    def mode(self) -> Any:
        """The client ``run`` starts jobs on, or None."""
        return self._mode


def check_mode(mode: Any) -> Any:
    """Accept None or a qshpc client (an object with ``run(program, arguments, seed)`` and ``job``).

    Raises:
        PubError: ``mode`` is something else (a backend, a session, a string...).
    """
    if mode is None:
        return None
    if (
        callable(getattr(mode, "run", None))
        and callable(getattr(mode, "job", None))
        and not (isinstance(mode, type))
    ):
        return mode
    raise PubError(
        f"mode= takes a qshpc client such as LocalClient(workers=4) or "
        f"SlurmClient(nodes=2, ntasks_per_node=8), or None to run on the ranks of the "
        f"program calling it; got {mode!r} ({type(mode).__name__})"
    )


def check_widths(
    circuits: Sequence[Any],
    config: BlockConfig,
    kind: str = "sampler",
    ranks: int | None = None,
    where: str | None = None,
) -> dict[int, int]:
    """Which PUBs run split over ranks, and over how many; refuse those that can run nowhere.

    A PUB's circuit runs on one rank when it fits this rank's simulator and
    ``QSHPC_DISTRIBUTE`` does not ask for more (:func:`qshpc.aer.distributed.plan.ranks_for`);
    otherwise over k ranks, when the job has them (``ranks``), an MPI build of Aer
    is installed and (for the sampler) the shots can be drawn from the exact final state.

    Args:
        circuits: The PUBs' circuits.
        config: The primitive's simulator settings.
        kind: ``"sampler"`` or ``"estimator"``.
        ranks: Ranks the job (or the running call) can hold; None: not known here
            (the job checks when it runs).
        where: Why no ranks can be held here at all, or None.

    Returns:
        PUB index -> ranks, for the PUBs that run distributed (empty for most runs).

    Raises:
        PubError: With the PUB, the width, the limit and the memory it would need, or
            what a split lacks (ranks, the MPI build, an exact final state).
    """
    from qshpc import settings
    from qshpc.aer.distributed.plan import one_node_lacks, ranks_for, refusal
    from qshpc.aer.simulator import check_width, sim_spec, width_limit
    from qshpc.aer.sizing import active_width
    from qshpc.errors import UserError

    mode = settings.DISTRIBUTE.get()
    wide: dict[int, int] = {}
    for i, circuit in enumerate(circuits):
        spec = sim_spec(*_method_device_precision(for_circuit(config, circuit)))
        limit = width_limit(spec)
        # a 127-qubit ISA circuit on 5 qubits: 5 (its qubits only measured read 0, unless
        # noisy: then their measurements stay, sampler_work)
        width = active_width(circuit, not config.noisy)
        if width <= limit and mode == "auto":
            continue  # it fits, nothing forces a split: as before
        k = ranks_for(width, limit, spec.method, spec.device, spec.precision, mode)
        if k == 1:
            try:
                check_width([circuit], spec)
            except UserError as exc:
                raise PubError(f"PUB {i}: {exc}") from None
            continue
        lacks = _split_lacks(circuit, config, kind, k, ranks, where)
        if width > limit and where is None:
            lacks = one_node_lacks(lacks, width, k, spec.precision)
        if lacks:
            why = refusal(circuit.name, width, limit, k, spec, lacks)
            raise PubError(f"PUB {i}: {why}{_clifford_hint(circuit, config, width, limit)}")
        wide[i] = k
    return wide


def check_operations(circuits: Sequence[Any], config: BlockConfig) -> None:
    """Refuse a PUB whose circuit holds an operation no rank can run or transpile.

    Raises:
        PubError: Naming the PUB, the circuit and the operation, before any task runs
            (it failed the transpile on the worker that met it, after others ran).
    """
    from qshpc.aer.isa import untranspilable
    from qshpc.aer.simulator import sim_spec

    for i, circuit in enumerate(circuits):
        spec = sim_spec(*_method_device_precision(for_circuit(config, circuit)))
        reason = untranspilable(circuit, spec)
        if reason is not None:
            raise PubError(f"PUB {i}: circuit {circuit.name!r} cannot run on Aer: {reason}")


def _clifford_hint(circuit: Any, config: BlockConfig, width: int, limit: int) -> str:
    """For a Clifford circuit too wide for the default statevector: the method that runs it."""
    from qshpc.aer.isa import automatic_method

    if width <= limit or config.method != "statevector" or config.noisy:
        return ""
    if automatic_method(circuit) != "stabilizer":
        return ""
    return (
        "; it is a Clifford circuit: options={'backend_options': {'method': 'automatic'}} "
        "runs it on the stabilizer method, as Aer's primitives do by default"
    )


def _method_device_precision(config: BlockConfig) -> tuple[str, str | None, str]:
    return config.method, config.device, config.precision


def _split_lacks(
    circuit: Any, config: BlockConfig, kind: str, k: int, ranks: int | None, where: str | None
) -> list[str]:
    """What splitting ``circuit`` over ``k`` ranks lacks here (empty: nothing)."""
    from qshpc.aer.circuits import prepare_exact
    from qshpc.aer.distributed.plan import missing
    from qshpc.task.context import current_task

    in_task = current_task() is not None
    lacks = missing(k, k if ranks is None else ranks, where, in_task)
    if kind == "sampler":
        plan = prepare_exact(circuit)
        exact = "a split circuit is sampled with its final measurements only, and this one"
        if not plan.exact:
            lacks.append(f"{exact} cannot be: {plan.reason}")
    if config.noisy:
        lacks.append("a split circuit runs without a noise model")
    return lacks


def held_ranks() -> tuple[int, str | None]:
    """Ranks a primitive called here can split a circuit over, and why none when none can.

    On rank 0 of a program: the job's ranks (a ``ranks=k`` call holds k of them).
    Inside a task: the ranks the call holds (``target={"ranks": k}``).
    """
    from qshpc.task.context import current_task, rank_info

    task = current_task()
    if task is None:
        info = rank_info()
        if info.rank == 0:
            return info.size, None
        return 1, "a worker outside a task cannot hold ranks"
    step = task.step
    if step is None:
        return 1, (
            "inside a task that holds no ranks: call SamplerV2/EstimatorV2 from the program, "
            "or declare the task @distribute_task(target={'ranks': k})"
        )
    return int(step.size), None


def run_here_or_spread(
    kind: str,
    work: Sequence[Any],
    config: BlockConfig,
    inline: Callable[[dict[int, int], Any], Any],
    spread: Callable[
        [int, dict[int, int]], tuple[list[Any], Callable[[list[Any]], Any], list[int]]
    ],
    block: Any = None,
) -> Any:
    """Spread the blocks over the workers (rank 0 of a program), else run them here.

    PUBs too wide for one rank (or forced by ``QSHPC_DISTRIBUTE``) run split over
    ranks: each as one ``target={"ranks": k}`` call from rank 0, or here over the
    ranks the running call holds (``inline`` and ``spread`` get ``{pub: k}``).

    ``block``: the block task; when the result cache covers its calls here,
    ``inline`` gets it (else None) and runs each block as a call of it, at once
    (in order with the program's other calls, whose ids and seeds then stay
    the same from run to run).

    Returns:
        A :class:`TasksJob` or a :class:`LocalJob`.
    """
    from qshpc.primitives.blocks import cached_here, worker_count
    from qshpc.task.context import current_task

    have, where = held_ranks()
    check_operations([w.circuit for w in work], config)
    wide = check_widths([w.circuit for w in work], config, kind, have, where)
    if wide and current_task() is not None:  # a call holding ranks uses them all
        every = 1 << (have.bit_length() - 1)
        wide = {pub: max(k, every) for pub, k in wide.items()}
    workers = worker_count()
    if workers > 0 and work:
        refs, finish, pubs = spread(workers, wide)
        return TasksJob(new_id(kind), refs, finish, pubs)
    task = cached_here(block) if block is not None else None
    return LocalJob(
        new_id(kind),
        lambda: inline(wide, task),
        run_now=task is not None or current_task() is not None,
    )


__all__ = ["check_mode", "check_operations", "check_widths", "held_ranks", "run_here_or_spread"]
