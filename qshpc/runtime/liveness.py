"""Rank 0's view of its workers: what each holds, whether it is alive, and the goodbyes.

Every worker sends a heartbeat every ``QSHPC_HEARTBEAT_S`` (from a thread of
its own, so a long task does not silence it); rank 0 declares a worker lost
after ``QSHPC_WORKER_TIMEOUT_S`` without a message from it, and fails the calls
it held, naming the rank, host, pid and tasks. At the end, each live worker
says goodbye after STOP, so that rank 0 knows no message is left in flight
before ``MPI_Finalize`` (without every goodbye it leaves without finalizing).
A worker with results still on their way to the result cache writes them
first, reporting every second (``TAG_FLUSH``): rank 0 waits for its goodbye as
long as those reports come, and says on stderr how many are left.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qshpc.errors import TaskError
from qshpc.runtime.protocol import TAG_BYE, TAG_FLUSH, TAG_GONE, TAG_HEARTBEAT, Wiring

if TYPE_CHECKING:
    from qshpc.program.refs import TaskRef
    from qshpc.runtime.intake import Entry


class WorkerState:
    """One worker rank as the dispatcher sees it."""

    __slots__ = ("alive", "batches", "cpus", "funcs", "host", "last_seen", "objs", "pid", "rank",
                 "sends")  # fmt: skip

    def __init__(self, rank: int, host: str, pid: int, cpus: int = 1) -> None:
        self.rank = rank
        self.host = host
        self.pid = pid
        self.cpus = cpus  # cores this rank may use (a call's cpu target places it)
        self.alive = True
        self.last_seen = time.monotonic()
        self.sends: list[Any] = []  # requests of batches still being sent
        self.batches: dict[int, list[Entry]] = {}  # batch id -> its calls, until the last result
        self.funcs: set[int] = set()  # function ids this worker has
        self.objs: set[int] = set()  # object ids this worker has


class Liveness:
    """Heartbeats in, silent workers out.

    Args:
        wiring: Rank 0's wiring (heartbeats and goodbyes come on its plain world).
        workers: The workers' states, rank 1 first.
        timeout: Seconds of silence after which a worker is lost.
        records: Every rank's record from MPI's start (host, pid, start time, PID
            namespace): the workers of rank 0's host are watched (:mod:`qshpc.runtime.gone`).
    """

    def __init__(
        self,
        wiring: Wiring,
        workers: list[WorkerState],
        timeout: float,
        records: list[dict[str, Any]] | None = None,
    ) -> None:
        self.world = wiring.world
        self.any_source = wiring.any_source
        self.status = wiring.status()
        self.workers = workers
        self.timeout = timeout
        self.lost: list[str] = []  # one line per lost worker
        #: True while the goodbyes wait for workers writing their last results to the cache.
        self.flushing = False
        #: When the goodbyes began (monotonic), or None: a worker's first report comes soon after.
        self.bye_since: float | None = None
        from qshpc.runtime.gone import neighbours

        self.neighbours = neighbours(records, 0)  # rank -> (pid, start ticks), on this host

    def drain(self, tag: int) -> list[int]:
        """Receive every waiting heartbeat or goodbye; return their sources."""
        world, status, any_source = self.world, self.status, self.any_source
        sources: list[int] = []
        while True:
            msg = world.improbe(any_source, tag, status)
            if msg is None:
                return sources
            msg.recv()
            sources.append(status.Get_source())

    def silent(self) -> list[tuple[WorkerState, float]]:
        """Take in the heartbeats; return the live workers silent past the timeout, and for how long."""
        now = time.monotonic()
        for src in self.drain(TAG_HEARTBEAT):
            self.workers[src - 1].last_seen = now
        return [
            (w, now - w.last_seen)
            for w in self.workers
            if w.alive and now - w.last_seen > self.timeout
        ]

    def gone(self) -> list[tuple[WorkerState, str]]:
        """The live workers whose process ended, seen on their host: ``(worker, by whom)``.

        Rank 0 looks at those of its own host; the workers' reports (``TAG_GONE``) name
        the others (see :mod:`qshpc.runtime.gone`).
        """
        from qshpc.runtime.gone import ended

        found: dict[int, str] = {}
        for rank, (pid, ticks) in list(self.neighbours.items()):
            if ended(pid, ticks):
                del self.neighbours[rank]
                found[rank] = "seen by rank 0 on the same host"
        for src, (_, rank) in self._received(TAG_GONE):
            found.setdefault(int(rank), f"seen by rank {src} on the same host")
        return [
            (self.workers[r - 1], by)
            for r, by in sorted(found.items())
            if 0 < r <= len(self.workers) and self.workers[r - 1].alive
        ]

    def lose(
        self, w: WorkerState, silent: float, seen: str | None = None
    ) -> list[tuple[TaskRef[Any], bool, Any]]:
        """Mark ``w`` lost; return the failures of the calls it held (to resolve).

        ``seen``: its process was seen to end (by whom), rather than silent ``silent`` s.
        """
        w.alive = False
        held = [e for b in w.batches.values() for e in b if not e.ref.done()]
        names = sorted({e.task.name for e in held})
        ids = ", ".join(e.ref.task_id for e in held[:20]) + (" ..." if len(held) > 20 else "")
        why = (
            f"ended (its process is gone, {seen}: killed, crashed, out of memory, or a task "
            "called os._exit?)"
            if seen is not None
            else f"stopped responding (no heartbeat for {silent:.0f} s: {_why_silent(w)})"
        )
        text = (
            f"worker rank {w.rank} on host {w.host} (pid {w.pid}) {why} while holding "
            f"{len(held)} task(s) [{ids}] of {', '.join(names) or 'no function'}"
        )
        self.lost.append(text)
        print(f"qshpc: {text}", flush=True)
        w.batches.clear()
        w.sends.clear()
        return [(e.ref, False, lost_error(e, w, text)) for e in held]

    def goodbyes(
        self,
        timeout: float | None = None,
        stop: Callable[[], bool] | None = None,
        every: float = 5.0,
        also: set[int] | None = None,
        take: Callable[[], bool] | None = None,
    ) -> bool:
        """After STOP: wait for each live worker's goodbye, draining heartbeats meanwhile.

        A worker that reports its last cache writes (``TAG_FLUSH``) is waited for
        while its reports come (each within ``timeout`` of the last), not just
        ``timeout``: its results are not to be left out of the cache because the
        job ends. A line on stderr says how many are left after a second, then
        every ``every`` seconds, and how long it took. ``stop()`` True (a Ctrl-C)
        ends the wait for those workers at once.

        Args:
            timeout: Seconds without a goodbye or a report (default :data:`GOODBYE_S`).
            stop: Called while workers write: True ends the wait for them.
            every: Seconds between the lines saying how many are left.
            also: Ranks no longer alive that were told to leave mid-call (LEAVE):
                their goodbyes are awaited too.
            take: Receives the results those ranks still send (their sends complete
                before their goodbye); True when it took one: the wait starts anew.

        Returns:
            True when every live worker (and every one in ``also``) said goodbye in time.
        """
        if timeout is None:
            timeout = GOODBYE_S
        waiting = {w.rank for w in self.workers if w.alive} | (also or set())
        t0 = self.bye_since = time.monotonic()
        deadline = t0 + timeout
        reports: dict[int, tuple[int, int, float]] = {}  # rank -> (left, written, when)
        said, next_line = False, t0 + 1.0
        while waiting:
            now = time.monotonic()
            self.drain(TAG_HEARTBEAT)
            self.drain(TAG_GONE)  # (a worker that ended after its goodbye, seen by another)
            for src, (_, left, written, _) in self._reports():
                reports[src] = (int(left), int(written), now)
            if take is not None and take():
                deadline = time.monotonic() + timeout  # a leaver's result came: it is alive
            waiting -= set(self.drain(TAG_BYE))
            writing = {r for r in waiting if r in reports and now - reports[r][2] < timeout}
            self.flushing = bool(writing)
            if writing and stop is not None and stop():
                left = sum(reports[r][0] for r in writing)
                _say(f"stopped waiting for the workers' last writes: up to {left:,} "
                     "result(s) are not cached (they are in the job's store)")  # fmt: skip
                break
            if now >= deadline and not writing:
                break
            if writing and now >= next_line:
                said, next_line = True, now + every
                left = sum(reports[r][0] for r in writing)
                per = ", ".join(f"rank {r}: {reports[r][0]:,}" for r in sorted(writing))
                _say(f"the workers write their last {left:,} result(s) to the cache ({per}; "
                     f"{now - t0:.0f} s so far; Ctrl-C stops the wait, and those are then "
                     "not cached)")  # fmt: skip
            time.sleep(0.001 if now - t0 < 0.5 else 0.01)
        self.flushing, self.bye_since = False, None
        self.drain(TAG_HEARTBEAT)
        self.drain(TAG_GONE)  # none left for MPI_Finalize to find unreceived
        self._reports()
        if said and not waiting:
            _say(f"the last results reached the cache {time.monotonic() - t0:.1f} s after "
                 "the workers were told to stop")  # fmt: skip
        return not waiting

    def may_flush(self) -> bool:
        """True while workers write their last results to the cache, or may be about to say so."""
        since = self.bye_since
        return self.flushing or (since is not None and time.monotonic() - since < 1.0)

    def _reports(self) -> list[tuple[int, Any]]:
        """Receive every waiting cache report (``TAG_FLUSH``): ``(source, message)``."""
        return self._received(TAG_FLUSH)

    def _received(self, tag: int) -> list[tuple[int, Any]]:
        """Receive every waiting message of ``tag`` on the plain world: ``(source, message)``."""
        world, status, any_source = self.world, self.status, self.any_source
        out: list[tuple[int, Any]] = []
        while True:
            msg = world.improbe(any_source, tag, status)
            if msg is None:
                return out
            out.append((status.Get_source(), msg.recv()))


def _say(text: str) -> None:
    print(f"qshpc: cache: {text}", file=sys.stderr, flush=True)


#: Seconds rank 0 waits for a worker's goodbye (or its next cache report) after STOP.
GOODBYE_S = 10.0


def lost_error(e: Entry, w: WorkerState, text: str) -> BaseException:
    """The error ``get`` raises for a call held by a lost worker."""
    return TaskError(
        e.ref.task_id, e.task.name, w.rank, w.host, f"WorkerLostError: {text}\n", "WorkerLostError"
    )


__all__ = ["GOODBYE_S", "Liveness", "WorkerState", "lost_error"]


def _why_silent(w: WorkerState) -> str:
    """What a silent worker likely is: a process still alive on this host that sent no
    heartbeat holds the GIL in one long call (review28 F16: it was said to be killed)."""
    import socket

    from qshpc import settings

    limit = settings.WORKER_TIMEOUT_S.name
    alive = False
    if w.host == socket.gethostname() and w.pid:
        try:
            os.kill(w.pid, 0)
            alive = True
        except OSError:
            pass
    if alive:
        return (
            "its process is alive: one call holding Python's GIL that long (a single C call: "
            f"a huge sort, sum or regex) or a stopped process; raise {limit} above the "
            "longest such call"
        )
    return (
        "killed, crashed, out of memory, or a task called os._exit? Or one call holding "
        "Python's GIL that long: "
        f"raise {limit} above it"
    )
