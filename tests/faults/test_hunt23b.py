"""Session 23's fault hunt (hunt23b): full and read-only disks under a running job.

The faults are real: a small tmpfs (``size=``) for a full disk, and for a file
system that turns read-only under open files, an ext4 image on a loop device
mounted ``errors=remount-ro`` whose ``trigger_fs_error`` (sysfs) makes the kernel
remount it read-only, as it does on a real I/O error (a tmpfs or a bind mount
cannot be remounted read-only while a file on it is open for writing). Both need
root; the tests skip cleanly without it. Each test failed on db7f14c (what it did
there is said in the test); see docs/bad-input.md, "Session 23, hunt23b".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, job_dir_of, run_cli, tmpfs
from tests.faults.test_bad_input import no_internals

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount)")

#: The program: 20 tasks, then it waits for ``go`` (the test turns the disk read-only
#: meanwhile), then saves its result (380).
WAITS = """
import os, sys, time
from qshpc import distribute_task, get, save_result

@distribute_task()
def f(i):
    return 2 * i

out = get([f(i) for i in range(20)])
ready, go = sys.argv[1], sys.argv[2]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.05)
save_result(sum(out))
"""

#: The same, with tasks sent after the fault.
WAITS_THEN_TASKS = WAITS.replace(
    "save_result(sum(out))", "save_result(sum(get([f(i) for i in range(20, 40)])))"
)

BIG_RESULT = """
import numpy as np
from qshpc import distribute_task, get, save_result

@distribute_task()
def f(i):
    return i

out = get([f(i) for i in range(10)])
save_result(np.random.default_rng(1).random(500_000))  # 4 MB: more than the disk has
"""


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A 32 MiB ext4 (loop device, ``errors=remount-ro``) and the call that makes the kernel
    turn it read-only, its open files included; unmounted after. Skipped where any part is
    missing (no mkfs.ext4, no loop devices, a kernel without ``trigger_fs_error``)."""
    image, mnt = tmp_path / "ext4.img", tmp_path / "ext4"
    mnt.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(32 << 20)

    def run(*argv: str) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True)
        except OSError as exc:
            pytest.skip(f"cannot run {argv[0]} here: {exc}")
        if done.returncode != 0:
            pytest.skip(f"cannot make an ext4 on a loop device here: {done.stderr.strip()}")
        return done.stdout

    run("mkfs.ext4", "-q", "-F", str(image))
    run("mount", "-o", "loop,errors=remount-ro", str(image), str(mnt))
    try:
        device = Path(run("findmnt", "-no", "SOURCE", str(mnt)).strip())
        trigger = Path("/sys/fs/ext4") / device.name / "trigger_fs_error"
        if not trigger.exists():
            pytest.skip(f"no {trigger} (a kernel without ext4's error trigger)")

        def read_only() -> None:
            trigger.write_text("hunt23b: turn read-only\n")
            with pytest.raises(OSError):  # it took effect
                (mnt / "probe").write_text("x")

        yield mnt, read_only
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)


