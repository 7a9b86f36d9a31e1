"""How the hints qshpc prints name a job: the way a later command finds it (review24 F3)."""

from __future__ import annotations

import os
from pathlib import Path

from qshpc import settings


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
