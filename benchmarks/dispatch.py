"""Dispatch rate of tiny tasks: qshpc's per-call pattern vs raw mpi4py.futures.

Runs, in one go, for 2 and 3 ranks and 10k and 100k tasks:
  * raw ``MPICommExecutor().submit`` once per call (the seed's pattern, unbatched),
  * raw ``executor.map(fn, items, chunksize=64)`` (hand-batched),
  * qshpc: ``get([task(i) for i in range(n)])`` (auto-batched, every result stored in HDF5).
Prints tasks/s and the ratios the core issue targets (>= 10x submit, >= 0.5x map).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent


def _mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else "mpiexec"


def run(cmd: list[str], tag: str = "") -> float:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=True).stdout
    for line in out.splitlines():
        if line.startswith(tag + "{") or (tag and line.startswith(tag)):
            return float(json.loads(line[len(tag) :])["seconds"])
    raise RuntimeError(f"no timing in output of {cmd}: {out[-500:]}")


def main() -> None:
    sizes = [int(x) for x in os.environ.get("BENCH_SIZES", "10000,100000").split(",")]
    ranks = [int(x) for x in os.environ.get("BENCH_RANKS", "2,3").split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in ranks:
            for n in sizes:
                base = [_mpiexec(), "-n", str(k), sys.executable]
                t_submit = run([*base, str(HERE / "_dispatch_raw.py"), "submit", str(n)])
                t_map = run([*base, str(HERE / "_dispatch_raw.py"), "map", str(n)])
                job = Path(tmp) / f"job-{k}-{n}"
                t_q = run(
                    [
                        *base,
                        "-m",
                        "qshpc",
                        "run",
                        str(HERE / "_dispatch_prog.py"),
                        "--job-dir",
                        str(job),
                        "--",
                        str(n),
                    ],
                    "BENCH ",
                )
                rows.append((k, n, n / t_submit, n / t_map, n / t_q))
                print(
                    f"ranks={k} n={n}: submit {n / t_submit:,.0f}/s  map64 {n / t_map:,.0f}/s  "
                    f"qshpc {n / t_q:,.0f}/s",
                    flush=True,
                )
    print()
    print(
        "| ranks | tasks | raw submit/s | raw map(chunksize=64)/s | qshpc/s | qshpc / submit | qshpc / map |"
    )
    print("|---|---|---|---|---|---|---|")
    for k, n, s, m, q in rows:
        print(f"| {k} | {n:,} | {s:,.0f} | {m:,.0f} | {q:,.0f} | {q / s:.1f}x | {q / m:.2f}x |")


if __name__ == "__main__":
    main()
