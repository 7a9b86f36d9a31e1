"""The qshpc side of benchmarks/chained.py: calls that take other calls' results."""

from __future__ import annotations

import json
import os
import sys
import time

from qshpc import distribute_task, get, save_result


@distribute_task()
def hold(go: str) -> None:
    """Keep a worker until rank 0 made every call (as workers still starting would)."""
    while not os.path.exists(go):
        time.sleep(0.001)


@distribute_task()
def first(x: int) -> int:
    return x + 1


@distribute_task()
def then(y: int) -> int:
    return y * 2


n, mode, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
get(then(first(0)))  # warm: workers up, functions shipped
held = [hold(go) for _ in range(8)]
t0 = time.perf_counter()
firsts = [first(i) for i in range(n)]
if mode == "chained":
    refs = [then(ref) for ref in firsts]  # each waits on rank 0 for its first call's result
else:
    refs = [then(i + 1) for i in range(n)]  # the same values, independent
with open(go, "w"):  # the workers go: the first results come in bursts
    pass
out = get(refs)
seconds = time.perf_counter() - t0
assert out[-1] == 2 * n
save_result({"n": n})
print("BENCH " + json.dumps({"n": n, "seconds": seconds}))
