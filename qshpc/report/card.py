"""A job as a small HTML card, and a list of jobs as an HTML table.

Pure functions of a job's meta (``Job.info()``), so the notebook display, the
live watch and the report show the same card. Inline styles only: Jupyter
front ends may drop ``<style>`` elements from untrusted output, never
``style`` attributes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from qshpc.errors import error_head
from qshpc.jobs.progress import (
    average_rate,
    done_text,
    eta,
    failed_text,
    format_duration,
    format_rate,
    never_text,
    snapshot,
)
from qshpc.jobstate import TERMINAL
from qshpc.text import error_line
from qshpc.text import html_escape as escape

STATE_COLOURS = {
    "QUEUED": "#6c757d",
    "RUNNING": "#0d6efd",
    "SUCCEEDED": "#198754",
    "FAILED": "#dc3545",
    "CANCELED": "#fd7e14",
    "STOPPED": "#fd7e14",  # a task attempt still running when the job ended (report)
}
UNKNOWN_COLOUR = "#6f42c1"
MAX_ROWS = 200
_FONT = "font-family: system-ui, -apple-system, 'Segoe UI', sans-serif"


def badge(state: str) -> str:
    """The state as a coloured pill."""
    c = STATE_COLOURS.get(state, UNKNOWN_COLOUR)
    return (
        f'<span class="qshpc-state" data-state="{escape(state)}" style="background:{c};'
        f"color:#fff;border-radius:9px;padding:1px 8px;font-size:12px;font-weight:600;"
        f'letter-spacing:.02em">{escape(state)}</span>'
    )


def _duration(secs: float) -> str:
    return f"{secs:.2f} s" if secs < 10 else format_duration(secs)


def first_line(text: Any) -> str:
    """The line of an error that says what went wrong: a traceback's exception line
    (``errors.error_head``, which leaves out the ``qshpc: hint:`` lines after it), else the
    text's first line."""
    lines = [ln.strip() for ln in str(text or "").strip().splitlines() if ln.strip()]
    if not lines:
        return ""
    if lines[0].startswith("Traceback") or lines[0].startswith("+ Exception Group"):
        return error_line(error_head(str(text)))
    return lines[0]


def progress_bar(done: int, failed: int, total: int | None, state: str, stopped: int = 0) -> str:
    """A bar of done (green), failed (red) and stopped (orange) over the total (over the
    finished when unknown). ``failed`` counts the ``stopped`` too (as the store does): those
    still ran when the job ended, and are no failures of their code."""
    whole = total or (done + failed if state in TERMINAL else 0)
    if whole:
        ok_w = min(100.0, 100.0 * done / whole)
        bad_w = min(100.0 - ok_w, 100.0 * (failed - stopped) / whole)
        stop_w = min(100.0 - ok_w - bad_w, 100.0 * stopped / whole)
    else:  # total unknown while it runs: a striped bar, no fraction
        ok_w = bad_w = stop_w = 0.0
    stripes = (
        "background:repeating-linear-gradient(45deg,#e9ecef,#e9ecef 6px,#dee2e6 6px,#dee2e6 12px);"
        if not whole and state not in TERMINAL
        else "background:#e9ecef;"
    )
    return (
        f'<div class="qshpc-bar" data-done="{done}" data-failed="{failed - stopped}" '
        f'data-stopped="{stopped}" '
        f'data-total="{total if total is not None else ""}" style="{stripes}height:8px;'
        f'border-radius:4px;overflow:hidden;display:flex;width:100%;margin:6px 0 4px">'
        f'<div style="width:{ok_w:.2f}%;background:#198754"></div>'
        f'<div style="width:{bad_w:.2f}%;background:#dc3545"></div>'
        f'<div style="width:{stop_w:.2f}%;background:{STATE_COLOURS["STOPPED"]}"></div></div>'
    )


