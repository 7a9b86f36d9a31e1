"""The qshpc exception hierarchy.

Every error a user can cause derives from :class:`UserError`; the CLI prints
its message on stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations


class QshpcError(Exception):
    """Base class of every qshpc error."""


class UserError(QshpcError):
    """Bad input from the user: a missing file, a bad value. CLI exit code 2."""


class ResourceError(UserError):
    """A resource request that is invalid or cannot fit (unknown key, too little memory)."""


class JobNotFoundError(UserError):
    """No job with this id or directory exists in the store."""


class StoreError(QshpcError):
    """The job store cannot be read or written (corrupt file, disk full, permissions)."""


class DamagedStoreError(StoreError):
    """A job store (or arguments file) whose bytes are not what qshpc wrote.

    Attributes:
        path: The damaged file.
        detail: What is wrong (which bytes, or what could not be read).
    """

    def __init__(self, path: object, detail: str) -> None:
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{path} is damaged: {detail}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.detail))


class SchemaVersionError(StoreError, UserError):
    """A job store written with a schema version this qshpc does not know."""


class SerializationError(UserError):
    """A value (argument, task input or result) that cannot be serialized."""


class NoResultError(QshpcError):
    """The job has no saved result (not finished, failed, or never called save_result)."""


class JobFailedError(QshpcError):
    """The job ended FAILED or CANCELED; the message holds its error text."""


class WorkerLostError(QshpcError):
    """A worker rank died while holding tasks."""


class QshpcWarning(UserWarning):
    """Base class of qshpc's warnings (the CLI prints them as ``qshpc: warning: ...``)."""


class SlurmStateWarning(QshpcWarning):
    """Slurm reported a job state qshpc does not know (shown as UNKNOWN)."""


class TaskError(QshpcError):
    """A distributed task raised.

    Attributes:
        task_id: The task's stable id (its call index on rank 0).
        function: The task function's qualified name.
        rank: The MPI rank that ran it.
        host: The host that ran it.
        remote_traceback: The traceback text from the worker.
        exc_type: Name of the exception class raised on the worker.
    """

    def __init__(
        self,
        task_id: str,
        function: str,
        rank: int,
        host: str,
        remote_traceback: str,
        exc_type: str = "Exception",
        attempts: int = 1,
    ) -> None:
        self.task_id = task_id
        self.function = function
        self.rank = rank
        self.host = host
        self.remote_traceback = remote_traceback
        self.exc_type = exc_type
        self.attempts = attempts
        last = remote_traceback.strip().splitlines()[-1] if remote_traceback.strip() else exc_type
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(
            f"task {task_id} ({function}) failed on rank {rank}, host {host}{tries}: {last}\n"
            f"### remote traceback (rank {rank} on {host}):\n{remote_traceback.rstrip()}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            TaskError,
            (
                self.task_id,
                self.function,
                self.rank,
                self.host,
                self.remote_traceback,
                self.exc_type,
                self.attempts,
            ),
        )
