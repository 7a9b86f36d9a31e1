"""Task records as columns: one numpy array (or list) per field, for reports and frames.

``JobReader.tasks()`` gives one dict per record; a job of 100k tasks is then
100k dicts built field by field from numpy rows, about 2 s. A report, a
DataFrame or a count by state needs columns instead: the numeric fields come
from the record table in one slice each, and only the small per-record blob
(task id, key, function, host, error, provenance) is decoded per record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qshpc.store.records import TASK_STATES

#: How the error of an attempt rank 0 stopped at the job's end starts (the dispatcher's text).
ABANDONED = "TaskAbandoned:"

Array = np.ndarray[Any, Any]


@dataclass
class TaskTable:
    """Every committed task record (all attempts), in commit order, as columns.

    Attributes:
        task_id: Task ids (``"17"``, nested ``"17.2"``).
        key: Resume keys (hex).
        function: Task function names.
        host: Host of the rank that ran each attempt.
        error: Traceback text of failed attempts (None for the others).
        provenance: What each task recorded (simulator, seeds, versions...).
        failed: bool, True where the attempt FAILED.
        attempt: 1 for a first try, 2 for the first retry...
        rank: The rank that ran the attempt.
        run: The run of the job (1, then 2... after a resume).
        seed: The task's seed, -1 where it had none (see ``has_seed``).
        has_seed: bool, True where the task had a seed.
        submitted: Unix time the task was submitted.
        started: Unix time the attempt started.
        finished: Unix time the attempt finished.
    """

    task_id: list[str]
    key: list[str]
    function: list[str]
    host: list[str]
    error: list[str | None]
    provenance: list[dict[str, Any]]
    failed: Array
    attempt: Array
    rank: Array
    run: Array
    seed: Array
    has_seed: Array
    submitted: Array
    started: Array
    finished: Array

    def __len__(self) -> int:
        return len(self.task_id)

    @property
    def wall(self) -> Array:
        """Seconds each attempt ran."""
        out: Array = self.finished - self.started
        return out

    def state(self, i: int) -> str:
        """``SUCCEEDED`` or ``FAILED`` for record ``i``."""
        return TASK_STATES[int(self.failed[i])]

    def stopped(self) -> Array:
        """bool, True where the attempt was still running when the job ended (cancelled,
        or ended while the call ran) and was stopped: a FAILED record whose error is
        rank 0's ``TaskAbandoned`` text, not a failure of the task's code."""
        out: Array = np.fromiter(
            (e is not None and e.startswith(ABANDONED) for e in self.error), bool, len(self.error)
        )
        return out & self.failed

    def latest_counts(self) -> dict[str, int]:
        """Tasks by the state of their latest committed attempt."""
        latest: dict[str, bool] = {}
        for tid, bad in zip(self.task_id, self.failed.tolist(), strict=True):
            latest[tid] = bad
        n_failed = sum(latest.values())
        return {TASK_STATES[0]: len(latest) - n_failed, TASK_STATES[1]: n_failed}

    def latest_stopped(self) -> int:
        """Tasks whose latest committed attempt was stopped (:meth:`stopped`): counted FAILED
        by :meth:`latest_counts` (its meaning kept), shown apart as not failures of their code.

        Only the failed records' errors are read (a job of many tasks has few failures).
        """
        stopped = {
            self.task_id[i]
            for i in np.flatnonzero(self.failed).tolist()
            if (e := self.error[i]) is not None and e.startswith(ABANDONED)
        }
        if not stopped:
            return 0
        latest: dict[str, int] = {}
        for i, tid in enumerate(self.task_id):
            if tid in stopped:
                latest[tid] = i
        return sum(
            1
            for i in latest.values()
            if self.failed[i] and str(self.error[i]).startswith(ABANDONED)
        )

    def finished_in_run(self, run: int) -> int:
        """Tasks with an attempt that ended in run ``run`` (a resume's own: the tasks it
        reused from the store have no record in it)."""
        return len({t for t, r in zip(self.task_id, self.run.tolist(), strict=True) if r == run})

    def latest_from_cache(self) -> int:
        """Tasks whose latest committed attempt is a result taken from the result cache."""
        latest: dict[str, bool] = {}
        for tid, prov in zip(self.task_id, self.provenance, strict=True):
            latest[tid] = "cache" in prov
        return sum(latest.values())

    def rows(self) -> list[dict[str, Any]]:
        """One dict per record, as ``JobReader.tasks()`` returns them."""
        seeds = self.seed.tolist()
        has = self.has_seed.tolist()
        cols = zip(
            self.task_id,
            self.key,
            self.function,
            self.failed.tolist(),
            self.attempt.tolist(),
            self.rank.tolist(),
            self.host,
            self.run.tolist(),
            self.submitted.tolist(),
            self.started.tolist(),
            self.finished.tolist(),
            seeds,
            has,
            self.error,
            self.provenance,
            strict=True,
        )
        return [
            {
                "task_id": tid,
                "key": key,
                "function": fn,
                "state": TASK_STATES[bad],
                "attempt": att,
                "rank": rank,
                "host": host,
                "run": run,
                "submitted": sub,
                "started": start,
                "finished": end,
                "seed": seed if hs else None,
                "error": err,
                "provenance": prov,
            }
            for (
                tid,
                key,
                fn,
                bad,
                att,
                rank,
                host,
                run,
                sub,
                start,
                end,
                seed,
                hs,
                err,
                prov,
            ) in cols
        ]


def empty_table() -> TaskTable:
    """A table of no records."""
    f8 = np.zeros(0, np.float64)
    i8 = np.zeros(0, np.int64)
    return TaskTable(
        [], [], [], [], [], [], np.zeros(0, bool), i8, i8, i8, i8, np.zeros(0, bool), f8, f8, f8
    )
