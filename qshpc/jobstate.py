"""``JobState``: the one list of job states (the seed's names, and UNKNOWN).

A job is QUEUED, RUNNING, then SUCCEEDED, FAILED or CANCELED, as the seed's
``job.status()`` says. UNKNOWN is what qshpc shows when the scheduler reports
a state it does not know (the scheduler's raw word is kept beside it, in
``meta["slurm_state"]``): never RUNNING, never ended. DAMAGED is what qshpc shows
when a job's store cannot be read as written (``meta["recoverable"]`` says what
still can): never written either; ``wait`` returns it at once. Members are strings, so
``JobState.RUNNING == "RUNNING"`` and the store keeps plain text.
"""

from __future__ import annotations

from enum import Enum


class JobState(str, Enum):
    """The state of a job."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    UNKNOWN = "UNKNOWN"
    DAMAGED = "DAMAGED"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def ended(self) -> bool:
        """True for SUCCEEDED, FAILED and CANCELED."""
        return self in TERMINAL


#: The states a job ends in.
TERMINAL: tuple[JobState, ...] = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED)
#: The states the store records (UNKNOWN and DAMAGED are never written: they are readings).
STORED: tuple[JobState, ...] = (
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.CANCELED,
)

__all__ = ["STORED", "TERMINAL", "JobState"]
