"""A task function's first key walk, and a memoized live lookup of its digest.

The first walk (:func:`qshpc.cache.keys.function_digest`) is taken once per function
and process; its per-code analyses (``escaping``, ``computed_reads``, ``_names``,
``_imports``) are memoized, so each round clears them. The memoized lookup
(:meth:`qshpc.cache.jobcache.FunctionDigests.get`, ``live=True``) is what each call
run in the program's process pays.

Run (A/B against another tree, alternately):
    PYTHONPATH=$PWD python benchmarks/first_walk.py
    (cd /tmp/base && PYTHONPATH=$PWD python /path/to/benchmarks/first_walk.py)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import qshpc.cache.keyreads as reads
import qshpc.cache.keys as keys
import qshpc.cache.keywalk as walk
from qshpc.cache.jobcache import FunctionDigests

SCALE = 2.0
TABLE = np.arange(100.0)


def helper(x: float) -> Any:
    return SCALE * x + TABLE[3]


def task(a: float, b: int = 3) -> float:
    import math

    s = 0.0
    for i in range(b):
        s += helper(a) * math.sqrt(i)
    return s


def _clear() -> None:
    for name in ("escaping", "computed_reads"):
        memo = getattr(reads, name, None)
        if memo is not None:
            memo.cache_clear()
    walk._names.cache_clear()
    walk._imports.cache_clear()


def main() -> None:
    best = float("inf")
    for _ in range(200):
        _clear()
        t = time.perf_counter()
        keys.function_digest(task)
        best = min(best, time.perf_counter() - t)
    digests = FunctionDigests(lambda n, e: None, lambda n, t: None)
    digests.get(task, live=True)
    n = 200_000
    t = time.perf_counter()
    for _ in range(n):
        digests.get(task, live=True)
    per = (time.perf_counter() - t) / n
    print(f"first walk best of 200: {best * 1e6:.1f} us; memoized live get: {per * 1e6:.2f} us")


if __name__ == "__main__":
    main()
