"""Benchmark: encoding a plain 512-result job's task records, both ways they are written.

A worker encodes its records (``ChunkBuilder.add``: the meta blob given, the result
blob-encoded); rank 0 encodes the records of calls it ran itself
(``Batch.add_record``). The results are what a sampler sweep returns: half
quasi-distributions (4 int -> float), half floats. Prints the thread CPU time per
result (min and median of 7 timings of 20 passes): thread CPU, not wall time, so
that a shared machine's other load moves it less. Compare two trees by running it
with each on ``PYTHONPATH``, alternating.

``--float64``: every result a ``numpy.float64`` instead (the store keeps them as such
since session 24), and the decoding of a 10 000-item list of them (a resumed job's, a
reader's), and their bytes.

Run: python benchmarks/encode_records.py [--float64]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from qshpc.store.batch import Batch, Ends
from qshpc.store.chunk import ChunkBuilder, encode_meta
from qshpc.store.encoding_blob import decode_blob, encode_blob
from qshpc.store.records import TaskRecord

N = 512


def _values() -> list[Any]:
    rng = np.random.default_rng(0)
    out: list[Any] = []
    for i in range(N):
        c = rng.multinomial(1024, [0.4, 0.3, 0.2, 0.1])
        out.append({k: float(v) / 1024 for k, v in enumerate(c)} if i % 2 == 0 else c[0] / 1024)
    return [float(v) if isinstance(v, np.floating) else v for v in out]


def _time(name: str, fn: Callable[[], None], per: int) -> None:
    times = []
    for _ in range(7):
        t = time.thread_time()
        for _ in range(20):
            fn()
        times.append((time.thread_time() - t) / 20 / per * 1e6)
    times.sort()
    print(f"{name}: {times[0]:.3f} us/result min, {times[3]:.3f} median")


def main() -> None:
    float64 = "--float64" in sys.argv[1:]
    rng = np.random.default_rng(0)
    values = [np.float64(v) for v in rng.random(N)] if float64 else _values()
    metas = [encode_meta(str(i), f"{i:032x}", "m.f", "h1", None, None) for i in range(N)]
    recs = [
        TaskRecord(str(i), f"{i:032x}", "m.f", "SUCCEEDED", 1, 0, "h0", 1.0, 2.0, 3.0, None, v)
        for i, v in enumerate(values)
    ]

    def worker() -> None:
        b = ChunkBuilder(1)
        for m, v in zip(metas, values, strict=True):
            b.add(m, True, v, 2.0, 3.0)
        b.take([1.0] * N)

    def rank0() -> None:
        batch = Batch(Ends(), 1)
        for r in recs:
            batch.add_record(r)
        batch.frame()

    _time("worker", worker, N)
    _time("rank 0", rank0, N)
    if float64:
        big = encode_blob([np.float64(v) for v in rng.random(10_000)])
        _time("decode a 10k list", lambda: decode_blob(big), 10_000)
        one = len(encode_blob(np.float64(0.1)))
        print(f"bytes: one np.float64 result {one}, the 10k list {len(big)}")


if __name__ == "__main__":
    main()
