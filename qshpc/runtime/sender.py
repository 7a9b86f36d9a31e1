"""A worker's result messages to rank 0, sent without blocking."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from qshpc.runtime.protocol import TAG_RESULT, Transport

if TYPE_CHECKING:
    from qshpc.runtime.results import Results

_MAX_SENDS = 4  # result messages in flight before this worker waits for one


class Sender:
    """Sends result messages without blocking, keeping a few in flight.

    A blocking send of a large message waits for rank 0 to receive it, and
    MPICH waits by polling: the worker then burns the core rank 0 needs.
    """

    def __init__(self, comm: Transport) -> None:
        self.comm = comm
        self.reqs: list[Any] = []

    def send(
        self,
        results: Results,
        bid: int,
        first: int,
        submitted: Any,
        attempts: list[int] | None,
        final: bool,
    ) -> None:
        try:
            msg = results.message(bid, first, submitted, attempts, final)
            req = self.comm.isend(msg, dest=0, tag=TAG_RESULT)
        except Exception:
            results.fail_unpicklable()  # a return value cannot be pickled for the trip
            msg = results.message(bid, first, submitted, attempts, final)
            req = self.comm.isend(msg, dest=0, tag=TAG_RESULT)
        results.after_sent()
        self.reqs.append(req)
        self.reqs = [r for r in self.reqs if not r.test()[0]]
        while len(self.reqs) > _MAX_SENDS:
            time.sleep(50e-6)
            self.reqs = [r for r in self.reqs if not r.test()[0]]

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for every send (polling with sleeps, not MPICH's spin), at most ``timeout`` s.

        Rank 0 receives every result before it says stop, unless it aborts.
        """
        deadline = time.monotonic() + timeout
        while self.reqs and time.monotonic() < deadline:
            self.reqs = [r for r in self.reqs if not r.test()[0]]
            if self.reqs:
                time.sleep(50e-6)
