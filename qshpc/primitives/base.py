"""What SamplerV2 and EstimatorV2 share: the ``mode=`` check, width checks, where work runs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from qshpc.aer.v2.pubs import PubError
from qshpc.primitives.jobs import LocalJob, TasksJob, new_id
from qshpc.primitives.options import BlockConfig, Options


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


def check_widths(circuits: Sequence[Any], config: BlockConfig) -> None:
    """Refuse a circuit wider than the simulator of this rank, naming its PUB and the memory.

    Raises:
        PubError: With the PUB, the width, the limit and the memory it would need.
    """
    from qshpc.aer.simulator import check_width, sim_spec
    from qshpc.errors import UserError

    spec = sim_spec(config.method, config.device, config.precision)
    for i, circuit in enumerate(circuits):
        try:
            check_width([circuit], spec)
        except UserError as exc:
            raise PubError(f"PUB {i}: {exc}") from None


def run_here_or_spread(
    kind: str,
    work: Sequence[Any],
    config: BlockConfig,
    inline: Callable[[], Any],
    spread: Callable[[int], tuple[list[Any], Callable[[list[Any]], Any]]],
) -> Any:
    """Spread the blocks over the workers (rank 0 of a program), else run them here.

    Returns:
        A :class:`TasksJob` or a :class:`LocalJob`.
    """
    from qshpc.primitives.blocks import worker_count
    from qshpc.task.context import current_task

    check_widths([w.circuit for w in work], config)
    workers = worker_count()
    if workers > 0 and work:
        refs, finish = spread(workers)
        return TasksJob(new_id(kind), refs, finish)
    return LocalJob(new_id(kind), inline, run_now=current_task() is not None)


__all__ = ["check_mode", "check_widths", "run_here_or_spread"]
