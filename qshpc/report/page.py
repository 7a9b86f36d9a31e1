"""``qshpc report``: one self-contained HTML file, and ``qshpc plot --timeline``.

The page holds everything inline (CSS, SVG, PNG as data URIs) and no script;
its Content-Security-Policy forbids any fetch, so it opens the same from a
laptop, an e-mail attachment or a cluster's file system, with no network.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from pprint import pformat
from typing import Any

from qshpc.errors import UserError
from qshpc.jobs.outfile import out_path, write_in_job, write_out
from qshpc.report import sections
from qshpc.report.card import card_html
from qshpc.report.data import JobData, read_job
from qshpc.report.timeline import Timeline, build
from qshpc.text import html_escape as escape

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
RESULT_TEXT_MAX = 4000

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:14px;color:#212529;margin:0;background:#f8f9fa}
main{max-width:1260px;margin:0 auto;padding:16px 24px 40px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:0 0 8px;border-bottom:1px solid #dee2e6;padding-bottom:4px}
h3{font-size:14px;margin:8px 0 4px}
section{background:#fff;border:1px solid #dee2e6;border-radius:6px;padding:12px 16px;margin:14px 0;overflow-x:auto}
.sub{color:#666;font-size:13px;margin:0 0 8px}.note{color:#666;font-size:13px}
.snapshot{background:#fff3cd;border:1px solid #ffe69c;border-radius:6px;padding:6px 10px;font-size:13px}
table{border-collapse:collapse;font-size:13px}th,td{text-align:left;padding:3px 10px 3px 0;vertical-align:top}
th{border-bottom:1px solid #ccc;color:#444}tbody tr:nth-child(even){background:#f6f7f9}
.kv td:first-child,.figures td:first-child{color:#666;white-space:nowrap}
pre{background:#f6f7f9;border:1px solid #e3e5e8;border-radius:4px;padding:8px;font-size:12px;overflow-x:auto;max-height:420px}
details{margin:6px 0}summary{cursor:pointer}.job-error pre{border-color:#f1aeb5;background:#fdf2f3}
.summary{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
img{max-width:100%}svg.qshpc-timeline{max-width:100%;height:auto;background:#fff}
.qshpc-timeline rect.task:hover,.qshpc-timeline rect.bin:hover{stroke:#000;stroke-width:1}
"""


def _section(sid: str, title: str, body: str, sub: str = "") -> str:
    subtitle = f'<p class="sub">{sub}</p>' if sub else ""
    return f'<section id="{sid}"><h2>{escape(title)}</h2>{subtitle}{body}</section>'


def _results(data: JobData) -> str:
    if data.result_error:
        return f'<p class="note">The result could not be read: {escape(data.result_error)}</p>'
    if not data.has_result:
        why = "yet" if data.running else "(the program never called save_result)"
        return f'<p class="note">No result saved {why}.</p>'
    if data.result_unloaded is not None:
        size, array = data.result_unloaded
        what = f"one array, {array}, " if array else ""
        jid = data.meta.get("id") or data.job_dir.name
        return (
            f'<p class="note">The result ({what}{size / 1e6:,.1f} MB stored) is too big to '
            f"show here and was not read: <code>qshpc result {escape(str(jid))}</code> "
            "prints it.</p>"
        )
    from qshpc.jobs.plot import build_figure, find_panels
    from qshpc.report.figures import data_uri

    if find_panels(data.result):
        try:
            fig = build_figure(data.result, data.title)
        except UserError as exc:  # matplotlib missing
            return f'<p class="note">{escape(str(exc))}</p>'
        return f'<img class="result-plot" alt="result plots" src="{data_uri(fig)}">'
    text = pformat(data.result, width=110, compact=True, sort_dicts=False)
    if len(text) > RESULT_TEXT_MAX:
        text = text[:RESULT_TEXT_MAX] + f"\n… ({len(text) - RESULT_TEXT_MAX} more characters)"
    return f'<p class="note">Nothing to plot; the result:</p><pre class="result-text">{escape(text)}</pre>'


def _throughput(data: JobData, tl: Timeline) -> str:
    if not len(data.table):
        return '<p class="note">No task has finished yet.</p>'
    from qshpc.report.figures import data_uri, throughput_figure

    try:
        fig = throughput_figure(data.table, tl.t0, tl.t1)
    except UserError as exc:
        return f'<p class="note">{escape(str(exc))}</p>'
    return f'<img class="throughput" alt="throughput over time" src="{data_uri(fig)}">'


