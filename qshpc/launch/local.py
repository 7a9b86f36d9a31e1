"""The local launcher: ``qshpc run`` outside an MPI launcher starts the ranks itself.

Without an MPI launcher, ``qshpc run`` starts ``mpiexec -n WORKERS+1`` of the
MPI installed from PyPI (the embedded local default) and stays as its parent:
it forwards output and signals, prints progress read from the store, and
records FAILED (naming the dead rank and the tasks it held) when the ranks die
before finalizing the store. ``--workers 0`` runs everything in this process.
Under ``mpiexec``/``srun``, :func:`run` joins the ranks the launcher started
(:mod:`qshpc.runtime.start`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from qshpc import settings
from qshpc.errors import UserError
from qshpc.jobs.prepare import RunSpec, prepare_job
from qshpc.runtime.mpi import launched_by_mpi
from qshpc.runtime.scheduler import Scheduler


def default_workers() -> int:
    """Worker ranks for the local default: one per core."""
    return max(1, len(os.sched_getaffinity(0)))


def find_mpiexec() -> str:
    """The ``mpiexec`` next to this Python (the PyPI MPI), else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    if here.exists():
        return str(here)
    found = shutil.which("mpiexec")
    if found is None:
        raise UserError(
            "no mpiexec found: install the MPI runtime (`pip install mpich`), "
            "or run in one process with `qshpc run --workers 0`"
        )
    return found


def run(spec: RunSpec, workers: int | None, scheduler: Scheduler | None = None) -> int:
    """Run a program as a job; return the process exit code (0 when SUCCEEDED).

    Args:
        spec: What ``qshpc run`` was asked.
        workers: Worker ranks to start (None: one per core; 0: all in this process).
            Ignored under an MPI launcher, which started the ranks.
        scheduler: The batch system this runs in (Slurm's, from
            :func:`qshpc.submit.slurm.scheduler`), or None.
    """
    if launched_by_mpi():
        from qshpc.runtime.start import run_rank

        return run_rank(spec, scheduler)
    n = default_workers() if workers is None else workers
    if n < 0:
        raise UserError(f"--workers must be >= 0, got {n}")
    if n == 0:
        from qshpc.runtime.rank0 import run_job
        from qshpc.task import context

        job_dir = prepare_job(spec)
        cpus = scheduler.cpus_per_task() if scheduler is not None else None
        if cpus is not None:
            context.set_rank_info(context.RankInfo(cpus=context.cores_for_rank(1, cpus)))
        return run_job(spec, job_dir, None, None, None, scheduler)
    return _spawn(spec, n)


def _spawn(spec: RunSpec, workers: int) -> int:
    job_dir = prepare_job(spec)  # fail fast, before starting any rank
    cmd = [find_mpiexec(), "-n", str(workers + 1)]
    cmd += [sys.executable, "-m", "qshpc", "run"]
    cmd += [str(spec.program), "--job-dir", str(job_dir)]
    if spec.seed is not None:
        cmd += ["--seed", str(spec.seed)]
    if spec.resume:
        cmd += ["--resume", str(job_dir)]
    if spec.cache is not None:
        cmd += ["--cache" if spec.cache else "--no-cache"]
    if spec.cache_dir is not None:
        cmd += ["--cache-dir", str(spec.cache_dir.expanduser().absolute())]
    cmd += ["--", *spec.program_args]
    env = dict(os.environ)
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    launched = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tail: list[bytes] = []
    rank0: list[int] = []

    def forward(signum: int, frame: Any) -> None:  # cancel: rank 0 stores CANCELED and exits
        target = rank0[0] if rank0 else proc.pid
        try:
            os.kill(target, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, sys.stdout.buffer, tail), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, sys.stderr.buffer, tail), daemon=True),
    ]
    for t in pumps:
        t.start()
    try:
        code = _watch(proc, job_dir, rank0, launched)
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        code = proc.wait()
    for t in pumps:
        t.join(timeout=5)
    if code != 0 and not (job_dir / "job.h5").is_file():
        if b"was removed while it ran" not in b"".join(tail):  # else rank 0 said so
            print(
                f"qshpc: job FAILED: its job directory {job_dir} was removed while it ran "
                "(nothing of it is kept)",
                file=sys.stderr,
            )
        return 1
    if code != 0:
        _mark_dead(job_dir, b"".join(tail).decode(errors="replace"), code)
    return code


