"""review52's store/reader findings (session 28, fixR): reads of a damaged or running job
(F9, F13, F2), the refusals of a resume (F10, F5), an all-failed task (F6), ``qshpc rm`` of
many jobs (F8), a swapped ``job.h5`` (F11), a copied job folder (F7) and small ones (F12).

Damage is made for real: a byte of ``job.h5`` flipped where h5py says a dataset's chunk lies.
"""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from qshpc.errors import DamagedStoreError, TaskError, UserError
from qshpc.store import JobReader, JobWriter, create_job
from qshpc.store import layout as L
from tests.conftest import run_cli
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


def made(job: Path) -> Path:
    """A new job in folder ``job``, named after it."""
    create_job(job, {"id": job.name, "title": "t", "created": 5.0, "seed": 3}, {})
    return job


def journal_job(tmp_path: Path, n: int = 5) -> tuple[Path, JobWriter]:
    """A running job whose ``n`` task results are all in its journal (none folded in)."""
    job = made(tmp_path / "j")
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
    job = made(tmp_path / "j")
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
    job = made(tmp_path / "j")
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


# -- F10, F5: the one refusal of a resume over a damaged store -----------------------------


def test_a_resume_without_program_of_a_damaged_job_gives_the_whole_refusal(
    tmp_path: Path, qshpc_home: Path
) -> None:
    job, w = journal_job(tmp_path)
    w.close()
    flip_chunk(L.job_file(job), L.DATA)
    prog = tmp_path / "p.py"
    prog.write_text("print('ran')\n")
    without = run_cli("run", "--resume", str(job))
    given = run_cli("run", str(prog), "--resume", str(job))
    for out in (without, given):
        assert out.returncode == 2 and "ran" not in out.stdout, out.stdout + out.stderr
        assert "Traceback" not in out.stderr
    # was, without PROGRAM: the damage line alone (review52 F10)
    assert without.stderr == given.stderr, without.stderr
    text = without.stderr
    assert text.startswith("qshpc: error: cannot resume job j: ") and "integrity seal" in text
    assert "(recoverable: 5 of 5 task results; lost: meta, arguments" in text
    assert "nothing was run. Run the program again as a new job (without --resume)" in text
    assert "JobReader.open(JOB_DIR).task_result(TASK_ID)" in text


def test_a_resume_refused_over_a_foreign_journal_names_one_way_on(tmp_path: Path) -> None:
    from qshpc.jobs.prepare import _check_readable

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, wa = journal_job(tmp_path / "a")
    b, wb = journal_job(tmp_path / "b")
    wa.close()
    wb.close()
    shutil.copy(a / L.JOURNAL_FILE, b / L.JOURNAL_FILE)
    with pytest.raises(UserError) as got:
        _check_readable(b)
    text = str(got.value)
    assert text.startswith(f"cannot resume job j: {b / L.JOURNAL_FILE} is damaged: it is not the")
    assert f"Keep it aside (mv {b / L.JOURNAL_FILE} " in text and "or --resume it" in text
    assert "as a new job" not in text and "without --resume" not in text, text  # was: both
    (b / L.JOURNAL_FILE).rename(b / "job.journal.other")  # its way on works
    assert _check_readable(b)["id"] == "j"


# -- F6: every attempt failed: the latest one's error ---------------------------------------


def test_task_result_of_an_all_failed_task_raises_the_latest_attempt(tmp_path: Path) -> None:
    job = made(tmp_path / "j")
    with JobWriter.open(job, RUNTIME) as w:
        for attempt in (1, 2, 3):
            w.append_task(
                replace(rec(0, None), state="FAILED", attempt=attempt, error=f"boom {attempt}")
            )
            w.commit()
    with JobReader.open(job) as r, pytest.raises(TaskError) as got:
        r.task_result("0")
    assert got.value.attempts == 3 and "boom 3" in str(got.value)  # was: attempt 1, "boom 1"


# -- F8: `qshpc rm A B` with a user error on A -----------------------------------------------


def test_rm_goes_on_past_a_job_it_refuses(tmp_path: Path, qshpc_home: Path) -> None:
    (qshpc_home / "jobs").mkdir(parents=True)
    job, w = journal_job(qshpc_home / "jobs")
    w.finalize("SUCCEEDED")
    w.close()
    out = run_cli("rm", str(tmp_path / "nope"), str(job))
    # was: exit 2 at the first, the second kept without a word
    assert out.returncode == 2 and not job.exists(), out.stdout + out.stderr
    assert out.stdout.strip() == "removed j (SUCCEEDED)"
    assert out.stderr.startswith("qshpc: error: ") and "nope" in out.stderr
    assert "Traceback" not in out.stderr


# -- F11: another job's job.h5 moved over a running job's -----------------------------------


