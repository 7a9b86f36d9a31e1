"""Constants and the task record handed to the store (no h5py here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from qshpc.jobstate import STORED, TERMINAL

JOB_FILE = "job.h5"
#: The running writer's commits since ``job.h5`` was last rewritten (``layout`` has it too).
JOURNAL_FILE = "job.journal"
SCHEMA_VERSION = 1
#: The states a job's store records (:class:`qshpc.jobstate.JobState`, as plain text).
STATES = tuple(s.value for s in STORED)
TERMINAL_STATES = tuple(s.value for s in TERMINAL)
TASK_STATES = ("SUCCEEDED", "FAILED")
#: Provenance field of a record whose stored result is not exactly what the task returned
#: (:data:`qshpc.store.chunk.INEXACT`, which writes it): a resumed job runs it again.
INEXACT = "qshpc.inexact"


@dataclass
class TaskRecord:
    """One finished try of a task, as the runtime hands it to the store.

    Attributes:
        task_id: Stable id (call index on rank 0, "17"; nested "17.2").
        key: Resume key: blake2b-128 hex (32 digits) of the function by value, the
            pickled arguments and the task id (:func:`qshpc.program.backend.task_key`).
        function: Qualified name of the task function.
        state: "SUCCEEDED" or "FAILED".
        attempt: 1 for the first try, 2 for the first retry, ...
        rank: MPI rank that ran it.
        host: Host that ran it.
        submitted: Unix time the task was submitted.
        started: Unix time it started.
        finished: Unix time it finished.
        seed: Seed given to the task, or None.
        result: The return value (SUCCEEDED only).
        error: Traceback text (FAILED only).
        provenance: JSON-able fields recorded by the task.
        encoded: ``result`` already blob-encoded (``encode_blob(result)``), when the
            caller has those bytes (a result from the result cache): stored as they are.
    """

    task_id: str
    key: str
    function: str
    state: str
    attempt: int
    rank: int
    host: str
    submitted: float
    started: float
    finished: float
    seed: int | None = None
    result: Any = None
    error: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    encoded: bytes | None = None


def missing_class(exc: BaseException) -> bool:
    """True when ``exc`` (a decode's error) comes of a pickle naming a class or module
    that cannot be found in this process (AttributeError or ImportError in its chain)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, (AttributeError, ImportError)):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


class DeferredResult:
    """A stored result not decoded yet (see :meth:`LogReader.done_records`'s ``defer``):
    :meth:`load` decodes it (raises :class:`StoreError` when it still cannot be)."""

    __slots__ = ("allow_pickle", "raw", "source")

    def __init__(self, raw: bytes, allow_pickle: bool, source: str) -> None:
        self.raw, self.allow_pickle, self.source = raw, allow_pickle, source

    def load(self) -> Any:
        from qshpc.store.encoding_blob import decode_blob

        return decode_blob(self.raw, self.allow_pickle, self.source)


class InStore:
    """A stored result a resume left in the store (see :meth:`LogReader.done_records`'s
    ``lazy_over``): its ``n`` encoded bytes at ``off`` of the log's large stream, read back
    when the program takes it (:meth:`qshpc.program.session.Session.done_result`)."""

    __slots__ = ("n", "off")

    def __init__(self, off: int, n: int) -> None:
        self.off, self.n = off, n
