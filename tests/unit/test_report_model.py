"""The report's pieces without a job: timeline model and binning, SVG, card, tables, sacct."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qshpc.report import svg
from qshpc.report.accounting import format_rss, parse_steps
from qshpc.report.card import card_html, first_line, jobs_table_html
from qshpc.report.data import JobData, Span
from qshpc.report.timeline import MARK_BUDGET, OTHER, build, format_offset, tick_step
from qshpc.store.table import TaskTable, empty_table

T0 = 1_800_000_000.0


def table(rows: list[dict[str, Any]]) -> TaskTable:
    """A TaskTable from dicts with task_id, function, rank, host, started, finished (+ failed, attempt)."""
    n = len(rows)

    def col(k: str, default: Any, dtype: Any) -> np.ndarray[Any, Any]:
        return np.array([r.get(k, default) for r in rows], dtype=dtype)

    return TaskTable(
        task_id=[str(r["task_id"]) for r in rows],
        key=["k"] * n,
        function=[r.get("function", "f") for r in rows],
        host=[r.get("host", "h1") for r in rows],
        error=[r.get("error") for r in rows],
        provenance=[r.get("provenance", {}) for r in rows],
        failed=col("failed", False, bool),
        attempt=col("attempt", 1, np.int64),
        rank=col("rank", 1, np.int64),
        run=col("run", 1, np.int64),
        seed=col("seed", -1, np.int64),
        has_seed=col("has_seed", False, bool),
        submitted=col("submitted", T0, np.float64),
        started=col("started", T0, np.float64),
        finished=col("finished", T0, np.float64),
    )


def job(rows: list[dict[str, Any]], ranks: list[tuple[int, str]], state: str = "SUCCEEDED",
        **meta: Any) -> JobData:  # fmt: skip
    t = table(rows) if rows else empty_table()
    ranks_meta = [{"rank": r, "host": h} for r, h in ranks]
    m = {"id": "job-1", "title": "t", "state": state, "ranks": ranks_meta, **meta}
    end = float(t.finished.max()) if len(t) else T0 + 1
    runs = [{"started": T0, "ranks": ranks_meta}]
    program = [Span(T0, end, "program")]
    return JobData(Path("/nonexistent"), m, runs, t, program=program, taken=end + 5)


def test_lanes_per_rank_grouped_by_host_in_rank_order() -> None:
    ranks = [(0, "a"), (1, "b"), (2, "a"), (3, "b")]
    rows = [{"task_id": i, "rank": r, "host": h, "started": T0 + i, "finished": T0 + i + 0.5}
            for i, (r, h) in enumerate(ranks[1:])]  # fmt: skip
    tl = build(job(rows, ranks))
    assert [(lane.host, lane.rank) for lane in tl.lanes] == [("a", 0), ("a", 2), ("b", 1), ("b", 3)]
    assert tl.hosts == [("a", 0, 1), ("b", 2, 3)]
    assert tl.rank0_lane == 0
    assert not tl.binned and len(tl.marks) == 3


def test_a_rank_seen_only_in_records_gets_a_lane() -> None:
    rows = [{"task_id": 0, "rank": 5, "host": "old", "started": T0, "finished": T0 + 1}]
    tl = build(job(rows, [(0, "new"), (1, "new")]))
    assert ("old", 5) in [(lane.host, lane.rank) for lane in tl.lanes]


def test_failed_and_retried_attempts_are_marked() -> None:
    rows = [
        {"task_id": 0, "started": T0, "finished": T0 + 1, "failed": True, "error": "boom"},
        {"task_id": 0, "started": T0 + 1, "finished": T0 + 2, "attempt": 2},
    ]
    tl = build(job(rows, [(0, "h1"), (1, "h1")]))
    assert [(m.failed, m.retry) for m in tl.marks] == [(True, False), (False, True)]
    text = svg.render(tl)
    assert text.count('class="task failed"') == 1 and text.count('class="task retry"') == 1
    assert 'data-failed="1"' in text and 'data-retries="1"' in text


def test_binning_keeps_busy_time_and_bounds_the_marks() -> None:
    rng = np.random.default_rng(1)
    n, ranks = 100_000, 16
    rank = rng.integers(1, ranks + 1, n)
    start = T0 + np.sort(rng.uniform(0, 100, n))
    wall = rng.exponential(0.01, n)
    rows = [{"task_id": i, "rank": int(rank[i]), "host": f"n{int(rank[i]) // 4}",
             "function": "g" if i % 3 else "f", "started": float(start[i]),
             "finished": float(start[i] + wall[i]), "failed": i % 5000 == 0}
            for i in range(n)]  # fmt: skip
    data = job(rows, [(0, "n0")] + [(r, f"n{r // 4}") for r in range(1, ranks + 1)])
    tl = build(data)
    assert tl.binned and tl.attempts == n and tl.failed == 20
    assert 0 < len(tl.marks) <= MARK_BUDGET * 1.2
    assert sum(m.n for m in tl.marks) == n  # every attempt counted in one bin
    assert sum(m.failures for m in tl.marks) == 20
    text = svg.render(tl)
    assert len(text) < 3_000_000
    assert text.count('class="bin') == len(tl.marks)
    assert 'class="task' not in text


def test_long_tasks_fill_every_bin_they_cover() -> None:
    rows = [{"task_id": 0, "started": T0, "finished": T0 + 100}]
    rows += [{"task_id": i, "rank": 2, "started": T0 + i * 1e-3, "finished": T0 + i * 1e-3 + 1e-4}
             for i in range(1, 5000)]  # fmt: skip
    tl = build(job(rows, [(0, "h1"), (1, "h1"), (2, "h1")]))
    assert tl.binned
    lane1 = [m for m in tl.marks if tl.lanes[m.lane].rank == 1]
    covered = sum(m.t1 - m.t0 for m in lane1)
    assert covered == pytest.approx(100, rel=0.02)
    assert all(m.busy == 1.0 for m in lane1)
    assert len(lane1) == 1  # alike neighbours merge


def test_many_functions_share_the_last_colour() -> None:
    rows = [{"task_id": i, "function": f"fn{i}", "started": T0 + i, "finished": T0 + i + 1}
            for i in range(12)]  # fmt: skip
    tl = build(job(rows, [(0, "h1"), (1, "h1")]))
    assert len(tl.functions) == 8 and tl.functions[-1] == OTHER


def test_running_job_is_a_snapshot_up_to_now() -> None:
    rows = [{"task_id": 0, "started": T0, "finished": T0 + 1}]
    data = job(rows, [(0, "h1"), (1, "h1")], state="RUNNING")
    data.taken = T0 + 30
    tl = build(data)
    assert tl.snapshot and tl.t1 == T0 + 30
    assert 'data-snapshot="1"' in svg.render(tl)


def test_no_tasks_yet_still_draws_the_lanes() -> None:
    tl = build(job([], [(0, "h1"), (1, "h1")], state="RUNNING"))
    text = svg.render(tl)
    assert text.count('class="lane"') == 2 and 'data-attempts="0"' in text


def test_waits_are_drawn_on_rank_0() -> None:
    rows = [{"task_id": 0, "started": T0 + 1, "finished": T0 + 2}]
    data = job(rows, [(0, "h1"), (1, "h1")])
    data.waits = [Span(T0 + 0.5, T0 + 2.1, "get", 1)]
    data.waits_recorded = True
    text = svg.render(build(data))
    assert text.count('class="wait"') == 1 and text.count('class="program"') == 1
    assert "waiting in get/wait" in text


def test_tick_steps_and_labels() -> None:
    assert tick_step(10) == 2 and tick_step(0.35) == 0.05 and tick_step(7200) == 900
    assert format_offset(0.25, 0.05) == "0.25 s"
    assert format_offset(150, 50) == "2m30s"


def test_svg_escapes_names() -> None:
    rows = [{"task_id": "<x>", "function": "f<script>", "host": "h&1", "started": T0,
             "finished": T0 + 1}]  # fmt: skip
    text = svg.render(build(job(rows, [(0, "h&1"), (1, "h&1")])))
    assert "<script>" not in text and "f&lt;script&gt;" in text


def test_card_shows_state_progress_and_error() -> None:
    meta = {"id": "j1", "title": "T", "state": "FAILED", "task_counts": {"SUCCEEDED": 3, "FAILED": 1},
            "tasks_total": 8, "started": T0, "finished": T0 + 5, "slurm_job_id": "42",
            "slurm_state": "FAILED", "ranks": [{"rank": 0, "host": "a"}, {"rank": 1, "host": "b"}],
            "error": "Traceback (most recent call last):\n  x\nValueError: bad input 3\n"}  # fmt: skip
    html = card_html(meta)
    assert 'data-state="FAILED"' in html and "ValueError: bad input 3" in html
    assert "3 done / 8 total, 1 failed" in html and "42 (FAILED)" in html
    assert re.search(r"width:37\.50%;background:#198754", html)
    assert "2 on 2 host(s)" in html


def test_card_counts_against_the_tasks_submitted_so_far() -> None:
    meta = {"id": "j", "state": "RUNNING", "task_counts": {"SUCCEEDED": 25, "FAILED": 0},
            "tasks_submitted": 100, "started": T0, "finished": None}  # fmt: skip
    html = card_html(meta, rate=5.0, now=T0 + 5)
    assert "25 done / 100 submitted" in html and "ETA 15s" in html
    assert re.search(r"width:25\.00%;background:#198754", html)
    nested = {**meta, "task_counts": {"SUCCEEDED": 150}}  # nested tasks: more done than submitted
    assert "submitted" not in card_html(nested, now=T0 + 5)


def test_card_of_a_queued_job_and_a_list() -> None:
    queued = {"id": "q", "state": "QUEUED", "task_counts": {}}
    assert "QUEUED" in card_html(queued)
    bad = {"id": "x", "unreadable": True, "error": "truncated"}
    html = jobs_table_html([queued, bad])
    assert 'data-jobs="2"' in html and "UNREADABLE" in html and "truncated" in html


def test_first_line_of_errors() -> None:
    assert first_line("Traceback (most recent call last):\n  a\nKeyError: 'x'") == "KeyError: 'x'"
    assert first_line("the job was cancelled\nmore") == "the job was cancelled"
    assert first_line(None) == ""
    hint = "\nqshpc: hint: do this"  # what to do, never the line shown
    assert (
        first_line("Traceback (most recent call last):\n  a\nKeyError: 'x'" + hint)
        == "KeyError: 'x'"
    )
    assert first_line("the job was cancelled" + hint) == "the job was cancelled"
    assert (
        first_line("  + Exception Group Traceback (most recent call last):\n  | E: m" + hint)
        == "E: m"
    )


SACCT = """\
77|qshpc-job|COMPLETED|00:00:12||0:0|n[1-2]|4
77.batch|batch|COMPLETED|00:00:12|8964K|0:0|n1|2
77.0|python|CANCELLED by 0|00:00:09|123456K|0:15|n[1-2]|4
"""


def test_sacct_steps_and_rss() -> None:
    steps = parse_steps(SACCT)
    assert [s.job_id for s in steps] == ["77", "77.batch", "77.0"]
    assert steps[2].state == "CANCELLED by 0" and steps[2].nodes == "n[1-2]"
    assert format_rss("123456K") == "120.6 MiB" and format_rss("2G") == "2.0 GiB"
    assert format_rss("") == "" and format_rss("?K") == "?K"


def test_long_texts_are_clipped_head_and_tail() -> None:
    from qshpc.report.sections import clip

    text = "start\n" + "x" * 50_000 + "\nValueError: the end"
    short = clip(text)
    assert len(short) < 20_100 and short.startswith("start") and short.endswith("the end")
    assert "characters left out" in short
    assert clip("short") == "short"


def test_a_thousand_ranks_get_one_lane_per_host() -> None:
    hosts = 125  # 8 worker ranks each, and rank 0
    ranks = [(0, "n0")] + [(r, f"n{(r - 1) // 8}") for r in range(1, hosts * 8 + 1)]
    rows = [{"task_id": i, "rank": r, "host": h, "started": T0 + i * 0.01,
             "finished": T0 + i * 0.01 + 0.05} for i, (r, h) in enumerate(ranks[1:] * 4)]  # fmt: skip
    tl = build(job(rows, ranks))
    assert tl.binned and len(tl.lanes) == hosts + 1
    assert tl.lanes[0].rank == 0 and tl.lanes[1].ranks == 8 and tl.lanes[1].rank == -1
    assert sum(m.n for m in tl.marks) == len(rows)
    assert all(0 < m.busy <= 1 for m in tl.marks)
    text = svg.render(tl)
    assert 'data-ranks="8"' in text and "8 ranks" in text and len(text) < 3_000_000


def test_a_cancelled_jobs_stopped_attempts_and_never_started_tasks() -> None:
    """review26 #2: attempts still running at a cancel are STOPPED (orange), not failures;
    the tasks that never started are counted in the key figures."""
    from qshpc.report.sections import failures, key_figures, slowest

    stop = "TaskAbandoned: the job was cancelled while this call still ran on rank 1 (...)"
    rows = [
        {"task_id": 0, "started": T0, "finished": T0 + 3},
        {"task_id": 1, "rank": 2, "started": T0, "finished": T0 + 3},
        {"task_id": 2, "started": T0 + 3, "finished": T0 + 4, "failed": True, "error": stop},
        {"task_id": 3, "rank": 2, "started": T0 + 3, "finished": T0 + 4, "failed": True,
         "error": "ValueError: bad"},
    ]  # fmt: skip
    data = job(rows, [(0, "h1"), (1, "h1"), (2, "h1")], "CANCELED", tasks_submitted=20)
    assert data.table.stopped().tolist() == [False, False, True, False]
    tl = build(data)
    assert tl.failed == 1 and tl.stopped == 1
    assert [m.stopped for m in tl.marks] == [False, False, True, False]
    assert not tl.marks[2].failed
    drawn = svg.render(tl)
    assert 'class="task stopped"' in drawn and "stopped when the job ended" in drawn
    figures = key_figures(data, T0, T0 + 4)
    assert "16 of 20 tasks submitted" in figures and "never started" in figures
    assert "task 2) still ran when the job ended (CANCELED)" in figures
    assert re.search(r"failed attempts</td><td>1<", figures)
    fails = failures(data)
    assert 'data-failed="1"' in fails and "ValueError" in fails
    assert 'data-state="STOPPED"' in slowest(data, T0)
    from qshpc.report.figures import throughput

    edges, _, failed = throughput(data.table, T0, T0 + 4)
    assert round(float(failed.sum() * (edges[1] - edges[0]))) == 1  # the stopped one is apart


def test_a_running_jobs_rank_0_after_the_last_stored_thing_is_not_drawn_as_program() -> None:
    """review26 #4: rank 0 waiting in get() since its last commit looked busy ("program")."""
    from qshpc.report.data import unknown_tail

    rows = [{"task_id": 0, "started": T0, "finished": T0 + 3}]
    program = [Span(T0, T0 + 8, "program")]
    waits = [Span(T0 + 0.1, T0 + 2.5, "get", 1)]
    spans = unknown_tail(program, waits, T0 + 8)
    assert spans == [Span(T0, T0 + 2.5, "program"), Span(T0 + 2.5, T0 + 8, "unknown")]
    # no wait stored yet (one get() of every task, still waiting): all of it is unknown
    assert unknown_tail(program, [], T0 + 8) == [Span(T0, T0, "program"),
                                                    Span(T0, T0 + 8, "unknown")]  # fmt: skip
    data = job(rows, [(0, "h1"), (1, "h1")], "RUNNING")
    data.program = spans
    drawn = svg.render(build(data))
    assert 'class="unknown"' in drawn and "not stored yet" in drawn


