"""A worker whose rank 0 is gone ends, instead of waiting for it until the time limit.

``mpiexec`` ends every rank when one dies, but ``srun`` (a Slurm job's step)
keeps the other tasks running: with rank 0 killed (``kill -9``, the OOM
killer), a worker waited forever for its results to be received (spinning in
its sends), and the Slurm job stayed RUNNING, holding its nodes, until its
time limit. Rank 0 holds the job's lock from before it tells the workers the
job until after every worker's goodbye, and refreshes it every 10 s
(:mod:`qshpc.store.lock`); a worker reads it every 10 s, and when the lock is
no longer rank 0's live claim three reads in a row (its pid gone on this host,
or not refreshed for 70 s on another host or where this worker cannot see its
pid, or released, or taken by another run),
the worker says so and exits with code 1: the step ends, and the job with it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path


class Rank0Watch:
    """A daemon thread that ends this worker once rank 0's lock on ``job_dir`` is gone.

    Args:
        job_dir: The job rank 0 runs (it holds the job's lock).
        rank: This worker's rank (for the message).
        every: Seconds between two reads of the lock.
    """

    def __init__(self, job_dir: Path, rank: int, every: float | None = None) -> None:
        from qshpc.store.lock import REFRESH_S, pid_gone, read_holder

        self.job_dir = job_dir
        self.rank = rank
        self.every = REFRESH_S if every is None else every
        self._stop = threading.Event()
        self.holder = read_holder(job_dir)  # rank 0's claim, taken before it told the workers
        #: Rank 0 lives now (it told this worker the job): a pid of this host that already
        #: looks gone is one this worker cannot see (rank 0 in a PID namespace of its own: a
        #: container per task), so only the lock's refreshes tell (was: every such worker
        #: ended 3 reads after its start, rank 0 alive).
        self._pid_visible = (
            self.holder is not None and self.holder.on_this_host() and not pid_gone(self.holder)
        )
        self._thread: threading.Thread | None = None
        if self.holder is not None:
            self._thread = threading.Thread(target=self._watch, name="qshpc-rank0", daemon=True)
            self._thread.start()

    def _gone(self) -> bool:
        """Rank 0's claim was released or replaced, its pid ended, or it stopped refreshing.

        No Slurm query: a worker of a Slurm job that ended is ended by Slurm, and one
        ``sacct`` per worker every 10 s (what the lock's takeover check costs) would load
        the accounting database for nothing.
        """
        from qshpc.store.lock import lapsed, pid_gone, read_holder

        first = self.holder
        now = read_holder(self.job_dir)
        if first is None:
            return False
        if now is None or (now.host, now.pid) != (first.host, first.pid):
            return True
        if self._pid_visible:
            return pid_gone(now)
        return lapsed(self.job_dir)

    def _watch(self) -> None:
        misses = 0
        while not self._stop.wait(self.every):
            try:
                misses = misses + 1 if self._gone() else 0
            except Exception:  # a read that failed says nothing either way
                continue
            if misses >= 3 and not self._stop.is_set():  # one failed read on NFS is no proof
                self._leave()

    def _leave(self) -> None:
        from qshpc.text import shown

        holder = self.holder
        who = f"host {holder.host}, pid {holder.pid}" if holder is not None else "?"
        print(
            f"qshpc: error: rank {self.rank}: rank 0 ({who}) is gone: its lock on job "
            f"{shown(self.job_dir.name)} was released, taken over or not refreshed; this rank "
            "ends (what the job stored is kept: `qshpc status` says how it ended)",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(0.5)  # the log tee copies the line
        os._exit(1)

    def stop(self) -> None:
        """Stop watching (before the goodbye: rank 0 then releases its lock)."""
        self._stop.set()
