"""How the hints qshpc prints name a job: the way a later command finds it (review24 F3)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from qshpc import settings

#: :data:`qshpc.jobs.paths.JOB_ID` and ``JOB_ID_FILE``, here below ``qshpc.jobs`` (which
#: ``import qshpc.jobs.paths`` must not pull the store in for).
_JOB_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
_JOB_ID_FILE = "job_id"


def job_ref(job_dir: str | os.PathLike[str]) -> str:
    """How a later qshpc command finds the job in ``job_dir``, for the hints qshpc prints.

    Its folder name when the folder sits in the jobs folder (``$QSHPC_HOME/jobs``): the
    job id, or the ``slurm-4711`` of an own sbatch script, both of which
    ``resolve_job_dir`` finds. Else the folder's path, quoted for a shell: the id of a job
    run with ``--job-dir DIR`` resolves to nothing (review24 F3: the job's own last line,
    ``qshpc status ID shows the error``, answered "no job"). Here in the store, below
    ``qshpc.jobs``, so that the store's refusals name jobs the same way.
    """
    import shlex

    from qshpc.text import shown

    d = Path(job_dir)
    root = (settings.HOME.get() or Path.home() / ".qshpc") / "jobs"
    try:
        same = os.path.samefile(d.parent, root)
    except OSError:  # no jobs folder, the job's folder gone: the path always works
        same = False
    return shown(d.name if same else shlex.quote(str(d.absolute())))


def made_for(job_dir: Path) -> str | None:
    """The id of the job the folder ``job_dir`` was made for: its name when qshpc named it
    so, else its ``job_id`` file (a ``--job-dir`` folder); None when neither says. Here
    in the store, so that a damaged store's error names the file that is another job's
    (review53 N1, N2)."""
    if _JOB_ID.fullmatch(job_dir.name):
        return job_dir.name
    try:
        fd = os.open(job_dir / _JOB_ID_FILE, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.read(fd, 64).decode("ascii", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)
    return text if _JOB_ID.fullmatch(text) else None
