"""The SIGINT/SIGTERM a rank remembers from its first line, before its imports and MPI_Init.

Only ``os`` and ``signal`` here (and ``typing``, which the ``qshpc`` package has
loaded already): ``python -m qshpc run`` calls :func:`defer_signals` before it
imports anything else of qshpc, so the window in which a Ctrl-C kills a starting
rank with a traceback (and leaves the others in MPI_Init) is Python's own start.
:mod:`qshpc.runtime.program_main` (rank 0) and :mod:`qshpc.runtime.worker` read
what was remembered.
"""

from __future__ import annotations

import os
import signal
from typing import Any

#: The signals that ask a rank to stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: The environment variables an MPI launcher (mpiexec, srun --mpi) sets in each rank.
_MPI_ENV = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_FD")

#: The signals that asked this rank to stop, first first.
received: list[int] = []
#: The handlers in place before :func:`defer_signals` (submitit's, under Slurm).
before: dict[int, Any] = {}


def launched_by_mpi() -> bool:
    """True when an MPI launcher (mpiexec, srun --mpi) started this process."""
    env = os.environ
    return any(k in env for k in _MPI_ENV)


def remember(signum: int, frame: Any) -> None:
    """The handler of :func:`defer_signals`: the signal is noted, never raised."""
    received.append(signum)


def defer_signals() -> None:
    """From now on a SIGINT/SIGTERM is remembered, never raised (once or more: the same)."""
    for s in STOP_SIGNALS:
        old = signal.signal(s, remember)
        if old is not remember:
            before[s] = signal.SIG_DFL if old is None else old  # None: set outside Python


def defer_if_rank(argv: list[str]) -> None:
    """:func:`defer_signals` when this process is a rank of a job (``run`` under MPI)."""
    if argv[1:2] == ["run"] and launched_by_mpi():
        defer_signals()


def _child_defaults() -> None:
    """In a child forked without exec: Python's own handling of the stop signals again.

    A rank's handlers (:func:`remember`, the program's cancel, a worker's
    grace clock) mean nothing in a child that runs user code (a
    ``multiprocessing`` pool's worker). ``with multiprocessing.Pool() as pool``
    ends with ``pool.terminate()``, a SIGTERM to its workers: on main ac4d79c
    they outlived it (a worker's clock: 30 s each; rank 0's ``remember``:
    forever), and the task or program hung in the ``with``.
    """
    for s in (*STOP_SIGNALS, signal.SIGUSR2):
        handler = signal.getsignal(s)
        if str(getattr(handler, "__module__", "")).startswith("qshpc."):
            try:
                signal.signal(
                    s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL
                )
            except (OSError, ValueError):
                pass


os.register_at_fork(after_in_child=_child_defaults)
