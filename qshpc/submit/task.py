"""The function submitit runs in every Slurm task: bind a GPU, then join the qshpc runtime.

It is pickled by reference at submit time, so it must stay importable as
``qshpc.submit.task.run_task`` with this signature. Under ``srun --mpi=pmi2``
all tasks join one COMM_WORLD: rank 0 opens the job created at submit time
(``qshpc run --job-dir`` semantics) and runs the staged program; the other
ranks serve its tasks.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from qshpc import settings
from qshpc.submit import slurm

GPU_BIND_ENV = settings.GPU_BIND.name


def bind_gpu(
    gpus_per_node: int, environ: dict[str, str] | os._Environ[str] | None = None
) -> str | None:
    """Make this rank see exactly one GPU, chosen by its local rank (``SLURM_LOCALID``).

    Slurm's ``CUDA_VISIBLE_DEVICES`` (all GPUs of the node) is narrowed to
    entry ``local_rank % n``; without it, device ``local_rank % gpus_per_node``.
    ``QSHPC_GPU_BIND=none`` leaves the environment alone.

    Returns:
        The value set in ``CUDA_VISIBLE_DEVICES``, or None when nothing was changed.
    """
    env = os.environ if environ is None else environ
    if gpus_per_node <= 0 or settings.GPU_BIND.get(env) == "none":
        return None
    local = slurm.local_rank(env)
    visible = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    choice = visible[local % len(visible)] if visible else str(local % gpus_per_node)
    env["CUDA_VISIBLE_DEVICES"] = choice
    return choice


def link_slurm_log(job_dir: Path, rank: int) -> None:
    """Link this task's submitit log into ``JOB_DIR/logs`` so ``qshpc logs`` shows it.

    The log holds what happened before the runtime's own per-rank log opened
    (an import error, a bad environment) and submitit's messages.
    """
    folder = os.environ.get("SUBMITIT_FOLDER")
    env = slurm.task_env()
    if not folder or env is None:
        return
    # submitit names an array element's logs <array id>_<index>_<rank>
    slurm_id = env.element_id
    target = Path(folder) / f"{slurm_id}_{rank}_log.out"
    link = job_dir / "logs" / f"slurm-{slurm_id}_{rank}.out"
    try:
        if target.exists() and not link.is_symlink():
            link.symlink_to(target)
    except OSError:
        pass


def _early_cancel(signum: int, frame: Any) -> None:
    """Rank 0, before the program starts: a cancel (SIGTERM) ends the process now."""
    raise SystemExit(128 + signum)


def _forget_slurm_answers(job_dir: Path) -> None:
    """A requeued run: the state Slurm or a reader recorded for the previous run no longer holds."""
    from qshpc.jobs.paths import SLURM_STATE_FILE, STATUS_OVERRIDE

    for name in (SLURM_STATE_FILE, STATUS_OVERRIDE):
        try:
            (job_dir / name).unlink()
        except OSError:
            pass


def add_python_path(value: str, path: list[str] | None = None) -> list[str]:
    """Put the folders of a ``PYTHONPATH`` value on ``sys.path`` (those not there yet), as
    Python does at start: after its first entry, in order. Returns the folders added.

    The program's ``env_vars`` reach this process after Python started (submitit
    runs :func:`run_task`), so their ``PYTHONPATH`` would reach only the processes
    the program starts: a LocalClient job's ranks, started with it, import from
    those folders, and a Slurm job's did not (fix31).
    """
    path = sys.path if path is None else path
    added = [f for f in dict.fromkeys(value.split(os.pathsep)) if f and f not in path]
    path[1:1] = added
    return added


def _argv0(entry: Path, workdir: Path) -> str:
    """The program's ``sys.argv[0]`` in a Slurm job: its path in the staged folder (the
    job's cwd), ``io.py`` for ``qshpc submit io.py``, as ``python io.py`` there shows it."""
    try:
        return str(entry.relative_to(workdir))
    except ValueError:
        return str(entry)


