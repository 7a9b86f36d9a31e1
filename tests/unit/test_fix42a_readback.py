"""A task result read back from the store by where the log put it (session 26, fix42a):
from the journal, from job.h5 once folded in (a checkpoint), and from a later run's
writer; exactly, with one array's bytes read straight into the array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qshpc.errors import StoreError
from qshpc.store import JobWriter, TaskRecord, create_job
from qshpc.store.readback import FileSource, H5Source, read_value
from qshpc.store.rowpack import WHERE_LARGE

RUNTIME = {"mpi_size": 2, "ranks": [{"rank": 0, "host": "h0"}], "started": 1.0, "resume": False}


def rec(i: int, result: object) -> TaskRecord:
    return TaskRecord(
        task_id=str(i), key=f"key-{i}", function="m.f", state="SUCCEEDED", attempt=1, rank=1,
        host="h1", submitted=1.0, started=2.0, finished=3.0, seed=i, result=result,
        provenance={}, error=None,
    )  # fmt: skip


def values() -> list[object]:
    rng = np.random.default_rng(3)
    return [
        rng.random((300, 200)),
        rng.integers(0, 9, 200000, dtype=np.uint16).astype(">u2"),
        {"a": rng.random(30000), "b": [1, "x", 2.5]},
        np.zeros(0),  # an empty array: no payload to read
    ]


def read(w: JobWriter, where: tuple[int, int, int]) -> tuple[object, type]:
    src = w.large_source(where[1], where[2])
    try:
        return read_value(src, where[2]), type(src)
    finally:
        src.close()


def same(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray):
        return (
            type(b) is np.ndarray and a.dtype == b.dtype and a.shape == b.shape
            and bool(np.array_equal(a, b)) and b.flags.writeable and b.flags.aligned
        )  # fmt: skip
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def test_read_back_from_the_journal_then_from_job_h5(tmp_path: Path) -> None:
    job = tmp_path / "j"
    create_job(job, {"id": "j", "title": "t", "created": 5.0, "seed": 3}, {})
    w = JobWriter.open(job, RUNTIME)
    wheres = []
    for i, v in enumerate(values()):
        where = w.append_task(rec(i, v))
        assert where is not None
        wheres.append(where)
    w.commit()
    for v, where in zip(values(), wheres, strict=True):
        if where[0] != WHERE_LARGE:
            continue  # (the empty array is small: it stays in memory)
        got, kind = read(w, where)
        assert kind is FileSource and same(v, got)
    w.checkpoint()  # folded into job.h5; a new journal
    for v, where in zip(values(), wheres, strict=True):
        if where[0] == WHERE_LARGE:
            got, kind = read(w, where)
            assert kind is H5Source and same(v, got)
    w.close()
    # a later run (a resume): its offsets continue, the first run's results read back
    w2 = JobWriter.open(job, {**RUNTIME, "resume": True})
    late = np.arange(100000, dtype=np.int64)
    where = w2.append_task(rec(9, late))
    assert where is not None
    w2.commit()
    assert same(late, read(w2, where)[0])
    assert same(values()[0], read(w2, wheres[0])[0])
    with pytest.raises(StoreError, match="holds no result"):
        w2.large_source(where[1] + where[2] + 10**9, 10)
    w2.finalize("SUCCEEDED")


def test_a_value_stored_as_another_type_is_not_offered(tmp_path: Path) -> None:
    import collections

    job = tmp_path / "j"
    create_job(job, {"id": "j", "title": "t", "created": 5.0, "seed": 3}, {})
    w = JobWriter.open(job, RUNTIME)
    dd = collections.defaultdict(int, {i: float(i) for i in range(20000)})
    assert w.append_task(rec(0, dd)) is None  # stored as a dict: read back, not itself
    w.close()
