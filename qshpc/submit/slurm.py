"""Submitting qshpc jobs to Slurm through submitit, and cancelling them.

``submit`` creates the job in the store (state QUEUED), stages the program's
working directory into ``JOB_DIR/program/``, and hands submitit
``qshpc.submit.task.run_task`` to run in every task of an
``srun --mpi=pmi2`` step; submitit's folder is ``JOB_DIR/slurm/``. The Slurm
job id goes to ``JOB_DIR/slurm_job_id`` (known only after ``sbatch``), where
:func:`qshpc.jobs.resolve_job_dir` and ``Job.info()`` find it.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qshpc.errors import ResourceError, UserError
from qshpc.jobs import jobs_root, new_job_id, qshpc_home
from qshpc.submit.resources import SlurmResources, safe_job_name
from qshpc.submit.sbatch import executor_parameters, render
from qshpc.submit.staging import check_size, stage

if TYPE_CHECKING:
    from qshpc.client import Program

SLURM_ID_FILE = "slurm_job_id"
STAGED_DIR = "program"
SUBMITIT_DIR = "slurm"
#: Seconds any Slurm client command may take before qshpc gives up on it.
COMMAND_TIMEOUT_S = 30


@dataclass
class Submission:
    """What ``submit`` did (or, for a dry run, would do).

    Attributes:
        job_id: The qshpc job id.
        slurm_job_id: Slurm's job id (None for a dry run).
        job_dir: The job directory.
        script: The batch script submitted (or that would be).
    """

    job_id: str
    slurm_job_id: str | None
    job_dir: Path
    script: str

    def as_dict(self) -> dict[str, Any]:
        """The ids and the job directory, JSON-able."""
        return {"job_id": self.job_id, "slurm_job_id": self.slurm_job_id, "job_dir": str(self.job_dir)}


def submit(
    program: Program,
    arguments: dict[str, Any] | None,
    seed: int | None,
    res: SlurmResources,
    dry_run: bool = False,
) -> Submission:
    """Submit ``program`` with ``arguments`` as one Slurm job; return at once.

    Raises:
        ResourceError: Bad resources, or sbatch refused them (its message, and the partitions).
        UserError: A missing or invalid program, a working_dir over 1 GiB, no Slurm here.
    """
    from qshpc.runtime.prepare import check_program

    res.validate()
    entry = program.path()
    check_program(entry)
    src = Path(program.working_dir).expanduser().resolve()
    entrypoint = entry.relative_to(src) if entry.is_relative_to(src) else Path(program.entrypoint)
    job_id = new_job_id()
    job_dir = jobs_root().absolute() / job_id
    if not str(job_dir).isprintable():
        raise UserError(f"QSHPC_HOME {qshpc_home()} holds non-printable characters: choose a plain path")
    # Never stage the job store itself (a working_dir that holds $QSHPC_HOME).
    exclude = [qshpc_home().absolute(), jobs_root().absolute(), job_dir]
    check_size(src, exclude)
    name = res.name or safe_job_name(program.title)
    params = executor_parameters(res, name, job_dir)
    folder = job_dir / SUBMITIT_DIR
    if dry_run:
        return Submission(job_id, None, job_dir, render(params, folder))
    executor = _executor(folder)
    executor.update_parameters(**params)
    from qshpc.client import Program as _Program
    from qshpc.client import create_program_job
    from qshpc.store import perms

    perms.make_dir(job_dir)
    try:
        stage(src, job_dir / STAGED_DIR, exclude)
        staged = _Program(
            title=program.title,
            entrypoint=str(entrypoint),
            working_dir=str(job_dir / STAGED_DIR),
            description=program.description,
            env_vars=dict(program.env_vars),
        )
        extra = {
            "id": job_id,
            "scheduler": "slurm",
            "source_working_dir": str(src),
            "slurm_job_name": name,
            "slurm_resources": res.as_meta(),
            "user": os.environ.get("USER", ""),
        }
        create_program_job(staged, arguments, seed, job_dir, extra_meta=extra)
        job = _sbatch(executor, staged, job_dir, res)
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise
    slurm_id = str(job.job_id)
    _write_private(job_dir / SLURM_ID_FILE, slurm_id + "\n")
    script = folder / f"{slurm_id}_submission.sh"
    text = script.read_text() if script.is_file() else render(params, folder)
    return Submission(job_id, slurm_id, job_dir, text)


def _executor(folder: Path) -> Any:
    try:
        import submitit
    except ImportError:  # pragma: no cover - a dependency
        raise UserError("submitit is not installed: pip install submitit") from None
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise UserError(
            "sbatch/srun not found: submit from a Slurm login node (or run locally with `qshpc run`)"
        )
    return submitit.SlurmExecutor(folder=folder)


def _sbatch(executor: Any, staged: Program, job_dir: Path, res: SlurmResources) -> Any:
    """Submit ``run_task``; turn sbatch's refusal into a ResourceError that says what to do."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    from qshpc.submit.task import run_task

    args = (str(job_dir), str(staged.path()), str(job_dir / STAGED_DIR), res.gpus_per_node)
    env = dict(staged.env_vars)
    if res.requeue:
        env["QSHPC_REQUEUE"] = "1"  # rank 0 requeues on Slurm's time-limit warning
    noise = io.StringIO()
    try:
        with contextlib.redirect_stderr(noise):  # submitit prints sbatch's stderr itself
            return executor.submit(run_task, *args, env=env)
    except (FailedJobError, FailedSubmissionError) as exc:
        raise ResourceError(_explain(str(exc) or noise.getvalue())) from None
    except OSError as exc:
        raise UserError(f"cannot run sbatch: {exc}") from None


def _explain(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    msg = "sbatch refused the job:\n    " + "\n    ".join(lines[-6:] or ["(no message)"])
    low = text.lower()
    if "partition" in low:
        parts = partitions()
        known = ", ".join(parts) if parts else "(sinfo did not answer)"
        msg += f"\npartitions on this cluster: {known}; choose one with --partition"
    elif "account" in low or "qos" in low or "association" in low:
        msg += "\nsee your accounts and QOS with `sacctmgr show assoc user=$USER`"
    elif "node configuration" in low or "memory" in low or "gres" in low:
        msg += "\nask for less (see `sinfo -o '%P %D %c %m %G'`), or check with --dry-run"
    return msg


def partitions() -> list[str]:
    """The cluster's partition names (``sinfo``), or [] when sinfo fails."""
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%R"], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted({p.strip() for p in out.stdout.split() if p.strip()}) if out.returncode == 0 else []


def cancel(slurm_job_id: str) -> None:
    """Cancel a Slurm job (``scancel``); the runtime marks the store CANCELED.

    Raises:
        UserError: scancel failed (its message included).
    """
    if not slurm_job_id.isdigit():
        raise UserError(f"not a Slurm job id: {slurm_job_id!r}")
    try:
        out = subprocess.run(
            ["scancel", slurm_job_id], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"scancel {slurm_job_id} failed: {exc}") from None
    if out.returncode != 0:
        raise UserError(f"scancel {slurm_job_id} failed: {out.stderr.strip() or out.returncode}")


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    from qshpc.store import perms

    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, perms.file_mode())
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def read_slurm_id(job_dir: Path) -> str | None:
    """The Slurm job id recorded at submit time, or None."""
    try:
        text = (job_dir / SLURM_ID_FILE).read_text().strip()
    except OSError:
        return None
    return text or None
