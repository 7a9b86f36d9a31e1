"""The job file: create, write, read, frozen v1 file, errors, permissions."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from qshpc.errors import (
    JobNotFoundError,
    NoResultError,
    SchemaVersionError,
    StoreError,
    TaskError,
    UserError,
)
from qshpc.store import (
    JOB_FILE,
    JobReader,
    JobWriter,
    TaskRecord,
    create_job,
    load_arguments,
    save_arguments,
)

ROOT = Path(__file__).parents[2]
FROZEN = ROOT / "tests" / "data" / "v1"
RUNTIME = {"mpi_size": 2, "ranks": [{"rank": 0, "host": "h0"}], "started": 1.0, "resume": False}


def rec(i: int, state: str = "SUCCEEDED", result: object = None) -> TaskRecord:
    return TaskRecord(
        task_id=str(i), key=f"key-{i}", function="m.f", state=state, attempt=1, rank=1,
        host="h1", submitted=1.0, started=2.0, finished=3.0, seed=i,
        result=result if result is not None else {0: i / 3}, provenance={"n": i},
        error="boom" if state == "FAILED" else None,
    )  # fmt: skip


def new_job(tmp_path: Path, name: str = "job ü 1") -> Path:
    job = tmp_path / name
    create_job(job, {"id": name, "title": "t", "created": 5.0, "seed": 3}, {"a": [1, 2]})
    return job


def test_lifecycle(tmp_path: Path) -> None:
    job = new_job(tmp_path)
    with JobReader.open(job) as r:
        m = r.meta()
        assert (m["state"], m["runs"], m["has_result"], m["schema_version"]) == (
            "QUEUED",
            0,
            False,
            1,
        )
        assert r.arguments() == {"a": [1, 2]}
        with pytest.raises(NoResultError):
            r.result()
    w = JobWriter.open(job, RUNTIME)
    for i in range(5):
        w.append_task(rec(i))
    w.append_task(rec(5, "FAILED"))
    w.commit()
    w.set_status("half")
    w.save_result([1, 2])
    with JobReader.open(job) as r:
        m = r.meta()
        assert m["state"] == "RUNNING" and m["sub_status"] == "half" and m["has_result"]
        assert m["task_counts"] == {"SUCCEEDED": 5, "FAILED": 1}
        assert m["ranks"] == [{"rank": 0, "host": "h0"}] and m["mpi_size"] == 2
        assert r.result() == [1, 2]
        assert r.task_result("2") == {0: 2 / 3}
        with pytest.raises(TaskError, match="boom"):
            r.task_result("5")
        t = r.tasks()[0]
        assert t["key"] == "key-0" and t["provenance"] == {"n": 0} and t["seed"] == 0
    assert set(w.done_records()) == {f"key-{i}" for i in range(5)}
    w.finalize("FAILED", "it broke")
    with JobReader.open(job) as r:
        m = r.meta()
        assert m["state"] == "FAILED" and m["error"] == "it broke" and m["finished"]
        assert r.result() == [1, 2]
        assert r.done_records()["key-3"].result == {0: 1.0}
    # resume: a second run appends
    w = JobWriter.open(job, {**RUNTIME, "resume": True})
    assert len(w.done_records()) == 5
    w.append_task(rec(5))
    w.finalize("SUCCEEDED")
    with JobReader.open(job) as r:
        m = r.meta()
        assert m["runs"] == 2 and m["state"] == "SUCCEEDED"
        assert m["task_counts"] == {"SUCCEEDED": 6, "FAILED": 0}
        with pytest.raises(NoResultError):
            r.result()  # the second run saved none


def test_frozen_v1_file_reads_forever(tmp_path: Path) -> None:
    job = tmp_path / "copy"
    shutil.copytree(FROZEN, job)
    with JobReader.open(job) as r:
        m = r.meta()
        assert m["id"] == "frozen-v1" and m["slurm"] == {"job_id": "123", "partition": "debug"}
        assert m["state"] == "SUCCEEDED" and m["sub_status"] == "3 of 4 done"
        assert m["task_counts"] == {"SUCCEEDED": 3, "FAILED": 1} and m["runs"] == 1
        assert [x["host"] for x in m["ranks"]] == ["node-a", "node-a"]
        args = r.arguments()
        assert args["shots"] == 1024 and args["opts"] == {0: "a"}
        np.testing.assert_allclose(args["thetas"], np.linspace(0, 1, 5))
        assert args["circuits"][0].name == "bell" and args["circuits"][0].num_qubits == 2
        res = r.result()
        np.testing.assert_array_equal(res["energies"], [1.0, -0.5])
        assert res["best"] == 1 and res["label"] == "é"
        assert r.task_result("1") == {0: 0.5, 3: 0.4}
        tasks = r.tasks()
        assert [t["state"] for t in tasks] == ["SUCCEEDED"] * 3 + ["FAILED"]
        assert tasks[3]["error"].endswith("bad theta") and tasks[0]["seed"] == 100
        assert tasks[0]["key"] == "0" * 64
    # a writer can resume the frozen file
    JobWriter.open(job, RUNTIME).finalize("CANCELED")
    with JobReader.open(job) as r:
        assert r.meta()["state"] == "CANCELED"


def test_wrong_schema_version(tmp_path: Path) -> None:
    job = new_job(tmp_path)
    with h5py.File(job / JOB_FILE, "r+") as f:
        f.attrs["qshpc-schema-version"] = 99
    with pytest.raises(SchemaVersionError, match=r"99.*reads version 1.*upgrade"):
        JobReader.open(job)
    with pytest.raises(SchemaVersionError):
        JobWriter.open(job, RUNTIME)


@pytest.mark.parametrize("content", [b"", b"not hdf5 at all" * 100, "truncate"])
def test_bad_files_raise_store_error(tmp_path: Path, content: bytes | str) -> None:
    job = new_job(tmp_path, "bad job ✓")
    path = job / JOB_FILE
    if content == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="bad job ✓"):
        JobReader.open(job).meta()
    with pytest.raises(StoreError, match="bad job ✓"):
        JobWriter.open(job, RUNTIME)


def test_missing_job_and_file(tmp_path: Path) -> None:
    with pytest.raises(JobNotFoundError):
        JobReader.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no job store"):
        JobReader.open(tmp_path / "empty")


def test_foreign_hdf5_file(tmp_path: Path) -> None:
    (tmp_path / "j").mkdir()
    with h5py.File(tmp_path / "j" / JOB_FILE, "w") as f:
        f["x"] = 1
    with pytest.raises(StoreError, match="not a qshpc store"):
        JobReader.open(tmp_path / "j")


def test_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = new_job(tmp_path)
    assert stat.S_IMODE(job.stat().st_mode) == 0o700
    assert stat.S_IMODE((job / JOB_FILE).stat().st_mode) == 0o600
    JobWriter.open(job, RUNTIME).finalize("SUCCEEDED")
    assert stat.S_IMODE((job / JOB_FILE).stat().st_mode) == 0o600
    monkeypatch.setenv("QSHPC_SHARE_GROUP", "1")
    job2 = new_job(tmp_path, "shared")
    assert stat.S_IMODE(job2.stat().st_mode) == 0o750
    assert stat.S_IMODE((job2 / JOB_FILE).stat().st_mode) == 0o640


def test_arguments_files(tmp_path: Path) -> None:
    path = tmp_path / "args ü.h5"
    save_arguments(path, {"x": np.arange(3), 1: "int key"})
    got = load_arguments(path)
    assert got[1] == "int key" and list(got["x"]) == [0, 1, 2]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (tmp_path / "a.json").write_text('{"n": 1}')
    assert load_arguments(tmp_path / "a.json") == {"n": 1}
    (tmp_path / "l.json").write_text("[1]")
    for bad, why in [("l.json", "must be a dict"), ("missing.h5", "no such file")]:
        with pytest.raises(UserError, match=why):
            load_arguments(tmp_path / bad)
    (tmp_path / "g.h5").write_bytes(b"garbage")
    with pytest.raises(UserError, match=r"g\.h5"):
        load_arguments(tmp_path / "g.h5")


def test_import_is_cheap() -> None:
    code = (
        "import sys, qshpc.store as s; assert s.JOB_FILE == 'job.h5';"
        "print('h5py' in sys.modules, 'qiskit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert out.stdout.split() == ["False", "False"]


READER = """
import sys, time
from pathlib import Path
from qshpc.store import JobReader
with JobReader.open(Path(sys.argv[1])) as r:
    m = r.meta()
    print(m["state"], len(r.tasks()), r.task_result("7"))
