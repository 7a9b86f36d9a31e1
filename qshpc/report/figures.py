"""matplotlib figures of a job: the timeline (for PNG/PDF files) and throughput over time.

matplotlib is imported here only, on the Agg canvas (no display, pyplot's
global backend untouched), as :mod:`qshpc.plot` does.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import numpy as np

from qshpc.errors import UserError
from qshpc.report.svg import FAILED, PROGRAM, STOPPED, WAIT, colour
from qshpc.report.timeline import Lane, Timeline, format_offset, tick_step

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from qshpc.store.table import TaskTable


def new_figure(width: float, height: float) -> Figure:
    """A Figure on an Agg canvas.

    Raises:
        UserError: matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError(
            "matplotlib is not installed: install it with `pip install 'qshpc[report]'`"
        ) from None
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def data_uri(fig: Figure, dpi: int = 96) -> str:
    """``fig`` as a ``data:image/png;base64,...`` URI (inline in HTML, no file, no network)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def timeline_figure(tl: Timeline, title: str = "") -> Figure:
    """The timeline drawn with matplotlib (one ``broken_barh`` row per lane)."""
    from matplotlib.patches import Patch

    n = len(tl.lanes)
    fig = new_figure(12, min(40.0, 2.2 + 0.28 * n))
    ax = fig.add_subplot()
    rel = tl.t0
    by_lane: dict[int, list[Any]] = {}
    for m in tl.marks:
        by_lane.setdefault(m.lane, []).append(m)
    for i in range(n):
        y = n - 1 - i  # rank order top to bottom
        task_y, task_h = y + 0.05, 0.9
        if i == tl.rank0_lane:
            for s in tl.spans:
                plain = s.kind in ("program", "unknown")  # unknown: a running job's unstored tail
                fc = {"program": PROGRAM, "unknown": "#dee2e6"}.get(s.kind, WAIT)
                ax.broken_barh(
                    [(s.t0 - rel, max(s.t1 - s.t0, 0))],
                    (y + 0.62, 0.33),
                    facecolors=fc,
                    hatch=None if plain else "///",
                    edgecolor="none",
                )
            task_y, task_h = y + 0.05, 0.55
        marks = by_lane.get(i, [])
        if not marks:
            continue
        if tl.binned:  # stacks: each segment as high as its share of the bin
            for m in marks:
                ax.broken_barh(
                    [(m.t0 - rel, m.t1 - m.t0)],
                    (task_y + task_h * m.base, task_h * m.busy),
                    facecolors=colour(m.fn),
                    edgecolors="none",
                )
        else:
            ranges = [(m.t0 - rel, max(m.t1 - m.t0, tl.duration / 4000)) for m in marks]
            colours = [
                FAILED if m.failed else STOPPED if m.stopped else colour(m.fn) for m in marks
            ]
            edges = ["black" if m.retry else "none" for m in marks]
            ax.broken_barh(
                ranges, (task_y, task_h), facecolors=colours, edgecolors=edges, linewidth=0.6
            )
        if tl.binned:
            fails = [(m.t0 - rel, m.t1 - m.t0) for m in marks if m.failed]
            if fails:
                ax.broken_barh(fails, (task_y + task_h * 0.7, task_h * 0.3), facecolors=FAILED)
            stops = [(m.t0 - rel, m.t1 - m.t0) for m in marks if m.stops]
            if stops:  # below the red cap: stopped when the job ended, not failures
                ax.broken_barh(stops, (task_y + task_h * 0.5, task_h * 0.2), facecolors=STOPPED)
    every = max(1, n // 60)  # a label per lane while they fit
    ax.set_yticks(
        [n - 1 - i + 0.5 for i in range(0, n, every)],
        [_label(tl.lanes[i]) for i in range(0, n, every)],
        fontsize=7 if n > 24 else 9,
    )
    ax.set_ylim(0, n)
    ax.set_xlim(0, tl.duration)
    step = tick_step(tl.duration)
    ticks = np.arange(0, tl.duration + step / 2, step)
    ax.set_xticks(ticks, [format_offset(t, step) for t in ticks])
    ax.set_xlabel("time since the job started" + (" (binned)" if tl.binned else ""))
    ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=colour(i), label=name) for i, name in enumerate(tl.functions)]
    handles.append(Patch(color=FAILED, label="failed"))
    if tl.stopped:
        handles.append(Patch(color=STOPPED, label="stopped when the job ended"))
    handles.append(Patch(color=PROGRAM, label="rank 0: program"))
    if tl.waits_recorded:
        handles.append(Patch(facecolor=WAIT, hatch="///", label="rank 0: waiting"))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(6, len(handles)),
        fontsize=8,
        frameon=False,
    )
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _label(lane: Lane) -> str:
    if lane.ranks == 1:
        return f"{lane.host} r{lane.rank}"
    return f"{lane.host} ({lane.ranks} ranks)"


def throughput(table: TaskTable, t0: float, t1: float, bins: int = 120) -> tuple[Any, Any, Any]:
    """Bin edges (seconds since ``t0``) and attempts finished per second in each bin (done, failed)."""
    span = max(t1 - t0, 1e-3)
    bins = max(1, min(bins, int(np.ceil(span / 0.01))))  # no bin under 10 ms
    edges = np.linspace(0.0, span, bins + 1)
    rel = table.finished - t0
    done, _ = np.histogram(rel[~table.failed], bins=edges)
    failed, _ = np.histogram(rel[table.failed & ~table.stopped()], bins=edges)
    width = span / bins
    return edges, done / width, failed / width


def throughput_figure(table: TaskTable, t0: float, t1: float) -> Figure:
    """Attempts finished per second over time (stacked: done, failed) and the running total."""
    edges, done, failed = throughput(table, t0, t1)
    fig = new_figure(12, 3.0)
    ax = fig.add_subplot()
    width = edges[1] - edges[0]
    ax.bar(edges[:-1], done, width=width, align="edge", color=colour(0), label="succeeded")
    if failed.any():
        ax.bar(
            edges[:-1], failed, width=width, align="edge", bottom=done, color=FAILED, label="failed"
        )
    stopped = table.stopped()
    if stopped.any():  # still running when the job ended: not failures (review26 #2)
        cut, _ = np.histogram(table.finished[stopped] - t0, bins=edges)
        ax.bar(edges[:-1], cut / width, width=width, align="edge", bottom=done + failed,
               color=STOPPED, label="stopped when the job ended")  # fmt: skip
    ax.set_ylabel("attempts finished / s")
    span = edges[-1]
    step = tick_step(span)
    ticks = np.arange(0, span + step / 2, step)
    ax.set_xticks(ticks, [format_offset(t, step) for t in ticks])
    ax.set_xlim(0, span)
    ax.set_xlabel("time since the job started")
    total = ax.twinx()
    order = np.sort(table.finished - t0)
    count = np.arange(1, len(order) + 1)
    if len(order) > 2000:  # the curve needs no more points than the figure has pixels
        pick = np.linspace(0, len(order) - 1, 2000).astype(np.int64)
        order, count = order[pick], count[pick]
    total.plot(order, count, color="#333", linewidth=1.2, label="total")
    total.set_ylabel("attempts finished (total)")
    total.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig
