"""The batch script of a qshpc Slurm job, rendered by submitit's own template (pure functions).

:func:`executor_parameters` is the one translation from
:class:`~qshpc.submit.resources.SlurmResources` to submitit's ``SlurmExecutor``
parameters, used both to submit and to render ``qshpc submit --dry-run``, so
what is shown is what is submitted.
"""

from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path
from typing import Any

from qshpc.submit.resources import SlurmResources

#: Slurm sends submitit's checkpoint signal (USR2) this many seconds before the
#: time limit. qshpc does not checkpoint through submitit: 0 lets the limit
#: itself end the job, so Slurm records TIMEOUT (with the default 90 s the
#: signal ends the program early and the job looks COMPLETED).
SIGNAL_DELAY_S = 0


def signal_delay_s(res: SlurmResources) -> int:
    """Seconds before the time limit that Slurm warns the job (USR2).

    Without ``--requeue``: :data:`SIGNAL_DELAY_S`. With it, rank 0 requeues the
    job on the warning (:mod:`qshpc.runtime.requeue`), so it comes early
    enough for that: a quarter of the limit, between 30 s (Slurm checks time
    limits about every 30 s) and 120 s.
    """
    if not res.requeue:
        return SIGNAL_DELAY_S
    return max(30, min(120, res.time_min * 60 // 4))


def executor_parameters(res: SlurmResources, job_name: str, job_dir: Path) -> dict[str, Any]:
    """``SlurmExecutor.update_parameters`` keywords for ``res`` (``mem`` as sbatch takes it).

    ``mem`` is the text sbatch reads (``"3GB"``, ``"512MB"``): submitit converts a
    number only on its AutoExecutor's path, so the float that was given here reached
    sbatch as ``--mem=3.0`` ("Invalid --mem specification"), while ``--dry-run``,
    which converted it itself, showed ``--mem=3GB`` (review24 F1).

    Args:
        res: Validated resources.
        job_name: The Slurm job name (validated).
        job_dir: The job directory (for the comment lines of the script).
    """
    params: dict[str, Any] = {
        "job_name": job_name,
        "nodes": res.nodes,
        "ntasks_per_node": res.ntasks_per_node,
        "cpus_per_task": res.cpus_per_task,
        "time": res.time_min,
        "signal_delay_s": signal_delay_s(res),
        "stderr_to_stdout": True,
        "wckey": "qshpc",
        "srun_args": [f"--mpi={res.mpi}"],
        "setup": setup_lines(res, job_dir),
    }
    if res.gpus_per_node:
        params["gpus_per_node"] = res.gpus_per_node
    if res.mem_gb is not None:
        params["mem"] = mem_text(float(res.mem_gb))
    for key in ("partition", "account", "qos"):
        value = getattr(res, key)
        if value:
            params[key] = value
    extra: dict[str, Any] = dict(sorted(res.extra.items()))
    # Without --requeue, say so: Slurm's default requeues a NODE_FAIL job, which
    # would rerun it in the same job directory after qshpc reported it FAILED.
    extra["requeue" if res.requeue else "no_requeue"] = True
    if extra:
        params["additional_parameters"] = extra
    return params


def mem_text(gb: float) -> str:
    """``--mem`` for ``gb`` GB per node, as submitit writes it: ``3GB``, ``512MB`` for 0.5."""
    if gb == int(gb):
        return f"{int(gb)}GB"
    return f"{max(1, math.ceil(gb * 1024))}MB"  # (never 0: Slurm reads --mem=0 as all of it)


def setup_lines(res: SlurmResources, job_dir: Path) -> list[str]:
    """The lines before ``srun``: a comment saying what runs, modules, site setup."""
    lines = [
        f"# qshpc job {shlex.quote(str(job_dir))}: every task runs `qshpc run` on the program",
        "# staged in JOB_DIR/program (rank 0 runs it, the other ranks run its tasks)",
    ]
    if res.modules:
        lines.append("module load " + " ".join(shlex.quote(m) for m in res.modules))
    lines += res.setup
    if res.requeue:
        lines += REQUEUE_STEP_LINES
    return lines


#: A requeued job starts again with the same job id and step ids from 0. Were
#: the program's step the same step as in a killed run, MPICH would name its
#: node-local shared memory as then and find that run's segments (MPI_Init
#: aborts, or sends garbage through PMI). Run N (restart count N-1) runs N-1
#: empty steps first, so the program's step id is new in every run.
REQUEUE_STEP_LINES = [
    "# requeued: one empty step per restart, so the program's step id is new in every run",
    'for _ in $(seq "${SLURM_RESTART_COUNT:-0}"); do srun --ntasks=1 --nodes=1 true; done',
]


def submitit_command(folder: Path, python: str | None = None) -> str:
    """The command each task runs (as ``SlurmExecutor._submitit_command_str`` builds it)."""
    py = shlex.quote(sys.executable) if python is None else python
    return " ".join([py, "-u -m submitit.core._submit", shlex.quote(str(folder))])


def render(params: dict[str, Any], folder: Path, python: str | None = None) -> str:
    """The sbatch script submitit writes for ``params`` (the same ``params`` it is given)."""
    from submitit.slurm import slurm as _slurm

    kwargs = dict(params)
    text: str = _slurm._make_sbatch_string(
        command=submitit_command(folder, python), folder=folder, **kwargs
    )
    return text
