"""Requeue under Slurm (``qshpc submit --requeue``): stop, keep what is done, come back.

``qshpc submit --requeue`` sets ``QSHPC_REQUEUE=1`` for the job and asks Slurm
for a warning signal (``--signal=USR2@N``) before the time limit. Rank 0 then
turns two signals into a requeue instead of a cancel:

- SIGUSR2, the time-limit warning: rank 0 flushes the store and runs
  ``scontrol requeue $SLURM_JOB_ID`` itself;
- SIGTERM when Slurm has already requeued the job (``scontrol requeue``,
  preemption in REQUEUE mode): Slurm's restart count is above this run's
  ``SLURM_RESTART_COUNT``.

Either way the store is not finalized: it keeps every committed task result
and the sub-status says the job was requeued, and the next start (with
``SLURM_RESTART_COUNT > 0``) resumes from the stored results.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

REQUEUE_ENV = "QSHPC_REQUEUE"
#: Seconds any scontrol call may take.
SCONTROL_TIMEOUT_S = 20


class Requeue(BaseException):
    """Raised in the program's thread when the job is to be requeued.

    Attributes:
        why: What happened, for the job's sub-status.
        ask_slurm: True when rank 0 must run ``scontrol requeue`` itself (time limit).
    """

    def __init__(self, why: str, ask_slurm: bool) -> None:
        super().__init__(why)
        self.why = why
        self.ask_slurm = ask_slurm


def enabled() -> bool:
    """True in a Slurm job submitted with ``--requeue``."""
    return os.environ.get(REQUEUE_ENV) == "1" and bool(os.environ.get("SLURM_JOB_ID"))


def _job_id() -> str:
    return os.environ.get("SLURM_JOB_ID", "")


def slurm_restarts() -> int | None:
    """Slurm's restart count of this job (``scontrol show job``), None when it does not answer."""
    job = _job_id()
    if not job.isdigit():
        return None
    try:
        out = subprocess.run(
            ["scontrol", "show", "job", "-o", job],
            capture_output=True,
            text=True,
            timeout=SCONTROL_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"\bRestarts=(\d+)", out.stdout)
    return int(m.group(1)) if out.returncode == 0 and m else None


def requeued_by_slurm() -> bool:
    """True when Slurm has requeued this job since this run started."""
    now = slurm_restarts()
    try:
        mine = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    except ValueError:
        mine = 0
    return now is not None and now > mine


def reason(signum: int) -> Requeue | None:
    """The requeue a signal means for this job, or None (then it is a cancel)."""
    if not enabled():
        return None
    if signum == signal.SIGUSR2:
        return Requeue("the time limit is near", ask_slurm=True)
    if signum == signal.SIGTERM and requeued_by_slurm():
        return Requeue("Slurm requeued the job (scontrol requeue or preemption)", ask_slurm=False)
    return None


def requeue_self() -> str | None:
    """Run ``scontrol requeue $SLURM_JOB_ID``; return None on success, else what went wrong."""
    job = _job_id()
    if not job.isdigit():
        return f"no Slurm job id (SLURM_JOB_ID={job!r})"
    try:
        out = subprocess.run(
            ["scontrol", "requeue", job], capture_output=True, text=True, timeout=SCONTROL_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scontrol requeue {job} failed: {exc}"
    if out.returncode != 0:
        return f"scontrol requeue {job} failed: {out.stderr.strip() or out.returncode}"
    return None
