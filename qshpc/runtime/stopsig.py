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
from typing import Any, NoReturn

#: The signals that ask a rank to stop.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: SIGHUP when it stops this process's job too (:func:`stop_on_hangup`), else empty.
hangup: list[int] = []
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


def stop_on_hangup() -> None:
    """A SIGHUP stops this process's job as a SIGTERM does (unless it is ignored: ``nohup``).

    For ``qshpc run --workers 0``, whose one process is the whole job: a terminal
    that closes (an ssh session lost) sends SIGHUP to its process group. On main
    2dca53c that killed it at once (exit 129), the job left RUNNING, later FAILED
    'the job's processes ended without finalizing the store', where every other
    shape of ``qshpc run`` stores CANCELED, 'received SIGHUP'. In an MPI rank, only
    rank 0 of ``qshpc run``'s own launcher, from :func:`qshpc.runtime.rank0.run_job`
    on (that launcher passes a hangup on to it as one, else as a SIGTERM); a user's
    mpiexec decides for its ranks.
    """
    if signal.SIGHUP not in hangup and signal.getsignal(signal.SIGHUP) == signal.SIG_DFL:
        hangup.append(signal.SIGHUP)


def stops_on_sigint() -> bool:
    """False while SIGINT is ignored: where this process started so (a script's background
    job, ``qshpc run p.py &``: the shell ignores it there), it stays ignored, as any
    program keeps it (review28 F15: a Ctrl-C meant for the script cancelled them)."""
    return signal.getsignal(signal.SIGINT) is not signal.SIG_IGN


def stop_signals() -> tuple[int, ...]:
    """The signals that stop this process's job: SIGTERM, SIGINT (unless ignored: see
    :func:`stops_on_sigint`), and SIGHUP when it does."""
    if stops_on_sigint():
        return (*STOP_SIGNALS, *hangup)
    return (signal.SIGTERM, *hangup)


def defer_signals() -> None:
    """From now on a SIGINT/SIGTERM is remembered, never raised (once or more: the same)."""
    for s in stop_signals():
        old = signal.signal(s, remember)
        if old is not remember:
            before[s] = signal.SIG_DFL if old is None else old  # None: set outside Python


def defer_if_rank(argv: list[str]) -> None:
    """:func:`defer_signals` when this process is a rank of a job (``run`` under MPI)."""
    if argv[1:2] == ["run"] and launched_by_mpi():
        defer_signals()


#: Not empty in a child forked without exec from a rank (``os.fork``, multiprocessing's fork).
forked: list[int] = []


def end_fork(what: str, exc: BaseException | None, text: str | None = None) -> NoReturn:
    """End a child forked from a rank that left ``what`` (the program, a task) instead of ending.

    Such a child (``if os.fork() == 0: ...`` without ``os._exit``, or one that
    raised) came back into the rank's own code: on main 2dca53c a program's
    child that raised ended the job FAILED with its error while the parent ran
    on, a task's child that returned went on as a second worker, and the job's
    store was written by two processes (DAMAGED: its results lost). It ends
    here as a plain Python process would at the end of its script: the
    traceback of an exception (``text``, when given), exit code 0, 1 or
    ``sys.exit``'s (130 after a KeyboardInterrupt); one line says why.
    """
    import sys

    code: Any = 0
    if isinstance(exc, SystemExit):
        code = exc.code if exc.code is None or isinstance(exc.code, int) else 1
        if not isinstance(exc.code, (int, type(None))):
            print(exc.code, file=sys.stderr)
    elif isinstance(exc, KeyboardInterrupt):
        code = 128 + signal.SIGINT
    elif exc is not None:
        import traceback

        try:  # (``text``: the traceback as the rank would show it)
            sys.stderr.write(text or "".join(traceback.format_exception(exc)))
        except (OSError, ValueError, AttributeError):
            pass
        code = 1
    try:
        sys.stderr.write(
            f"qshpc: warning: a child process (pid {os.getpid()}) forked in {what} left it "
            "instead of ending: it ends here (end such a child with os._exit)\n"
        )
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    os._exit(code or 0)


#: The signals a rank handles itself, which a forked child must get Python's defaults of.
_FORK_SIGNALS = (*STOP_SIGNALS, signal.SIGUSR2, signal.SIGHUP)
#: The forking thread's signal mask from before :func:`_block_for_fork` (one fork at a
#: time: Python holds its import lock from the ``before`` hooks to the ``after`` ones).
_mask: list[Any] = []


def _block_for_fork() -> None:
    """Before a fork: the stop signals wait (blocked) until the child has its defaults.

    CPython's C handler only notes a signal for the Python handler to run later,
    and a child clears what was noted at its start (``_PySignal_AfterFork``); its
    at-fork hooks then run the handler it inherited at their first bytecode. A
    SIGTERM that reached a child in that window was lost or went to the rank's
    handler: on main 724bf2f ``with Pool(2): pass`` repeated 30 times hung
    ``mpiexec -n 3`` in 4 runs of 4 (the pool's ``terminate`` waits for a worker
    that never got its SIGTERM), ``with Pool(2) as p: p.map(...)`` once in 20.
    Blocked, the signal stays with the kernel and reaches the child after
    :func:`_child_defaults`, which ends it as it would end a plain process.
    """
    try:
        _mask.append(signal.pthread_sigmask(signal.SIG_BLOCK, _FORK_SIGNALS))
    except (OSError, ValueError):
        pass


def _unblock_after_fork() -> None:
    """After a fork (parent and child): the mask from before :func:`_block_for_fork`."""
    if _mask:
        signal.pthread_sigmask(signal.SIG_SETMASK, _mask.pop())


def _child_defaults() -> None:
    """In a child forked without exec: Python's own handling of the stop signals again.

    A rank's handlers (:func:`remember`, the program's cancel, a worker's
    grace clock) mean nothing in a child that runs user code (a
    ``multiprocessing`` pool's worker). ``with multiprocessing.Pool() as pool``
    ends with ``pool.terminate()``, a SIGTERM to its workers: on main ac4d79c
    they outlived it (a worker's clock: 30 s each; rank 0's ``remember``:
    forever), and the task or program hung in the ``with``. The signals are
    blocked from before the fork (:func:`_block_for_fork`) to the end of this
    hook: one sent meanwhile is acted on now, with the defaults in place.
    """
    forked.append(1)
    try:
        for s in _FORK_SIGNALS:
            handler = signal.getsignal(s)
            if str(getattr(handler, "__module__", "")).startswith("qshpc."):
                try:
                    signal.signal(
                        s, signal.default_int_handler if s == signal.SIGINT else signal.SIG_DFL
                    )
                except (OSError, ValueError):
                    pass
    finally:
        _unblock_after_fork()


os.register_at_fork(
    before=_block_for_fork, after_in_parent=_unblock_after_fork, after_in_child=_child_defaults
)