def _run_until(
    tmp_path: Path, home: Path, workers: str, fault: Callable[[], None], program: str = WAITS
) -> subprocess.CompletedProcess[str]:
    """``qshpc run`` the waiting program from ``tmp_path/work``; ``fault`` once its tasks are
    done; the whole session killed past 120 s (never a hang)."""
    prog, work = tmp_path / "waits.py", tmp_path / "work"
    prog.write_text(program)
    work.mkdir()
    ready, go = tmp_path / "ready", tmp_path / "go"
    argv = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", workers]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QSHPC_HOME": str(home), "QSHPC_PROGRESS_S": "0"}
    proc = subprocess.Popen(
        [*argv, "--", str(ready), str(go)], cwd=work, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.communicate(timeout=30)
        fault()
        go.touch()
        out, err = proc.communicate(timeout=120)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _rescued(folder: Path, job: str, err: str) -> object:
    """The result kept in ``folder`` for ``job``, which the error names."""
    from qshpc.store import load_arguments

    path = folder / f"qshpc-result-{job}.h5"
    assert path.is_file(), (sorted(p.name for p in folder.iterdir()), err)
    assert f"kept instead in {path}" in err, err
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    return load_arguments(path)["result"]


@needs_root
@pytest.mark.mpi
@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_result_saved_after_the_job_folder_turned_read_only_is_kept_elsewhere(
    tmp_path: Path, ext4: tuple[Path, Callable[[], None]], workers: str
) -> None:
    # On db7f14c the result was lost: save_result raised `cannot write to JOB/job.journal:
    # Read-only file system ...` and nothing kept the value. With --workers 2 the launcher
    # then ended in an OSError traceback (status.json), with no line on the job's end.
    mnt, read_only = ext4
    home = mnt / "home"
    out = _run_until(tmp_path, home, workers, read_only)
    assert out.returncode != 0, out.stderr
    job = job_dir_of(home).name
    assert _rescued(tmp_path / "work", job, out.stderr) == 380
    # the program's own traceback, no frame of qshpc's, and one line on the job's end
    no_internals(out.stderr)
    assert "OSError" not in out.stderr and "[Errno" not in out.stderr, out.stderr
    if workers == "2":
        assert "cannot record the job's end in" in out.stderr, out.stderr
        assert f"qshpc: job {job} FAILED" in out.stderr, out.stderr


@needs_root
@pytest.mark.mpi
def test_a_notebook_job_whose_folder_turned_read_only_names_where_its_result_is(
    tmp_path: Path, ext4: tuple[Path, Callable[[], None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # On db7f14c a LocalClient's job.result() said only `ended FAILED: the job's processes
    # ended without finalizing the store; ...; see logs/ in DIR` (the logs, on the read-only
    # file system, were empty), and the result was lost. Now the error names the read-only
    # file system and the file the result was kept in (the program's folder).
    from qshpc import LocalClient, Program
    from qshpc.errors import JobFailedError

    mnt, read_only = ext4
    monkeypatch.setenv("QSHPC_HOME", str(mnt / "home"))
    monkeypatch.setenv("QSHPC_PROGRESS_S", "0")
    work = tmp_path / "work"
    work.mkdir()
    ready, go = tmp_path / "ready", tmp_path / "go"
    (work / "waits.py").write_text(
        WAITS.replace("sys.argv[1], sys.argv[2]", f"{str(ready)!r}, {str(go)!r}")
    )
    job = LocalClient().run(Program(title="w", entrypoint="waits.py", working_dir=str(work)))
    deadline = time.monotonic() + 90
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    read_only()
    go.touch()
    with pytest.raises(JobFailedError) as caught:
        job.result(timeout=90)
    text = str(caught.value)
    assert "read-only" in text, text
    assert _rescued(work, job.job_id, text) == 380


@needs_root
@pytest.mark.mpi
def test_tasks_sent_after_the_job_folder_turned_read_only_fail_the_job_in_a_line(
    tmp_path: Path, ext4: tuple[Path, Callable[[], None]]
) -> None:
    # On db7f14c the dispatcher's append to logs/dispatch.log raised the OSError (EROFS),
    # which ended the dispatcher: the program's get() raised it as a traceback through
    # qshpc/runtime/dispatcher.py. A log only the post-mortem reads is given up instead.
    mnt, read_only = ext4
    home = mnt / "home"
    out = _run_until(tmp_path, home, "2", read_only, WAITS_THEN_TASKS)
    assert out.returncode == 1, out.stderr
    no_internals(out.stderr)
    assert "OSError" not in out.stderr, out.stderr
    assert "job.journal: Read-only file system" in out.stderr, out.stderr
    assert f"qshpc: job {job_dir_of(home).name} FAILED" in out.stderr, out.stderr


@needs_root
@pytest.mark.mpi
@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_result_the_full_disk_cannot_take_is_kept_elsewhere(tmp_path: Path, workers: str) -> None:
    # On db7f14c the 4 MB result was lost: the job ended FAILED (`no space left on device
    # ... (a commit)`) and the value was gone with the program.
    import numpy as np

    prog, work = tmp_path / "big.py", tmp_path / "work"
    prog.write_text(BIG_RESULT)
    work.mkdir()
    with tmpfs(tmp_path / "disk", "size=3m") as disk:
        home = disk / "home"
        env = {"QSHPC_HOME": str(home), "QSHPC_PROGRESS_S": "0", "PYTHONPATH": str(ROOT)}
        out = run_cli("run", str(prog), "--workers", workers, cwd=work, env=env)
        assert out.returncode == 1, out.stderr
        job = job_dir_of(home)
        value = _rescued(work, job.name, out.stderr)
        np.testing.assert_array_equal(value, np.random.default_rng(1).random(500_000))
        # the job's FAILED error says where the result went
        meta = json.loads(run_cli("status", str(job), "--json", env=env).stdout)
        assert meta["state"] == "FAILED"
        assert f"kept instead in {work}" in str(meta["error"]), meta["error"]


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Callable[[], Path]]:
    """A small tmpfs to fill, then the call that remounts it read-only (and returns it)."""
    with tmpfs(tmp_path / "ro", "size=4m,mode=0700") as mnt:

        def remount() -> Path:
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
            return mnt

        yield remount


@needs_root
def test_save_arguments_into_a_read_only_folder_is_a_store_error(
    read_only: Callable[[], Path],
) -> None:
    # On db7f14c: a bare `OSError: [Errno 30] Read-only file system: '.../a.h5.tmp'` (the
    # cleanup's unlink of the temporary file, which never was, hid the write's own error).
    from qshpc.errors import StoreError
    from qshpc.store import save_arguments

    folder = read_only()
    with pytest.raises(StoreError, match=r"cannot write .*a\.h5: Read-only file system"):
        save_arguments(folder / "a.h5", {"x": 1})


@needs_root
def test_the_client_on_a_read_only_store_says_so_in_one_error(
    tmp_path: Path, read_only: Callable[[], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # On db7f14c each of these was a bare OSError (EROFS) from deep inside qshpc:
    # client.file_upload (the temporary file's cleanup), client.upload (the programs
    # folder) and client.run (the job folder).
    from qshpc import LocalClient, Program
    from qshpc.errors import QshpcError

    prog = tmp_path / "p.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    data = tmp_path / "data.bin"
    data.write_bytes(b"x" * 1000)
    store = read_only()
    monkeypatch.setenv("QSHPC_HOME", str(store))
    client = LocalClient()
    calls = {
        "file_upload": lambda: client.file_upload(str(data)),
        "upload": lambda: client.upload(Program(title="t", entrypoint=str(prog))),
        "run": lambda: client.run(Program(title="t", entrypoint=str(prog))),
    }
    for name, call in calls.items():
        with pytest.raises(QshpcError, match="Read-only file system") as caught:
            call()
        assert str(store) in str(caught.value), (name, caught.value)


@needs_root
def test_plot_onto_a_full_disk_keeps_the_image_that_was_there(tmp_path: Path) -> None:
    # On db7f14c `qshpc plot -o` wrote the image in place: a full disk left a torn 8 KB
    # PNG where the old image had been.
    from qshpc.errors import UserError
    from qshpc.jobs.plot import plot_result

    with tmpfs(tmp_path / "disk", "size=8k") as disk:
        out = disk / "plot.png"
        out.write_bytes(b"the old image")
        with pytest.raises(UserError, match="No space left on device"):
            plot_result({"00": 10, "11": 20}, out)
        assert out.read_bytes() == b"the old image"
        assert sorted(p.name for p in disk.iterdir()) == ["plot.png"]


def test_plot_of_a_job_that_ended_before_its_store_did_says_its_end(tmp_path: Path) -> None:
    # On db7f14c a job a full disk ended FAILED before it started (its end in status.json,
    # as `qshpc status` shows) was "(QUEUED) has no saved result to plot ... or wait for
    # it with `qshpc wait`".
    from qshpc.errors import UserError
    from qshpc.jobs.paths import mark_terminal
    from qshpc.jobs.plot import plot_job
    from qshpc.store import create_job

    job = tmp_path / "job"
    create_job(job, {"id": "job", "title": "t", "created": time.time()}, None)
    mark_terminal(job, "FAILED", "no space left on device")
    with pytest.raises(UserError, match=r"\(FAILED\) has no saved result") as caught:
        plot_job(job)
    assert "qshpc wait" not in str(caught.value)


@needs_root
def test_an_ended_job_whose_store_cannot_be_completed_says_so_on_every_read(
    tmp_path: Path,
) -> None:
    # hunt22c left it to `qshpc run`: on db7f14c `qshpc result`, `qshpc status` and
    # Job.result() of an ended job whose job.h5 could not be completed (its final fold
    # had no room, then its file system was made read-only) read the journal without a
    # word, and plain h5py saw no state and no result in job.h5.
    from qshpc.client.job import Job
    from qshpc.errors import QshpcWarning
    from tests.faults.test_hunt12_mend12a import _ended_with_no_room_to_fold

    with tmpfs(tmp_path / "disk", "size=3m") as mnt:
        job = _ended_with_no_room_to_fold(mnt)
        (mnt / "filler").unlink()
        subprocess.run(["mount", "-o", "remount,ro,size=40m", str(mnt)], check=True)
        env = {"PYTHONPATH": str(ROOT)}
        for command in ("result", "status"):
            out = run_cli(command, str(job), env=env)
            assert out.returncode == 0, out.stderr
            assert f"qshpc: warning: job job's store {job / 'job.h5'} is incomplete" in out.stderr
            assert f"read from {job / 'job.journal'}" in out.stderr, out.stderr
        with pytest.warns(QshpcWarning, match="is incomplete"):
            assert Job(job).result()["x"].shape == (50_000,)
        subprocess.run(["mount", "-o", "remount,rw,size=40m", str(mnt)], check=True)
        out = run_cli("status", str(job), env=env)  # writable, with room: folded, no word
        assert out.returncode == 0 and "warning" not in out.stderr, out.stderr
        assert not (job / "job.journal").exists()
