"""Pictures of a job: the HTML report, the task timeline, the job card.

Nothing here loads at ``import qshpc`` or in the ranks: the CLI and the
``Job`` methods import it when used. matplotlib loads only for PNG figures.

``write_report(job_dir, out)``
    ``qshpc report``: one self-contained HTML file (summary card, result
    plots, timeline, throughput, slowest tasks, failures, provenance, Slurm
    accounting).
``write_timeline(job_dir, out)``
    ``qshpc plot --timeline``: the timeline alone, SVG or PNG/PDF.
``card_html(meta)``, ``jobs_table_html(metas)``
    The HTML card of a job and the table of a job list (notebook displays).
``read_job(job_dir)``, ``build(data)``
    The snapshot a report is drawn from, and its timeline model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qshpc._lazy import lazy_exports

if TYPE_CHECKING:
    from qshpc.report.card import card_html, jobs_table_html
    from qshpc.report.data import JobData, read_job
    from qshpc.report.page import render, write_report, write_timeline
    from qshpc.report.timeline import Timeline, build

_LAZY = {
    "write_report": "qshpc.report.page",
    "write_timeline": "qshpc.report.page",
    "render": "qshpc.report.page",
    "card_html": "qshpc.report.card",
    "jobs_table_html": "qshpc.report.card",
    "read_job": "qshpc.report.data",
    "JobData": "qshpc.report.data",
    "build": "qshpc.report.timeline",
    "Timeline": "qshpc.report.timeline",
}

__getattr__, __dir__ = lazy_exports("qshpc.report", _LAZY, globals())

__all__ = [
    "JobData",
    "Timeline",
    "build",
    "card_html",
    "jobs_table_html",
    "read_job",
    "render",
    "write_report",
    "write_timeline",
]
