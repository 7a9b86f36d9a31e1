"""Rank 0's dispatcher and worker threads over the in-process loopback (for unit tests).

What ``mpiexec -n N`` runs, in one process: ``N - 1`` threads serve batches
(:func:`qshpc.runtime.worker.serve`) and rank 0's :class:`Dispatcher` sends them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from qshpc import distribute_task
from qshpc.program import backend
from qshpc.program.session import Session
from qshpc.runtime.dispatcher import Dispatcher
from qshpc.runtime.loopback import Loopback
from qshpc.runtime.protocol import STOP, TAG_STOP
from qshpc.runtime.worker import serve
from qshpc.task.context import RankInfo

#: What :func:`gated` waits for: a test clears it, calls, then sets it (before its ranks stop).
GATE = threading.Event()


def _wait_gate() -> None:  # by reference: the task pickled by value does not take the Event
    GATE.wait(30)


@distribute_task()
def gated(x: Any) -> Any:
    """``x``, once :data:`GATE` is set (30 s at most): a task held on its worker."""
    _wait_gate()
    return x


@contextmanager
def loopback_ranks(
    workers: int = 2,
    session: Session | None = None,
    *,
    pids: list[int] | None = None,
    worker_timeout: float | None = None,
    cpus: list[int] | None = None,
    abort: bool = True,
    drain_s: float = 10.0,
) -> Iterator[tuple[Dispatcher, Loopback, list[threading.Thread]]]:
    """Rank 0's dispatcher (``session``: by default one of no job) and ``workers`` worker
    threads (``cpus``: the cores of each, else 1), over one loopback.

    On leaving: the dispatcher shuts down (``abort``, ``drain_s``), a worker that never
    got STOP (a cut one) is sent it, the threads are joined and the backend reset.
    """
    net = Loopback(workers + 1)
    threads = []
    for r in range(1, workers + 1):
        info = RankInfo(rank=r, size=workers + 1, host=f"w{r}", cpus=cpus[r - 1] if cpus else 1)
        t = threading.Thread(target=serve, args=(net.wiring(r), info), daemon=True)
        t.start()
        threads.append(t)
    hosts = ["r0", *(f"w{r}" for r in range(1, workers + 1))]
    d = Dispatcher(
        net.wiring(0),
        session if session is not None else Session(None, None, {}),
        hosts,
        pids,
        worker_timeout,
        [1, *cpus] if cpus else None,
    )
    try:
        yield d, net, threads
    finally:
        d.shutdown(abort=abort, drain_s=drain_s)
        for r, t in enumerate(threads, start=1):
            if t.is_alive():  # a cut worker never got STOP: stop its thread here
                net.deliver(r, TAG_STOP, STOP)
            t.join(10)
        backend.activate(None)
