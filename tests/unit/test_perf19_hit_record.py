"""perf19: a cache hit's record takes a short way into the job store (``Batch.add_hit``,
``Session.record_hit``); it must be the record the general way wrote, byte for byte."""

from __future__ import annotations

import time
from pathlib import Path

from qshpc.cache.entry import Header
from qshpc.cache.jobcache import provenance
from qshpc.cache.store import Hit
from qshpc.program.session import Session
from qshpc.store import JobReader, JobWriter
from qshpc.store.batch import Batch, Ends
from qshpc.store.encoding_blob import encode_blob
from qshpc.store.jobfile import create_job
from qshpc.store.records import TaskRecord

RUNTIME = {"mpi_size": 1, "ranks": [], "started": 1.0}


def _hit(task: str, owner: int, job: str | None = "src-job") -> Hit:
    header = Header("ab" * 32, "mod.f", job, task, 1234.5, "node-1")
    value = {"00": 0.25, "11": 0.75}
    return Hit("ab" * 32, value, header, "/c/ab/x", 99, owner, 1.0, encode_blob(value))


def _batches() -> tuple[Batch, Batch]:
    start = Ends()
    return Batch(start, 3), Batch(start, 3)


def test_a_hits_record_is_the_general_records_bytes() -> None:
    for owner in (0, 12345):  # another user's entry: its uid in the provenance
        for seed in (None, 7):
            for job in ("src-job", None):
                hit = _hit("17", owner, job)
                general, short = _batches()
                prov = provenance(hit)
                rec = TaskRecord("5", "cd" * 32, "mod.f", "SUCCEEDED", 1, 0, "h", 10.0, 11.0,
                                 11.0, seed, hit.value, None, prov, hit.blob)  # fmt: skip
                general.add_record(rec)
                short.add_hit("5", "cd" * 32, "mod.f", 0, "h", 10.0, 11.0, seed, prov,
                              hit.blob or b"")  # fmt: skip
                a, b = general.frame(), short.frame()
                assert bytes(a.meta) == bytes(b.meta) and bytes(a.data) == bytes(b.data)
                assert a.records.tobytes() == b.records.tobytes()


def test_hits_recorded_the_short_way_read_back_as_cache_hits(tmp_path: Path) -> None:
    job = tmp_path / "job"
    create_job(job, {"id": "j1", "title": "t", "created": 5.0, "seed": None}, {})
    writer = JobWriter.open(job, RUNTIME)
    session = Session(job, writer, {})
    t0 = time.time()
    for i in range(5):
        session.record_hit(str(i), f"{i:064x}", "mod.f", _hit(str(i + 10), 0), t0, None)
    writer.commit()
    assert session.cached == 5
    writer.finalize("SUCCEEDED")
    with JobReader.open(job) as r:
        tasks = sorted(r.tasks(), key=lambda t: int(t["task_id"]))
        values = [r.task_result(t["task_id"]) for t in tasks]
    assert [t["task_id"] for t in tasks] == ["0", "1", "2", "3", "4"]
    assert all(t["provenance"]["cache"]["task"] == str(i + 10) for i, t in enumerate(tasks))
    assert all(t["state"] == "SUCCEEDED" and t["finished"] >= t0 for t in tasks)
    assert values == [{"00": 0.25, "11": 0.75}] * 5
