"""The qshpc side of benchmarks/dispatch.py: the seed's per-call pattern on tiny tasks."""

from __future__ import annotations

import json
import sys
import time

from qshpc import distribute_task, get, save_result


@distribute_task()
def tiny(x: int) -> int:
    return x + 1


n = int(sys.argv[1])
get(tiny(0))  # warm: workers up, function shipped
t0 = time.perf_counter()
out = get([tiny(i) for i in range(n)])
dt = time.perf_counter() - t0
assert out[-1] == n
save_result({"n": n})
print("BENCH " + json.dumps({"mode": "qshpc", "n": n, "seconds": dt}))
