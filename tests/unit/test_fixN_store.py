"""review49's store findings (session 27, fixN): a reader racing the writer's fold (F1),
another job's ``job.h5`` (F3) or journal (F4) put in the place of the job's own."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qshpc.errors import DamagedStoreError
from qshpc.store import JobReader, JobWriter, create_job
from qshpc.store import layout as L
from tests.unit.test_fix42a_readback import RUNTIME, rec


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


# -- F3: another job's job.h5 put in the place of the job's own --------------------------


def test_a_read_back_from_another_jobs_job_h5_is_refused(tmp_path: Path) -> None:
    other, wo = running(tmp_path, "other", off=100.0)
    wo.checkpoint()
    wo.close()
    job, w = running(tmp_path)
    where = w.append_task(rec(7, big(7)))
    assert where is not None
    w.commit()
    w.checkpoint()  # folded into job.h5: read back from there
    src = w.large_source(where[1], where[2])
    src.close()
    shutil.copy(other / "job.h5", job / "job.h5.x")
    (job / "job.h5.x").replace(job / "job.h5")  # another job's sealed file, whole
    with pytest.raises(
        DamagedStoreError, match=r"job\.h5 is damaged: it is not this job's file: job other's"
    ):
        w.large_source(where[1], where[2])
    with pytest.raises(DamagedStoreError, match="not this job's file"):
        w.finalize("SUCCEEDED")  # nor is the job's end folded into it
    assert (job / "job.journal").is_file()  # the job's own last commits kept


def test_a_job_of_an_older_qshpc_gets_its_nonce_at_its_next_run(tmp_path: Path) -> None:
    import h5py

    from qshpc.store.journal import nonce_of
    from qshpc.store.snapshot import snapshot

    job, w = running(tmp_path)
    w.finalize("FAILED", "x")

    def drop(f: h5py.File) -> None:
        del f.attrs[L.NONCE_ATTR]

    snapshot(job / "job.h5", drop, "test")
    w = JobWriter.open(job, {**RUNTIME, "resume": True})
    assert len(w.nonce) == 8
    with h5py.File(job / "job.h5", "r") as f:
        assert nonce_of(f) == w.nonce
    w.checkpoint()
    w.finalize("SUCCEEDED")


# -- F4: another job's journal put in the place of the job's own --------------------------


def test_another_jobs_journal_is_not_folded_in(tmp_path: Path) -> None:
    other, wo = running(tmp_path, "other", off=100.0)  # the same shape of log: frames fit
    job, w = running(tmp_path)
    shutil.copy(other / "job.journal", job / "job.journal")
    wo.close()
    with pytest.raises(DamagedStoreError, match=r"job\.journal is damaged: it is not the journal"):
        w.finalize("SUCCEEDED")
    with pytest.raises(DamagedStoreError, match=r"mv \S*job\.journal \S*job\.journal\.other"):
        with JobReader.open(job) as r:
            r.meta()  # was: SUCCEEDED, and task 0's result the other job's
    with JobReader.open(job) as r:
        assert r.recoverable()["results"] == [0, 0]  # none of the other job's taken
    (job / "job.journal").rename(job / "job.journal.other")  # the way on the error names
    with JobReader.open(job) as r:
        assert r.meta()["state"] == "QUEUED"  # (the other journal's copy overwrote the job's)
    w2 = JobWriter.open(job, {**RUNTIME, "resume": True})
    w2.finalize("SUCCEEDED")


def test_the_journal_a_writer_left_is_read_and_folded(tmp_path: Path) -> None:
    job, w = running(tmp_path)
    w.checkpoint()
    w.append_task(rec(5, big(5)))
    w.commit()
    w.close()  # as a killed writer leaves it: its own journal, expected by job.h5
    with JobReader.open(job) as r:
        assert np.array_equal(r.task_result("5"), big(5))
    w2 = JobWriter.open(job, {**RUNTIME, "resume": True})  # folds it in
    w2.finalize("SUCCEEDED")
    with JobReader.open(job) as r:
        assert np.array_equal(r.task_result("5"), big(5)) and r.meta()["state"] == "SUCCEEDED"


# -- L3: the first get after job.h5 was damaged names its task ----------------------------

L3_PROGRAM = """
import os, time
from pathlib import Path
from qshpc import distribute_task, get

@distribute_task()
def make(i):
    return i * 2

