"""A resume's done records with their large results left in the store, and the check made
before one is reused (session 27, fixJ)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qshpc.errors import StoreError
from qshpc.store import JobWriter, create_job, read_inputs
from qshpc.store.readback import check_value, read_value
from qshpc.store.records import InStore
from qshpc.store.rowpack import WHERE_LARGE
from tests.unit.test_fix42a_readback import RUNTIME, rec


def _job(tmp_path: Path) -> tuple[Path, list[object], list[tuple[int, int, int]]]:
    job = tmp_path / "j"
    create_job(job, {"id": "j", "title": "t", "created": 5.0, "seed": 3}, {})
    vals: list[object] = [
        np.full(40000, 1.5), np.full(20000, 2.5), {"a": np.arange(9000.0)}, 7, np.full(30000, 3.5)
    ]  # fmt: skip
    with JobWriter.open(job, RUNTIME) as w:
        wheres = [w.append_task(rec(i, v)) for i, v in enumerate(vals)]
        w.commit()
    assert all(x is not None for x in wheres)
    return job, vals, [x for x in wheres if x is not None]


def test_large_results_past_the_limit_or_the_budget_are_left_where_they_lie(
    tmp_path: Path,
) -> None:
    job, _, wheres = _job(tmp_path)
    every = read_inputs(job, True).done  # as before: every result loaded
    assert all(type(every[f"key-{i}"].result) is not InStore for i in range(5))
    # over 200000 bytes (the first), or past 250000 loaded in all (the fifth)
    done = read_inputs(job, True, 200000, 250000).done
    kinds = [type(done[f"key-{i}"].result) for i in range(5)]
    assert kinds == [InStore, np.ndarray, dict, int, InStore], kinds
    for i in (0, 4):
        left = done[f"key-{i}"].result
        assert wheres[i][0] == WHERE_LARGE and (left.off, left.n) == wheres[i][1:]
    assert float(done["key-1"].result[0]) == 2.5 and done["key-3"].result == 7
    nothing = read_inputs(job, True, 200000, 0).done  # a budget of 0: every large one left
    assert [type(nothing[f"key-{i}"].result) is InStore for i in range(5)] == [
        True, True, True, False, True,
    ]  # fmt: skip


def test_a_left_result_is_checked_in_pieces_and_a_changed_byte_is_found(tmp_path: Path) -> None:
    job, vals, wheres = _job(tmp_path)
    with JobWriter.open(job, {**RUNTIME, "resume": True}) as w:  # folded into job.h5
        for i in (0, 2, 4):
            src = w.large_source(*wheres[i][1:])
            try:
                check_value(src, wheres[i][2])  # the array in pieces; the dict decoded
                got = read_value(src, wheres[i][2])
            finally:
                src.close()
            assert type(got) is type(vals[i])
        data = (job / "job.h5").read_bytes()
        at = data.index(np.full(64, 3.5).tobytes()) + 1000
        with open(job / "job.h5", "r+b") as fh:
            fh.seek(at)
            fh.write(bytes([data[at] ^ 1]))
        src = w.large_source(*wheres[4][1:])
        try:
            with pytest.raises((StoreError, OSError), match="damaged"):
                check_value(src, wheres[4][2])
        finally:
            src.close()
        with open(job / "job.h5", "r+b") as fh:  # put back: read whole again (a new open)
            fh.seek(at)
            fh.write(bytes([data[at]]))
        src = w.large_source(*wheres[4][1:])
        try:
            check_value(src, wheres[4][2])
        finally:
            src.close()


def test_a_result_in_the_journal_is_checked_against_its_checksum(tmp_path: Path) -> None:
    job = tmp_path / "j"
    create_job(job, {"id": "j", "title": "t", "created": 5.0, "seed": 3}, {})
    with JobWriter.open(job, RUNTIME) as w:
        where = w.append_task(rec(0, np.full(40000, 4.5)))
        assert where is not None and where[0] == WHERE_LARGE
        w.commit()
        src = w.large_source(*where[1:])
        try:
            check_value(src, where[2])
        finally:
            src.close()
        journal = job / "job.journal"
        data = journal.read_bytes()
        at = data.index(np.full(64, 4.5).tobytes()) + 800
        with open(journal, "r+b") as fh:
            fh.seek(at)
            fh.write(bytes([data[at] ^ 1]))
        src = w.large_source(*where[1:])
        try:
            with pytest.raises(StoreError, match="do not match their checksum"):
                check_value(src, where[2])
        finally:
            src.close()
        with open(journal, "r+b") as fh:
            fh.seek(at)
            fh.write(bytes([data[at]]))
