"""Rank 0's memory with many large task results, and the tiny-task rate, checkout against checkout.

Session 26, fix42a (review38 F4): rank 0 kept every task result in memory until the
program took it. Since, a result over ``QSHPC_RESULT_MEMORY_MAX`` (8 MiB) stays only in
the job's store once written, and ``get`` reads it back.

For each checkout given (its root goes first on ``PYTHONPATH``; the first is the
baseline), in turns, ``REPEAT`` times:

* ``stream``: N tasks each return an MB MiB float64 array; the program waits for all,
  then ``get``s them one at a time and drops each (what it keeps: one result).
* ``keep``: the same, but it keeps every result it got (rank 0 holds them all anyway).
* ``tiny``: benchmarks/_dispatch_prog.py, 100k tiny tasks (the fast path: nothing large).

Prints rank 0's peak RSS (``ru_maxrss``), the time of the program's get loop and
the tiny-task rate.

Run: python benchmarks/result_memory.py CHECKOUT [CHECKOUT ...]
     (env: N=20 MB=50 RANKS=3 REPEAT=2 TINY=100000)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent

PROGRAM = """
import json, resource, sys, time
import numpy as np
from qshpc import distribute_task, get, save_result, wait

n, mb, keep = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "keep"

@distribute_task()
def make(i, mb):
    return np.full(mb * 1024 * 1024 // 8, float(i))

refs = [make(i, mb) for i in range(n)]
wait(refs, num_returns=n)
t0 = time.perf_counter()
kept, s = [], 0.0
while refs:
    r = refs.pop(0)
    a = get(r)
    s += float(a[-1])
    if keep:
        kept.append(a)
    del a, r
dt = time.perf_counter() - t0
assert s == sum(range(n))
save_result({"sum": s})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("BENCH " + json.dumps({"peak_mib": peak, "get_s": dt}), flush=True)
"""


def _mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else "mpiexec"


def _run(tree: str, cmd: list[str], home: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": tree, "QSHPC_HOME": home}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH "):
            data: dict[str, float] = json.loads(line[6:])
            return data
    raise RuntimeError(f"no figures from {cmd}: {out.stdout[-800:]} {out.stderr[-800:]}")


def main() -> None:
    trees = sys.argv[1:] or [str(HERE.parent)]
    n, mb = int(os.environ.get("N", "20")), int(os.environ.get("MB", "50"))
    ranks, repeat = os.environ.get("RANKS", "3"), int(os.environ.get("REPEAT", "2"))
    tiny = os.environ.get("TINY", "100000")
    rows: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        prog = Path(tmp) / "results.py"
        prog.write_text(PROGRAM)
        base = [_mpiexec(), "-n", ranks, sys.executable, "-m", "qshpc", "run"]
        for _ in range(repeat):
            for tree in trees:
                home = str(Path(tmp) / "home")
                for mode in ("stream", "keep"):
                    got = _run(tree, [*base, str(prog), "--", str(n), str(mb), mode], home)
                    rows.setdefault((tree, mode), []).append(got)
                    print(tree, mode, got, flush=True)
                got = _run(tree, [*base, str(HERE / "_dispatch_prog.py"), "--", tiny], home)
                got = {"tasks_s": int(tiny) / got["seconds"]}
                rows.setdefault((tree, "tiny"), []).append(got)
                print(tree, "tiny", got, flush=True)
    print()
    print(f"| checkout | what | rank 0 peak RSS MiB | get loop s | tiny tasks/s (n={tiny}) |")
    print("|---|---|---|---|---|")
    for (tree, mode), runs in rows.items():
        if mode == "tiny":
            rates = ", ".join(f"{r['tasks_s']:,.0f}" for r in runs)
            print(f"| {tree} | {tiny} tiny tasks | | | {rates} |")
        else:
            peaks = ", ".join(f"{r['peak_mib']:.0f}" for r in runs)
            gets = ", ".join(f"{r['get_s']:.2f}" for r in runs)
            print(f"| {tree} | {n} x {mb} MiB, {mode} | {peaks} | {gets} | |")


if __name__ == "__main__":
    main()
