"""Rank 0's batch policy: how many calls go in a batch, and how long the dispatcher sleeps.

Guided self-scheduling with a floor (:meth:`Pace.batch_size`), two batches in
flight per worker (:data:`IN_FLIGHT`), results committed and handed to the
program at most every :data:`COMMIT_S` under load, and a back-off sleep that
stays short only while a batch of short calls is due back
(:meth:`Pace.sleep_cap`). The pace learns the mean call time from the
results (:meth:`Pace.learn`). Pure arithmetic: no MPI, no clock of its own
beyond ``time.monotonic``.
"""

from __future__ import annotations

import time

IN_FLIGHT = 2  # batches per worker
MAX_BATCH = 512
COMMIT_S = 0.02  # under load, commit (and resolve) at most this often
MAX_SLEEP_S = 0.002
MIN_SLEEP_S = 50e-6
MIN_BATCH_S = 0.002  # the least work worth a batch of its own (see Pace.batch_size)


class Pace:
    """What rank 0 has measured of the calls: their mean time, the last batch sent."""

    __slots__ = ("last_send", "last_size", "mean_task_s")

    def __init__(self) -> None:
        self.mean_task_s = 0.0
        self.last_size = 1
        self.last_send = 0.0

    def learn(self, span: float) -> None:
        """Fold in the mean call time of one result message (an exponential average)."""
        self.mean_task_s = 0.7 * self.mean_task_s + 0.3 * span

    def sent(self, size: int) -> None:
        """A batch of ``size`` calls just left."""
        self.last_size = size
        self.last_send = time.monotonic()

    def batch_size(self, pending: int, workers: int) -> int:
        """Guided self-scheduling with a floor.

        Guided: ``pending / (2 * workers)``, so a lone call leaves at once and a
        burst leaves in big batches. The floor keeps the tail of a burst of tiny
        calls from dissolving into one-call batches, each costing a round trip:
        a batch should hold at least ``MIN_BATCH_S`` of measured work (or the
        remaining calls split evenly), which for calls of 2 ms or more is one call.
        """
        size = -(-pending // (2 * workers))
        if self.mean_task_s > 0:
            floor = min(MAX_BATCH, int(MIN_BATCH_S / self.mean_task_s))
            size = max(size, min(floor, -(-pending // workers)))
        return min(MAX_BATCH, max(1, size))

    def sleep_cap(self, batches_out: bool) -> float:
        """The longest back-off sleep: short only while a batch of short calls is due back.

        A batch out for longer than 4 times its expected time plus 5 ms (calls not
        as short as the last ones were) gets the full back-off, so that waiting
        for long calls stays cheap.
        """
        if self.mean_task_s <= 0 or not batches_out:
            return MAX_SLEEP_S
        expected = self.mean_task_s * self.last_size
        if time.monotonic() - self.last_send > 4 * expected + 0.005:
            return MAX_SLEEP_S
        return min(MAX_SLEEP_S, max(MIN_SLEEP_S, expected / 4))


__all__ = [
    "COMMIT_S",
    "IN_FLIGHT",
    "MAX_BATCH",
    "MAX_SLEEP_S",
    "MIN_BATCH_S",
    "MIN_SLEEP_S",
    "Pace",
]
