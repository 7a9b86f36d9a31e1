"""fix42b (review38 F16 and the finish time of a crash found later), session 26.

``qshpc status`` read every byte of the store (0.6 s/GB, a running 1.8 GB job 370 MB of
memory): it now reads the records and counters only, and ``--verify`` reads the rest.
What it no longer reads is proved by damaging it: status still answers, ``--verify``,
``result`` and a task's result say DAMAGED. Real stores, written by the store's own
writer; damage as a disk would leave it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.faults.test_hunt16 import WRITER

RUNTIME = {"mpi_size": 1, "ranks": [{"rank": 0, "host": "h", "pid": 1}], "started": 1.0}


def _record(i: int, result: object) -> object:
    from qshpc.store import TaskRecord

    return TaskRecord(
        task_id=str(i), key=f"{i:064x}", function="m.f", state="SUCCEEDED", attempt=1,
        rank=0, host="h", submitted=1.0, started=2.0, finished=3.0, seed=i,
        result=result, provenance={},
    )  # fmt: skip


def _array(i: int) -> np.ndarray:  # type: ignore[type-arg]
    return (
        np.arange(150_000, dtype=np.float64) + 1e6 * i
    )  # 1.2 MB (the large stream), no value shared


def _job(home: Path, name: str, finish: bool = True) -> Path:
    """A job of 3 tasks whose results are 1.2 MB arrays; finished with one saved, or left
    as a killed writer leaves it (job.h5 and a journal)."""
    from qshpc.store import JobWriter, create_job

    job = home / "jobs" / name
    create_job(job, {"id": name, "title": "big", "created": time.time()}, {})
    w = JobWriter.open(job, RUNTIME)
    for i in range(3):
        w.append_task(_record(i, _array(i)))
        w.commit()
    if finish:
        w.save_result({"total": 1.5})
        w.finalize("SUCCEEDED")
    else:
        w.close()
    return job


#: As for a store bigger than QSHPC_STATUS_VERIFY_MAX: `qshpc status` reads no value.
BIG = {"QSHPC_STATUS_VERIFY_MAX": "0"}


def _damage(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(needle)
    data[at : at + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))


def test_status_reads_the_records_not_the_values(qshpc_home: Path) -> None:
    """Damage in a task result's bytes: `status` (and `list`, Job.info) still answer, as
    they read no value; `status --verify`, the task's result and `--json --verify` say
    DAMAGED, with what is recoverable."""
    from qshpc.client.job import open_job
    from qshpc.errors import DamagedStoreError
    from qshpc.store import JobReader

    job = _job(qshpc_home, "20261205-190000-aaaaaa")
    _damage(job / "job.h5", _array(2)[130_000:130_004].tobytes())
    # A store over QSHPC_STATUS_VERIFY_MAX (256 MiB): records and counters only.
    plain = run_cli("status", job.name, env=BIG)
    assert plain.returncode == 0 and plain.stdout.startswith("SUCCEEDED"), plain
    assert "3 done" in plain.stdout
    # A small one (this store, as it is): checked whole, as --verify does (session 26, lead).
    small = run_cli("status", job.name)
    assert small.returncode == 2 and small.stdout.startswith("DAMAGED"), small
    assert open_job(job.name).info()["state"] == "SUCCEEDED"
    listing = run_cli("list")
    assert listing.returncode == 0 and "SUCCEEDED" in listing.stdout
    checked = run_cli("status", job.name, "--verify")
    assert checked.returncode == 2 and checked.stdout.startswith("DAMAGED"), checked
    assert "2 of 3 task results, the saved result; lost: 1 task results" in checked.stdout
    err = checked.stderr.strip().splitlines()
    assert len(err) == 1 and "do not match its integrity seal" in err[0], checked.stderr
    as_json = run_cli("status", job.name, "--verify", "--json")
    assert as_json.returncode == 2 and json.loads(as_json.stdout)["state"] == "DAMAGED"
    with JobReader.open(job) as r:  # a value read is checked as it is read
        assert np.array_equal(r.task_result("0"), _array(0))
        with pytest.raises(DamagedStoreError, match="integrity seal"):
            r.task_result("2")
    assert run_cli("result", job.name).returncode == 0  # its own bytes are intact


def test_verify_checks_a_journals_large_part(qshpc_home: Path) -> None:
    """A killed writer's journal: the meta reads its frames' heads, `verify` the large
    results in it (piece by piece, check_large) and names the damage."""
    from qshpc.errors import DamagedStoreError
    from qshpc.store import JobReader

    job = _job(qshpc_home, "20261205-190001-bbbbbb", finish=False)
    journal = job / "job.journal"
    assert journal.exists()
    with JobReader.open(job) as r:
        r.verify()  # intact: nothing to say
    _damage(journal, _array(2)[10:14].tobytes())
    with JobReader.open(job) as r:
        assert r.meta()["task_counts"]["SUCCEEDED"] == 3
        with pytest.raises(DamagedStoreError, match=r"large result at byte .* checksum"):
            r.verify()


def test_a_crash_found_later_says_when_it_was_found(qshpc_home: Path) -> None:
    """A run killed before it recorded its end: `status` showed `finished -`; now the time
    a reader found it gone, said as such, the same on every later look."""
    from qshpc.store.jobfile import create_job

    name = "20261205-190002-cccccc"
    job = qshpc_home / "jobs" / name
    create_job(job, {"id": name, "title": "crash", "created": time.time()}, {})
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(job), "4"], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    before = time.time()
    first = run_cli("status", name)
    assert first.returncode == 0 and first.stdout.startswith("FAILED"), first
    line = next(ln for ln in first.stdout.splitlines() if "created" in ln)
    assert "found FAILED at 20" in line and "finished" not in line, line
    again = run_cli("status", name, "--json")
    meta = json.loads(again.stdout)
    assert meta["state"] == "FAILED" and meta["found_ended"] is True
    assert before <= meta["finished"] <= time.time()
    assert line.split("found FAILED at ")[1][:19] in run_cli("status", name).stdout


def test_an_ended_job_shows_its_own_finish_time(qshpc_home: Path) -> None:
    job = _job(qshpc_home, "20261205-190003-dddddd")
    out = run_cli("status", job.name, "--json")
    meta = json.loads(out.stdout)
    assert meta["state"] == "SUCCEEDED" and "found_ended" not in meta
    assert "   finished 20" in run_cli("status", job.name).stdout


def test_a_reader_reads_the_seals_table_as_it_needs_it(qshpc_home: Path) -> None:
    """The seal's CRC table (0.1% of the file) is read a page at a time, not whole: a
    damaged entry of a value's block leaves `status` as it was, fails that value's read,
    and `--verify` (which checks the table's own CRC) names it."""
    from qshpc.errors import DamagedStoreError
    from qshpc.store import JobReader, seal

    job = _job(qshpc_home, "20261205-190004-eeeeee")
    path = job / "job.h5"
    data = bytearray(path.read_bytes())
    at = data.index(_array(2)[130_000:130_004].tobytes())
    fd = os.open(path, os.O_RDONLY)
    try:
        whole = seal.read_seal(fd, os.fstat(fd).st_size)
        assert whole is not None
        lazy = seal.read_seal(fd, os.fstat(fd).st_size, lazy=True)
        assert lazy is not None and len(lazy.crcs) == len(whole.crcs)
        assert [lazy.crcs[i] for i in (0, len(whole.crcs) - 1)] == [
            whole.crcs[0], whole.crcs[len(whole.crcs) - 1]
        ]  # fmt: skip
    finally:
        os.close(fd)
    entry = whole.data_len + 4 * (at // whole.block)
    data[entry] ^= 0xFF
    path.write_bytes(bytes(data))
    plain = run_cli("status", job.name, env=BIG)
    assert plain.returncode == 0 and plain.stdout.startswith("SUCCEEDED"), plain
    checked = run_cli("status", job.name, "--verify")
    assert checked.returncode == 2 and "table of checksums is damaged" in checked.stderr
    with JobReader.open(job) as r:
        assert np.array_equal(r.task_result("0"), _array(0))
        with pytest.raises(DamagedStoreError, match="integrity seal"):
            r.task_result("2")
