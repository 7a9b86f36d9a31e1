"""Used by benchmarks/root_works.py: CPU-bound tasks of a few ms, or tiny ones."""

import json
import sys
import time

from qshpc import distribute_task, get, save_result

kind, n = sys.argv[1], int(sys.argv[2])


@distribute_task()
def burn(i):
    return sum(range(150_000)) + i


@distribute_task()
def tiny(i):
    return i + 1


task = burn if kind == "burn" else tiny
get(task(0))
t0 = time.perf_counter()
get([task(i) for i in range(n)])
print("BENCH " + json.dumps({"seconds": time.perf_counter() - t0}))
save_result(None)
