"""benchmarks/chained.py's in-process part: rank 0's Dispatcher and two worker threads over
the loopback (no MPI), the workers held until every call is made. Prints seconds."""

from __future__ import annotations

import json
import sys
import threading
import time

from qshpc import distribute_task, get
from qshpc.program.session import Session
from qshpc.runtime.dispatcher import Dispatcher
from qshpc.runtime.loopback import Loopback
from qshpc.runtime.protocol import STOP, TAG_STOP
from qshpc.runtime.worker import serve
from qshpc.task.context import RankInfo

GATE = threading.Event()


def _wait() -> None:  # by reference: the function pickled by value does not take the Event
    GATE.wait(60)


@distribute_task()
def hold() -> None:
    _wait()


@distribute_task()
def first(x: int) -> int:
    return x + 1


@distribute_task()
def then(y: int) -> int:
    return y * 2


@distribute_task()
def then_listed(y: int, xs: list[int]) -> int:
    return y * 2 + xs[0]


def main() -> None:
    # As a module, not __main__: the functions travel by reference, and the gate with them.
    from _chain_loop import GATE, first, hold, then, then_listed

    n, mode = int(sys.argv[1]), sys.argv[2]
    net = Loopback(3)
    threads = [
        threading.Thread(
            target=serve, args=(net.wiring(r), RankInfo(rank=r, size=3, host=f"w{r}", cpus=1))
        )
        for r in (1, 2)
    ]
    for t in threads:
        t.start()
    d = Dispatcher(net.wiring(0), Session(None, None, {}), ["r0", "w1", "w2"])
    try:
        held = [d.submit(hold, (), {}) for _ in range(4)]
        t0 = time.perf_counter()
        firsts = [d.submit(first, (i,), {}) for i in range(n)]
        if mode == "chained":
            refs = [d.submit(then, (ref,), {}) for ref in firsts]
        elif mode == "listed":  # a list beside the reference: the call keeps a snapshot
            refs = [d.submit(then_listed, (ref, [0]), {}) for ref in firsts]
        else:
            refs = [d.submit(then, (i + 1,), {}) for i in range(n)]
        GATE.set()
        out = get(refs, timeout=600)
        seconds = time.perf_counter() - t0
        assert out[-1] == 2 * n and get(held) == [None] * 4
    finally:
        GATE.set()
        d.shutdown(abort=True, drain_s=10)
        for r, t in enumerate(threads, start=1):
            if t.is_alive():
                net.deliver(r, TAG_STOP, STOP)
            t.join(10)
    print("BENCH " + json.dumps({"n": n, "seconds": seconds}))


if __name__ == "__main__":
    main()