def test_key_figures_show_the_time_before_the_start_and_explain_the_span() -> None:
    """review26 #5: creation -> rank 0's start (launch, Slurm queue) appeared nowhere."""
    from qshpc.report.sections import key_figures

    rows = [{"task_id": 0, "started": T0, "finished": T0 + 1}]
    local = key_figures(job(rows, [(0, "h1"), (1, "h1")], created=T0 - 1.5), T0, T0 + 1)
    assert "1.50 s from the job&#x27;s creation to rank 0&#x27;s start (the launch" in local
    assert "the timeline&#x27;s width" in local and "the card&#x27;s duration" in local
    slurm = key_figures(job(rows, [(0, "h1")], created=T0 - 4, slurm_job_id="12"), T0, T0 + 1)
    assert "4.00 s from the job&#x27;s creation" in slurm and "queued in Slurm" in slurm


def test_failure_groups_name_the_tasks_without_a_result_apart_from_the_recovered() -> None:
    """review26 #6: one list of attempts' tasks with "(+32)" counting attempts."""
    from qshpc.report.sections import failures

    rows = []
    for i in range(30):
        rows.append({"task_id": i, "failed": True, "error": f"ValueError: flaky {i}"})
        again = {"task_id": i, "attempt": 2}
        if i % 2:
            again.update(failed=True, error=f"ValueError: flaky {i}")
        rows.append(again)
    out = failures(job(rows, [(0, "h1"), (1, "h1")], "FAILED"))
    assert 'data-count="45"' in out  # attempts
    assert "ended failed, no result: 15 task(s): 1, 3, 5," in out and "(+3 more)" in out
    assert "recovered on a retry: 15 task(s): 0, 2, 4," in out


