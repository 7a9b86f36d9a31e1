"""A call's resume key (``task_key``) as a worker takes it at a first run: per call, by argument.

    python benchmarks/resume_key.py OLD_TREE [NEW_TREE]

For each tree (run alternately, ``RK_ROUNDS`` times, default 3) a child process
decodes a call's payload as a worker does and keys it (session 26, fix42c:
arguments by value, as the cache walks them, where their pickle names a class);
the best CPU time per call (``time.process_time``: on a shared machine the
wall clock measures the neighbours) over ``RK_N`` calls (default 20000).
``object of a class``: of ``__main__``, which cloudpickle sends by value, so a
worker loads its class again at each call; ``object of a module's class``: of
``rk_helpers.py``, sent by its name (session 26, fixH: its digest memoized).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from _trees import alternate, child_timings, print_table

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, pickle, sys, time
import numpy as np
from qiskit import QuantumCircuit
from qshpc.program.backend import dumps_payload, task_key
try:
    from qshpc.task.payload import loads_keyed
except ImportError:
    loads_keyed = None

class Model:
    def __init__(self, x):
        self.x = x
    def energy(self):
        return self.x * 2

import os, tempfile
_d = tempfile.mkdtemp()  # a class of a module of the user's own: pickled by its name
with open(os.path.join(_d, "rk_helpers.py"), "w") as _f:
    _f.write("class Model:\n    def __init__(self, x):\n        self.x = x\n"
             "    def energy(self):\n        return self.x * 2\n")
sys.path.insert(0, _d)
import rk_helpers

qc = QuantumCircuit(2, 2); qc.h(0); qc.cx(0, 1); qc.measure([0, 1], [0, 1])
kinds = {"plain ints": (1, 2), "list": ([1, 2, "x"],), "complex": (1j,),
         "array(2)": (np.array([1.0, 2.0]),), "2-qubit circuit": (qc,),
         "object of a class": (Model(3),), "object of a module's class": (rk_helpers.Model(3),),
         "set of 6 str": ({"a", "b", "c", "d", "e", "f"},)}
n = int(sys.argv[1])
out = {}
for name, args in kinds.items():
    raw = dumps_payload(args, {}, "f", "3")
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(n):
            if loads_keyed is not None:
                decoded, qpy = loads_keyed(raw)
                task_key(b"d" * 32, raw, "3", decoded, qpy)
            else:
                decoded = pickle.loads(raw)
                task_key(b"d" * 32, raw, "3", decoded)
        best = min(best, (time.process_time() - t0) / n)
    out[name] = best * 1e6
print("RK " + json.dumps(out))
"""


def main() -> None:
    old = Path(sys.argv[1]).resolve()
    new = Path(sys.argv[2] if len(sys.argv) > 2 else HERE.parent).resolve()
    rounds, n = int(os.environ.get("RK_ROUNDS", "3")), int(os.environ.get("RK_N", "20000"))

    def once(tree: Path) -> dict[str, float]:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        return child_timings([sys.executable, "-c", CHILD, str(n)], "RK", env, "/")

    best = alternate(old, new, rounds, once)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min); {n} calls, best of {rounds} rounds x 3\n")
    print_table(best, "argument | old µs/call (decode + key) | new µs/call")


if __name__ == "__main__":
    main()
