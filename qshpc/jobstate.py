"""``JobState``: the one list of job states (the seed's names, and UNKNOWN).

A job is QUEUED, RUNNING, then SUCCEEDED, FAILED or CANCELED, as the seed's
``job.status()`` says. UNKNOWN is what qshpc shows when the scheduler reports
a state it does not know (the scheduler's raw word is kept beside it, in
``meta["slurm_state"]``): never RUNNING, never ended. Members are strings, so
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
#: The states the store records (UNKNOWN is never written: it is a reading of the scheduler).
STORED: tuple[JobState, ...] = (
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.CANCELED,
)

__all__ = ["STORED", "TERMINAL", "JobState"]