def _pump(src: Any, dst: Any, tail: list[bytes]) -> None:
    """Forward a child's output as it comes; keep the last lines for the post-mortem."""
    for line in iter(src.readline, b""):
        dst.write(line)
        dst.flush()
        tail.append(line)
        if len(tail) > 400:
            del tail[:200]


def _watch(
    proc: subprocess.Popen[bytes], job_dir: Path, rank0: list[int], launched: float = 0.0
) -> int:
    """Wait for mpiexec: show progress from the store, learn rank 0's pid, end a lingering mpiexec.

    Progress: a plain line on stderr every ``QSHPC_PROGRESS_S`` seconds (5;
    0 turns it off) with tasks done, failed, the rate and the sub-status, read
    from the store as ``qshpc status --watch`` does.
    """
    from qshpc.store import JobReader

    every = settings.PROGRESS_S.get()
    next_line = time.monotonic() + every
    meter: Any = None
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        if every > 0 and time.monotonic() >= next_line:
            next_line = time.monotonic() + every
            meter = _progress_line(job_dir, meter)
        if not rank0:
            try:
                with JobReader.open(job_dir) as r:
                    meta = r.meta()
                ranks = meta.get("ranks") or []
                # A resumed job's store lists the previous run's ranks until this
                # run's rank 0 records its own: never take a dead pid of an old run.
                if ranks and float(meta.get("last_started") or 0) >= launched:
                    rank0.append(int(ranks[0]["pid"]))
            except Exception:
                pass
            continue
        try:
            os.kill(rank0[0], 0)
        except ProcessLookupError:
            try:
                return proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                proc.terminate()
                return proc.wait()


def _progress_line(job_dir: Path, meter: Any) -> Any:
    """Print one progress line for a running job; return the rate meter to reuse."""
    from qshpc.jobs.progress import RateMeter, format_line, snapshot
    from qshpc.store import JobReader

    try:
        with JobReader.open(job_dir) as r:
            snap = snapshot(r.meta())
    except Exception:
        return meter
    meter = meter or RateMeter()
    meter.add(snap.now, snap.done + snap.failed)
    if snap.state == "RUNNING":
        print(f"qshpc: {format_line(snap, meter.rate())}", file=sys.stderr, flush=True)
    return meter


def _mark_dead(job_dir: Path, output: str, code: int) -> None:
    """Record FAILED, naming the dead rank and the tasks it held, when the ranks died unfinalized."""
    from qshpc.jobs.paths import mark_terminal
    from qshpc.jobs.postmortem import describe
    from qshpc.store import JobReader

    try:
        with JobReader.open(job_dir) as r:
            meta = r.meta()
            finished = {t["task_id"] for t in r.tasks()}
    except Exception:
        meta, finished = {}, set()
    if meta.get("state") in (None, "QUEUED", "RUNNING"):
        why = describe(job_dir, meta, finished, output)
        mark_terminal(job_dir, "FAILED", f"the MPI ranks exited with code {code}: {why}")
        from qshpc.store import recover

        try:
            recover(job_dir)  # job.h5 alone now holds every committed record
        except Exception as exc:  # the directory may be gone or full: the journal stays
            print(f"qshpc: could not fold the journal into job.h5: {exc}", file=sys.stderr)
        print(f"qshpc: job {meta.get('id', job_dir.name)} FAILED: {why}", file=sys.stderr)

