"""review49's store findings (session 27, fixN): a reader racing the writer's fold (F1),
another job's ``job.h5`` (F3) or journal (F4) put in the place of the job's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qshpc.store import JobReader, JobWriter, TaskRecord, create_job

RUNTIME = {"mpi_size": 2, "ranks": [{"rank": 0, "host": "h0"}], "started": 1.0, "resume": False}


def rec(i: int, result: object) -> TaskRecord:
    return TaskRecord(
        task_id=str(i), key=f"key-{i}", function="m.f", state="SUCCEEDED", attempt=1, rank=1,
        host="h1", submitted=1.0, started=2.0, finished=3.0, seed=i, result=result,
        provenance={}, error=None,
    )  # fmt: skip


def big(i: int, off: float = 0.0) -> np.ndarray[Any, Any]:
    return np.arange(300000, dtype=np.float64) + i + off  # 2.4 MB: the large stream


def running(tmp_path: Path, name: str = "j", off: float = 0.0) -> tuple[Path, JobWriter]:
    job = tmp_path / name
    create_job(job, {"id": name, "title": "t", "created": 5.0, "seed": 3}, {})
    w = JobWriter.open(job, RUNTIME)
    for i in range(3):
        w.append_task(rec(i, big(i, off)))
        w.commit()  # one frame each
    return job, w


# -- F1: a fold between the reader's read of the journal and its check of it -------------


def fold_after_log(monkeypatch: pytest.MonkeyPatch, w: JobWriter, more: bool) -> None:
    """Make the writer's checkpoint land right after the reader read the journal's frames:
    the race review49 F1 met one status poll in ~20 (a fault a test cannot time for real).
    ``more``: the writer then commits into its new journal (else the journal is gone)."""
    real = JobReader._log

    def log_then_fold(self: JobReader, strict: bool = True) -> Any:
        log = real(self, strict)
        if log.frames:
            w.checkpoint()
            if more:
                for i in range(3, 6):
                    w.append_task(rec(i, big(i) * 7))
                    w.commit()
            else:
                w.finalize("SUCCEEDED")
        return log

    monkeypatch.setattr(JobReader, "_log", log_then_fold)


@pytest.mark.parametrize("more", [True, False], ids=["new-journal", "journal-gone"])
def test_verify_while_the_journal_is_folded_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, more: bool
) -> None:
    job, w = running(tmp_path)
    with JobReader.open(job) as r:
        fold_after_log(monkeypatch, w, more)
        r.verify()  # was: DamagedStoreError "ends inside the large result", or FileNotFoundError
    monkeypatch.undo()
    with JobReader.open(job) as r:
        r.verify()
        assert np.array_equal(r.task_result("1"), big(1))
    w.close()


def test_a_log_read_before_a_fold_reads_its_own_journal(tmp_path: Path) -> None:
    job, w = running(tmp_path)
    with JobReader.open(job) as r:
        log = r._log()
        assert log.frames
        w.checkpoint()
        for i in range(3, 6):
            w.append_task(rec(i, big(i) * 7))
            w.commit()
        rows = {log.record_fields(row)["task_id"]: row for row in log.records()}
        for i in range(3):  # from the journal that was folded in and unlinked meanwhile
            assert np.array_equal(log.record_result(rows[str(i)], False), big(i))
        assert r.meta()["state"] == "RUNNING"
        r.verify()
    w.close()
