"""Child process for test_store_kill: writes task records until it is killed.

Usage: python store_writer_child.py JOB_DIR SEED

Resumes the job (the records already committed are counted through
``done_records``), then appends records whose content is a function of their
index, commits every 1-20 records and prints the number of committed records
after each commit returns (about 1 ms apart).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from qshpc.store import JobWriter, TaskRecord


def expected_result(i: int) -> Any:
    """The result stored for record ``i`` (the test checks it)."""
    if i % 997 == 13:
        return np.full(140_000, i, dtype=np.float64)  # 1.1 MB: goes to the large stream
    return {0: i / 7, 1: -i, "s": "é" * (i % 40), "t": (i, str(i))}


def record(i: int) -> TaskRecord:
    """Record ``i``."""
    t = 1_700_000_000.0 + i
    return TaskRecord(
        task_id=str(i), key=f"{i:064x}", function="mod.f", state="SUCCEEDED", attempt=1,
        rank=1 + i % 3, host="node-1", submitted=t, started=t + 0.5, finished=t + 1.0,
        seed=i, result=expected_result(i), provenance={"i": i},
    )  # fmt: skip


def main() -> None:
    job_dir, seed = Path(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    w = JobWriter.open(job_dir, {"mpi_size": 1, "ranks": [], "started": time.time()})
    n = len(w.done_records())
    print(n, flush=True)
    while True:
        for _ in range(rng.randint(1, 20)):
            w.append_task(record(n))
            n += 1
        if rng.random() < 0.05:
            w.set_status(f"at {n}")
        w.commit()
        print(n, flush=True)
        time.sleep(0.001)  # a task pool's pace, roughly; keeps the files small


if __name__ == "__main__":
    main()
