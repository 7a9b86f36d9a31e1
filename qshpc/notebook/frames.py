"""pandas DataFrames of task attempts and of jobs, for analysis in a notebook.

pandas is optional: without it these raise a :class:`UserError` that says
how to install it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qshpc.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from qshpc.store.table import TaskTable

TASK_COLUMNS = (
    "task_id",
    "function",
    "state",
    "attempt",
    "rank",
    "host",
    "run",
    "submitted",
    "start",
    "end",
    "wall",
    "queued",
    "seed",
    "error",
    "key",
    "provenance",
    "from_cache",
)
JOB_COLUMNS = (
    "job_id",
    "title",
    "state",
    "sub_status",
    "done",
    "from_cache",
    "failed",
    "stopped",
    "total",
    "slurm_job_id",
    "slurm_state",
    "created",
    "started",
    "finished",
    "duration",
    "ranks",
    "hosts",
    "array_id",
    "error",
    "job_dir",
)


def require_pandas() -> Any:
    """The pandas module.

    Raises:
        UserError: pandas is not installed (the message says how to install it).
    """
    try:
        import pandas
    except ImportError:
        raise UserError(
            "pandas is not installed, and tables of tasks and jobs need it: "
            "pip install 'qshpc[notebook]' (or pip install pandas)"
        ) from None
    return pandas


def _times(pd: Any, values: Any) -> Any:
    return pd.to_datetime(values, unit="s", utc=True)


def table_frame(table: TaskTable) -> pd.DataFrame:
    """One row per task attempt from a store's :class:`TaskTable` (the fast path)."""
    pd = require_pandas()
    seed = pd.array(
        [
            int(s) if h else None
            for s, h in zip(table.seed.tolist(), table.has_seed.tolist(), strict=True)
        ],
        dtype="Int64",
    )
    frame = pd.DataFrame(
        {
            "task_id": table.task_id,
            "function": pd.Categorical(table.function),
            "state": pd.Categorical(
                ["FAILED" if f else "SUCCEEDED" for f in table.failed.tolist()],
                categories=["SUCCEEDED", "FAILED"],
            ),
            "attempt": table.attempt,
            "rank": table.rank,
            "host": pd.Categorical(table.host),
            "run": table.run,
            "submitted": _times(pd, table.submitted),
            "start": _times(pd, table.started),
            "end": _times(pd, table.finished),
            "wall": table.finished - table.started,
            "queued": (table.started - table.submitted).clip(min=0),
            "seed": seed,
            "error": table.error,
            "key": table.key,
            "provenance": table.provenance,
            "from_cache": ["cache" in p for p in table.provenance],
        },
        columns=list(TASK_COLUMNS),
    )
    return frame


def tasks_frame(tasks: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per task attempt from ``Job.tasks()`` dicts.

    Columns: task_id, function, state, attempt, rank, host, run, submitted,
    start and end (UTC timestamps), wall and queued (seconds), seed (nullable
    int), error (traceback text or None), key, provenance (dict), from_cache (the
    result came from the result cache).
    """
    pd = require_pandas()
    if not tasks:
        return pd.DataFrame(columns=list(TASK_COLUMNS))
    raw = pd.DataFrame.from_records(list(tasks))
    frame = pd.DataFrame(
        {
            "task_id": raw["task_id"],
            "function": pd.Categorical(raw["function"]),
            "state": pd.Categorical(raw["state"], categories=["SUCCEEDED", "FAILED"]),
            "attempt": raw["attempt"].astype("int64"),
            "rank": raw["rank"].astype("int64"),
            "host": pd.Categorical(raw["host"]),
            "run": raw["run"].astype("int64") if "run" in raw else 1,
            "submitted": _times(pd, raw["submitted"]),
            "start": _times(pd, raw["started"]),
            "end": _times(pd, raw["finished"]),
            "wall": raw["finished"] - raw["started"],
            "queued": (raw["started"] - raw["submitted"]).clip(lower=0),
            "seed": pd.array(raw["seed"].tolist(), dtype="Int64"),
            "error": raw["error"],
            "key": raw["key"],
            "provenance": raw["provenance"],
            "from_cache": [isinstance(p, dict) and "cache" in p for p in raw["provenance"]],
        },
        columns=list(TASK_COLUMNS),
    )
    return frame


def job_tasks_frame(job_dir: str | Path) -> pd.DataFrame:
    """One row per task attempt of the job in ``job_dir``, read as columns (fast for 100k)."""
    from qshpc.store import JobReader

    require_pandas()
    with JobReader.open(Path(job_dir)) as r:
        return table_frame(r.task_table())


def jobs_frame(metas: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per job from ``Job.info()`` dicts (``JobList.to_pandas()``).

    ``failed`` counts tasks whose latest attempt FAILED, as ``task_counts`` does;
    ``stopped`` how many of them were stopped unfinished when the job ended.
    """
    pd = require_pandas()
    from qshpc.jobs.progress import snapshot
    from qshpc.report.card import first_line

    rows = []
    for m in metas:
        if m.get("unreadable"):
            rows.append(
                {
                    "job_id": m.get("id"),
                    "state": "UNREADABLE",
                    "error": first_line(m.get("error")),
                    "job_dir": m.get("job_dir"),
                }
            )
            continue
        s = snapshot(m)
        hosts = sorted({str(r.get("host")) for r in m.get("ranks") or []})
        rows.append(
            {
                "job_id": s.job_id,
                "title": m.get("title"),
                "state": s.state,
                "sub_status": s.sub_status or None,
                "done": s.done,
                "from_cache": s.cached,
                "failed": s.failed,
                "stopped": s.stopped,
                "total": s.total,
                "slurm_job_id": m.get("slurm_job_id"),
                "slurm_state": m.get("slurm_state"),
                "created": m.get("created"),
                "started": m.get("started"),
                "finished": m.get("finished"),
                "duration": s.elapsed,
                "ranks": len(m.get("ranks") or []),
                "hosts": ",".join(hosts),
                "array_id": m.get("array_id"),
                "error": first_line(m.get("error")) or None,
                "job_dir": m.get("job_dir"),
            }
        )
    frame = pd.DataFrame.from_records(rows, columns=list(JOB_COLUMNS))
    for col in ("created", "started", "finished"):
        frame[col] = _times(pd, pd.to_numeric(frame[col], errors="coerce"))
    frame["total"] = frame["total"].astype("Int64")
    return frame
