"""One read of a job for a report: meta, runs, task records as columns, result, program spans.

The read goes through :class:`qshpc.store.JobReader`, as ``qshpc status``
does: no lock, no write, so a running job is neither blocked nor slowed; what
it returns is a snapshot of what was committed at that moment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qshpc.errors import NoResultError, StoreError
from qshpc.jobs.paths import read_slurm_id
from qshpc.jobstate import TERMINAL
from qshpc.store.table import TaskTable

#: A saved result stored in more bytes than this is not loaded for a report (review38 F13:
#: a 500 MB array took 1.6 GB to be shown as ``array([...])``): its size is shown instead.
RESULT_LOAD_MAX = 64 << 20


@dataclass(frozen=True)
class Span:
    """A stretch of rank 0's program: running, or waiting in ``get``/``wait``.

    Attributes:
        t0: Unix start time.
        t1: Unix end time.
        kind: ``program``, ``get`` or ``wait``.
        n: How many task references the wait was for (0 for ``program``).
    """

    t0: float
    t1: float
    kind: str
    n: int = 0


@dataclass
class JobData:
    """What a report shows, read once.

    Attributes:
        job_dir: The job directory.
        meta: The job's meta (``Job.info()`` when given, else the store's).
        runs: The runtime dict of every start of the job.
        table: Every committed task attempt, as columns.
        program: Rank 0's program, one span per run.
        waits: Rank 0's waits in ``get``/``wait`` (empty when the store has none).
        waits_recorded: Whether the store records waits (older jobs do not).
        result: The saved result (None when there is none).
        has_result: Whether a result was saved.
        result_error: Why the result could not be read, if it could not.
        result_unloaded: A result over :data:`RESULT_LOAD_MAX` stored bytes, not read:
            its size and, for one array, its ``dtype shape`` (``result`` is None then).
        taken: When the snapshot was read.
        slurm_steps: Slurm's accounting, for jobs that ran on Slurm.
        slurm_note: Why there is no accounting, when there is none.
    """

    job_dir: Path
    meta: dict[str, Any]
    runs: list[dict[str, Any]]
    table: TaskTable
    program: list[Span] = field(default_factory=list)
    waits: list[Span] = field(default_factory=list)
    waits_recorded: bool = False
    result: Any = None
    has_result: bool = False
    result_error: str | None = None
    result_unloaded: tuple[int, str | None] | None = None
    taken: float = 0.0
    slurm_steps: list[Any] = field(default_factory=list)
    slurm_note: str | None = None

    @property
    def state(self) -> str:
        """The job's state."""
        return str(self.meta.get("state", "?"))

    @property
    def running(self) -> bool:
        """True while the job has not ended (the report is a snapshot)."""
        return self.state not in TERMINAL

    @property
    def title(self) -> str:
        """``title (job id)``."""
        title = str(self.meta.get("title") or "")
        jid = str(self.meta.get("id") or self.job_dir.name)
        return f"{title} ({jid})" if title else jid


