"""review52's store/reader findings (session 28, fixR): reads of a damaged or running job
(F9, F13, F2), the refusals of a resume (F10, F5), an all-failed task (F6), ``qshpc rm`` of
many jobs (F8), a swapped ``job.h5`` (F11), a copied job folder (F7) and small ones (F12).

Damage is made for real: a byte of ``job.h5`` flipped where h5py says a dataset's chunk lies.
"""

from __future__ import annotations

import os
import tracemalloc
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from qshpc.errors import DamagedStoreError
from qshpc.store import JobReader, JobWriter, create_job
from qshpc.store import layout as L
from tests.unit.test_fix42a_readback import RUNTIME, rec


def flip_chunk(path: Path, name: str, middle: bool = False) -> None:
    """Flip the first byte (``middle``: the middle one) of the first chunk of dataset ``name``
    of the file ``path``."""
    with h5py.File(path, "r", locking=False) as f:
        info = f[name].id.get_chunk_info(0)
        off = info.byte_offset + (info.size // 2 if middle else 0)
    with open(path, "r+b") as fh:
        fh.seek(off)
        byte = fh.read(1)
        fh.seek(off)
        fh.write(bytes([byte[0] ^ 0xFF]))


def journal_job(tmp_path: Path, n: int = 5) -> tuple[Path, JobWriter]:
    """A running job whose ``n`` task results are all in its journal (none folded in)."""
    job = tmp_path / "j"
    create_job(job, {"id": "j", "title": "t", "created": 5.0, "seed": 3}, {})
    w = JobWriter.open(job, RUNTIME)
    for i in range(n):
        w.append_task(rec(i, i * i))
        w.commit()
    return job, w


# -- F9: a damaged block of job.h5's streams hid the results the journal holds -------------


def test_journal_results_are_read_past_a_damaged_job_h5_stream(tmp_path: Path) -> None:
    job, w = journal_job(tmp_path)
    try:
        flip_chunk(L.job_file(job), L.DATA)
        with JobReader.open(job) as r:
            assert r.task_result("3") == 9  # was: DamagedStoreError, bytes ... do not match
            assert sorted(rec.result for rec in r.done_records().values()) == [0, 1, 4, 9, 16]
            summary = r.recoverable()["summary"]
        assert summary.startswith("recoverable: 5 of 5 task results"), summary
        # the job saved none (was: "lost: ... the saved result")
        assert "the saved result" not in summary
        assert "job.h5's events (a result saved before the journal's, if any)" in summary
    finally:
        w.close()


# -- F13: records whose meta cannot be read vanished from `recoverable` --------------------


def test_records_whose_meta_cannot_be_read_are_counted_lost(tmp_path: Path) -> None:
    job = tmp_path / "j"
    create_job(job, {"id": "j", "title": "t", "created": 5.0, "seed": 3}, {})
    with JobWriter.open(job, RUNTIME) as w:
        # each record's meta 200 random bytes: the meta stream has 4 KiB blocks of its own
        for i in range(150):
            w.append_task(replace(rec(i, i), provenance={"note": os.urandom(100).hex()}))
        w.append_task(replace(rec(150, None), state="FAILED", error="boom"))
        w.commit()
        w.checkpoint()
    flip_chunk(L.job_file(job), L.META, middle=True)
    with JobReader.open(job) as r:
        found = r.recoverable()
    assert found["unread_records"] == [150, 1]
    summary = found["summary"]
    assert summary == (
        "recoverable: meta, arguments; lost: 150 task results (their records cannot be read), "
        "1 records of failed attempts"
    ), summary  # was: "recoverable: meta, arguments, the task log (no results in it)"


# -- F2: a peek of a saved result still in the journal read the whole frame ----------------


def test_a_peek_of_a_result_in_the_journal_holds_only_its_head(tmp_path: Path) -> None:
    job = tmp_path / "j"
    create_job(job, {"id": "j", "title": "t", "created": 5.0, "seed": 3}, {})
    value = np.ones((4_000_000,))  # 32 MB
    with JobWriter.open(job, RUNTIME) as w:
        w.append_task(rec(0, 1))
        w.save_result(value)
        w.commit()
        with JobReader.open(job) as r:
            assert r._log().frames  # in the journal, not folded
            tracemalloc.start()
            try:
                size, shown = r.result_peek() or (0, None)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
        assert shown == "float64 (4000000,)" and size > value.nbytes
        assert peak < 16 << 20, peak  # 4 MiB pieces (was: the 32 MB frame read whole)
        # its checksum is still checked: a damaged byte of the result is found
        jpath = job / L.JOURNAL_FILE
        data = bytearray(jpath.read_bytes())
        data[-1000] ^= 0xFF
        jpath.write_bytes(data)
        with JobReader.open(job) as r, pytest.raises(DamagedStoreError, match="checksum"):
            r.result_peek()
