"""mend24: session 23's leftovers (counts of ended jobs, messages that name their source)."""

from __future__ import annotations


def test_a_damaged_jobs_counts_claim_no_never_started_calls() -> None:
    """A DAMAGED job's counts are of the results still readable (reader.damaged_meta: FAILED
    0), not of the calls it ran: the rest are not said to have never started."""
    from qshpc.cli.jobs import _counts

    meta = {"state": "DAMAGED", "task_counts": {"SUCCEEDED": 4, "FAILED": 0},
            "tasks_stopped": 0, "tasks_submitted": 12}  # fmt: skip
    assert _counts(meta) == "4 done"
    assert _counts({**meta, "state": "FAILED"}) == "4 done, 8 never started"
