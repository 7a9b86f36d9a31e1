"""What one result message's store records cost: a worker's ``ChunkBuilder`` (add, take,
pickle) and rank 0's side (unpickle, rows, ``Batch.add_chunk``, frame), CPU per message.

    PYTHONPATH=TREE python benchmarks/chunk_message.py LABEL

Run it once per tree (alternating) to compare; records of float results with seeds, at
1, 16 and 512 records a message (tiny-call dispatch sends 512).
"""

from __future__ import annotations

import pickle
import sys
import time

from qshpc.store.batch import Batch, Ends
from qshpc.store.chunk import ChunkBuilder, encode_meta

META = encode_meta("t1", "k" * 32, "f", "host", None, {"seed": 3})


def worker(n: int) -> bytes:
    b = ChunkBuilder(1)
    for i in range(n):
        b.add(META, True, i + 0.5, 1.0, 2.0)
    return pickle.dumps(b.take([0.5] * n, None, list(range(n))), protocol=5)


def rank0(data: bytes) -> None:
    chunk = pickle.loads(data)
    rows = chunk.rows
    float((rows["finished"] - rows["started"]).mean())  # the dispatcher's pace
    batch = Batch(Ends(records=5, meta=100, data=200, large=0), run=3)
    batch.add_chunk(chunk)
    batch.frame()


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "this tree"
    for n in (1, 16, 512):
        reps = max(5, 2000 // n)
        data = worker(n)
        best_w = best_r = float("inf")
        for _ in range(40):
            t = time.process_time()
            for _ in range(reps):
                worker(n)
            best_w = min(best_w, (time.process_time() - t) / reps)
            t = time.process_time()
            for _ in range(reps):
                rank0(data)
            best_r = min(best_r, (time.process_time() - t) / reps)
        print(
            f"{label} n={n}: worker add+take+pickle {best_w * 1e6:.0f} µs, "
            f"rank 0 unpickle+rows+add_chunk+frame {best_r * 1e6:.0f} µs (CPU, best of 40)"
        )


if __name__ == "__main__":
    main()
