"""The program benchmarks/ab_dispatch.py times: tiny calls with plain, list, put, complex or
small-array arguments."""

from __future__ import annotations

import json
import sys
import time

from qshpc import distribute_task, get, put, save_result


@distribute_task()
def tiny(x: object) -> int:
    return 1


n, mode = int(sys.argv[1]), sys.argv[2]
shared = put(list(range(100)))
get(tiny(0))  # warm: workers up, function shipped
t0 = time.perf_counter()
if mode == "plain":  # the fast path: immutable positional values
    refs = [tiny(i) for i in range(n)]
elif mode == "list":  # a container: pickled at the call (and scanned for references)
    refs = [tiny([i, i + 1, "x"]) for i in range(n)]
elif mode == "put":  # an object reference as the argument
    refs = [tiny(shared) for _ in range(n)]
elif mode == "complex":  # a plain value whose pickle names a class: keyed by value (fix42c)
    refs = [tiny(complex(i, 1)) for i in range(n)]
elif mode == "array":  # a small numpy array: keyed by value on the worker (fix42c)
    import numpy as np

    refs = [tiny(np.array([i, 1.0])) for i in range(n)]
else:
    raise SystemExit(f"unknown mode {mode}")
out = get(refs)
dt = time.perf_counter() - t0
assert len(out) == n
save_result({"n": n})
print("BENCH " + json.dumps({"mode": mode, "n": n, "seconds": dt}))