def card_html(meta: dict[str, Any], rate: float | None = None, now: float | None = None) -> str:
    """The card of one job: title, id, state, sub-status, progress, ranks, Slurm id, duration, error.

    Args:
        meta: ``Job.info()``.
        rate: Recent tasks per second (default: the average since the start).
        now: The time of the view (default: now).
    """
    s = snapshot(meta, now)
    what = "total"
    submitted = meta.get("tasks_submitted")
    if s.total is None and submitted and int(submitted) >= s.done + s.failed:
        # no total is known ahead; the program's count of tasks submitted so far is
        s = replace(s, total=int(submitted))
        what = "submitted"
    state = s.state
    rate = rate if rate is not None else average_rate(s)
    title = str(meta.get("title") or "")
    counts = f"{s.done} done" + (f" / {s.total} {what}" if s.total else "")
    if s.cached:  # as `qshpc status` says it (review26: hits were nowhere in a notebook)
        counts += f" ({s.cached} from cache)"
    counts += failed_text(s.failed, s.stopped) + never_text(s.never)
    line2 = [counts]
    if state != "QUEUED" and rate is not None:
        line2.append(format_rate(rate))
    left = eta(s, rate)
    if left is not None:
        line2.append(f"ETA {format_duration(left)}")
    ranks = meta.get("ranks") or []
    hosts = sorted({str(r.get("host")) for r in ranks if r.get("host")})
    facts: list[tuple[str, str]] = []
    if ranks:
        shown = ", ".join(hosts[:4]) + (f" +{len(hosts) - 4}" if len(hosts) > 4 else "")
        facts.append(("ranks", f"{len(ranks)} on {len(hosts)} host(s): {shown}"))
    if meta.get("slurm_job_id"):
        slurm = str(meta["slurm_job_id"])
        if meta.get("slurm_state"):
            slurm += f" ({meta['slurm_state']})"
        facts.append(("slurm", slurm))
    if s.elapsed is not None:
        facts.append(("duration", _duration(s.elapsed)))
    if s.resumed and s.run_elapsed is not None:  # (the duration counts the pause before it)
        facts.append(
            ("resume", f"run {s.run}: {_duration(s.run_elapsed)}, {s.run_finished} tasks ended")
        )
    if meta.get("created"):
        facts.append(
            ("created", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(meta["created"]))))
        )
    sub = ""
    if s.sub_status and state in ("RUNNING", "QUEUED"):
        sub = f'<span style="color:#555;margin-left:8px">{escape(s.sub_status)}</span>'
    err = ""
    if meta.get("error") and state != "SUCCEEDED":
        err = (
            f'<div class="qshpc-error" style="color:#b02a37;font-family:monospace;font-size:12px;'
            f'margin-top:4px;white-space:pre-wrap">{escape(first_line(meta["error"]))}</div>'
        )
    rows = "".join(
        f'<tr><td style="color:#666;padding:0 10px 0 0;text-align:left">{escape(k)}</td>'
        f'<td style="text-align:left">{escape(v)}</td></tr>'
        for k, v in facts
    )
    return (
        f'<div class="qshpc-job" data-job="{escape(s.job_id)}" data-state="{escape(state)}" '
        f'style="{_FONT};border:1px solid #dee2e6;border-left:4px solid '
        f"{STATE_COLOURS.get(state, UNKNOWN_COLOUR)};border-radius:6px;padding:8px 12px;"
        f'max-width:560px;font-size:13px;line-height:1.4;background:#fff;color:#212529">'
        f"<div><strong>{escape(title) or 'qshpc job'}</strong> "
        f'<code style="color:#666;font-size:12px">{escape(s.job_id)}</code></div>'
        f'<div style="margin-top:4px">{badge(state)}{sub}</div>'
        f"{progress_bar(s.done, s.failed, s.total, state, s.stopped)}"
        f'<div class="qshpc-counts" style="color:#333">{escape(" · ".join(line2))}</div>'
        f'<table style="border-collapse:collapse;margin-top:4px;font-size:12px">{rows}</table>'
        f"{err}</div>"
    )


def jobs_table_html(metas: Iterable[dict[str, Any]], now: float | None = None) -> str:
    """An HTML table of jobs, one row each (at most ``MAX_ROWS``; the rest counted)."""
    items = list(metas)
    body = []
    for m in items[:MAX_ROWS]:
        if m.get("unreadable"):
            body.append(
                f'<tr data-job="{escape(str(m.get("id")))}"><td><code>{escape(str(m.get("id")))}</code></td>'
                f"<td></td><td>{badge('UNREADABLE')}</td>"
                f'<td colspan="4" style="color:#b02a37">{escape(str(m.get("error"))[:120])}</td></tr>'
            )
            continue
        s = snapshot(m, now)
        tasks = done_text(s)
        created = (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(float(m["created"])))
            if m.get("created")
            else "-"
        )
        err = first_line(m.get("error")) if s.state not in ("SUCCEEDED",) else ""
        body.append(
            f'<tr data-job="{escape(s.job_id)}" data-state="{escape(s.state)}">'
            f"<td><code>{escape(s.job_id)}</code></td><td>{escape(str(m.get('title') or ''))}</td>"
            f"<td>{badge(s.state)}</td><td>{escape(tasks)}</td>"
            f"<td>{escape(str(m.get('slurm_job_id') or '-'))}</td><td>{escape(created)}</td>"
            f"<td>{escape(_duration(s.elapsed) if s.elapsed is not None else '-')}</td>"
            f'<td style="color:#b02a37;font-size:12px">{escape(err[:120])}</td></tr>'
        )
    more = ""
    if len(items) > MAX_ROWS:
        more = (
            f'<tr><td colspan="8" style="color:#666">… and {len(items) - MAX_ROWS} more</td></tr>'
        )
    head = "".join(
        f'<th style="text-align:left;padding:2px 8px;border-bottom:1px solid #ccc">{h}</th>'
        for h in ("id", "title", "state", "tasks", "slurm", "created", "duration", "error")
    )
    return (
        f'<table class="qshpc-jobs" data-jobs="{len(items)}" style="{_FONT};font-size:13px;'
        f'border-collapse:collapse"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}{more}'
        f"</tbody></table>"
    )
