"""How many probes a rank needs to see a message that came while it made no MPI call (hunt23a).

MPICH's ``MPI_Improbe`` matches what its progress engine already took in, then moves it
on by one message: after a quiet spell the first probe misses, and every message queued
ahead costs one more. Rank 0 sends ``batches`` pkl5 messages (2 MPI messages each) then a
CUT; rank 1 sleeps 1 s (a long call), then counts its probes until the CUT. qshpc's worker
probes up to ``CUT_PROBES`` times per check (and twice after a back-off sleep).

Run:
    mpiexec -n 2 python benchmarks/mpi_probe_lag.py [batches] [bytes]
Prints e.g. ``CUT behind 2 batch(es) of 10 B: seen at probe 6`` (mpich 5.0.2, ofi and ucx).
"""

from __future__ import annotations

import sys
import time

from mpi4py import MPI
from mpi4py.util import pkl5

world = MPI.COMM_WORLD
comm = pkl5.Intracomm(world)
batches = int(sys.argv[1]) if len(sys.argv) > 1 else 2
size = int(sys.argv[2]) if len(sys.argv) > 2 else 10
if world.Get_rank() == 0:
    reqs = [comm.isend(("B", b"x" * size), dest=1, tag=11) for _ in range(batches)]
    reqs.append(comm.isend(("C",), dest=1, tag=14))
    for r in reqs:
        r.wait()
else:
    time.sleep(1.0)  # no MPI call meanwhile: the messages arrive unseen
    n = 1
    while comm.improbe(0, 14) is None:
        n += 1
    print(f"CUT behind {batches} batch(es) of {size} B: seen at probe {n}", flush=True)
    for _ in range(batches):
        comm.recv(source=0, tag=11)
world.Barrier()
