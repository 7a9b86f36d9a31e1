"""MPI start of the PyPI mpich: ``ch4:ucx`` (its default) against ``ch4:ofi`` (libfabric).

Each round runs, alternately (order rotated each round), ``mpiexec -n N python
-c 'from mpi4py import MPI'`` (``MPI_Init`` at import) with
``MPIR_CVAR_CH4_NETMOD=ucx`` and ``=ofi``, and reports per netmod the whole
command's wall time, its CPU time (the children's getrusage: every rank and
mpiexec), and the time from each rank's start to MPI ready (``import mpi4py.MPI``
done, read by the rank itself, the slowest rank of each run). Optionally a
ping-pong of tiny pickled messages between ranks 0 and 1 (``--pingpong K``):
whether the netmod changes what a message between ranks on one host costs.

Run:
    python benchmarks/mpi_start.py --rounds 10 --ranks 3 --pingpong 20000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RANK = r"""
import json, sys, time
t0 = time.time()
from mpi4py import MPI
ready = time.time() - t0
comm = MPI.COMM_WORLD
k = int(sys.argv[1])
per = None
if k and comm.size > 1:
    comm.Barrier()
    start = time.perf_counter()
    if comm.rank == 0:
        for i in range(k):
            comm.send(i, dest=1)
            comm.recv(source=1)
        per = (time.perf_counter() - start) / k
    elif comm.rank == 1:
        for i in range(k):
            comm.send(comm.recv(source=0), dest=0)
readys = comm.gather(ready, root=0)
if comm.rank == 0:
    print(json.dumps({"ready": max(readys), "pingpong": per}))
"""


def mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else "mpiexec"


def one(netmod: str, ranks: int, pingpong: int) -> dict[str, float]:
    env = {**os.environ, "MPIR_CVAR_CH4_NETMOD": netmod}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(
        [mpiexec(), "-n", str(ranks), sys.executable, "-c", RANK, str(pingpong)],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    row = {"wall": wall, "cpu": cpu, "ready": data["ready"]}
    if data["pingpong"] is not None:
        row["pingpong_us"] = data["pingpong"] * 1e6
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--ranks", type=int, default=3)
    ap.add_argument("--pingpong", type=int, default=0, help="round trips between ranks 0 and 1")
    args = ap.parse_args()
    mods = ["ucx", "ofi"]
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in mods}
    one("ofi", args.ranks, 0)  # warm the page cache
    load0 = os.getloadavg()
    for r in range(args.rounds):
        for m in mods[r % 2 :] + mods[: r % 2]:
            rows[m].append(one(m, args.ranks, args.pingpong))
    print(f"mpiexec -n {args.ranks}, {args.rounds} rounds, load {load0} -> {os.getloadavg()}")
    print("median [min-max]")
    for key in rows["ucx"][0]:
        line = []
        for m in mods:
            v = [row[key] for row in rows[m]]
            line.append(f"{m} {statistics.median(v):.3f} [{min(v):.3f}-{max(v):.3f}]")
        ratio = statistics.median(r[key] for r in rows["ofi"]) / statistics.median(
            r[key] for r in rows["ucx"]
        )
        print(f"{key:12} " + "   ".join(line) + f"   ofi/ucx {ratio:.2f}")


if __name__ == "__main__":
    main()
