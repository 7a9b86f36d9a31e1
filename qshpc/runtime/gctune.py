"""Garbage-collector settings for the ranks of a job.

Each task call makes a few small objects (its reference, its queue entry, its
arguments). With Python's default thresholds (700, 10, 10) a burst of 100k
calls triggers hundreds of collections, and the full ones walk every object
the process holds, qiskit's included: measured on 3 ranks, 100k tiny calls
spent 0.51 s of rank 0's CPU in ``submit`` with the defaults, 0.18 s with the
settings below (benchmarks/RESULTS.md). So each rank, once its imports are
done, moves what it holds to the permanent generation (``gc.freeze``) and
collects the young generation every 50,000 allocations instead of 700.

``QSHPC_GC=default`` leaves Python's settings alone; ``QSHPC_GC=N`` sets the
first threshold to N.
"""

from __future__ import annotations

import gc

from qshpc import settings

DEFAULT_THRESHOLD = 50_000  # settings.GC's default


def tune() -> None:
    """Freeze what this process holds and raise the collection thresholds (see module doc)."""
    first = settings.GC.get()
    if first is None:  # QSHPC_GC=default
        return
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(max(first, gc.get_threshold()[0]), max(second, 20), max(third, 20))


__all__ = ["DEFAULT_THRESHOLD", "tune"]