r = make(0)
job = next(Path(os.environ["QSHPC_HOME"], "jobs").iterdir())
h = job / "job.h5"
b = bytearray(h.read_bytes())
for k in range(len(b) // 2, len(b) // 2 + 64):
    b[k] ^= 0xFF
h.write_bytes(bytes(b))
time.sleep(1.3)  # the get's commit (and its checkpoint) comes after a second
try:
    get(r)
except Exception as exc:
    print("ERROR", type(exc).__name__, exc)
"""


def test_the_first_get_after_job_h5_was_damaged_names_its_task(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    prog = tmp_path / "prog.py"
    prog.write_text(L3_PROGRAM)
    out = run_cli("run", str(prog), "--workers", "0", env={"QSHPC_CHECKPOINT_S": "0"})
    line = next(x for x in out.stdout.splitlines() if x.startswith("ERROR"))
    assert "DamagedStoreError" in line and "integrity seal" in line, line
    assert "met by the get of task 0 (" in line, line


def test_status_and_result_say_when_a_folders_job_h5_holds_another_job(
    tmp_path: Path, qshpc_home: Path
) -> None:
    from tests.conftest import run_cli

    prog = tmp_path / "p.py"
    prog.write_text("import qshpc\nqshpc.save_result(41)\n")
    for _ in range(2):
        assert run_cli("run", str(prog), "--workers", "0").returncode == 0
    a, b = sorted((qshpc_home / "jobs").iterdir(), key=lambda d: d.stat().st_ctime_ns)
    out = run_cli("status", b.name)
    assert out.returncode == 0 and "note" not in out.stdout, out.stdout
    shutil.copy(a / "job.h5", b / "job.h5")  # a whole, sealed file of another job
    out = run_cli("status", b.name)
    want = f"the job.h5 in folder {b} holds job {a.name}, not job {b.name}, the one the folder"
    assert want in " ".join(out.stdout.split()), out.stdout
    out = run_cli("result", b.name)  # review53 N1: refused (was 41, rc 0, a note on stderr)
    assert out.returncode == 2 and not out.stdout and want in " ".join(out.stderr.split())


# -- F2's message: no memory to decode a value is not a corrupt value ---------------------

DECODE_UNDER_LIMIT = """
import resource
import numpy as np
from qshpc.store.encoding_blob import decode_blob, encode_blob
blob = encode_blob(np.ones(12_500_000))  # 100 MB
with open("/proc/self/statm") as f:
    vm = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (vm + (40 << 20), resource.RLIM_INFINITY))
try:
    decode_blob(blob, False, "J/job.h5")
except Exception as exc:
    print(type(exc).__name__, isinstance(exc, MemoryError), exc)
"""


def test_a_value_without_the_memory_to_decode_it_is_not_called_corrupt() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", DECODE_UNDER_LIMIT], capture_output=True, text=True, timeout=120
    )
    line = out.stdout.strip()
    assert line.startswith("DecodeMemoryError True J/job.h5: not enough memory"), line + out.stderr
    assert "corrupt" not in line and "its bytes are not damaged" in line and "ulimit -v" in line


# -- F7: a resume refused for a damaged block names what is readable and the way on --------


@pytest.mark.parametrize("where", ["reuse", "copy"])
def test_a_resume_refused_for_one_damaged_block_names_the_way_on(
    tmp_path: Path, where: str
) -> None:
    job, w = running(tmp_path)
    w.finalize("FAILED", "stopped")
    data = bytearray((job / "job.h5").read_bytes())
    at = data.find(big(1)[100000:100004].tobytes())  # inside one task's result
    assert at > 0
    data[at : at + 8] = bytes(b ^ 0xFF for b in data[at : at + 8])
    (job / "job.h5").write_bytes(bytes(data))
    with pytest.raises(DamagedStoreError) as got:
        if where == "reuse":  # the resume's read of the finished tasks (qshpc.store.inputs)
            with JobReader.open(job) as r:
                r.done_records(defer=True)
        else:  # its copy of job.h5
            JobWriter.open(job, {**RUNTIME, "resume": True})
    text = str(got.value)
    assert "integrity seal" in text
    assert "recoverable: meta, arguments, 2 of 3 task results; lost: 1 task results" in text
    assert f"qshpc status --verify {job}" in text and "Run the program again as a new job" in text
    readable = 0
    with JobReader.open(job) as r:  # nothing written: the two readable results as they were
        for i in range(3):
            try:
                readable += np.array_equal(r.task_result(str(i)), big(i))
            except DamagedStoreError:
                pass
    assert readable == 2