def render(data: JobData, max_tasks: int | None = None) -> str:
    """The report of ``data`` as one HTML document."""
    from qshpc._version import __version__
    from qshpc.report import svg

    tl = build(data) if max_tasks is None else build(data, max_tasks)
    made = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(data.taken))
    snap = ""
    if data.running:
        snap = (
            f'<p class="snapshot">The job was <strong>{escape(data.state)}</strong> when this report '
            f"was written ({made}): it shows what was stored by then. Write it again for more. "
            "A snapshot cannot show the tasks running at that moment: an attempt is drawn once "
            "its result is stored, so a busy worker's lane ends at its last stored result; "
            "rank 0's lane after the last thing stored is drawn grey (not stored yet: running "
            "the program or waiting for tasks).</p>"
        )
    how = (
        f"{tl.attempts} attempts, binned ({tl.bin_s:.3g} s per bin; in each bin, one bar per "
        "function as high as the share of the time the rank ran it; red cap: failed attempts in "
        "the bin; black foot: retries)"
        if tl.binned
        else f"{tl.attempts} attempts, one mark each (red: failed; outline: a retry)"
    )
    waits = (
        "rank 0's lane: the program (dark) and its waits in get/wait (hatched)"
        if data.waits_recorded
        else "rank 0's lane: the program (this job's store does not record its waits)"
    )
    summary = (
        f'<div class="summary">{card_html(data.meta, now=data.taken)}'
        f"{sections.key_figures(data, tl.t0, tl.t1)}</div>"
    )
    parts = [
        _section("summary", "Summary", snap + summary),
        _section("results", "Results", _results(data)),
        _section(
            "timeline",
            "Timeline",
            svg.render(tl),
            f"One lane per rank, grouped by host; {how}; {waits}. Hover a mark for details.",
        ),
        _section(
            "throughput",
            "Throughput",
            _throughput(data, tl),
            "Attempts finished per second, and in total.",
        ),
        _section("slowest", "Slowest tasks", sections.slowest(data, tl.t0)),
        _section("failures", "Failures", sections.failures(data)),
        _section("provenance", "Provenance", sections.provenance(data)),
    ]
    if data.meta.get("slurm_job_id"):
        parts.append(
            _section(
                "slurm",
                "Slurm accounting",
                sections.slurm(data),
                f"sacct -j {escape(str(data.meta['slurm_job_id']))}",
            )
        )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>qshpc report: {escape(data.title)}</title><style>{CSS}</style></head>"
        f'<body><main data-job="{escape(str(data.meta.get("id", "")))}" data-state="{escape(data.state)}">'
        f"<h1>{escape(data.title)}</h1>"
        f'<p class="sub">qshpc {escape(__version__)} report, written {made} from '
        f"<code>{escape(str(data.job_dir))}</code></p>" + "".join(parts) + "</main></body></html>\n"
    )


def _write(path: Path, text: str | bytes, in_job: bool = False) -> None:
    data = text.encode("utf-8") if isinstance(text, str) else text
    (write_in_job if in_job else write_out)(path, lambda f: f.write(data))


def write_report(
    job_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write the HTML report of the job in ``job_dir``; return its path.

    Args:
        job_dir: The job directory.
        out: The HTML file (default ``JOB_DIR/report.html``; a folder: ``report.html`` in it).
        meta: ``Job.info()`` (Slurm's view merged in); default: the store's.

    Raises:
        UserError: ``out`` cannot be written.
        StoreError: The store cannot be read.
    """
    jd = Path(job_dir)
    path = out_path(out, jd / "report.html")
    _write(path, render(read_job(jd, meta)), in_job=out is None)
    return path


def write_timeline(
    job_dir: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Draw the job's timeline alone into ``out`` (default ``JOB_DIR/timeline.png``).

    ``.svg`` writes the report's own SVG; other suffixes (``.png``, ``.pdf``)
    are drawn by matplotlib.

    Raises:
        UserError: ``out`` cannot be written, or its format is unknown.
    """
    jd = Path(job_dir)
    path = out_path(out, jd / "timeline.png")
    data = read_job(jd, meta, slurm=False)
    tl = build(data)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt == "svg":
        from qshpc.report import svg

        head = '<?xml version="1.0" encoding="utf-8"?>\n'
        _write(path, head + svg.render(tl, standalone=True), in_job=out is None)
        return path
    from qshpc.report.figures import timeline_figure

    fig = timeline_figure(tl, data.title)
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise UserError(
            f"cannot write a {fmt!r} image: use one of {', '.join(sorted(supported))} as --out suffix"
        )
    (write_in_job if out is None else write_out)(
        path, lambda f: fig.savefig(f, format=fmt, dpi=110)
    )
    return path
