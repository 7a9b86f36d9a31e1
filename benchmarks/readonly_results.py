"""Benchmark: a worker readying a batch's values for rank 0 in a process holding placed arrays.

In such a process (``put`` of numpy arrays) a worker gives rank 0 read-only
arrays (slices of a placed array) writeable. Session 12 walked the values with
pickle to find one, then pickled them again (writeable) when it did, and the
transport pickled the message; session 13 does both in one pass
(``qshpc.runtime.results.for_the_trip``) and sends its bytes.

Times, in-process, best of 5 rounds (of 2 runs alternated per tree) (each the mean of enough repeats to fill
about 0.1 s), what the worker does per batch: the preparation plus the
transport's ``pickle.dumps(values, protocol=5)``; and rank 0's ``writeable``
of a call it ran itself. Each tree runs in a subprocess of its own
(``PYTHONPATH=TREE``), the baseline and this tree in the same run.

Run: python benchmarks/readonly_results.py BASELINE_TREE [TREE]   (TREE: this checkout)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, pickle, time
import numpy as np
from qiskit.result import QuasiDistribution
from qshpc.runtime import results as R
assert R.__file__.startswith(__import__("os").getcwd()), R.__file__
from qshpc.task import context

context.note_placed_buffers()
placed = np.arange(1000.0)
placed.flags.writeable = False


def prep(values):
    if hasattr(R, "for_the_trip"):  # session 13
        return R.for_the_trip(values)
    return R._Pickled(values) if R._holds_read_only(values) else values


def quasi(i):
    return QuasiDistribution({0: 0.5 - i * 1e-4, 3: 0.5 + i * 1e-4})


cases = {
    "64 2-qubit QuasiDistributions": [quasi(i) for i in range(64)],
    "64 dicts of 10 numpy floats": [{f"k{j}": np.float64(i + j) for j in range(10)} for i in range(64)],
    "200,000 numpy floats": [np.float64(i) for i in range(200_000)],
    "64 dicts, each a read-only 10-float slice": [{"a": placed[i : i + 10], "i": i} for i in range(64)],
    "64 QuasiDistributions, then a read-only slice": [quasi(i) for i in range(64)] + [placed[:10]],
}


def best(fn):
    t0 = time.perf_counter()
    fn()
    reps = max(1, int(0.1 / max(time.perf_counter() - t0, 1e-7)))  # about 0.1 s a round
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        times.append((time.perf_counter() - t0) / reps)
    return min(times)


out = {}
for name, values in cases.items():
    out["worker: " + name] = best(lambda: pickle.dumps(prep(values), protocol=5))
out["rank 0 writeable(): a dict with a read-only slice"] = best(
    lambda: R.writeable({"a": placed[:10], "q": [quasi(i) for i in range(8)]})
)
out["rank 0 writeable(): 64 QuasiDistributions (nothing to change)"] = best(
    lambda: R.writeable(cases["64 2-qubit QuasiDistributions"])
)
print(json.dumps(out))
"""


#: Runs of each tree, alternated.
ROUNDS = 2


def measure(tree: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run(  # cwd: the tree (``-c`` puts the current folder first on sys.path)
        [sys.executable, "-c", CHILD],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    found: dict[str, float] = json.loads(out.stdout)
    return found


def shown(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} µs"


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python benchmarks/readonly_results.py BASELINE_TREE [TREE]")
    base = Path(sys.argv[1])
    tree = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[1]
    before: dict[str, float] = {}
    after: dict[str, float] = {}
    for _ in range(ROUNDS):  # alternated, the best of each (the machine's load moves)
        for found, where in ((before, base), (after, tree)):
            for name, seconds in measure(where).items():
                found[name] = min(seconds, found.get(name, seconds))
    print(f"| case (best of 5 x {ROUNDS}) | {base} | {tree} | ratio |")
    print("|---|---|---|---|")
    for name, b in before.items():
        a = after[name]
        print(f"| {name} | {shown(b)} | {shown(a)} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
