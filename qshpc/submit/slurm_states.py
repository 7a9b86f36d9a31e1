"""Slurm's words for job states, mapped onto :class:`~qshpc.jobstate.JobState`; parsers of its answers.

Pure functions and tables: the commands that produce these answers are in
:mod:`qshpc.submit.slurm`. A state Slurm may add one day (a word not in
:data:`SLURM_STATES`) maps to UNKNOWN: shown raw, never taken for RUNNING.
"""

from __future__ import annotations

from dataclasses import dataclass

from qshpc.jobstate import TERMINAL, JobState

#: Slurm job state -> qshpc state (as Parsl's translate tables, in the seed's names).
SLURM_STATES: dict[str, JobState] = {
    "PENDING": JobState.QUEUED,
    "CONFIGURING": JobState.QUEUED,
    "REQUEUED": JobState.QUEUED,
    "REQUEUE_HOLD": JobState.QUEUED,
    "REQUEUE_FED": JobState.QUEUED,
    "RESV_DEL_HOLD": JobState.QUEUED,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "COMPLETED": JobState.SUCCEEDED,
    "CANCELLED": JobState.CANCELED,
    "REVOKED": JobState.CANCELED,
    "FAILED": JobState.FAILED,
    "TIMEOUT": JobState.FAILED,
    "PREEMPTED": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
}

#: Slurm ended the job for these reasons; they explain a store state of CANCELED or FAILED.
EXPLAINS: dict[str, str] = {
    "TIMEOUT": "the job reached its time limit",
    "PREEMPTED": "Slurm preempted the job (submit with --requeue to have it restarted)",
    "NODE_FAIL": "a node of the job failed (submit with --requeue to have it restarted)",
    "BOOT_FAIL": "a node of the job failed to boot",
    "OUT_OF_MEMORY": "the job ran out of memory (raise --mem-gb, or use fewer ranks per node)",
    "DEADLINE": "the job reached its deadline",
}


#: Slurm states of a job that was requeued and waits to start again.
REQUEUED = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED")


@dataclass(frozen=True)
class SlurmView:
    """One answer from Slurm: raw state (``CANCELLED``, not ``CANCELLED by 0``), exit code, reason."""

    raw: str
    exit_code: str = ""
    reason: str = ""
    source: str = "sacct"

    @property
    def state(self) -> JobState:
        """The qshpc state for the raw state; UNKNOWN for a word qshpc does not know.

        An unknown state is neither RUNNING nor ended: readers show it as UNKNOWN,
        with Slurm's word beside it, and keep asking.
        """
        return SLURM_STATES.get(self.raw, JobState.UNKNOWN)

    @property
    def known(self) -> bool:
        """True when qshpc knows Slurm's word for the state."""
        return self.raw in SLURM_STATES

    @property
    def ended(self) -> bool:
        """True when Slurm says the job is over."""
        return self.state in TERMINAL


def parse_sacct(text: str, slurm_id: str) -> SlurmView | None:
    """The allocation's line of ``sacct -X --parsable2 --noheader --format=JobID,State,ExitCode,Reason``.

    ``slurm_id`` may be an array element (``123_4``): its own line, or the pending array's.
    """
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= 2 and _same_job(parts[0], slurm_id):
            raw = parts[1].split()[0].rstrip("+") if parts[1].strip() else ""
            if raw:
                return SlurmView(
                    raw,
                    parts[2] if len(parts) > 2 else "",
                    parts[3] if len(parts) > 3 else "",
                    "sacct",
                )
    return None


def _same_job(field: str, slurm_id: str) -> bool:
    """True when sacct's JobID ``field`` is the job ``slurm_id`` (``123``, or array element ``123_4``).

    A pending array shows as one line, ``123_[0-5%2]`` or ``123_[1,4]``, that covers its elements.
    """
    field = field.split("+")[0].strip()
    main, sep, index = slurm_id.partition("_")
    if not sep:
        return field.split("_")[0] == slurm_id
    if field == slurm_id:
        return True
    head, _, ranges = field.partition("_[")
    if head != main or not ranges.endswith("]"):
        return False
    for part in ranges[:-1].split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (hi or lo).isdigit() and int(lo) <= int(index) <= int(hi or lo):
            return True
    return False


def parse_scontrol(text: str) -> SlurmView | None:
    """``JobState=... Reason=... ExitCode=...`` from ``scontrol show job``."""
    fields: dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep and key in ("JobState", "Reason", "ExitCode"):
            fields.setdefault(key, value)
    if "JobState" not in fields:
        return None
    return SlurmView(
        fields["JobState"], fields.get("ExitCode", ""), fields.get("Reason", ""), "scontrol"
    )


def parse_squeue(text: str) -> dict[str, SlurmView]:
    """``squeue -h -o %i|%T|%r`` lines, by job id (an array element as ``123_4``)."""
    views: dict[str, SlurmView] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0] and parts[1].strip():
            reason = parts[2].strip() if len(parts) > 2 else ""
            views.setdefault(parts[0].strip(), SlurmView(parts[1].strip(), "", reason, "squeue"))
    return views


__all__ = [
    "EXPLAINS",
    "REQUEUED",
    "SLURM_STATES",
    "SlurmView",
    "parse_sacct",
    "parse_scontrol",
    "parse_squeue",
]
