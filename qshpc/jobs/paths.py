"""Where jobs live: ``$QSHPC_HOME/jobs/<job_id>/`` (default ``~/.qshpc``), and job ids."""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path

from qshpc import settings
from qshpc.errors import JobNotFoundError

JOB_FILE = "job.h5"
#: The Slurm job id of a job submitted to Slurm (written by qshpc.submit after sbatch).
SLURM_ID_FILE = "slurm_job_id"
#: Slurm's final answer about a job, kept so that a job Slurm forgot keeps its state.
SLURM_STATE_FILE = "slurm_state.json"


def qshpc_home() -> Path:
    """The qshpc home folder (``$QSHPC_HOME``, default ``~/.qshpc``)."""
    return settings.HOME.get() or Path.home() / ".qshpc"


def jobs_root() -> Path:
    """The folder holding one sub-folder per job."""
    return qshpc_home() / "jobs"


def new_job_id() -> str:
    """A sortable, unique job id such as ``20261125-143012-a1b2c3``."""
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


_SLURM_ID = re.compile(r"\d+(_\d+)?")


def resolve_job_dir(job: str | os.PathLike[str]) -> Path:
    """Find a job's directory from its id, a directory path, or a Slurm job id.

    Raises:
        JobNotFoundError: Nothing matches, with the places searched.
    """
    text = os.fspath(job)
    p = Path(text).expanduser()
    if (p / JOB_FILE).is_file():
        return p.resolve()
    if p.name == JOB_FILE and p.is_file():
        return p.parent.resolve()
    root = jobs_root()
    cand = root / text
    if "/" not in text and (cand / JOB_FILE).is_file():
        return cand
    if _SLURM_ID.fullmatch(text) and root.is_dir():
        for d in root.iterdir():
            if read_slurm_id(d) == text:
                return d
    raise JobNotFoundError(
        f"no job {text!r}: not a job directory and not a job id under {root}. "
        "Run `qshpc list` to see the jobs (set QSHPC_HOME if they live elsewhere)."
    )


def read_slurm_id(job_dir: Path) -> str | None:
    """The Slurm job id recorded at submit time (``JOB_DIR/slurm_job_id``), or None."""
    try:
        text = (job_dir / SLURM_ID_FILE).read_text().strip()
    except OSError:
        return None
    return text or None


STATUS_OVERRIDE = "status.json"


def mark_terminal(job_dir: Path, state: str, why: str) -> None:
    """Record a terminal state for a job whose ranks died before finalizing the store.

    Written atomically next to the store (the store itself may still be open
    by a dead writer); readers prefer the store's own terminal state.
    """
    import json

    tmp = job_dir / f".{STATUS_OVERRIDE}.tmp"
    data = {"state": state, "error": why, "time": time.time()}
    from qshpc.store import perms

    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, perms.file_mode())
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, job_dir / STATUS_OVERRIDE)


def read_override(job_dir: Path) -> dict[str, object] | None:
    """The terminal state written by :func:`mark_terminal`, if any."""
    import json

    p = job_dir / STATUS_OVERRIDE
    try:
        data: dict[str, object] = json.loads(p.read_text())
        return data
    except (OSError, ValueError):
        return None
