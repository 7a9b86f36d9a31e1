"""Benchmark: task results that are ``numpy.float64``, kept as such by the store (session 24).

A worker encodes its records (``ChunkBuilder.add``), rank 0 the records of calls it ran
(``Batch.add_record``); a resumed job or a reader decodes them (here a 10 000-item list of
them, ``decode_blob``). Prints the thread CPU time per value (min and median of 7 timings
of 20 passes) and the bytes. Compare two trees by running it with each on ``PYTHONPATH``,
alternating.

Run: python benchmarks/float64_records.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from qshpc.store.batch import Batch, Ends
from qshpc.store.chunk import ChunkBuilder, encode_meta
from qshpc.store.encoding_blob import decode_blob, encode_blob
from qshpc.store.records import TaskRecord

N = 512


def main() -> None:
    rng = np.random.default_rng(0)
    values = [np.float64(v) for v in rng.random(N)]
    metas = [encode_meta(str(i), f"{i:032x}", "m.f", "h1", None, None) for i in range(N)]
    recs = [
        TaskRecord(str(i), f"{i:032x}", "m.f", "SUCCEEDED", 1, 0, "h0", 1.0, 2.0, 3.0, None, v)
        for i, v in enumerate(values)
    ]
    big = encode_blob([np.float64(v) for v in rng.random(10_000)])

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

    def decode() -> None:
        decode_blob(big)

    runs: list[tuple[str, Callable[[], None], int]] = [
        ("worker", worker, N),
        ("rank 0", rank0, N),
        ("decode a 10k list", decode, 10_000),
    ]
    for name, fn, per in runs:
        times = []
        for _ in range(7):
            t = time.thread_time()
            for _ in range(20):
                fn()
            times.append((time.thread_time() - t) / 20 / per * 1e6)
        times.sort()
        print(f"{name}: {times[0]:.3f} us/value min, {times[3]:.3f} median")
    one = len(encode_blob(np.float64(0.1)))
    print(f"bytes: one np.float64 result {one}, the 10k list {len(big)}")


if __name__ == "__main__":
    main()
