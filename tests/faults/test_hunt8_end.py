"""Session 8's hunt on the start and the end of small local jobs (hunt8e).

Each test says what happened on main c590a0b. None asserts a speed: a bound is
there only to prove that nothing hangs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qshpc.errors import UserError
from tests.conftest import (
    PROGRAMS,
    ignore_sighup,
    job_dir_of,
    run_cli,
    start_cli,
    wait_succeeded,
)
from tests.conftest import job_status as _status

pytestmark = [pytest.mark.timeout(240)]

CHATTY = """\
import sys
import time
from qshpc import save_result
for i in range(60000):
    print("line", i, "x" * 50)
    print("err", i, file=sys.stderr)
save_result(7)
"""


def _ended(proc: subprocess.Popen[bytes], timeout: float = 90) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        raise AssertionError(f"qshpc run still running {timeout} s on") from None


@pytest.mark.mpi
@pytest.mark.parametrize("workers", ["0", "1"])
@pytest.mark.parametrize("both", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_output_read_by_a_reader_that_left(
    tmp_path: Path, qshpc_home: Path, both: bool, workers: str
) -> None:
    """``qshpc run chatty.py | head -1`` (and ``2>&1 | head -1``).

    On c590a0b the launcher's output thread died of EPIPE (a traceback), nobody
    read mpiexec's pipe any more, rank 0 stopped in its next print, and the
    command hung for good (a SIGTERM then stored CANCELED and hung still). With
    ``--workers 0`` the job SUCCEEDED but the command ended with a traceback
    (BrokenPipeError in rank 0's summary) and exit code 1.
    """
    prog = tmp_path / "chatty.py"
    prog.write_text(CHATTY)
    cmd = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", workers]
    with open(tmp_path / "err", "wb") as err:
        proc = start_cli(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT if both else err)
    assert proc.stdout is not None
    assert proc.stdout.readline()  # its first line ("line 0" or "err 0")
    proc.stdout.close()  # the reader leaves (head -1)
    assert _ended(proc) == 0
    assert "Traceback" not in (tmp_path / "err").read_text()
    job = job_dir_of(qshpc_home)
    assert _status(job)["state"] == "SUCCEEDED"
    log = (job / "logs" / "rank-0.out").read_text()
    # Every byte of both streams is kept in the job's log, the last lines too; the tee
    # interleaves the two streams where a 64 KiB read ends, even inside a line ("line " +
    # "err 59997\n" + ... + "59999 xxx"): count what no cut changes.
    out = sum(len(f"line {i} {'x' * 50}\n") + len(f"err {i}\n") for i in range(60000))
    assert len(log) >= out and log.count("\n") >= 120000, log[-300:]
    assert log.count("x") >= 60000 * 50, log[-300:]


@pytest.mark.mpi
@pytest.mark.parametrize("workers", ["0", "1"])
def test_run_with_stdout_closed(tmp_path: Path, qshpc_home: Path, workers: str) -> None:
    """``qshpc run tiny.py >&-``: on c590a0b an AttributeError traceback
    ('NoneType' object has no attribute 'buffer') after mpiexec started, the job
    never ran (exit 1); with ``--workers 0`` ('... no attribute 'flush'' in the
    log tee) the job stayed QUEUED for good."""
    prog = tmp_path / "tiny.py"
    prog.write_text("from qshpc import save_result\nprint('hello')\nsave_result(3)\n")
    cmd = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", workers]
    with open(tmp_path / "err", "wb") as f:
        proc = start_cli(cmd, stderr=f, preexec_fn=lambda: os.close(1))
    code = _ended(proc)
    err = (tmp_path / "err").read_text()
    assert code == 0, err
    assert "Traceback" not in err, err
    job = job_dir_of(qshpc_home)
    assert _status(job)["state"] == "SUCCEEDED"
    assert "hello" in (job / "logs" / "rank-0.out").read_text()


DIES_WRITING = """\
import os, signal, sys, time
from qshpc import LocalClient, Program

class Dies:
    def __reduce__(self):  # the client is killed while it writes the job (the ranks start)
        time.sleep(float(sys.argv[1]))
        os.kill(os.getpid(), signal.SIGKILL)

program = Program(title="t", entrypoint="tiny.py", working_dir=os.path.dirname(__file__))
LocalClient(workers=1).run(program, arguments={"n": 3, "dies": Dies()})
"""


def _processes_with(text: str) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    pids.append(int(name))
        except OSError:
            pass
    return pids


@pytest.mark.mpi
@pytest.mark.parametrize("after", [0.0, 1.0])
def test_client_killed_while_writing_the_job(
    tmp_path: Path, qshpc_home: Path, after: float
) -> None:
    """The notebook's kernel is killed while ``LocalClient.run`` writes the job (its ranks
    start meanwhile). On c590a0b a folder with the ranks' logs only was left, which
    ``qshpc list`` does not show and ``qshpc rm`` refused ('no job'); its launcher.out
    said the folder 'was removed while it ran'."""
    (tmp_path / "tiny.py").write_text("from qshpc import save_result\nsave_result(1)\n")
    client = tmp_path / "client.py"
    client.write_text(DIES_WRITING)
    out = subprocess.run(
        [sys.executable, str(client), str(after)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == -9, out.stderr
    deadline = time.monotonic() + 90
    while _processes_with(str(qshpc_home)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_with(str(qshpc_home)), "the job's launcher or ranks never ended"
    jobs = qshpc_home / "jobs"
    left = [p.relative_to(jobs) for p in jobs.rglob("*")] if jobs.exists() else []
    assert left == [], left
    listed = run_cli("list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stdout


@pytest.mark.parametrize("workers", ["0", "1"])
@pytest.mark.parametrize("relative", [False, True])
def test_run_from_a_removed_working_directory(
    tmp_path: Path, qshpc_home: Path, workers: str, relative: bool
) -> None:
    """``qshpc run`` from a folder removed since (another shell's ``rm -rf``). On c590a0b a
    FileNotFoundError traceback from os.getcwd, exit 1."""
    prog = tmp_path / "tiny.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    gone = tmp_path / "gone"
    gone.mkdir()
    cmd = [sys.executable, "-m", "qshpc", "run", "../tiny.py" if relative else str(prog)]
    proc = start_cli(
        [*cmd, "--workers", workers],
        cwd=gone,
        preexec_fn=lambda: os.rmdir(gone),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert b"Traceback" not in err, err
    assert b"the working directory was removed" in err, err
    assert not (qshpc_home / "jobs").exists() or not list((qshpc_home / "jobs").iterdir())


def test_client_run_into_the_folder_of_a_job_keeps_that_job(tmp_path: Path) -> None:
    """``LocalClient.run(..., job_dir=J)`` where J holds a job. On c590a0b the new job's
    store replaced J's job.h5 (a finished job's results gone, no word said)."""
    from qshpc import LocalClient, Program

    (tmp_path / "r.py").write_text(
        "from qshpc import get_arguments, save_result\nsave_result(get_arguments()['v'])\n"
    )
    program = Program(title="t", entrypoint="r.py", working_dir=str(tmp_path))
    client = LocalClient(workers=0)
    first = client.run(program, arguments={"v": "first"}, job_dir=tmp_path / "job")
    assert first.result(timeout=120) == "first"
    with pytest.raises(UserError, match="holds a job already"):
        client.run(program, arguments={"v": "second"}, job_dir=tmp_path / "job")
    assert first.result() == "first" and first.status() == "SUCCEEDED"


def test_two_new_jobs_made_at_once_in_one_folder(tmp_path: Path) -> None:
    """Two runs create a job in the same empty ``--job-dir`` at once (both passed the check
    that it is empty). On c590a0b the later job.h5 replaced the earlier one (through the
    same ``job.h5.tmp``): a `qshpc run A.py` ran B.py's job, exit 0, and B's was refused."""
    from qshpc.store import JobReader, create_job

    job = tmp_path / "job"
    create_job(job, {"id": "a", "title": "A"}, {"x": 1})
    with pytest.raises(UserError, match="holds a job already"):
        create_job(job, {"id": "b", "title": "B"}, {"x": 2})
    with JobReader.open(job) as r:
        assert r.meta()["id"] == "a" and r.arguments() == {"x": 1}
    assert sorted(p.name for p in job.iterdir()) == ["job.h5"]  # no temporary file left


@pytest.mark.mpi
def test_two_runs_racing_for_one_new_job_dir(tmp_path: Path, qshpc_home: Path) -> None:
    """The same race through ``qshpc run``: each run that exits 0 ran its own program (on
    c590a0b it failed 1 time in 3 here: when both launchers found the folder empty)."""
    job = tmp_path / "job"
    procs = []
    for name in ("A", "B"):
        prog = tmp_path / f"{name}.py"
        prog.write_text(f"from qshpc import save_result\nsave_result({name!r})\n")
        cmd = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "1"]
        procs.append(start_cli([*cmd, "--job-dir", str(job)], stderr=subprocess.PIPE))
    codes = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        codes.append(proc.returncode)
        assert proc.returncode in (0, 2), err
        assert b"Traceback" not in err, err
    assert sorted(codes) == [0, 2], codes
    winner = "AB"[codes.index(0)]
    res = run_cli("result", str(job), "--json")
    assert json.loads(res.stdout) == winner, (codes, res.stdout)


@pytest.mark.mpi
def test_a_preloaded_module_that_fails_to_import(tmp_path: Path, qshpc_home: Path) -> None:
    """``QSHPC_PRELOAD`` names a module whose import raises (not ImportError: a version
    mismatch's AttributeError). On c590a0b the worker raised at its start and hung in
    MPI_Finalize; the job FAILED 30 s later, 'stopped responding (killed, crashed or out
    of memory?)'. The preload is only a head start: the job runs without it."""
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "brokenmod.py").write_text("raise AttributeError('module numpy has no attribute x')\n")
    prog = tmp_path / "p.py"
    prog.write_text(
        "from qshpc import distribute_task, get, save_result\n"
        "@distribute_task()\ndef f(x):\n    return x + 1\n"
        "save_result(get([f(i) for i in range(3)]))\n"
    )
    path = os.pathsep.join([str(mods), os.environ.get("PYTHONPATH", "")])
    env = {"QSHPC_PRELOAD": "brokenmod", "PYTHONPATH": path, "QSHPC_PROGRESS_S": "0"}
    started = time.monotonic()
    out = run_cli("run", str(prog), "--workers", "1", env=env, timeout=90)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started < 25  # not the 30 s of a lost worker's heartbeat
    res = run_cli("result", str(job_dir_of(qshpc_home)), "--json")
    assert json.loads(res.stdout) == [1, 2, 3]