def test_the_from_cache_row_counts_and_names_by_each_task_s_latest_record() -> None:
    """One pass over the records (mend23; it made two): t1's latest record came from J1's
    result, t2's from J2's, t3 ran here; t2's first (failed, run here) record is not its
    latest, and t4 has no cache record at all."""
    from types import SimpleNamespace

    from qshpc.report.sections import _from_cache

    hit = {"cache": {"job": "J1", "task": "x"}}
    rows = [
        {"task_id": "t1", "started": T0, "finished": T0, "provenance": hit},
        {"task_id": "t2", "started": T0, "finished": T0 + 1, "failed": True},
        {"task_id": "t2", "started": T0, "finished": T0, "attempt": 2,
         "provenance": {"cache": {"job": "J2"}}},
        {"task_id": "t3", "started": T0, "finished": T0 + 1},
        {"task_id": "t4", "started": T0, "finished": T0 + 1},
        {"task_id": "t1", "started": T0, "finished": T0, "attempt": 2, "provenance": hit},
    ]  # fmt: skip
    text = _from_cache(SimpleNamespace(table=table(rows)))  # type: ignore[arg-type]
    assert text.startswith("2 of 4 tasks: results computed by earlier jobs (J1, J2), ")
    none = [{"task_id": "t1", "started": T0, "finished": T0 + 1}]
    assert _from_cache(SimpleNamespace(table=table(none))) == ""  # type: ignore[arg-type]
