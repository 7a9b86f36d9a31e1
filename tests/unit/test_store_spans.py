"""Rank 0's program and its waits in the store: recorded cheaply, read back, ignored by meta()."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from qshpc.program.session import SPAN_GET, SPAN_PROGRAM, SPAN_WAIT, Session
from qshpc.report.data import Span, recorded_spans
from qshpc.store import JobReader, JobWriter, create_job

RUNTIME = {"mpi_size": 2, "ranks": [{"rank": 0, "host": "h0"}], "started": 1.0, "resume": False}


def new_job(tmp_path: Path) -> Path:
    job = tmp_path / "job"
    create_job(job, {"id": "j", "title": "t", "created": 5.0}, {})
    return job


def test_waits_are_merged_kept_in_memory_and_written_with_a_commit(tmp_path: Path) -> None:
    job = new_job(tmp_path)
    w = JobWriter.open(job, RUNTIME)
    s = Session(job, w, {})
    s.program_started()
    t = time.time()
    for i in range(1000):  # a loop of one get per task: one row
        s.note_wait(SPAN_GET, t + i * 1e-4, t + i * 1e-4 + 5e-5, 1)
    s.note_wait(SPAN_WAIT, t + 1.0, t + 2.0, 4)
    s.note_wait(SPAN_GET, t + 3.0, t + 3.5, 2)
    with JobReader.open(job) as r:
        assert len(r.spans()) == 0  # nothing written yet: no I/O per wait
    s.sync()  # nothing else pending, and spans alone wait up to a second
    with JobReader.open(job) as r:
        assert len(r.spans()) == 0
    s.program_ended()
    s.sync(force=True)
    with JobReader.open(job) as r:
        rows = r.spans()
        meta = r.meta()
    assert meta["state"] == "RUNNING" and meta["sub_status"] == ""
    kinds = rows[:, 3].astype(int).tolist()
    assert kinds == [SPAN_PROGRAM, SPAN_GET, SPAN_WAIT, SPAN_GET, SPAN_PROGRAM]
    assert rows[1, 4] == 1000 and rows[1, 2] == np.float64(t + 999e-4 + 5e-5)
    assert math.isnan(rows[0, 2]) and not math.isnan(rows[4, 2])
    assert (rows[:, 0] == 1).all()  # run 1
    w.finalize("SUCCEEDED")
    with JobReader.open(job) as r:
        assert len(r.spans()) == 5 and r.meta()["state"] == "SUCCEEDED"


def test_spans_ride_along_with_record_commits(tmp_path: Path) -> None:
    job = new_job(tmp_path)
    w = JobWriter.open(job, RUNTIME)
    s = Session(job, w, {})
    s.note_wait(SPAN_GET, 1.0, 2.0, 3)
    s.submitted = 7  # what DistributedTask.__call__ counts on rank 0
    s.save_result({"x": 1})  # commits now
    with JobReader.open(job) as r:
        assert r.spans().tolist() == [[1.0, 1.0, 2.0, 0.0, 3.0]]
        assert r.meta()["tasks_submitted"] == 7
    s.submitted = 9
    s.sync(force=True)  # a new count alone is written too
    with JobReader.open(job) as r:
        assert r.meta()["tasks_submitted"] == 9 and len(r.spans()) == 1
    w.close()


def test_recorded_spans_for_the_report() -> None:
    nan = float("nan")
    rows = np.array([[1, 10.0, nan, 2, 0], [1, 11.0, 12.0, 0, 5], [1, 12.5, 13.0, 1, 2]])
    programs, waits = recorded_spans(rows, [Span(9.0, 20.0, "program")], running=True, now=30.0)
    assert programs == [Span(10.0, 30.0, "program")]  # still running: up to now
    assert waits == [Span(11.0, 12.0, "get", 5), Span(12.5, 13.0, "wait", 2)]
    programs, _ = recorded_spans(rows, [Span(9.0, 20.0, "program")], running=False, now=30.0)
    assert programs == [Span(10.0, 20.0, "program")]  # ended without its end row: the job's end
    done = np.vstack([rows, [1, 10.0, 14.0, 2, 0]])
    assert recorded_spans(done, [], running=False, now=30.0)[0] == [Span(10.0, 14.0, "program")]
