"""The cost of keying a module of the user's own held as a value (session 27, fixM).

    python benchmarks/module_key.py OLD_TREE [NEW_TREE]

For each tree (run alternately, ``MK_ROUNDS`` times, default 3) a child process times,
in CPU time (``time.process_time``: on a shared machine the wall clock measures the
neighbours), the best of 5 x ``MK_N`` (default 200) keys of: the seed program's task
(``examples/program_4.py``) with a 3-qubit circuit; a module argument of 2 constants;
a module argument of 80 functions and a 1000-float array (``_TABLE``, private); an
object whose class holds each module (``cfg = mod``); and the walk of a task reading
``bigmod.f3`` and of one reading ``getattr(bigmod, name)``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from _trees import alternate, child_timings, print_table

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, sys, time
from qiskit import QuantumCircuit
import qshpc.cache as cache
from qshpc.cache.keys import function_digest
import cfgmod_b, bigmod_b, holder_b
src = open(sys.argv[2]).read().split("arguments = get_arguments()")[0]
ns = {"__name__": "seed"}
exec(compile(src, "program_4.py", "exec"), ns)
seed = ns["distributed_sample"]
qc = QuantumCircuit(3); qc.h(0); qc.cx(0, 1); qc.cx(1, 2); qc.measure_all()
def t(o): return o
def t_dyn(name, x):
    return getattr(bigmod_b, name)(x)
def t_attr(x):
    return bigmod_b.f3(x)
cases = {
    "seed task + 3-qubit circuit (cache.key)": lambda: cache.key(seed, (qc,)),
    "module argument, 2 constants (cache.key)": lambda: cache.key(t, (cfgmod_b,)),
    "module argument, 80 functions + array (cache.key)": lambda: cache.key(t, (bigmod_b,)),
    "object whose class holds cfg = small module": lambda: cache.key(t, (holder_b.Small(),)),
    "object whose class holds cfg = big module": lambda: cache.key(t, (holder_b.Big(),)),
    "task reading bigmod.f3 (its walk)": lambda: function_digest(t_attr),
    "task reading getattr(bigmod, name) (its walk)": lambda: function_digest(t_dyn),
}
n = int(sys.argv[1]); out = {}
for name, f in cases.items():
    f()
    best = float("inf")
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(n):
            f()
        best = min(best, (time.process_time() - t0) / n)
    out[name] = best * 1e6
print("MK " + json.dumps(out))
"""


def _modules(d: Path) -> None:
    (d / "cfgmod_b.py").write_text("_SCALE = 2\nSHOTS = 100\n")
    lines = ["import numpy as np", "_TABLE = np.arange(1000.0)", "SHOTS = 100", "_SCALE = 2"]
    for i in range(40):
        lines.append(f"def f{i}(x):\n    return x * {i} + _SCALE")
        lines.append(f"def _g{i}(x):\n    return f{i}(x) + _TABLE[{i}]")
    (d / "bigmod_b.py").write_text("\n".join(lines) + "\n")
    (d / "holder_b.py").write_text(
        "import cfgmod_b, bigmod_b\n\n\nclass Small:\n    cfg = cfgmod_b\n\n"
        "    def go(self):\n        return self.cfg._SCALE\n\n\nclass Big:\n"
        "    cfg = bigmod_b\n\n    def go(self):\n        return self.cfg._SCALE\n"
    )


def main() -> None:
    old = Path(sys.argv[1]).resolve()
    new = Path(sys.argv[2] if len(sys.argv) > 2 else HERE.parent).resolve()
    rounds, n = int(os.environ.get("MK_ROUNDS", "3")), int(os.environ.get("MK_N", "200"))
    seed = str(HERE.parent / "examples" / "program_4.py")
    with tempfile.TemporaryDirectory() as tmp:
        _modules(Path(tmp))

        def once(tree: Path) -> dict[str, float]:
            env = {**os.environ, "PYTHONPATH": f"{tree}:{tmp}"}
            return child_timings([sys.executable, "-c", CHILD, str(n), seed], "MK", env, tmp)

        best = alternate(old, new, rounds, once)
    print(f"load: {os.getloadavg()[0]:.2f} (1 min); {n} keys, best of {rounds} rounds x 5\n")
    print_table(best, "key of | old µs | new µs")


if __name__ == "__main__":
    main()
