"""Dependent calls: ``refs = [first(i) for i in range(n)]; get([then(r) for r in refs])``
(the workers held by 0.5 s calls meanwhile, as they are at a job's start, so that the
``then`` calls wait and the ``first`` results come in bursts) against the same 2n calls made independent, in one job, on 3 ranks; optionally the same from another tree.

Each ``then`` call waits on rank 0 until its ``first`` call's result is in. Rank 0's
dispatcher used to go through every waiting call at each turn of its loop (and rebuilt the
waiting list with a membership test per call: quadratic), so n = 50k dependent calls took
7 s against 0.75 s independent. Prints seconds and the chained / independent ratio per n.

With ``--loopback``: the same in one process, rank 0's Dispatcher and two worker threads
over qshpc's in-process loopback (what rank 0's dispatcher costs, without MPI's timing).

Run:
    python benchmarks/chained.py                       # n = 5k, 20k, 50k
    python benchmarks/chained.py --baseline /tmp/base --repeat 3 [--loopback]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _trees import precompile

HERE = Path(__file__).parent


def run(tree: Path, n: int, mode: str, tmp: str, loopback: bool) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "QSHPC_HOME": tmp}
    if loopback:
        cmd = [sys.executable, str(HERE / "_chain_loop.py"), str(n), mode]
    else:
        mpiexec = Path(sys.executable).parent / "mpiexec"
        cmd = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", "3", sys.executable]
        go = tempfile.mktemp(dir=tmp)
        cmd += ["-m", "qshpc", "run", str(HERE / "_chain_prog.py"), "--", str(n), mode, go]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=True)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH "):
            return float(json.loads(line[6:])["seconds"])
    raise RuntimeError(f"no timing in the output: {out.stdout[-500:]} {out.stderr[-500:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5000,20000,50000")
    parser.add_argument("--baseline", type=Path, help="another qshpc tree, run in turns")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--listed",
        action="store_true",
        help="with --loopback: also 'listed', each dependent call given a list beside the "
        "reference (pickled at the call, a snapshot, and again when it is sent)",
    )
    parser.add_argument(
        "--loopback",
        action="store_true",
        help="rank 0's dispatcher and two worker threads in one process, no MPI (what it costs "
        "rank 0 alone; the MPI runs' waits depend on how the results come in)",
    )
    args = parser.parse_args()
    trees = {"this tree": HERE.parent.resolve()}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    precompile(*trees.values())
    runs: dict[tuple[str, int], list[tuple[float, float]]] = {}
    listed: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for n in (int(x) for x in args.sizes.split(",")):
                for name, tree in trees.items():
                    c, i = (run(tree, n, m, tmp, args.loopback) for m in ("chained", "independent"))
                    runs.setdefault((name, n), []).append((c, i))
                    print(f"{name} n={n}: chained {c:.2f} s, independent {i:.2f} s", flush=True)
                    if args.listed and args.loopback:
                        v = run(tree, n, "listed", tmp, True)
                        listed.setdefault((name, n), []).append(v)
                        print(f"{name} n={n}: listed {v:.2f} s", flush=True)
    # The waits depend on how the first results come in against the calls being made: the
    # spread over runs is the figure, not only the best.
    print(
        "\n| tree | n | chained s (min-max) | independent s (min-max) | worst chained / best independent |"
    )
    print("|---|---|---|---|---|")
    for (name, n), pairs in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cs, ins = [c for c, _ in pairs], [i for _, i in pairs]
        print(
            f"| {name} | {n:,} | {min(cs):.2f}-{max(cs):.2f} | {min(ins):.2f}-{max(ins):.2f} "
            f"| {max(cs) / min(ins):.2f}x |"
        )
    if listed:
        print("\n| tree | n | listed s (min-max) | best listed / best chained |")
        print("|---|---|---|---|")
        for (name, n), vs in sorted(listed.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            best_c = min(c for c, _ in runs[(name, n)])
            print(f"| {name} | {n:,} | {min(vs):.2f}-{max(vs):.2f} | {min(vs) / best_c:.2f}x |")


if __name__ == "__main__":
    main()