def read_job(
    job_dir: str | Path,
    meta: dict[str, Any] | None = None,
    slurm: bool = True,
    now: float | None = None,
) -> JobData:
    """Read ``job_dir`` for a report.

    Args:
        job_dir: The job directory.
        meta: The job's meta as the client sees it (``Job.info()``: Slurm's
            view merged in); default: the store's own.
        slurm: Ask Slurm's accounting for jobs that ran on Slurm.
        now: The snapshot time (default: now).

    Raises:
        StoreError: The store cannot be read.
    """
    from qshpc.store import JobReader

    path = Path(job_dir)
    taken = time.time() if now is None else now
    with JobReader.open(path) as r:
        store_meta = r.meta()
        runs = r.runs()
        table = r.task_table()
        spans = r.spans()
        result, has_result, result_error, unloaded = None, False, None, None
        try:
            peek = r.result_peek()
            if peek is not None and peek[0] > RESULT_LOAD_MAX:  # review38 F13
                has_result, unloaded = True, peek
            else:
                result, has_result = r.result(), True
        except NoResultError:
            pass
        except StoreError as exc:  # pickled values, or a damaged result
            has_result, result_error = True, str(exc)
    merged = dict(store_meta)
    if meta:
        merged.update(meta)
    data = JobData(
        path,
        merged,
        runs,
        table,
        taken=taken,
        result=result,
        has_result=has_result,
        result_error=result_error,
        result_unloaded=unloaded,
    )
    data.program = program_spans(merged, runs, table, taken)
    if len(spans):
        data.waits_recorded = True
        data.program, data.waits = recorded_spans(spans, data.program, data.running, taken)
    if data.running:
        data.program = unknown_tail(data.program, data.waits, taken)
    slurm_id = merged.get("slurm_job_id") or read_slurm_id(path)
    if slurm and slurm_id:
        merged["slurm_job_id"] = slurm_id
        from qshpc.report.accounting import job_steps

        data.slurm_steps, data.slurm_note = job_steps(path, str(slurm_id))
    return data


def program_spans(
    meta: dict[str, Any], runs: list[dict[str, Any]], table: TaskTable, now: float
) -> list[Span]:
    """Rank 0's program, one span per run: from the run's start to the next run, the end or now."""
    spans = []
    finished = meta.get("finished")
    for i, run in enumerate(runs):
        t0 = run.get("started")
        if not t0:
            continue
        if i + 1 < len(runs) and runs[i + 1].get("started"):
            mine = table.finished[table.run == i + 1]
            t1 = float(mine.max()) if len(mine) else float(t0)
        elif finished:
            t1 = float(finished)
        else:
            t1 = now
        spans.append(Span(float(t0), max(float(t0), t1), "program"))
    return spans


def unknown_tail(program: list[Span], waits: list[Span], now: float) -> list[Span]:
    """A running job's last program span, cut where the store's knowledge ends.

    Rank 0 writes a wait when it has ended, at a commit: after the end of the last
    wait stored, the store cannot tell whether rank 0 runs the program or waits for
    tasks (a ``get()`` of every task is stored only when it returns; results stored
    meanwhile say nothing of it). Drawn as "program" up to now, a rank 0 waiting in
    ``get`` looked busy (review26 #4); that tail is an ``unknown`` span instead.
    """
    if not program:
        return program
    last = program[-1]
    known = max([last.t0, *(w.t1 for w in waits if w.t0 >= last.t0)])
    if known >= last.t1 or now - known < 0.5:
        return program
    return [*program[:-1], Span(last.t0, known, "program"), Span(known, last.t1, "unknown")]


_WAIT_KINDS = {0: "get", 1: "wait"}


def recorded_spans(
    rows: Any, fallback: list[Span], running: bool, now: float
) -> tuple[list[Span], list[Span]]:
    """Program and wait spans from ``JobReader.spans()`` rows (``run, t0, t1, kind, n``).

    A run whose program row has no end yet ran until ``now`` (a running job),
    or, when the job has ended, until the end the run-based ``fallback`` gives.
    """
    import math

    programs: dict[int, Span] = {}
    waits = []
    for run, t0, t1, kind, n in rows.tolist():
        if int(kind) == 2:
            programs[int(run)] = Span(t0, t1, "program")  # the last row of a run wins
        elif int(kind) in _WAIT_KINDS:
            waits.append(Span(t0, t1, _WAIT_KINDS[int(kind)], int(n)))
    out = []
    ends = [s.t1 for s in fallback]
    for i, run in enumerate(sorted(programs)):
        span = programs[run]
        if math.isnan(span.t1):
            end = now if running and i == len(programs) - 1 else (ends[-1] if ends else now)
            span = Span(span.t0, max(span.t0, end), "program")
        out.append(span)
    return out or fallback, waits
