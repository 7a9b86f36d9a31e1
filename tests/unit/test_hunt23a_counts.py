"""Session 23's hunt23a: tasks stopped at the job's end are counted apart from failures.

On db7f14c (/tmp/baseMain) the card, `qshpc status`, `qshpc list`, the watch line and the
jobs frame said "6 done / 20 submitted, 2 failed" (a red bar) for a cancelled job whose 2
calls still ran at the cancel (``TaskAbandoned``). ``task_counts`` keeps its meaning (they
are FAILED there); ``tasks_stopped`` says how many of those were stopped.
"""

from __future__ import annotations

import re

from qshpc.jobs.progress import format_counts, snapshot
from qshpc.report import svg
from qshpc.report.card import STATE_COLOURS, card_html, jobs_table_html
from qshpc.report.timeline import build
from tests.unit.test_report_model import T0, job, table

STOP = "TaskAbandoned: the job was cancelled while this call still ran on rank 1 (...)"
META = {
    "id": "j", "title": "slow", "state": "CANCELED", "started": T0, "finished": T0 + 9,
    "task_counts": {"SUCCEEDED": 6, "FAILED": 3}, "tasks_stopped": 2, "tasks_submitted": 20,
    "error": "job cancelled: received SIGTERM",
}  # fmt: skip


def test_the_latest_attempt_of_a_task_decides_whether_it_counts_as_stopped() -> None:
    t = table([
        {"task_id": 0},
        {"task_id": 1, "failed": True, "error": STOP},  # stopped, then retried and done
        {"task_id": 1, "attempt": 2},
        {"task_id": 2, "failed": True, "error": STOP},
        {"task_id": 3, "failed": True, "error": "ValueError: bad"},
        {"task_id": 4, "failed": True, "error": "ValueError: bad"},  # failed, then stopped
        {"task_id": 4, "attempt": 2, "failed": True, "error": STOP},
    ])  # fmt: skip
    assert t.latest_counts() == {"SUCCEEDED": 2, "FAILED": 3}  # its meaning kept
    assert t.latest_stopped() == 2
    assert table([{"task_id": 0, "failed": True, "error": "x"}]).latest_stopped() == 0


def test_the_card_counts_stopped_tasks_apart_and_not_in_red() -> None:
    html = card_html(META)
    assert "6 done / 20 submitted, 1 failed, 2 stopped" in html
    assert 'data-failed="1" data-stopped="2"' in html
    assert re.search(r"width:5\.00%;background:#dc3545", html)  # 1 of 20 in red
    assert re.search(rf"width:10\.00%;background:{STATE_COLOURS['STOPPED']}", html)  # 2 orange
    only = card_html({**META, "task_counts": {"SUCCEEDED": 6, "FAILED": 2}})
    # (mend24: and the calls it never started, as `qshpc status` says them)
    assert "6 done / 20 submitted, 2 stopped, 12 never started ·" in only
    assert " failed" not in only
    assert re.search(r"width:0\.00%;background:#dc3545", only)


def test_the_jobs_table_and_the_watch_line_count_them_apart() -> None:
    assert "6 done, 1 failed, 2 stopped" in jobs_table_html([META])
    assert format_counts(snapshot(META)) == "6 tasks done, 1 failed, 2 stopped, 11 never started"
    # a meta of a qshpc without the key (or a Slurm view of it): as before
    old = {k: v for k, v in META.items() if k != "tasks_stopped"}
    assert format_counts(snapshot(old)) == "6 tasks done, 3 failed, 11 never started"
    # never more stopped than failed
    assert snapshot({**META, "tasks_stopped": 9}).stopped == 3


def test_binned_timelines_cap_stopped_attempts_in_orange_not_red() -> None:
    """hunt22f: above MAX_TASKS attempts the bins counted stopped attempts as failed
    (red caps, ``data-failed``)."""
    rows = [{"task_id": i, "rank": 1 + i % 2, "started": T0 + i // 2, "finished": T0 + i // 2 + 1}
            for i in range(40)]  # fmt: skip
    rows += [
        {"task_id": 40, "rank": 1, "started": T0 + 20, "finished": T0 + 21, "failed": True,
         "error": STOP},
        {"task_id": 41, "rank": 2, "started": T0 + 20, "finished": T0 + 21, "failed": True,
         "error": "ValueError: bad"},
    ]  # fmt: skip
    tl = build(job(rows, [(0, "h1"), (1, "h1"), (2, "h1")], "CANCELED"), max_tasks=10)
    assert tl.binned and tl.failed == 1 and tl.stopped == 1
    assert sum(m.failures for m in tl.marks) == 1 and sum(m.stops for m in tl.marks) == 1
    capped = [m for m in tl.marks if m.stops]
    assert len(capped) == 1 and tl.lanes[capped[0].lane].rank == 1 and not capped[0].failed
    drawn = svg.render(tl)
    assert drawn.count('class="failmark"') == 1 and drawn.count('class="stopmark"') == 1
    assert 'data-failed="1" data-stopped="1"' in drawn
    assert "1 stopped when the job ended" in drawn and "stopped when the job ended</text>" in drawn