"""


def test_reader_sees_commits_while_writer_is_open(tmp_path: Path) -> None:
    job = new_job(tmp_path)
    w = JobWriter.open(job, RUNTIME)
    for i in range(10):
        w.append_task(rec(i))
    w.commit()
    w.append_task(rec(10))  # queued, not committed
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", READER, str(job)], capture_output=True,
                         text=True, env=env, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["RUNNING", "10", "{0:", "2.3333333333333335}"]
    with JobReader.open(job) as r:  # in-process reader too
        assert len(r.tasks()) == 10
    w.close()


@pytest.mark.slow
def test_large_result_round_trip(tmp_path: Path) -> None:
    job = new_job(tmp_path)
    # 160 MiB: past every size threshold of the store (the largest: 64 MiB, log.py's
    # _KEEP_LARGE and _COPY: two whole copy pieces and a part); was 300 MiB, for nothing
    # more. test_huge_return_over_1_gib crosses 1 GiB (encoding_blob's _PIECE) end to end.
    big = np.random.default_rng(0).random(160 * 2**20 // 8)
    # its time is measured in benchmarks/store.py, never asserted here
    w = JobWriter.open(job, RUNTIME)
    w.append_task(rec(0, result={"arr": big}))
    w.commit()
    w.save_result(big)
    w.finalize("SUCCEEDED")
    with JobReader.open(job) as r:
        np.testing.assert_array_equal(r.task_result("0")["arr"], big)
        np.testing.assert_array_equal(r.result(), big)


def test_results_in_pieces_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A result over ``_PIECE`` (1 GiB; here 1 MiB) read back from the large stream (read into
    one buffer, its pieces copied once into the array): alone and in a dict."""
    from qshpc.store import encoding_blob

    monkeypatch.setattr(encoding_blob, "_PIECE", 1 << 20)
    job = new_job(tmp_path)
    big = np.random.default_rng(2).random((3 << 20) // 8 + 5)
    w = JobWriter.open(job, RUNTIME)
    w.append_task(rec(0, result=big))
    w.append_task(rec(1, result={"arr": big}))
    w.commit()
    w.save_result(big)
    w.finalize("SUCCEEDED")
    with JobReader.open(job) as r:
        np.testing.assert_array_equal(r.task_result("0"), big)
        np.testing.assert_array_equal(r.task_result("1")["arr"], big)
        np.testing.assert_array_equal(r.result(), big)


def test_big_saved_result_is_stored_once(tmp_path: Path) -> None:
    """A 32 MiB result took twice its size in job.h5 (the log's large stream and /result)."""
    job = new_job(tmp_path)
    big = np.random.default_rng(1).random(32 * 2**20 // 8)
    w = JobWriter.open(job, RUNTIME)
    w.save_result({"arr": big})
    w.finalize("SUCCEEDED")
    files = [p for p in job.iterdir() if p.is_file()]
    on_disk = sum(p.stat().st_blocks * 512 for p in files)
    assert on_disk < 1.3 * big.nbytes, {p.name: p.stat().st_size for p in files}
    with JobReader.open(job) as r:
        np.testing.assert_array_equal(r.result()["arr"], big)


def test_a_big_journal_frame_is_stored_and_reads_back(tmp_path: Path) -> None:
    """Frames over SMALL_FRAME go uncompressed (zlib level 0), small ones compressed:
    both read back as written."""
    from qshpc.store import layout as L
    from qshpc.store.batch import Ends, Frame
    from qshpc.store.journal import SMALL_FRAME, JournalWriter, read_journal

    big = np.random.default_rng(1).random(SMALL_FRAME // 4).tobytes()  # 2x SMALL_FRAME
    frames = [
        Frame(Ends(0, 0, 0, 0, 0), np.zeros(0, L.RECORD_DTYPE), np.zeros(0, L.EVENT_DTYPE),
              b"m", b"x" * 100),
        Frame(Ends(0, 0, 1, 100, 0), np.zeros(0, L.RECORD_DTYPE), np.zeros(0, L.EVENT_DTYPE),
              b"", big),
    ]  # fmt: skip
    w = JournalWriter(tmp_path / "j", b"t" * 8)
    for f in frames:
        w.append(f)
    w.close()
    size = (tmp_path / "j").stat().st_size
    assert size > len(big)  # stored, not compressed
    token, back, damage = read_journal(tmp_path / "j")
    assert damage is None and token == b"t" * 8
    assert [(f.frame.meta, f.frame.data) for f in back] == [(b"m", b"x" * 100), (b"", big)]


def test_job_circuits_copied_as_qpy_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """prepare_job decodes an arguments file's circuits once (a bad file refused, nothing made),
    stores their QPY bytes as they are, and the program's read takes the decoded circuits."""
    from qiskit import QuantumCircuit

    from qshpc.jobs.prepare import RunSpec, prepare_job
    from qshpc.store import _qpy
    from qshpc.store.encoding_h5 import QPYBytes

    monkeypatch.setenv("QSHPC_HOME", str(tmp_path / "home"))
    prog = tmp_path / "p.py"
    prog.write_text("pass\n")
    qc = QuantumCircuit(2, name="bell")
    qc.h(0)
    qc.cx(0, 1)
    save_arguments(tmp_path / "a.h5", {"cs": [qc, qc.copy("two")], "one": qc, "n": 3})
    with h5py.File(tmp_path / "a.h5", "r") as f:
        stored = {k: f["arguments"][k][()].tobytes() for k in ("cs", "one")}
    monkeypatch.setattr(_qpy, "dump", None)  # the job's circuits are never encoded again
    job = prepare_job(RunSpec(prog, arguments_file=tmp_path / "a.h5", job_id="j1"))
    with h5py.File(job / JOB_FILE, "r") as f:
        assert {k: f["arguments"][k][()].tobytes() for k in ("cs", "one")} == stored
    kept = [c for _, cs in _qpy._decoded for c in cs]
    with JobReader.open(job) as r:
        args = r.arguments()
    assert [c.name for c in args["cs"]] == ["bell", "two"] and args["one"] == qc
    assert {id(c) for c in [*args["cs"], args["one"]]} == {id(c) for c in kept}  # decoded once
    with JobReader.open(job) as r:
        again = r.arguments()  # each decoded circuit is handed out once: fresh ones now
    assert again["cs"] == args["cs"] and again["cs"][0] is not args["cs"][0]
    # A sealed file whose QPY bytes are bad: refused at once, naming it; no job folder.
    save_arguments(tmp_path / "bad.h5", {"cs": QPYBytes(b"QISKIT-not-qpy", True)})
    with pytest.raises(UserError, match=r"bad\.h5: its circuits cannot be read"):
        prepare_job(RunSpec(prog, arguments_file=tmp_path / "bad.h5", job_id="j2"))
    assert not (tmp_path / "home" / "jobs" / "j2").exists()


def test_many_commits_fold_into_one_log(tmp_path: Path) -> None:
    """The end folds every commit of the run at once (large blobs among them): all read back."""
    job = new_job(tmp_path)
    w = JobWriter.open(job, RUNTIME)
    big = b"\x07" * (1 << 20) + b"end"  # over 1 MiB: /log/large
    n = 0
    for frame in range(6):
        for _ in range(frame):  # the first commit has no record
            w.append_task(rec(n, result=big if n == 7 else None))
            n += 1
        w.set_status(f"s{frame}")
        w.commit()
    w.finalize("SUCCEEDED")
    assert not (job / "job.journal").exists()
    with JobReader.open(job) as r:
        m = r.meta()
        assert m["state"] == "SUCCEEDED" and m["sub_status"] == "s5"
        assert [t["task_id"] for t in r.tasks()] == [str(i) for i in range(n)]
        assert r.task_result("7") == big and r.task_result("14") == {0: 14 / 3}
        assert [r.task_result(str(i)) for i in (0, 6, 8)] == [{0: 0.0}, {0: 2.0}, {0: 8 / 3}]


def test_results_over_raw_result_min_are_stored_raw_and_read_back(tmp_path: Path) -> None:
    """Task results over 16 KiB that rank 0 records go to /log/large (not compressed twice);
    read back from the live journal (each frame read once) and from the final file."""
    from qshpc.store import layout as L

    job = new_job(tmp_path)
    w = JobWriter.open(job, RUNTIME)
    values = [{k: k / (i + 7) for k in range(L.RAW_RESULT_MIN // 8)} for i in range(4)]
    for i, v in enumerate(values):
        w.append_task(rec(i, result=v))
        if i == 1:
            w.commit()  # two frames, two large results each
    w.append_task(rec(4))  # a small one stays in /log/data
    w.commit()
    for final in (False, True):
        if final:
            w.finalize("SUCCEEDED", None)
        with JobReader.open(job) as r:
            done = r.done_records()
            assert [done[f"key-{i}"].result for i in range(4)] == values
            assert done["key-4"].result == {0: 4 / 3}
    with h5py.File(job / JOB_FILE, "r") as f:
        assert f[L.LARGE].shape[0] > 4 * L.RAW_RESULT_MIN and f[L.DATA].shape[0] < L.RAW_RESULT_MIN


def test_claim_of_a_job_just_made_reads_it_only_when_it_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 0's claim of the job it just created skips reading it back while job.h5 is the file
    it wrote; a run that opened the job in between (job.h5 rewritten) is still refused."""
    from qshpc.jobs import prepare
    from qshpc.jobs.prepare import RunSpec, claim_job, prepare_job, release_claim

    monkeypatch.setenv("QSHPC_HOME", str(tmp_path / "home"))
    prog = tmp_path / "p.py"
    prog.write_text("pass\n")
    reads: list[Path] = []
    check = prepare._check_fresh
    monkeypatch.setattr(prepare, "_check_fresh", lambda d: (reads.append(d), check(d)))
    job = prepare_job(RunSpec(prog, job_id="j1"))
    claim_job(RunSpec(prog, job_id="j1"), job)
    release_claim()
    assert reads == []  # the file it made, unchanged: fresh without a read
    # Another run opened it and ended between creation and claim: read, and refused.
    job2 = prepare_job(RunSpec(prog, job_id="j2"))
    JobWriter.open(job2, {}).finalize("SUCCEEDED", None)
    with pytest.raises(UserError, match="already ran"):
        claim_job(RunSpec(prog, job_id="j2"), job2)
    assert reads == [job2]
    assert prepare.held_claim() is None  # the refused claim let the lock go
