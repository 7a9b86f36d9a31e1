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

#: quantum-serverless 0.10.1's word for each state (its ``Job.status()``).
SERVERLESS_NAMES: dict[str, str] = {
    "QUEUED": "QUEUED",
    "RUNNING": "RUNNING",
    "SUCCEEDED": "DONE",
    "FAILED": "ERROR",
    "CANCELED": "CANCELED",
}
#: Every other spelling a program may compare a status with, and the state it means.
_ALIASES: dict[str, str] = {
    "DONE": "SUCCEEDED",
    "ERROR": "FAILED",
    "INITIALIZING": "QUEUED",
    "PENDING": "QUEUED",
    "STOPPED": "CANCELED",
    "CANCELLED": "CANCELED",
}


#: qiskit-serverless's sub-statuses (``update_status(Job.MAPPING)``) and how its
#: ``status()`` spelled them after ``RUNNING: ``.
SUB_STATUS_NAMES: dict[str, str] = {
    "MAPPING": "MAPPING",
    "OPTIMIZING_HARDWARE": "OPTIMIZING_FOR_HARDWARE",
    "WAITING_QPU": "WAITING_FOR_QPU",
    "EXECUTING_QPU": "EXECUTING_QPU",
    "POST_PROCESSING": "POST_PROCESSING",
}


def canonical(text: str) -> str:
    """qshpc's name of a state spelled in quantum-serverless's (or Ray's) words; else ``text``."""
    return _ALIASES.get(text, text)


class JobStatus(str):
    """A job's state as ``Job.status()`` returns it: text that equals both spellings of the state.

    Its value is qshpc's word (``"SUCCEEDED"``), or quantum-serverless 0.10.1's
    (``"DONE"``) for jobs of ``QuantumServerless`` and ``LocalProvider``; either
    way it compares equal to both (``== "DONE"`` and ``== "SUCCEEDED"``; ``"ERROR"``
    and ``"FAILED"``; ``"INITIALIZING"`` and ``"QUEUED"``), so a notebook written
    for either keeps working. Hashing follows the value: a set or dict lookup
    finds it under its own spelling only.
    """

    #: ``"RUNNING: MAPPING"``: what qiskit-serverless's ``status()`` said for a running job
    #: with a sub-status (None: no sub-status); the status equals it too.
    running_text: str | None = None

    def __new__(
        cls, state: str, serverless: bool = False, sub_status: str | None = None
    ) -> JobStatus:
        state = str(state)
        self = super().__new__(cls, SERVERLESS_NAMES.get(state, state) if serverless else state)
        if sub_status and state == "RUNNING":
            self.running_text = f"RUNNING: {SUB_STATUS_NAMES.get(sub_status, sub_status)}"
        return self

    @property
    def state(self) -> str:
        """qshpc's word for the state."""
        return canonical(str.__str__(self))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return (
                str.__eq__(self, other)
                or canonical(str(other)) == self.state
                or (self.running_text is not None and str(other) == self.running_text)
            )
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = str.__hash__

    # Shown as qiskit-serverless showed it: ``RUNNING: MAPPING`` after update_status
    # (review36 F6); the value (hash, dict keys, JSON) stays the state's word.
    def __str__(self) -> str:
        return self.running_text or str.__str__(self)

    def __repr__(self) -> str:
        return repr(self.running_text) if self.running_text else str.__repr__(self)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


__all__ = [
    "SERVERLESS_NAMES",
    "STORED",
    "SUB_STATUS_NAMES",
    "TERMINAL",
    "JobState",
    "JobStatus",
    "canonical",
]
