"""Rank start-up under an MPI launcher: every rank joins, rank 0 prepares the job.

Rank 0 creates (or reopens) the job; the others preload what tasks need
meanwhile. Then rank 0 runs the job (:mod:`qshpc.runtime.rank0`) and the
other ranks serve its tasks (:mod:`qshpc.runtime.worker`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from qshpc import _timeline
from qshpc.errors import UserError
from qshpc.jobs.prepare import RunSpec, claim_job, prepare_job
from qshpc.runtime.program_main import add_program_path, defer_signals
from qshpc.runtime.scheduler import Scheduler
from qshpc.task import context


def run_rank(spec: RunSpec, scheduler: Scheduler | None = None) -> int:
    """Join the job as this rank (under mpiexec or srun); return the exit code.

    Args:
        spec: What ``qshpc run`` was asked.
        scheduler: The batch system that started the job (Slurm), or None.
    """
    from qshpc.runtime.mpi import start

    wiring, info = start(scheduler.cpus_per_task() if scheduler is not None else None)
    comm = wiring.comm
    context.set_rank_info(info)
    _timeline.mark("mpi")
    job_dir: Path | None = None
    error: str | None = None
    failure: BaseException | None = None
    if info.rank == 0:
        defer_signals()  # a cancel while the job starts cancels it as the program would start
        try:
            job_dir = prepare_job(spec)
            claim_job(spec, job_dir, scheduler.run_record() if scheduler is not None else None)
        except UserError as exc:
            error = str(exc)
        except BaseException as exc:  # tell the workers, or they wait in the bcast forever
            error, failure = f"rank 0 could not prepare the job: {exc!r}", exc
        _timeline.mark("job prepared")
    else:
        from qshpc.runtime.worker import preload

        preload()  # while rank 0 prepares the job, so the first task need not wait for it
        _timeline.mark("preloaded")
    job_dir_s, error, prog = comm.bcast(
        (str(job_dir) if job_dir else None, error, str(spec.program.resolve())), root=0
    )
    if error is not None:
        if failure is not None:
            raise failure
        if info.rank == 0:
            raise UserError(error)
        return 2
    hosts = [i.host for i in comm.allgather(info)]
    ranks = comm.gather(
        {
            "rank": info.rank,
            "host": info.host,
            "pid": os.getpid(),
            "local_rank": info.local_rank,
            "cpus": info.cpus,
        },
        root=0,
    )
    _timeline.mark("ranks gathered")
    add_program_path(Path(prog))
    if info.rank != 0:
        from qshpc.runtime.gctune import tune
        from qshpc.runtime.logtee import LogTee
        from qshpc.runtime.worker import serve

        tee = LogTee(Path(job_dir_s) / "logs" / f"rank-{info.rank}.out")
        try:
            tune()
            serve(wiring)
        finally:
            tee.close()
        _timeline.mark("served")
        _timeline.write(Path(job_dir_s) / "logs", f"rank-{info.rank}")
        wiring.finalize()
        return 0
    from qshpc.runtime.rank0 import run_job

    try:
        code = run_job(spec, Path(job_dir_s), wiring, hosts, ranks, scheduler)
    except BaseException:
        _stop_workers(
            wiring, len(hosts)
        )  # a store that cannot be opened, say: or they wait forever
        raise
    # Finalize here, not at interpreter exit: whatever hosts this process
    # afterwards (submitit pickles a result and may leave with os._exit) must not
    # leave the workers waiting in MPI_Finalize's PMI barrier.
    wiring.finalize()
    return code


def _stop_workers(wiring: Any, size: int) -> None:
    """Rank 0 could not run the job: tell every worker to stop (they wait for batches)."""
    from qshpc.runtime.protocol import STOP, TAG_STOP

    for rank in range(1, size):
        try:
            wiring.comm.send(STOP, dest=rank, tag=TAG_STOP)
        except Exception:  # pragma: no cover - best effort: the launcher ends the rest
            pass
