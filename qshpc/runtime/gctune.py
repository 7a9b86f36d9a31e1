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
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def uncollected() -> Iterator[None]:
    """Import with the collector off, then freeze what the imports made.

    Importing qiskit and Aer makes ~500k objects; the collections they trigger
    walk them again and again, and find almost nothing to free: measured,
    0.31-0.33 s for ``import qiskit, qiskit_aer`` with the collector off
    against 0.37-0.41 s with it on (4 alternating runs). What the imports made
    is frozen at the end, as :func:`tune` does once a rank's imports are done:
    later collections (and forked children's) never walk it. Nothing changes
    with ``QSHPC_GC=default``, a collector already off, or a setting that does
    not read (the rank reports that itself).
    """
    try:
        keep = settings.GC.get() is None or not gc.isenabled()
    except Exception:
        keep = True
    if keep:
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


__all__ = ["DEFAULT_THRESHOLD", "tune", "uncollected"]
