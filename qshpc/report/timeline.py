"""The timeline of a job: one lane per rank, grouped by host, and what each lane did when.

:func:`build` turns a :class:`JobData` into a :class:`Timeline` of marks that
a renderer draws (:mod:`qshpc.report.svg` by hand for the HTML report,
:mod:`qshpc.report.figures` with matplotlib for PNG). Up to ``MAX_TASKS``
attempts, each attempt is one mark; above, each lane is cut into time bins
and a bin becomes a stack of marks, one per function that ran in it, each as
high as the share of the bin's time the rank spent on it; neighbouring bins
that look alike merge, so a report of 100k tasks stays small.

Rank 0's lane also shows the program: running (dark strip) and waiting in
``get``/``wait`` (light strip), when the store records the waits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from qshpc.report.data import Span

if TYPE_CHECKING:
    from qshpc.report.data import JobData

MAX_TASKS = 3000  # attempts drawn one by one; above this the lanes are binned
MARK_BUDGET = 12000  # marks over all lanes (bins x functions, up to 4), before merging
MIN_BINS, MAX_BINS = 60, 600
MAX_LANES = 256  # beyond this many ranks, one lane per host (rank 0 keeps its own)
MAX_FUNCTIONS = 8  # colours; further functions share "other"
LEVELS = 8  # height steps of a bin
OTHER = "(other functions)"


@dataclass(frozen=True)
class Lane:
    """One rank of one host (a rank number may come back on another host after a resume).

    Beyond ``MAX_LANES`` ranks, one lane per host holds all its worker ranks
    (``ranks`` of them, ``rank`` -1), and bins show the share of them busy.

    Attributes:
        rank: The MPI rank (-1 for a lane of a host's worker ranks).
        host: Its host.
        attempts: Task attempts it ran.
        busy_s: Seconds it spent running tasks.
        ranks: The ranks in the lane.
    """

    rank: int
    host: str
    attempts: int
    busy_s: float
    ranks: int = 1


@dataclass(frozen=True)
class Mark:
    """One rectangle: a task attempt, or a bin of many.

    Attributes:
        lane: Lane index.
        t0: Start (Unix time).
        t1: End (Unix time).
        fn: Function index (``Timeline.functions``).
        failed: A failed attempt (a bin: holds failed attempts).
        retry: A retry (attempt > 1) (a bin: holds retries).
        n: Attempts it stands for.
        busy: Fraction of the bin's time the rank ran this function (1 for an attempt).
        base: Where the mark starts in a bin's stack (fraction of the lane, from the bottom).
        task_id: The task id (attempt marks only).
        attempt: The attempt number (attempt marks only).
        failures: Failed attempts in it (bins; not those stopped).
        stopped: An attempt still running when the job ended, stopped (not a failure).
        cached: A result the result cache gave (attempt marks only).
        stops: Attempts in it stopped when the job ended (bins: an orange cap, not red).
    """

    lane: int
    t0: float
    t1: float
    fn: int
    failed: bool = False
    retry: bool = False
    n: int = 1
    busy: float = 1.0
    base: float = 0.0
    task_id: str | None = None
    attempt: int = 1
    failures: int = 0
    stopped: bool = False
    stops: int = 0
    cached: bool = False


@dataclass
class Timeline:
    """What the timeline draws.

    Attributes:
        t0: Left edge (Unix time).
        t1: Right edge (the end of the job, or the snapshot time).
        lanes: One per rank, in drawing order (hosts in order of their first rank).
        hosts: ``(host, first lane, last lane)`` groups.
        functions: Function names by index (``OTHER`` last when there were too many).
        marks: Attempts or bins.
        spans: Rank 0's program and its waits.
        rank0_lane: The lane of rank 0 (None when no rank 0 is known).
        binned: Whether marks are bins.
        bin_s: The bin width in seconds (binned only).
        attempts: Task attempts in the job.
        failed: Failed attempts.
        retries: Attempts that were retries.
        snapshot: The job was still running when it was read.
        waits_recorded: The store records rank 0's waits.
        stopped: Attempts still running when the job ended (drawn apart; not in ``failed``).
        cached: Attempts whose result came from the result cache (attempt by attempt only).
    """

    t0: float
    t1: float
    lanes: list[Lane]
    hosts: list[tuple[str, int, int]]
    functions: list[str]
    marks: list[Mark] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    rank0_lane: int | None = None
    binned: bool = False
    bin_s: float = 0.0
    attempts: int = 0
    failed: int = 0
    retries: int = 0
    snapshot: bool = False
    waits_recorded: bool = False
    stopped: int = 0
    cached: int = 0

    @property
    def duration(self) -> float:
        """Seconds from the left edge to the right edge."""
        return self.t1 - self.t0


def _lanes(data: JobData) -> tuple[list[Lane], np.ndarray[Any, Any]]:
    """Lanes of every rank that ran or was started, and each record's lane index."""
    t = data.table
    keys: dict[tuple[int, str], None] = {}
    for run in data.runs:
        for r in run.get("ranks") or []:
            keys[(int(r.get("rank", 0)), str(r.get("host", "?")))] = None
    for r in data.meta.get("ranks") or []:
        keys[(int(r.get("rank", 0)), str(r.get("host", "?")))] = None
    pairs = list(zip(t.rank.tolist(), t.host, strict=True))
    for p in dict.fromkeys(pairs):
        keys[(int(p[0]), str(p[1]))] = None
    first_rank: dict[str, int] = {}
    for rank, host in keys:
        first_rank[host] = min(rank, first_rank.get(host, rank))
    order = sorted(keys, key=lambda k: (first_rank[k[1]], k[1], k[0]))
    index = {k: i for i, k in enumerate(order)}
    lane_of = np.array([index[(int(r), str(h))] for r, h in pairs], dtype=np.int64)
    wall = t.wall.clip(min=0.0)
    attempts = np.bincount(lane_of, minlength=len(order)) if len(pairs) else np.zeros(len(order))
    busy = (
        np.bincount(lane_of, weights=wall, minlength=len(order))
        if len(pairs)
        else np.zeros(len(order))
    )
    lanes = [
        Lane(rank, host, int(attempts[i]), float(busy[i])) for i, (rank, host) in enumerate(order)
    ]
    return lanes, lane_of


def _functions(names: list[str]) -> tuple[list[str], np.ndarray[Any, Any]]:
    """Function names by how many attempts they ran (most first), and each record's index."""
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    ranked = sorted(counts, key=lambda n: (-counts[n], n))
    shown = ranked if len(ranked) <= MAX_FUNCTIONS else [*ranked[: MAX_FUNCTIONS - 1], OTHER]
    index = {n: i for i, n in enumerate(shown)}
    other = len(shown) - 1
    fn_of = np.array([index.get(n, other) for n in names], dtype=np.int64)
    return shown, fn_of


def _hosts(lanes: list[Lane]) -> list[tuple[str, int, int]]:
    groups: list[tuple[str, int, int]] = []
    for i, lane in enumerate(lanes):
        if groups and groups[-1][0] == lane.host:
            groups[-1] = (lane.host, groups[-1][1], i)
        else:
            groups.append((lane.host, i, i))
    return groups


def build(data: JobData, max_tasks: int = MAX_TASKS) -> Timeline:
    """The timeline of ``data`` (attempt by attempt up to ``max_tasks`` attempts, else binned)."""
    t = data.table
    lanes, lane_of = _lanes(data)
    per_host = len(lanes) > MAX_LANES
    if per_host:
        lanes, lane_of = _per_host(lanes, lane_of)
    functions, fn_of = _functions(t.function)
    starts = [s.t0 for s in data.program] + ([float(t.started.min())] if len(t) else [])
    ends = [s.t1 for s in data.program] + ([float(t.finished.max())] if len(t) else [])
    t0 = min(starts) if starts else data.taken
    t1 = max([*ends, t0])
    if data.running:
        t1 = max(t1, data.taken)
    if t1 - t0 < 1e-3:
        t1 = t0 + 1e-3
    rank0 = next((i for i, lane in enumerate(lanes) if lane.rank == 0), None)
    tl = Timeline(
        t0=t0,
        t1=t1,
        lanes=lanes,
        hosts=_hosts(lanes),
        functions=functions,
        spans=[*data.program, *data.waits],
        rank0_lane=rank0,
        attempts=len(t),
        failed=int(t.failed.sum()),
        retries=int((t.attempt > 1).sum()),
        snapshot=data.running,
        waits_recorded=data.waits_recorded,
    )
    stopped = t.stopped()
    tl.stopped = int(stopped.sum())
    tl.failed -= tl.stopped
    if len(t) <= max_tasks and not per_host:
        tl.marks = [
            Mark(
                int(ln),
                s,
                e,
                int(f),
                bool(bad and not stop),
                att > 1,
                task_id=tid,
                attempt=int(att),
                stopped=bool(stop),
                cached="cache" in prov,
            )
            for ln, s, e, f, bad, att, tid, stop, prov in zip(
                lane_of.tolist(),
                t.started.tolist(),
                t.finished.tolist(),
                fn_of.tolist(),
                t.failed.tolist(),
                t.attempt.tolist(),
                t.task_id,
                stopped.tolist(),
                t.provenance,
                strict=True,
            )
        ]
        tl.cached = sum(m.cached for m in tl.marks)  # (review32 F9: hits looked like runs)
        return tl
    tl.binned = True
    stack = min(len(functions), 4)  # a bin is a stack of up to one mark per function
    bins = int(np.clip(MARK_BUDGET // max(1, len(lanes) * stack), MIN_BINS, MAX_BINS))
    tl.bin_s = (t1 - t0) / bins
    ranks = np.array([lane.ranks for lane in lanes], dtype=np.float64)
    tl.marks = _bin(t, lane_of, fn_of, ranks, len(functions), t0, tl.bin_s, bins, stopped)
    return tl


def _per_host(
    lanes: list[Lane], lane_of: np.ndarray[Any, Any]
) -> tuple[list[Lane], np.ndarray[Any, Any]]:
    """One lane per host for its worker ranks; rank 0 keeps a lane of its own."""
    keys: dict[tuple[int, str], int] = {}
    merged: list[Lane] = []
    new_of = np.zeros(len(lanes), dtype=np.int64)
    for i, lane in enumerate(lanes):
        key = (0, lane.host) if lane.rank == 0 else (-1, lane.host)
        if key not in keys:
            keys[key] = len(merged)
            merged.append(Lane(lane.rank if lane.rank == 0 else -1, lane.host, 0, 0.0, 0))
        j = keys[key]
        m = merged[j]
        merged[j] = Lane(m.rank, m.host, m.attempts + lane.attempts, m.busy_s + lane.busy_s,
                         m.ranks + 1)  # fmt: skip
        new_of[i] = j
    return merged, new_of[lane_of] if len(lane_of) else lane_of


def _occupancy(
    starts: np.ndarray[Any, Any],
    ends: np.ndarray[Any, Any],
    lane_of: np.ndarray[Any, Any],
    fn_of: np.ndarray[Any, Any],
    shape: tuple[int, int, int],
    t0: float,
    width: float,
) -> np.ndarray[Any, Any]:
    """Seconds each (lane, bin, function) spent running tasks."""
    n_lanes, bins, n_fn = shape
    s = np.clip((starts - t0) / width, 0, bins)
    e = np.clip((ends - t0) / width, 0, bins)
    e = np.maximum(e, s)
    b0 = np.minimum(s.astype(np.int64), bins - 1)
    b1 = np.minimum(e.astype(np.int64), bins - 1)
    occ = np.zeros(shape)
    same = b0 == b1
    np.add.at(occ, (lane_of[same], b0[same], fn_of[same]), (e[same] - s[same]) * width)
    span = ~same
    if span.any():
        ls, fs, sb, eb = lane_of[span], fn_of[span], b0[span], b1[span]
        np.add.at(occ, (ls, sb, fs), (sb + 1 - s[span]) * width)  # the first bin's part
        np.add.at(occ, (ls, eb, fs), (e[span] - eb) * width)  # the last bin's part
        full = np.zeros((n_lanes, bins + 1, n_fn))  # bins in between, by a difference array
        np.add.at(full, (ls, sb + 1, fs), width)
        np.add.at(full, (ls, eb, fs), -width)
        occ += np.cumsum(full, axis=1)[:, :bins, :]
    return occ


def _bin(
    t: Any,
    lane_of: np.ndarray[Any, Any],
    fn_of: np.ndarray[Any, Any],
    ranks: np.ndarray[Any, Any],
    n_fn: int,
    t0: float,
    width: float,
    bins: int,
    stopped: np.ndarray[Any, Any] | None = None,
) -> list[Mark]:
    """Bins as stacks: one mark per function with work in the bin, its height that share
    (of the lane's ranks' time, for a lane that holds several). ``stopped`` (bool per
    record): attempts stopped at the job's end, counted apart from the failures (on
    db7f14c they made red caps: hunt22f)."""
    n_lanes = len(ranks)
    shape = (n_lanes, bins, n_fn)
    occ = _occupancy(t.started, t.finished, lane_of, fn_of, shape, t0, width)
    occ /= ranks[:, None, None]
    where = np.minimum(((t.started - t0) / width).astype(np.int64).clip(0), bins - 1)
    flat = (lane_of * bins + where) * n_fn + fn_of
    count = np.bincount(flat, minlength=n_lanes * bins * n_fn).reshape(shape)
    flat_lb = lane_of * bins + where
    size = n_lanes * bins
    if stopped is None:
        stopped = np.zeros(len(t.failed), dtype=bool)
    bad = t.failed & ~stopped
    fails = np.bincount(flat_lb, weights=bad, minlength=size).reshape(n_lanes, bins)
    stops = np.bincount(flat_lb, weights=stopped, minlength=size).reshape(n_lanes, bins)
    retry = np.bincount(flat_lb, weights=t.attempt > 1, minlength=size).reshape(n_lanes, bins)
    level = np.ceil(np.clip(occ / width, 0.0, 1.0) * LEVELS).astype(np.int64)
    level[(level == 0) & (count > 0)] = 1  # a bin that ran tasks shows, however briefly
    marks: list[Mark] = []
    for lane in range(n_lanes):
        lv = [tuple(row) for row in level[lane].tolist()]
        cn, rt = count[lane].tolist(), retry[lane].tolist()
        fl, st = fails[lane].tolist(), stops[lane].tolist()
        b = 0
        while b < bins:
            if not any(lv[b]):
                b += 1
                continue
            start = b
            n = [0] * n_fn
            failures = retries = halted = 0
            # merge neighbours that look alike; a bin with failures, stopped attempts or
            # retries stands alone
            while b < bins and lv[b] == lv[start]:
                if b > start and (fl[b] or rt[b] or st[b] or fl[start] or rt[start] or st[start]):
                    break
                n = [a + c for a, c in zip(n, cn[b], strict=True)]
                failures += int(fl[b])
                retries += int(rt[b])
                halted += int(st[b])
                b += 1
            total = max(LEVELS, sum(lv[start]))
            base = 0.0
            first = True
            for fn, q in enumerate(lv[start]):
                if not q:
                    continue
                marks.append(
                    Mark(
                        lane,
                        t0 + start * width,
                        t0 + b * width,
                        fn,
                        failures > 0 and first,
                        retries > 0 and first,
                        n=n[fn],
                        busy=q / total,
                        base=base,
                        failures=failures if first else 0,
                        stops=halted if first else 0,
                    )
                )
                base += q / total
                first = False
    return marks


def tick_step(duration: float, target: int = 8) -> float:
    """A step in seconds giving about ``target`` ticks over ``duration`` (1-2-5, or clock steps)."""
    raw = max(duration, 1e-9) / target
    if raw > 30:  # minutes and hours read better in clock steps
        for step in (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
            if raw <= step:
                return float(step)
        return float(86400 * np.ceil(raw / 86400))
    mag = 10 ** np.floor(np.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return float(m * mag)
    return float(10 * mag)  # pragma: no cover


def format_offset(secs: float, step: float) -> str:
    """A tick label: ``+1.5 s``, ``+2m30s``, ``+1h05m``."""
    if step < 1:
        decimals = max(0, int(-np.floor(np.log10(step))))
        return f"{secs:.{decimals}f} s"
    n = round(secs)
    if n < 120:
        return f"{n} s"
    if n < 7200:
        return f"{n // 60}m{n % 60:02d}s"
    return f"{n // 3600}h{n % 3600 // 60:02d}m"
