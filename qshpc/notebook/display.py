"""How jobs show themselves in Jupyter: an HTML card per job, a table for a list of jobs.

``Job._repr_html_`` and the list types below delegate here; nothing is
imported until a front end asks for HTML. A job whose store cannot be read
shows the error in the card instead of raising inside the display machinery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from qshpc.text import html_escape as escape

if TYPE_CHECKING:
    import pandas as pd


class JobLike(Protocol):
    """What the displays need of a job (``qshpc.Job`` has it)."""

    job_dir: Path

    def info(self) -> dict[str, Any]: ...


J = TypeVar("J", bound=JobLike)


def job_html(job: JobLike, rate: float | None = None) -> str:
    """The HTML card of ``job`` (its store's error in red when it cannot be read)."""
    from qshpc.report.card import card_html

    try:
        meta = job.info()
    except Exception as exc:  # a display must not raise: say what is wrong instead
        return (
            f'<div class="qshpc-job" data-state="UNREADABLE" style="color:#b02a37">'
            f"qshpc job <code>{escape(str(job.job_dir))}</code>: cannot be read: "
            f"{escape(str(exc))}</div>"
        )
    return card_html(meta, rate=rate)


def safe_meta(job: JobLike) -> dict[str, Any]:
    """``job.info()``, or a row that says why it could not be read."""
    try:
        return job.info()
    except Exception as exc:
        return {
            "id": job.job_dir.name,
            "unreadable": True,
            "error": str(exc),
            "job_dir": str(job.job_dir),
        }


#: Reads the meta of many jobs at once (``qshpc.client.job.read_infos``: one sacct for all).
InfoReader = Callable[[Sequence[Any]], "list[tuple[Any, dict[str, Any] | Exception]]"]


def _row(job: JobLike, info: dict[str, Any] | Exception) -> dict[str, Any]:
    if isinstance(info, Exception):
        return {"id": job.job_dir.name, "unreadable": True, "error": str(info),
                "job_dir": str(job.job_dir)}  # fmt: skip
    return info


class JobList(list[J]):
    """A list of jobs that shows as a table in Jupyter and becomes a DataFrame on request.

    Args:
        jobs: The jobs.
        infos: Reads the meta of all of them at once (asking Slurm once); default:
            ``info()`` of each.
    """

    def __init__(self, jobs: Iterable[J] = (), infos: InfoReader | None = None) -> None:
        super().__init__(jobs)
        self._infos = infos

    def metas(self) -> list[dict[str, Any]]:
        """Each job's meta (a row saying why, for a job whose store cannot be read)."""
        if self._infos is None:
            return [safe_meta(j) for j in self]
        return [_row(j, info) for j, info in self._infos(list(self))]

    def _repr_html_(self) -> str:
        from qshpc.report.card import jobs_table_html

        return jobs_table_html(self.metas())

    def to_pandas(self) -> pd.DataFrame:
        """One row per job (see :func:`qshpc.notebook.frames.jobs_frame`)."""
        from qshpc.notebook.frames import jobs_frame

        return jobs_frame(self.metas())


class TaskList(list[dict[str, Any]]):
    """Task attempts (``Job.tasks()``): a list of dicts, and a DataFrame on request."""

    def to_pandas(self) -> pd.DataFrame:
        """One row per attempt (see :func:`qshpc.notebook.frames.tasks_frame`)."""
        from qshpc.notebook.frames import tasks_frame

        return tasks_frame(self)
