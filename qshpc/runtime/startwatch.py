"""A watchdog over MPI's start: a rank whose MPI does not start says so and ends.

``MPI_Init`` can wait forever: a launcher whose wiring does not reach every
rank (``srun`` without the right ``--mpi``), a network between nodes that
drops the addresses MPI exchanges, a rank that never started. Slurm then keeps
the whole allocation until its time limit and nothing says why. mpi4py starts
MPI when ``mpi4py.MPI`` is imported and holds the GIL meanwhile, so no thread of
the rank runs and no signal handler either. The watchdog is therefore a forked
child (before MPI starts, so MPI never sees it): it waits on a pipe for the
rank to say that MPI started (:meth:`StartWatch.started`); when the limit
(``QSHPC_MPI_START_TIMEOUT_S``) passes first, it writes the error to the
rank's stderr, marks the job FAILED with it when the job folder exists (a
submitted job), and kills the rank with SIGKILL. When the rank ends, the pipe
closes and the child leaves.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from qshpc.runtime.procs import stat_fields


class StartWatch:
    """The watchdog of one rank's MPI start (:func:`watch` arms it).

    Args:
        child: The watchdog's pid.
        pipe: The write end the rank closes once MPI started.
    """

    def __init__(self, child: int, pipe: int) -> None:
        self.child = child
        self.pipe = pipe

    def started(self) -> None:
        """MPI started: the watchdog leaves; it is reaped by a thread, not waited for here."""
        if self.pipe < 0:
            return
        os.close(self.pipe)
        self.pipe = -1
        threading.Thread(target=_reap, args=(self.child,), name="qshpc-reap", daemon=True).start()


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # already reaped (a SIGCHLD handler of the program's)
        pass


def _who(env: Mapping[str, str]) -> str:
    """This rank as its launcher numbered it: ``MPI rank R``, or ``an MPI rank``."""
    rank = env.get("PMI_RANK") or env.get("OMPI_COMM_WORLD_RANK") or env.get("PMIX_RANK")
    return f"MPI rank {rank}" if rank else "an MPI rank"


def message(timeout_s: float, environ: dict[str, str] | None = None) -> str:
    """What the watchdog says: where MPI did not start, and what to do."""
    who = _who(os.environ if environ is None else environ)
    return (
        f"qshpc: error: MPI did not start within {timeout_s:g} s for {who} on host "
        f"{socket.gethostname()} (pid {os.getpid()}): MPI_Init or the ranks' first exchange "
        "is stuck. Usual causes: the launcher's wiring (srun needs --mpi=pmi2 for the PyPI "
        "mpich; `srun --mpi=list`), a rank that could not start, or a network between nodes "
        "that MPI cannot use; each rank's log says more (`qshpc logs JOB`). "
        "QSHPC_MPI_START_TIMEOUT_S sets how long to wait (0: forever)"
    )


def watch(timeout_s: float, job_dir: Path | None) -> StartWatch | None:
    """Arm the watchdog before MPI starts; None when ``timeout_s`` is 0 (wait forever)."""
    if timeout_s <= 0:
        return None
    import json  # noqa: F401  (mark_terminal's: the child must import nothing)

    from qshpc.jobs.paths import mark_terminal
    from qshpc.store import perms  # noqa: F401  (mark_terminal's, as json)

    text = message(timeout_s)
    parent = os.getpid()
    read_end, write_end = os.pipe()
    # Blocked across the fork: a stop signal sent meanwhile reaches the watchdog's own
    # handler (_wait), not the rank's, which it inherits until then.
    stops = tuple(s for s in _STOPS if signal.getsignal(s) is not signal.SIG_IGN)  # (nohup)
    # The rank's other Python handlers (a program's SIGUSR1 checkpoint handler): blocked
    # across the fork too, and never run in the watchdog (review22 F5: ``scancel
    # --signal=USR1`` reaches every process of the step; the handler ran there, and one
    # that raised ended the watchdog).
    inherited = _python_handled(stops)
    launcher = os.getppid()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, stops + inherited)
    child = os.fork()
    if child:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(read_end)
        return StartWatch(child, write_end)
    # the watchdog: only plain system calls from here (the rank may have threads)
    code = 0
    try:
        os.close(write_end)
        _ignore(inherited)
        asked = _wait(read_end, timeout_s, stops, parent, launcher)
        if asked is not None:
            if asked:
                text = stopped_message(asked, parent)
            os.write(2, (text + "\n").encode())
            if job_dir is not None and not _held_by_another(job_dir, parent):
                try:
                    mark_terminal(job_dir, "CANCELED" if asked else "FAILED", text)
                except OSError:
                    pass
            os.kill(parent, signal.SIGKILL)
    except BaseException:
        code = 1
    os._exit(code)


_STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _python_handled(stops: tuple[int, ...]) -> tuple[int, ...]:
    """The signals other than ``stops`` that have a Python handler in this process."""
    found = []
    for sig in signal.valid_signals():
        try:
            if sig not in stops and callable(signal.getsignal(sig)):
                found.append(sig)
        except (OSError, ValueError):  # a signal Python cannot look at
            continue
    return tuple(found)


def _ignore(sigs: tuple[int, ...]) -> None:
    """In the watchdog: the rank's Python handlers of ``sigs`` replaced (they stay blocked):
    ignored, SIGCHLD back to its default."""
    for sig in sigs:
        signal.signal(sig, signal.SIG_DFL if sig == signal.SIGCHLD else signal.SIG_IGN)


#: How often a watchdog whose rank was asked to stop looks whether its launcher is gone.
ORPHAN_POLL_S = 0.5


def _wait(
    read_end: int, timeout_s: float, stops: tuple[int, ...], rank: int, launcher: int
) -> int | None:
    """In the watchdog: None once the rank said MPI started (or ended); else the stop signal
    it was sent (0: none, the limit passed).

    A stop signal sent to the rank's process group reaches the watchdog too. It
    ended it (SIGTERM's default): the rank, held in ``MPI_Init`` by C code where its
    own handler never runs, then waited forever once its launcher was gone (two
    ranks of a job whose ``mpiexec`` was killed spun a core each for 17 minutes).
    The watchdog now takes the signals the rank does not ignore (``stops``:
    blocked across the fork, then only recorded, with a wakeup pipe that ends the
    wait, so that no burst of them can end the watchdog) and, once asked, ends the rank as soon
    as its ``launcher`` (its parent: hydra's proxy, slurmstepd) is gone: MPI can
    no longer start then. While the launcher lives MPI may still start (a late
    peer), and the rank then acts on the signal itself (CANCELED), as before.
    """
    got: list[int] = []

    def stop(signum: int, frame: object) -> None:
        got.append(signum)  # only recorded: a handler that raised could escape (review21 F3)

    wake_r, wake_w = os.pipe()
    for fd in (wake_r, wake_w):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_w)  # a signal makes the select below return
    for sig in stops:
        signal.signal(sig, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)  # (blocked by watch across the fork)
    deadline = time.monotonic() + timeout_s
    while True:
        asked = got[0] if got else 0
        left = max(deadline - time.monotonic(), 0)
        ready, _, _ = select.select(
            [read_end, wake_r], [], [], min(left, ORPHAN_POLL_S) if asked else left
        )
        if read_end in ready:
            return None
        if wake_r in ready:
            _drain(wake_r)
            if not asked:  # the first stop signal: from now on, watch the launcher
                continue
        if not asked or time.monotonic() >= deadline or _parent_of(rank) != launcher:
            return asked


def _drain(fd: int) -> None:
    """Empty the signal wakeup pipe (non-blocking)."""
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _parent_of(pid: int) -> int | None:
    """``pid``'s parent; None when unknown."""
    fields = stat_fields(pid)
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def stopped_message(signum: int, pid: int, environ: dict[str, str] | None = None) -> str:
    """What the watchdog says when a rank asked to stop lost its launcher before MPI started."""
    who = _who(os.environ if environ is None else environ)
    return (
        f"qshpc: error: {who} on host {socket.gethostname()} (pid {pid}) was asked "
        f"to stop ({signal.Signals(signum).name}) while MPI was starting, and its launcher "
        "ended before MPI started (MPI_Init cannot finish without it); the rank was ended "
        "(SIGKILL)"
    )


def _held_by_another(job_dir: Path, mine: int) -> bool:
    """The job's lock (``job.lock``, :mod:`qshpc.store.lock`) names a run that still lives.

    Then the job is that run's, and this rank's run (a second ``--job-dir`` of a job
    that runs) would have been refused it: marking it FAILED told ``qshpc status``
    and ``qshpc wait`` that a running job had failed (review20 F5). A holder here
    lives while its process does (a zombie does not); one on another host while it
    keeps the lock's time ahead (:func:`qshpc.store.lock.lapsed`). Plain system
    calls only (the watchdog is a fork of a rank that may have threads).
    """
    try:
        fd = os.open(job_dir / "job.lock", os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        parts = data.decode(errors="replace").strip().split("|")
        if len(parts) != 4:
            return False
        host, pid = parts[1], int(parts[2])
    except (OSError, ValueError):
        return False
    if host != socket.gethostname():  # alive while it keeps the lock fresh (lock.lapsed)
        try:
            return os.stat(job_dir / "job.lock").st_mtime + _CLOCK_SLOP_S >= time.time()
        except OSError:
            return False
    if pid == mine:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): alive
        return True
    return stat_fields(pid)[:1] not in ([b"Z"], [b"X"])  # (a zombie holds nothing)


#: :data:`qshpc.store.lock.CLOCK_SLOP_S` (not imported: the watchdog imports nothing).
_CLOCK_SLOP_S = 10.0


__all__ = ["StartWatch", "message", "watch"]
