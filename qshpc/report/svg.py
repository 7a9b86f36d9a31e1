"""The timeline as hand-written SVG: small, searchable in the DOM, a tooltip on every mark.

Written by hand because nothing draws this shape as plain, inline SVG whose
elements a test can count: lanes are ``<g class="lane">`` with ``data-rank``
and ``data-host``; attempts are ``<rect class="task">`` (``failed``,
``retry``) with ``data-task``; bins are ``<rect class="bin">``; rank 0's
program and waits are ``<rect class="program">`` and ``<rect class="wait">``.
The root ``<svg>`` says what it holds in ``data-*`` attributes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from qshpc.report.timeline import Lane, Mark, Timeline, format_offset, tick_step
from qshpc.text import html_escape as escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#9c755f", "#bab0ac")
FAILED = "#d62728"
UNKNOWN = "#dee2e6"  # a running job's rank 0 after the last thing stored
STOPPED = "#fd7e14"  # an attempt still running when the job ended (the CANCELED orange)
PROGRAM = "#3b3b3b"
WAIT = "#c9c9c9"
WIDTH = 1200
LEFT = 170
RIGHT = 16
TOP = 28
LEGEND_H = 34


def colour(fn: int) -> str:
    """The colour of function ``fn``."""
    return PALETTE[fn % len(PALETTE)]


def lane_height(n_lanes: int) -> float:
    """Pixels per lane: 24 for a few lanes, down to 3 for thousands."""
    return max(3.0, min(24.0, 640.0 / max(1, n_lanes)))


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t)) + f".{int(t % 1 * 10)}"


#: How opaque a mark of a result the cache gave is (a run's is 1).
CACHED_OPACITY = 0.4


def _tip(tl: Timeline, m: Mark) -> str:
    lane = tl.lanes[m.lane]
    where = (
        f"rank {lane.rank} on {lane.host}"
        if lane.ranks == 1
        else f"{lane.ranks} ranks on {lane.host}"
    )
    fn = tl.functions[m.fn] if 0 <= m.fn < len(tl.functions) else "?"
    span = f"{_clock(m.t0)}\u2013{_clock(m.t1)}"
    if not tl.binned:
        state = "FAILED" if m.failed else "SUCCEEDED"
        if m.stopped:
            state = "STOPPED: still running when the job ended"
        if m.cached:
            state += " from the result cache (not run)"
        return (
            f"task {m.task_id} \u00b7 {fn} \u00b7 attempt {m.attempt} \u00b7 {state}\n"
            f"{where} \u00b7 {m.t1 - m.t0:.3g} s \u00b7 {span}"
        )
    extra = f" \u00b7 {m.failures} failed" if m.failures else ""
    extra += f" \u00b7 {m.stops} stopped when the job ended" if m.stops else ""
    extra += " \u00b7 retries" if m.retry else ""
    return f"{where} \u00b7 {span}\n{m.n} attempts of {fn} \u00b7 {m.busy:.0%} of the time{extra}"


def render(tl: Timeline, standalone: bool = False) -> str:
    """The SVG text of ``tl`` (``standalone``: with the XML namespace, for a .svg file)."""
    lh = lane_height(len(tl.lanes))
    plot_w = WIDTH - LEFT - RIGHT
    height = TOP + lh * len(tl.lanes) + 22 + LEGEND_H
    scale = plot_w / tl.duration

    def x(t: float) -> float:
        return LEFT + (t - tl.t0) * scale

    out: list[str] = []
    ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    drawn = 0 if tl.binned else len(tl.marks)
    out.append(
        f'<svg{ns} class="qshpc-timeline" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'width="{WIDTH}" height="{height:.0f}" role="img" '
        f'data-lanes="{len(tl.lanes)}" data-hosts="{len(tl.hosts)}" data-attempts="{tl.attempts}" '
        f'data-drawn="{drawn}" data-marks="{len(tl.marks)}" data-binned="{int(tl.binned)}" '
        f'data-failed="{tl.failed}" data-stopped="{tl.stopped}" '
        f'data-retries="{tl.retries}" data-snapshot="{int(tl.snapshot)}" '
        f'font-family="system-ui, sans-serif" font-size="11">'
    )
    what = "bins" if tl.binned else "attempts"
    out.append(
        f"<title>Task timeline: {tl.attempts} attempts on {len(tl.lanes)} ranks ({what} drawn)</title>"
    )
    out.append(
        '<defs><pattern id="qshpc-hatch" width="4" height="4" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="4" height="4" fill="#e4e4e4"/>'
        f'<line x1="0" y1="0" x2="0" y2="4" stroke="{WAIT}" stroke-width="3"/></pattern></defs>'
    )
    out += _axis(tl, x, lh, height)
    for g, (host, first, last) in enumerate(tl.hosts):
        y0, y1 = TOP + first * lh, TOP + (last + 1) * lh
        fill = "#f4f6f9" if g % 2 == 0 else "#ffffff"
        out.append(
            f'<g class="host" data-host="{escape(host)}"><rect x="0" y="{y0:.1f}" width="{WIDTH}" '
            f'height="{y1 - y0:.1f}" fill="{fill}"/>'
            f'<text x="6" y="{(y0 + y1) / 2 + 4:.1f}" font-weight="600">{escape(host[:18])}</text></g>'
        )
    by_lane: dict[int, list[Mark]] = {}
    for m in tl.marks:
        by_lane.setdefault(m.lane, []).append(m)
    every = max(1, int(12 / lh))  # label every lane when there is room, else some
    for i, lane in enumerate(tl.lanes):
        out.append(
            f'<g class="lane" data-rank="{lane.rank}" data-ranks="{lane.ranks}" data-host="{escape(lane.host)}" '
            f'data-attempts="{lane.attempts}" transform="translate(0 {TOP + i * lh:.2f})">'
        )
        if i % every == 0 and lh >= 6:
            size = min(11.0, lh + 1)
            out.append(
                f'<text x="{LEFT - 6}" y="{lh / 2 + size / 3:.1f}" text-anchor="end" fill="#444" '
                f'font-size="{size:.0f}">{_lane_label(lane)}</text>'
            )
        task_y, task_h = 1.0, max(1.0, lh - 2)
        if i == tl.rank0_lane:
            strip = max(1.0, lh * 0.35)
            out += _spans(tl, x, strip)
            task_y, task_h = strip + 1, max(1.0, lh - strip - 2)
        for m in by_lane.get(i, []):
            out.append(_mark(tl, m, x, task_y, task_h))
        out.append("</g>")
    out += _legend(tl, height - LEGEND_H + 8)
    out.append("</svg>")
    return "".join(out)


def _lane_label(lane: Lane) -> str:
    return f"rank {lane.rank}" if lane.ranks == 1 else f"{lane.ranks} ranks"


def _mark(tl: Timeline, m: Mark, x: Callable[[float], float], y: float, h: float) -> str:
    x0 = x(m.t0)
    # a failed or retried attempt of microseconds still shows
    w = max(2.0 if (m.failed or m.retry or m.stopped) and not tl.binned else 0.8, x(m.t1) - x0)
    fill = FAILED if m.failed and not tl.binned else colour(m.fn)
    if m.stopped:
        fill = STOPPED
    cls = "bin" if tl.binned else "task"
    ry, rh = y, h
    if tl.binned:  # one segment of the bin's stack, from the bottom of the lane
        ry, rh = y + h * (1 - m.base - m.busy), max(0.5, h * m.busy)
        attrs = f' data-n="{m.n}" data-fn="{m.fn}"'
    else:
        attrs = f' data-task="{escape(str(m.task_id))}" data-attempt="{m.attempt}"'
    if m.failed:
        cls += " failed"
    if m.stopped:
        cls += " stopped"
    if m.cached:
        cls += " cached"
        attrs += f' fill-opacity="{CACHED_OPACITY}"'
    if m.retry:
        cls += " retry"
        if not tl.binned:
            attrs += ' stroke="#000" stroke-width="1"'
    rect = (
        f'<rect class="{cls}" x="{x0:.1f}" y="{ry:.1f}" width="{w:.1f}" height="{rh:.1f}" '
        f'fill="{fill}"{attrs}><title>{escape(_tip(tl, m))}</title></rect>'
    )
    if tl.binned and m.failed:  # a red cap on bins that hold failed attempts
        rect += (
            f'<rect class="failmark" x="{x0:.1f}" y="{y:.1f}" width="{max(w, 1.5):.1f}" '
            f'height="{max(1.0, h / 3):.1f}" fill="{FAILED}"/>'
        )
    if tl.binned and m.stops:  # an orange cap (below a red one) on bins that hold stopped ones
        top = y + (max(1.0, h / 3) if m.failed else 0.0)
        rect += (
            f'<rect class="stopmark" x="{x0:.1f}" y="{top:.1f}" width="{max(w, 1.5):.1f}" '
            f'height="{max(1.0, h / 4):.1f}" fill="{STOPPED}"/>'
        )
    if tl.binned and m.retry:  # a black foot on bins that hold retries
        rect += (
            f'<rect class="retrymark" x="{x0:.1f}" y="{y + h - max(1.0, h / 5):.1f}" '
            f'width="{max(w, 1.5):.1f}" height="{max(1.0, h / 5):.1f}" fill="#000"/>'
        )
    return rect


def _spans(tl: Timeline, x: Callable[[float], float], strip: float) -> list[str]:
    out = []
    for s in tl.spans:
        x0 = x(s.t0)
        w = max(0.6, x(s.t1) - x0)
        if s.kind == "unknown":
            tip = (
                f"not stored yet \u00b7 {s.t1 - s.t0:.3g} s: rank 0 runs the program or waits "
                "for tasks; its waits and the results reach the store at its next commit"
            )
            out.append(
                f'<rect class="unknown" x="{x0:.1f}" y="0.5" width="{w:.1f}" height="{strip:.1f}" '
                f'fill="{UNKNOWN}"><title>{escape(tip)}</title></rect>'
            )
        elif s.kind == "program":
            tip = f"rank 0 runs the program \u00b7 {s.t1 - s.t0:.3g} s"
            out.append(
                f'<rect class="program" x="{x0:.1f}" y="0.5" width="{w:.1f}" height="{strip:.1f}" '
                f'fill="{PROGRAM}"><title>{escape(tip)}</title></rect>'
            )
        else:
            tip = f"rank 0 waits in {s.kind}() for {s.n} task(s) \u00b7 {s.t1 - s.t0:.3g} s"
            out.append(
                f'<rect class="wait" x="{x0:.1f}" y="0.5" width="{w:.1f}" height="{strip:.1f}" '
                f'fill="url(#qshpc-hatch)" data-kind="{s.kind}" data-n="{s.n}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    return out


def _axis(tl: Timeline, x: Callable[[float], float], lh: float, height: float) -> list[str]:
    step = tick_step(tl.duration)
    bottom = TOP + lh * len(tl.lanes)
    out = ['<g class="axis" fill="#555">']
    k = 0
    while k * step <= tl.duration + 1e-9:
        xt = x(tl.t0 + k * step)
        out.append(
            f'<line x1="{xt:.1f}" y1="{TOP - 4}" x2="{xt:.1f}" y2="{bottom:.1f}" stroke="#ddd"/>'
            f'<text x="{xt:.1f}" y="{TOP - 8}" text-anchor="middle">'
            f"{format_offset(k * step, step)}</text>"
        )
        k += 1
    start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(tl.t0))
    note = f"time since {start}"
    if tl.snapshot:
        note += f" \u00b7 snapshot of a running job at {time.strftime('%H:%M:%S', time.localtime(tl.t1))}"
    if tl.binned:
        note += f" \u00b7 binned: one mark per {tl.bin_s:.3g} s of a rank"
    out.append(f'<text x="{LEFT}" y="{bottom + 16:.1f}">{escape(note)}</text></g>')
    return out


def _legend(tl: Timeline, y: float) -> list[str]:
    items: list[tuple[str, str, str]] = [
        (colour(i), escape(name if len(name) <= 40 else name[:39] + "…"), "")
        for i, name in enumerate(tl.functions)
    ]
    items.append((FAILED, "failed attempt", ""))
    if tl.cached:
        items.append(
            ("#555555", "from the result cache (faded)", f' fill-opacity="{CACHED_OPACITY}"')
        )
    if tl.stopped:
        items.append((STOPPED, "stopped when the job ended", ""))
    if tl.binned:
        items.append(("#000000", "holds retries (foot)", ""))
    else:
        items.append(("#ffffff", "retry (outline)", ' stroke="#000" stroke-width="1"'))
    items.append((PROGRAM, "rank 0: program", ""))
    if tl.waits_recorded:
        items.append(("url(#qshpc-hatch)", "rank 0: waiting in get/wait", ""))
    if any(s.kind == "unknown" for s in tl.spans):
        items.append((UNKNOWN, "not stored yet", ""))
    out = ['<g class="legend">']
    xpos = float(LEFT)
    for fill, label, extra in items:
        width = 18 + 6.2 * len(label)
        if xpos + width > WIDTH:
            break
        out.append(
            f'<rect x="{xpos:.0f}" y="{y:.0f}" width="12" height="12" fill="{fill}"{extra}/>'
            f'<text x="{xpos + 16:.0f}" y="{y + 10:.0f}">{label}</text>'
        )
        xpos += width + 14
    out.append("</g>")
    return out
