"""Jobs in Jupyter: HTML cards, live watches, tables as pandas DataFrames.

Imported only when a notebook asks (``Job._repr_html_``, ``job.watch()``,
``job.tasks(as_frame=True)``, ``list_jobs().to_pandas()``); never at
``import qshpc`` or in the ranks. ipywidgets and pandas are optional
(``pip install 'qshpc[notebook]'``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qshpc._lazy import lazy_exports

if TYPE_CHECKING:
    from qshpc.notebook.display import JobList, TaskList, job_html
    from qshpc.notebook.frames import jobs_frame, tasks_frame
    from qshpc.notebook.watch import JobWatch, watch

_LAZY = {
    "JobList": "qshpc.notebook.display",
    "TaskList": "qshpc.notebook.display",
    "job_html": "qshpc.notebook.display",
    "jobs_frame": "qshpc.notebook.frames",
    "tasks_frame": "qshpc.notebook.frames",
    "JobWatch": "qshpc.notebook.watch",
    "watch": "qshpc.notebook.watch",
}

__getattr__, __dir__ = lazy_exports("qshpc.notebook", _LAZY, globals())

__all__ = ["JobList", "JobWatch", "TaskList", "job_html", "jobs_frame", "tasks_frame", "watch"]