STEPS = """\
import os
import shutil
from qshpc import distribute_task, get, save_result
@distribute_task()
def f(x):
    print("task", x)
    return x + 1
off = int(os.environ.get("OFF", "0"))
save_result(get([f(off + i) for i in range(4)]))
"""


@pytest.mark.mpi
@pytest.mark.parametrize("what", ["logs", "rank-0.out", "rank-1.out"])
def test_a_log_that_cannot_be_opened(tmp_path: Path, what: str) -> None:
    """A damaged job folder: ``logs`` (or a rank's log in it) is not a file that can be
    written. On c590a0b every rank failed with a FileExistsError/IsADirectoryError
    traceback; a worker's own log alone left rank 0 waiting for it 30 s ('stopped
    responding'). Now rank 0 refuses in one line (exit 2, the store as it was) and a
    worker serves without its log, saying so."""
    from tests.conftest import FAIL, FAIL_AT_END

    prog = tmp_path / "p.py"
    prog.write_text(STEPS + FAIL_AT_END)  # FAILED: a job to resume
    job = tmp_path / "job"
    first = run_cli("run", str(prog), "--workers", "1", "--job-dir", str(job), env=FAIL)
    assert first.returncode == 1, first.stderr
    if what == "logs":
        shutil.rmtree(job / "logs")
        (job / "logs").write_text("not a folder\n")
    else:
        (job / "logs" / what).unlink()
        (job / "logs" / what).mkdir()
    started = time.monotonic()
    again = run_cli(
        "run", str(prog), "--workers", "1", "--resume", str(job), env={"OFF": "10"}, timeout=90
    )
    assert time.monotonic() - started < 25, again.stderr
    assert "Traceback" not in again.stderr, again.stderr
    if what == "rank-1.out":
        assert again.returncode == 0, again.stderr
        assert "rank 1 serves without it" in again.stderr
        res = run_cli("result", str(job), "--json")
        assert json.loads(res.stdout) == [11, 12, 13, 14]
    else:
        assert again.returncode == 2, again.stderr
        assert "cannot write the job's log" in again.stderr
        assert _status(job)["state"] == "FAILED"  # the first run's end, as it was


