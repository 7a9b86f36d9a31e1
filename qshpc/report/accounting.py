"""Slurm accounting of a job's steps: elapsed time, MaxRSS, state per step.

``qshpc report`` shows it for jobs that ran on Slurm. One ``sacct`` call (in
:func:`qshpc.submit.slurm.sacct_steps`, with a timeout); once the job has
ended and every step is final, the answer is kept in
``JOB_DIR/slurm_accounting.json`` so a later report neither waits for Slurm
nor loses the table when Slurm's database has forgotten the job.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

CACHE_FILE = "slurm_accounting.json"
FIELDS = ("JobID", "JobName", "State", "Elapsed", "MaxRSS", "ExitCode", "NodeList", "AllocCPUS")
_FORMAT = "JobID,JobName%60,State%40,Elapsed,MaxRSS,ExitCode,NodeList%200,AllocCPUS"
_ACTIVE = {"PENDING", "RUNNING", "COMPLETING", "REQUEUED", "SUSPENDED", "CONFIGURING"}


@dataclass(frozen=True)
class Step:
    """One line of ``sacct``: the allocation (``123``), the batch step, or an ``srun`` step.

    Attributes:
        job_id: ``123``, ``123.batch``, ``123.0``, ``123_4.0`` ...
        name: The step's name.
        state: Slurm's state (``COMPLETED``, ``FAILED``, ``CANCELLED by 0`` ...).
        elapsed: Wall time as Slurm prints it (``00:01:02``).
        max_rss: Largest resident set of any task of the step (``123456K``), empty when unknown.
        exit_code: ``code:signal``.
        nodes: The node list.
        cpus: CPUs allocated.
    """

    job_id: str
    name: str
    state: str
    elapsed: str
    max_rss: str
    exit_code: str
    nodes: str
    cpus: str


def parse_steps(text: str) -> list[Step]:
    """The steps in ``sacct --parsable2 --noheader --format=<FIELDS>`` output."""
    steps = []
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= len(FIELDS) and parts[0].strip():
            steps.append(Step(*(p.strip() for p in parts[: len(FIELDS)])))
    return steps


def format_rss(text: str) -> str:
    """``123456K`` as ``120.6 MiB`` (sacct's units are powers of 1024); empty stays empty."""
    text = text.strip()
    if not text:
        return ""
    units = {"K": 1, "M": 2, "G": 3, "T": 4}
    scale = units.get(text[-1].upper())
    try:
        value = float(text[:-1]) if scale else float(text) / 1024
    except ValueError:
        return text
    kib = value * 1024 ** ((scale or 1) - 1)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        if kib < 1024 or unit == "TiB":
            return f"{kib:.1f} {unit}"
        kib /= 1024
    return text  # pragma: no cover


def _cached(job_dir: Path, slurm_id: str) -> list[Step] | None:
    try:
        from qshpc.jobs.paths import read_small

        data = json.loads(read_small(job_dir / CACHE_FILE, 1 << 22))  # never a FIFO (hunt16)
        if data.get("slurm_id") != slurm_id:
            return None
        return [Step(**s) for s in data["steps"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _save(job_dir: Path, slurm_id: str, steps: list[Step]) -> None:
    from qshpc.store import perms

    data = {"slurm_id": slurm_id, "steps": [asdict(s) for s in steps]}
    try:
        perms.write_atomic(job_dir / CACHE_FILE, json.dumps(data).encode())
    except OSError:
        pass  # a read-only job folder: ask Slurm again next time


def job_steps(job_dir: Path, slurm_id: str) -> tuple[list[Step], str | None]:
    """The steps of Slurm job ``slurm_id`` and, when there are none, why.

    Never raises for Slurm trouble: a missing ``sacct``, a timeout or a
    database that does not answer gives ``([], reason)``.
    """
    cached = _cached(job_dir, slurm_id)
    if cached is not None:
        return cached, None
    from qshpc.jobs.paths import read_slurm_cluster
    from qshpc.submit.slurm import other_cluster, sacct_steps

    recorded = read_slurm_cluster(job_dir)
    here = other_cluster(recorded)
    if here is not None:
        return [], f"Slurm job {slurm_id} is on cluster {recorded!r}, not this host's {here!r}"
    out, why = sacct_steps(slurm_id, _FORMAT)
    if out is None:
        return [], why
    steps = parse_steps(out)
    if not steps:
        return [], f"Slurm's accounting has no record of job {slurm_id}"
    if all(s.state.split()[0].rstrip("+") not in _ACTIVE for s in steps):
        _save(job_dir, slurm_id, steps)
    return steps, None