def _succeeded(job_dir: Path) -> bool:
    """Whether the job's store says SUCCEEDED (False when it cannot be read)."""
    from qshpc.store import JobReader

    try:
        with JobReader.open(job_dir) as r:
            return r.meta().get("state") == "SUCCEEDED"
    except Exception:
        return False


def run_task(
    job_dir: str,
    entry: str,
    workdir: str,
    gpus_per_node: int = 0,
    env: dict[str, str] | None = None,
    resume: bool = False,
    program_args: list[str] | None = None,
) -> int:
    """Run one Slurm task of a qshpc job; exit non-zero when the job did not succeed.

    Args:
        job_dir: The job directory created at submit time.
        entry: The staged program file.
        workdir: The staged working directory (the program's cwd).
        gpus_per_node: GPUs requested per node (0: no binding).
        env: The program's ``env_vars`` (a ``PYTHONPATH`` there reaches this process's
            ``sys.path`` too: :func:`add_python_path`).
        resume: Resume the job (``qshpc submit --resume``): only tasks without a stored
            result run.
        program_args: The program's ``sys.argv[1:]`` (``qshpc submit PROG -- ARGS``).

    Raises:
        SystemExit: With the runtime's exit code when the job did not succeed, so
            that Slurm records the job as failed too.
    """
    from qshpc.jobs.prepare import RunSpec
    from qshpc.launch.local import run
    from qshpc.runtime.mpi import launched_by_mpi

    os.environ.update(env or {})
    add_python_path((env or {}).get("PYTHONPATH", ""))
    bind_gpu(gpus_per_node)
    # A requeued run's step has a new step id (the batch script runs an empty
    # step first, see qshpc.submit.sbatch.REQUEUE_STEP_LINES), so MPICH does not
    # meet the killed run's shared memory.
    here = slurm.task_env() or slurm.TaskEnv(job_id="")
    rank = here.procid
    link_slurm_log(Path(job_dir), rank)
    restarted = here.restart_count > 0
    if restarted and _succeeded(Path(job_dir)):
        # Slurm restarted a job whose run had ended SUCCEEDED (a node lost between the
        # store's end and Slurm's): nothing to run, its result stays (a resume of it is
        # refused, exit 2, and Slurm would record it FAILED). Every rank reads it alike.
        if rank == 0:
            print(
                f"qshpc: job {Path(job_dir).name} had already SUCCEEDED when Slurm restarted "
                "it: nothing to run; its result is kept",
                file=sys.stderr,
                flush=True,
            )
        return 0
    if rank == 0:
        # submitit ignores SIGTERM; until the program's own handler is in place
        # (the runtime turns SIGTERM into CANCELED), a cancel should not wait
        # for Slurm's KillWait.
        signal.signal(signal.SIGTERM, _early_cancel)
        if settings.REQUEUE.get():
            # The time-limit warning (--signal=USR2@N) means something only while
            # the program runs (the runtime then requeues); submitit's own
            # handler would end the job early.
            signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        if restarted:
            _forget_slurm_answers(Path(job_dir))
    os.chdir(workdir)
    ntasks = here.ntasks
    workers: int | None = None
    if not launched_by_mpi():
        if ntasks > 1:
            why = (
                f"srun started {ntasks} tasks without MPI wiring (no PMI variables): "
                "submit with --mpi pmi2 (see `srun --mpi=list`)"
            )
            if rank == 0:
                from qshpc.jobs.paths import mark_terminal

                mark_terminal(Path(job_dir), "FAILED", why)
            print(f"qshpc: error: {why}", file=sys.stderr)
            raise SystemExit(2)
        workers = 0
    spec = RunSpec(
        program=Path(entry),
        job_dir=Path(job_dir),
        resume=job_dir if restarted or resume else None,
        program_args=list(program_args or []),
        argv0=_argv0(Path(entry), Path(workdir)),
    )
    code = run(spec, workers, slurm.scheduler())
    from qshpc.runtime.leave import leave_within

    leave_within(code, settings.EXIT_GRACE_S.get())  # threads the program left running
    if code:
        raise SystemExit(code)
    return 0
