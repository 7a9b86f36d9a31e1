"""Session 29, fixV: review55 R1 (a damaged job.h5 hid the journal's results) and R2 (a
folder restored in place was called a copy of itself)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from qshpc.client.job import Job
from qshpc.errors import StoreError, UserError
from qshpc.store import JobReader, JobWriter, journal_records
from qshpc.store import layout as L
from tests.conftest import job_dir_of, run_cli
from tests.unit.test_fix42a_readback import RUNTIME
from tests.unit.test_fixR import journal_job, made

BLOCK = 4096


def killed(tmp_path: Path, n: int = 12) -> Path:
    """A job whose run died with ``n`` task results in its journal and none in job.h5."""
    job, w = journal_job(tmp_path, n)
    w.close()  # commits, does not fold: what a killed run leaves
    return job


def flip(path: Path, off: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(off)
        byte = fh.read(1)
        fh.seek(off)
        fh.write(bytes([byte[0] ^ 0xFF]))


def status_meta(job: Path) -> dict[str, object]:
    return Job(job).store_meta(verify=True, deep=True)


def test_each_damaged_block_of_job_h5_leaves_the_journals_results_counted(
    tmp_path: Path,
) -> None:
    raw = killed(tmp_path / "raw")
    size = os.path.getsize(L.job_file(raw))
    seen = []
    for blk in range(0, size, BLOCK):
        job = tmp_path / f"b{blk}" / "j"
        shutil.copytree(raw, job)
        flip(L.job_file(job), min(blk + 100, size - 1))
        meta = status_meta(job)
        text = str(meta.get("recoverable", ""))
        seen.append(text)
        if meta.get("state") != "DAMAGED":
            continue  # a byte HDF5 never reads back (free space): nothing to say
        # was, for 5 of 10 blocks: "nothing (no part of it could be read)" / "lost: the task
        # records" (review55 R1), while all 12 sat CRC-checked in the journal
        assert "12 of 12 task results" in text or "job.journal's 12 task results" in text, (
            blk,
            text,
        )
        assert not text.startswith("recoverable: nothing"), (blk, text)
        assert "the saved result" not in text, (blk, text)  # it saved none: not "lost"
        if "job.journal's" in text:
            assert meta["journal_results"] == 12
            values = {r.task_id: r.result for r in journal_records(job).values()}
            assert values == {str(i): i * i for i in range(12)}
    assert any("job.journal's 12 task results (CRC-checked, not checked" in t for t in seen), seen


def test_a_journal_read_alone_is_never_another_jobs(tmp_path: Path) -> None:
    a = killed(tmp_path / "a", 3)
    b = killed(tmp_path / "b", 7)
    shutil.copy(a / L.JOURNAL_FILE, b / L.JOURNAL_FILE)  # a's journal beside b's job.h5
    with JobReader.open(b) as r:
        text = r.recoverable()["summary"]
    assert "job.journal's" not in text and "3 " not in text, text  # job.h5 names it foreign
    with pytest.raises(StoreError, match="not the journal"):
        journal_records(b)
    # job.h5 cannot be opened at all: nothing confirms or denies it, and the text says so
    flip(L.job_file(b), 100)
    text = str(status_meta(b)["recoverable"])
    assert "job.journal's 3 task results (CRC-checked, not checked against job.h5" in text, text
    assert "nothing in a journal names its job" in text


def test_a_resume_over_an_unreadable_job_h5_names_the_journals_results(tmp_path: Path) -> None:
    from qshpc.jobs.prepare import _check_readable

    job = killed(tmp_path, 4)
    flip(L.job_file(job), 100)
    with pytest.raises(UserError) as got:
        _check_readable(job)
    text = str(got.value)
    assert text.startswith("cannot resume job j: "), text
    assert "(recoverable: job.journal's 4 task results (CRC-checked, not checked" in text
    assert "the 4 task results of job.journal, read alone, are `journal_records(JOB_DIR)`" in text


def test_a_journal_that_continues_records_in_job_h5_counts_those_lost(tmp_path: Path) -> None:
    job = made(tmp_path / "j")
    from tests.unit.test_fix42a_readback import rec

    with JobWriter.open(job, RUNTIME) as w:
        w.append_task(rec(0, 0))
        w.commit()
    w = JobWriter.open(job, {**RUNTIME, "resume": True})  # folds run 1 into job.h5
    w.append_task(rec(1, 1))
    w.commit()
    w.close()
    flip(L.job_file(job), 100)
    text = str(status_meta(job)["recoverable"])
    assert "job.journal's 1 task results" in text and "lost: meta, arguments, job.h5's 1" in text


# -- R2: a folder restored in place was called a copy of itself -----------------------------

KILLED = """\
import os, signal
from qshpc import distribute_task, get

@distribute_task()
def f(i):
    return i * 2

get([f(i) for i in range(5)])
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_folder_restored_in_place_shows_its_runs_own_end(
    qshpc_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "k.py").write_text(KILLED)
    out = run_cli("run", str(tmp_path / "k.py"), "--workers", "0")
    assert out.returncode in (-9, 137), out.stdout + out.stderr  # killed, as it meant
    job = job_dir_of(qshpc_home)
    bak, elsewhere = tmp_path / "bak", tmp_path / "elsewhere"
    subprocess.run(["cp", "-a", str(job), str(bak)], check=True)
    subprocess.run(["cp", "-a", str(job), str(elsewhere)], check=True)
    inode = job.stat().st_ino
    shutil.rmtree(job)
    subprocess.run(["cp", "-a", str(bak), str(job)], check=True)  # restored from the backup
    st = run_cli("status", str(job))
    # was: "this folder is a copy of the job's folder <this folder> ... `qshpc status <this
    # folder>` shows the job", and the kill, the results kept and --resume were hidden
    assert "is a copy of" not in st.stdout, st.stdout
    text = " ".join(st.stdout.split())
    if job.stat().st_ino != inode:  # (the file system may give the new folder the old inode:
        # then it is the same folder to every check, and the run's end is shown as it is)
        assert "this folder was replaced in place (removed and put back" in text, text
    assert "5 finished task results are kept" in text and "--resume" in text, text
    # a copy in another folder is still one
    other = " ".join(run_cli("status", str(elsewhere)).stdout.split())
    assert f"this folder is a copy of the job's folder {job}" in other, other