def test_client_run_from_a_removed_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook whose folder was removed runs a program of the default working_dir ('./').
    On c590a0b a bare FileNotFoundError (no path, no hint) from Program.path()."""
    from qshpc import LocalClient, Program

    gone = tmp_path / "nb"
    gone.mkdir()
    (gone / "p.py").write_text("from qshpc import save_result\nsave_result(1)\n")
    monkeypatch.chdir(gone)
    program = Program(title="t", entrypoint="p.py")
    shutil.rmtree(gone)
    with pytest.raises(UserError, match="the working directory was removed"):
        LocalClient(workers=0).run(program)


SLOW = (PROGRAMS / "slow_40.py").read_text()


@pytest.mark.mpi
@pytest.mark.parametrize("nohup", [False, True])
def test_terminal_hangup(tmp_path: Path, qshpc_home: Path, nohup: bool) -> None:
    """The terminal of ``qshpc run`` closes (an ssh session lost): SIGHUP to its process
    group. On c590a0b the command died of it, mpiexec too (and the ranks with it): the
    job stayed RUNNING, then read FAILED 'the job's processes ended without finalizing
    the store', no word of why. Now: CANCELED, 'received SIGHUP', the finished tasks'
    results kept, exit 129. Under nohup (SIGHUP ignored) the job runs on."""
    import signal

    prog = tmp_path / "slow.py"
    prog.write_text(SLOW)
    cmd = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "2"]

    proc = start_cli(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=ignore_sighup if nohup else None,
    )
    wait_succeeded(qshpc_home, proc, 4)
    os.killpg(proc.pid, signal.SIGHUP)
    out, _ = proc.communicate(timeout=90)
    status = _status(job_dir_of(qshpc_home))
    if nohup:
        assert proc.returncode == 0, out
        assert status["state"] == "SUCCEEDED"
        return
    assert proc.returncode == 128 + signal.SIGHUP, out
    assert status["state"] == "CANCELED", status
    assert "SIGHUP" in str(status["error"])
    counts = status["task_counts"]
    assert isinstance(counts, dict) and counts["SUCCEEDED"] >= 4
    assert not _processes_with(str(qshpc_home))


@pytest.mark.mpi
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_output_to_a_full_disk(tmp_path: Path, qshpc_home: Path) -> None:
    """``qshpc run chatty.py > FILE`` on a full disk (/dev/full: every write is ENOSPC). On
    c590a0b the launcher's output thread died of it and the job hung for good, as with a
    reader that left; now the output is kept in the job's logs and the job ends."""
    prog = tmp_path / "chatty.py"
    prog.write_text(CHATTY)
    cmd = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "1"]
    with open("/dev/full", "wb") as full, open(tmp_path / "err", "wb") as err:
        proc = start_cli(cmd, stdout=full, stderr=err)
    assert _ended(proc) == 0, (tmp_path / "err").read_text()[-2000:]
    job = job_dir_of(qshpc_home)
    assert _status(job)["state"] == "SUCCEEDED"
    assert (job / "logs" / "rank-0.out").read_text().count(" 59999") == 2
