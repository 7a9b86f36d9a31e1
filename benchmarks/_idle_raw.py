"""Baseline for benchmarks/idle_cpu.py: a worker in a plain blocking MPI recv (MPICH spins)."""

import time

from mpi4py import MPI

comm = MPI.COMM_WORLD
if comm.rank == 0:
    time.sleep(3.0)
    for r in range(1, comm.size):
        comm.send(None, dest=r)
else:
    c0 = time.process_time()
    comm.recv(source=0)
    print(f"RAW rank={comm.rank} cpu={time.process_time() - c0:.3f}")
