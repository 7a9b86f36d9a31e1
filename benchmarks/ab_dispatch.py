"""Dispatch rate of two qshpc source trees, run alternately in one session (A/B).

    python benchmarks/ab_dispatch.py OLD_TREE [NEW_TREE]

OLD_TREE and NEW_TREE are checkouts (``git worktree add /tmp/base main``); the
same program (benchmarks/_dispatch_ab_prog.py) runs under each, alternating
which goes first, ``AB_ROUNDS`` times (default 5), for each argument kind in
``AB_MODES`` (plain ints: the fast path; small lists: pickled at the call; a
``put`` reference). ``AB_N`` calls (default 100000) on ``AB_RANKS`` ranks
(default 3). Prints each tree's range and median, the median ratio, and the
load average before and after: on a shared machine, only a quiet run counts.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROG = HERE / "_dispatch_ab_prog.py"


def _mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else "mpiexec"


def once(tree: Path, n: int, mode: str, ranks: int, job: Path) -> float:
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, "-m", "qshpc", "run", str(PROG),
           "--job-dir", str(job), "--", str(n), mode]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env, cwd=tree)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH "):
            return n / float(json.loads(line[6:])["seconds"])
    raise RuntimeError(f"no timing from {tree}: {out.stdout[-800:]}{out.stderr[-800:]}")


def main() -> None:
    old = Path(sys.argv[1]).resolve()
    new = Path(sys.argv[2] if len(sys.argv) > 2 else HERE.parent).resolve()
    rounds = int(os.environ.get("AB_ROUNDS", "5"))
    n = int(os.environ.get("AB_N", "100000"))
    ranks = int(os.environ.get("AB_RANKS", "3"))
    modes = os.environ.get("AB_MODES", "plain,list,put").split(",")
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores", flush=True)
    rates: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        k = 0
        for r in range(rounds):
            for mode in modes:
                order = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new), ("old", old)]
                for name, tree in order:
                    k += 1
                    rate = once(tree, n, mode, ranks, Path(tmp) / f"job-{k}")
                    rates.setdefault((mode, name), []).append(rate)
                    print(f"round {r} {mode:5s} {name}: {rate:,.0f} calls/s", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")
    print(f"\n{n:,} calls, {ranks} ranks, {rounds} rounds each, alternating\n")
    print("| arguments | old calls/s (median, range) | new calls/s (median, range) | new / old |")
    print("|---|---|---|---|")
    for mode in modes:
        o, w = rates[(mode, "old")], rates[(mode, "new")]
        mo, mw = statistics.median(o), statistics.median(w)
        print(
            f"| {mode} | {mo:,.0f} ({min(o):,.0f}-{max(o):,.0f}) | "
            f"{mw:,.0f} ({min(w):,.0f}-{max(w):,.0f}) | {mw / mo:.2f} |"
        )


if __name__ == "__main__":
    main()