def test_a_swapped_job_h5_is_named_with_counts_in_words(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, wa = journal_job(tmp_path / "a", 3)
    b, wb = journal_job(tmp_path / "b", 8)
    wb.finalize("SUCCEEDED")
    wb.close()
    os.replace(L.job_file(b), L.job_file(a))
    try:
        with JobReader.open(a) as r, pytest.raises(DamagedStoreError) as got:
            r.meta()
    finally:
        wa.close()
    text = str(got.value)
    assert got.value.path == str(L.job_file(a)), text  # was: the journal blamed
    assert "Ends(" not in text, text
    assert "it holds 8 task records and " in text and "goes on from 0 task records" in text
    assert "This job.h5 was most likely replaced" in text


# -- F7: `qshpc list` of a copied job folder --------------------------------------------------


def test_list_shows_a_copied_folder_by_its_name_and_flags_it(qshpc_home: Path) -> None:
    jid, copy = "20261206-000001-aaaaaa", "20261206-000000-bbbbbb"
    job = made(qshpc_home / "jobs" / jid)
    with JobWriter.open(job, RUNTIME) as w:
        w.finalize("SUCCEEDED")
    shutil.copytree(job, job.with_name(copy))
    out = run_cli("list")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    # was: two rows `20261206-000001-aaaaaa t SUCCEEDED` (and `qshpc rm ID` took the original)
    assert sum(ln.startswith(f"{jid} ") for ln in lines) == 1, out.stdout
    assert sum(ln.startswith(f"{copy}! ") for ln in lines) == 1, out.stdout
    assert f"! the job.h5 in folder {copy} (it holds {jid}): another job's file" in out.stdout
    # review55 L1: `--json` gave both rows the id with nothing to tell them apart
    rows = json.loads(run_cli("list", "--json").stdout)
    flags = {Path(r["job_dir"]).name: r.get("holds_other_job", False) for r in rows}
    assert flags == {jid: False, copy: True}, rows


# -- F12: small ones --------------------------------------------------------------------------


def test_the_isolated_reader_takes_done_records_keywords(tmp_path: Path) -> None:
    from tests.faults.test_damaged_store import FROZEN_V1

    old = tmp_path / "old"
    old.mkdir()
    shutil.copyfile(FROZEN_V1, old / "job.h5")
    with JobReader.open(old) as r:
        assert type(r).__name__ == "IsolatedReader"
        by_word = r.done_records(allow_pickle=False, defer=True)  # was: TypeError
        assert by_word.keys() == r.done_records().keys() and by_word


def test_a_resume_of_a_succeeded_job_with_a_damaged_result_says_so(tmp_path: Path) -> None:
    from tests.unit.test_fixL import _ended_job

    env, job = _ended_job(tmp_path)
    store = job / "job.h5"
    data = bytearray(store.read_bytes())
    data[-100] ^= 0xFF  # in the saved result, the last value written
    store.write_bytes(bytes(data))
    out = run_cli("run", "--resume", job.name, env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    # was: "already SUCCEEDED: nothing to resume (`qshpc result J`)", whose result was lost
    assert "nothing to resume" not in out.stderr, out.stderr
    assert f"cannot resume job {job.name}: " in out.stderr and "integrity seal" in out.stderr
    assert "lost: the saved result" in out.stderr and "as a new job" in out.stderr


def test_a_folder_with_only_a_journal_is_named_as_such(qshpc_home: Path) -> None:
    (qshpc_home / "jobs").mkdir(parents=True)
    job, w = journal_job(qshpc_home / "jobs")
    w.close()
    L.job_file(job).unlink()
    for args in (("status", "j"), ("rm", str(job))):
        out = run_cli(*args)
        assert out.returncode == 2 and job.is_dir(), out.stdout + out.stderr
        # was: "no job 'j': not a job directory and not a job id under ..."
        assert "not a job directory" not in out.stderr, out.stderr
        assert f"has lost its job.h5: {job} holds only its journal (job.journal)" in out.stderr


def test_submit_resume_of_a_damaged_job_gives_the_runs_refusal(qshpc_home: Path) -> None:
    from qshpc.cli.slurm import _check_resumable
    from qshpc.client.job import open_job

    (qshpc_home / "jobs").mkdir(parents=True)
    job, w = journal_job(qshpc_home / "jobs")
    w.close()
    flip_chunk(L.job_file(job), L.DATA)
    with pytest.raises(UserError) as got:
        _check_resumable(open_job(str(job)))
    text = str(
        got.value
    )  # was: "... store is damaged: see `qshpc status J` ... before resuming it"
    assert text.startswith("cannot resume job j: ") and "before resuming it" not in text, text
    assert "(recoverable: 5 of 5 task results; lost: meta, arguments" in text
    assert "Run the program again as a new job (without --resume)" in text


def test_a_resume_over_a_damaged_journal_gives_the_same_refusal_with_or_without_program(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """review55 R3: with PROGRAM given, a damaged journal's refusal began with its path, not
    `cannot resume job J:` (the one refusal text was still two)."""
    job, w = journal_job(tmp_path)
    w.close()
    jpath = job / L.JOURNAL_FILE
    data = bytearray(jpath.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    jpath.write_bytes(data)
    prog = tmp_path / "p.py"
    prog.write_text("print('ran')\n")
    without = run_cli("run", "--resume", str(job))
    given = run_cli("run", str(prog), "--resume", str(job))
    for out in (without, given):
        assert out.returncode == 2 and "ran" not in out.stdout, out.stdout + out.stderr
        assert out.stderr.startswith("qshpc: error: cannot resume job j: "), out.stderr
        assert "Traceback" not in out.stderr and "job.journal is damaged" in out.stderr
