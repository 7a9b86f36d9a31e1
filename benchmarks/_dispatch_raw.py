"""Baselines for benchmarks/dispatch.py: raw mpi4py.futures, one submit per call or map."""

from __future__ import annotations

import json
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPICommExecutor


def tiny(x: int) -> int:
    return x + 1


def main() -> None:
    mode, n = sys.argv[1], int(sys.argv[2])
    with MPICommExecutor(MPI.COMM_WORLD, root=0) as ex:
        if ex is None:
            return
        ex.submit(tiny, 0).result()  # warm: workers up
        t0 = time.perf_counter()
        if mode == "submit":
            futs = [ex.submit(tiny, i) for i in range(n)]
            out = [f.result() for f in futs]
        else:
            out = list(ex.map(tiny, range(n), chunksize=64))
        dt = time.perf_counter() - t0
        assert out[-1] == n
        print(json.dumps({"mode": mode, "n": n, "seconds": dt}))


main()
