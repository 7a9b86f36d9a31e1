"""Rank 0's view of its workers: what each holds, whether it is alive, and the goodbyes.

Every worker sends a heartbeat every ``QSHPC_HEARTBEAT_S`` (from a thread of
its own, so a long task does not silence it); rank 0 declares a worker lost
after ``QSHPC_WORKER_TIMEOUT_S`` without a message from it, and fails the calls
it held, naming the rank, host, pid and tasks. At the end, each live worker
says goodbye after STOP, so that rank 0 knows no message is left in flight
before ``MPI_Finalize`` (without every goodbye it leaves without finalizing).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from qshpc.errors import TaskError
from qshpc.runtime.protocol import TAG_BYE, TAG_HEARTBEAT, Wiring

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
    """

    def __init__(self, wiring: Wiring, workers: list[WorkerState], timeout: float) -> None:
        self.world = wiring.world
        self.any_source = wiring.any_source
        self.status = wiring.status()
        self.workers = workers
        self.timeout = timeout
        self.lost: list[str] = []  # one line per lost worker

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

    def lose(self, w: WorkerState, silent: float) -> list[tuple[TaskRef[Any], bool, Any]]:
        """Mark ``w`` lost; return the failures of the calls it held (to resolve)."""
        w.alive = False
        held = [e for b in w.batches.values() for e in b if not e.ref.done()]
        names = sorted({e.task.name for e in held})
        ids = ", ".join(e.ref.task_id for e in held[:20]) + (" ..." if len(held) > 20 else "")
        text = (
            f"worker rank {w.rank} on host {w.host} (pid {w.pid}) stopped responding "
            f"(no heartbeat for {silent:.0f} s: killed, crashed or out of memory?) while holding "
            f"{len(held)} task(s) [{ids}] of {', '.join(names) or 'no function'}"
        )
        self.lost.append(text)
        print(f"qshpc: {text}", flush=True)
        w.batches.clear()
        w.sends.clear()
        return [(e.ref, False, lost_error(e, w, text)) for e in held]

    def goodbyes(self, timeout: float = 10.0) -> bool:
        """After STOP: wait for each live worker's goodbye, draining heartbeats meanwhile.

        Returns:
            True when every live worker said goodbye in time.
        """
        waiting = {w.rank for w in self.workers if w.alive}
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            self.drain(TAG_HEARTBEAT)
            waiting -= set(self.drain(TAG_BYE))
            time.sleep(0.001)
        self.drain(TAG_HEARTBEAT)
        return not waiting


def lost_error(e: Entry, w: WorkerState, text: str) -> BaseException:
    """The error ``get`` raises for a call held by a lost worker."""
    return TaskError(
        e.ref.task_id, e.task.name, w.rank, w.host, f"WorkerLostError: {text}\n", "WorkerLostError"
    )


__all__ = ["Liveness", "WorkerState", "lost_error"]
