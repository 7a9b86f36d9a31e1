"""What a job's ranks read from its store to start: metadata, arguments, done tasks.

Rank 0 (:mod:`qshpc.runtime.rank0`) and a worker's ``get_arguments()`` inside a task
(:mod:`qshpc.program.api`) read the job's arguments the same way: pickled values
are loaded only when ``job.h5`` is this user's own and nobody else can write it
(:func:`qshpc.store.perms.private_to_me`), the check made once here for both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from qshpc.store.records import JOB_FILE, TaskRecord


class JobInputs(NamedTuple):
    """A job's inputs as its ranks read them.

    Attributes:
        meta: The job's metadata (``/meta``).
        arguments: The program's arguments.
        done: Key -> latest SUCCEEDED task record, results loaded (only when asked; a
            large one may be left in the store: :class:`qshpc.store.records.InStore`).
        trusted: ``job.h5`` is private to this user: its pickled values were loaded.
    """

    meta: dict[str, Any]
    arguments: dict[str, Any]
    done: dict[str, TaskRecord]
    trusted: bool


def read_inputs(
    job_dir: str | os.PathLike[str],
    done: bool = False,
    lazy_over: int | None = None,
    hold: int | None = None,
) -> JobInputs:
    """The job's metadata, arguments and (with ``done``) done task records, read at once.

    ``lazy_over``, ``hold``: the done records' large results left in the store
    (:meth:`qshpc.store.log.LogReader.done_records`).

    Raises:
        StoreError: What :meth:`qshpc.store.JobReader.open` raises.
        PickleRefusedError: A pickled value in a job file another user can write.
    """
    from qshpc.store import perms
    from qshpc.store.reader import JobReader

    job_dir = Path(job_dir)
    trusted = perms.private_to_me(job_dir / JOB_FILE)
    with JobReader.open(job_dir) as r:
        return JobInputs(
            r.meta(),
            r.arguments(allow_pickle=trusted),
            r.done_records(trusted, True, lazy_over, hold) if done else {},
            trusted,
        )


__all__ = ["JobInputs", "read_inputs"]
