"""A job has one writer: runs and resumes of the same job, at the same time (issue 17).

Real processes throughout: ``qshpc run`` twice on one ``--job-dir``, two
``--resume`` at once, a killed run's lock taken over, and racing processes
on the lock itself. On the main of 2026-12-01 both runs started: tasks ran
twice, one run died in h5py, the other printed SUCCEEDED over a FAILED store.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qshpc.store.lock import HOLDER_FILE, LOCK_FILE, JobLock, JobLockedError, read_holder
from tests.conftest import job_dir_of, run_cli

SLOW = """
import os, time
from qshpc import distribute_task, get, save_result

@distribute_task()
def f(x):
    gate = os.environ.get("GATE")  # a task waits until the test creates this file
    while gate and not os.path.exists(gate):
        time.sleep(0.05)
    time.sleep(float(os.environ.get("TASK_S", "0.25")))
    if os.environ.get("FAIL_AT") == str(x):
        raise ValueError("planned failure")
    return x * x

save_result(get([f(i) for i in range(int(os.environ.get("TASKS", "12")))]))
"""


def program(tmp_path: Path) -> Path:
    path = tmp_path / "slow.py"
    path.write_text(SLOW)
    return path


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "qshpc", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "QSHPC_PROGRESS_S": "0", **(env or {})},
    )  # fmt: skip


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def wait_done(job: Path, n: int, timeout: float = 120) -> None:
    """Until the store holds ``n`` task records."""
    deadline = time.monotonic() + timeout
    while executions(job) < n:
        assert time.monotonic() < deadline, f"{job} never held {n} records"
        time.sleep(0.1)


def records(job: Path) -> list[dict[str, object]]:
    out = run_cli("status", str(job), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def executions(job: Path) -> int:
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        return len(r.tasks())


@pytest.mark.parametrize("workers", ["0", "2"])
def test_second_run_on_the_same_job_dir_is_refused(tmp_path: Path, workers: str) -> None:
    job = tmp_path / "job"
    # still running when the second run starts: its tasks wait for the gate, opened once
    # the second run was refused (was 80 tasks of 0.25 s, 20 s with --workers 0, that a
    # slow start of the second run could outlast and that made each case 12-21 s)
    gate = tmp_path / "gate"
    long = {"TASKS": "80", "TASK_S": "0", "GATE": str(gate)}
    first = start(
        "run", str(program(tmp_path)), "--workers", workers, "--job-dir", str(job), env=long
    )
    wait_for(job / HOLDER_FILE)
    holder = read_holder(job)
    assert holder is not None
    second = run_cli("run", str(program(tmp_path)), "--workers", workers, "--job-dir", str(job))
    assert second.returncode == 2, second
    line = second.stderr.strip()
    assert len(line.splitlines()) == 1 and "is already running" in line
    assert f"host {socket.gethostname()}, pid {holder.pid}" in line
    assert first.poll() is None  # the first run was running all along
    gate.touch()
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert executions(job) == 80  # every task ran once
    res = run_cli("result", str(job), "--json")
    assert json.loads(res.stdout) == [i * i for i in range(80)]
    assert not (job / LOCK_FILE).exists() and not (job / HOLDER_FILE).exists()
    # once it ended, the same --job-dir is a finished job: resume it, not run it again
    again = run_cli("run", str(program(tmp_path)), "--workers", "0", "--job-dir", str(job))
    assert again.returncode == 2 and "already ran (SUCCEEDED)" in again.stderr
    assert "--resume" in again.stderr


@pytest.mark.mpi
def test_two_resumes_at_once_one_runs(tmp_path: Path, qshpc_home: Path) -> None:
    prog = program(tmp_path)
    failed = run_cli("run", str(prog), "--workers", "0", env={"FAIL_AT": "6", "TASK_S": "0"})
    assert failed.returncode == 1
    job = job_dir_of(qshpc_home)
    both = [start("run", str(prog), "--resume", job.name, "--workers", "2") for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in both]
    codes = sorted(p.returncode for p in both)
    assert codes == [0, 2], outs
    refused = next(err for p, (_, err) in zip(both, outs, strict=True) if p.returncode == 2)
    assert "is already running" in refused and "Traceback" not in refused
    assert json.loads(run_cli("result", job.name, "--json").stdout) == [i * i for i in range(12)]
    # run 1 stored tasks 0-5 (and 7-11 ran too: all were submitted at once), and the
    # one resume that ran did only what was missing: no task succeeded twice
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        ok = [t["task_id"] for t in r.tasks() if t["state"] == "SUCCEEDED"]
    assert sorted(ok, key=int) == [str(i) for i in range(12)]


def test_killed_run_lock_is_taken_over(tmp_path: Path, qshpc_home: Path) -> None:
    prog = program(tmp_path)
    first = start("run", str(prog), "--workers", "0", env={"TASK_S": "0.5"})
    deadline = time.monotonic() + 60
    while not (qshpc_home / "jobs").is_dir() or not any((qshpc_home / "jobs").iterdir()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    job = job_dir_of(qshpc_home)
    wait_for(job / HOLDER_FILE)
    wait_done(job, 2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (job / LOCK_FILE).exists()  # a SIGKILL leaves the lock behind
    again = run_cli("run", str(prog), "--resume", job.name, "--workers", "0", timeout=120)
    assert again.returncode == 0, again.stderr
    assert "reused from the store" in again.stdout
    assert json.loads(run_cli("result", job.name, "--json").stdout) == [i * i for i in range(12)]


def test_lock_is_exclusive_under_racing_processes(tmp_path: Path) -> None:
    """Six processes take the lock 15 times each: never two holders at once."""
    job = tmp_path / "job"
    job.mkdir()
    log = tmp_path / "turns.log"
    child = Path(__file__).with_name("lock_child.py")
    procs = [
        subprocess.Popen([sys.executable, str(child), str(job), str(log), "15"]) for _ in range(6)
    ]
    for p in procs:
        assert p.wait(timeout=240) == 0
    lines = log.read_text().split()
    events = list(zip(lines[::2], lines[1::2], strict=True))
    assert len(events) == 6 * 15 * 2
    for (e1, p1), (e2, p2) in zip(events[::2], events[1::2], strict=True):
        assert (e1, e2) == ("enter", "leave") and p1 == p2, "two holders at once"


def test_stale_lock_is_broken_once_by_racing_takers(tmp_path: Path) -> None:
    """A dead holder's lock, six processes at once: they take turns, none shares it."""
    job = tmp_path / "job"
    job.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claim = job / f"{LOCK_FILE}|{socket.gethostname()}|{dead.pid}|1"
    claim.write_text(str(claim))
    os.link(claim, job / LOCK_FILE)
    log = tmp_path / "turns.log"
    child = Path(__file__).with_name("lock_child.py")
    procs = [
        subprocess.Popen([sys.executable, str(child), str(job), str(log), "3"]) for _ in range(6)
    ]
    for p in procs:
        assert p.wait(timeout=240) == 0
    lines = log.read_text().split()
    for i in range(0, len(lines), 4):
        assert lines[i] == "enter" and lines[i + 2] == "leave" and lines[i + 1] == lines[i + 3]
    assert not claim.exists()  # the dead holder's claim file went with its lock


def test_lock_held_on_another_host_is_kept_until_it_expires(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    claim = job / f"{LOCK_FILE}|node-42|4242|1"
    claim.write_text(str(claim))
    os.link(claim, job / LOCK_FILE)
    future = time.time() + 60  # its holder refreshed it a moment ago
    os.utime(claim, (future, future))
    (job / HOLDER_FILE).write_text(
        json.dumps({"host": "node-42", "pid": 4242, "slurm_job": "777", "since": time.time()})
    )
    with pytest.raises(JobLockedError, match=r"host node-42, pid 4242, Slurm job 777"):
        JobLock(job).acquire()
    past = time.time() - 30  # not refreshed for a lifetime: that node is gone
    os.utime(claim, (past, past))
    lock = JobLock(job).acquire()
    holder = read_holder(job)
    assert holder is not None and holder.pid == os.getpid()
    lock.release()
    assert not (job / LOCK_FILE).exists()


def test_requeued_slurm_run_takes_over_its_previous_run(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    claim = job / f"{LOCK_FILE}|node-7|4242|1"
    claim.write_text(str(claim))
    os.link(claim, job / LOCK_FILE)
    future = time.time() + 60
    os.utime(claim, (future, future))
    info = {"host": "node-7", "pid": 4242, "slurm_job": "99", "slurm_restarts": 0}
    (job / HOLDER_FILE).write_text(json.dumps(info))
    with pytest.raises(JobLockedError):  # the same job, not requeued: its run is alive
        JobLock(job, batch={"SLURM_JOB_ID": "99", "SLURM_RESTART_COUNT": "0"}).acquire()
    JobLock(job, batch={"SLURM_JOB_ID": "99", "SLURM_RESTART_COUNT": "1"}).acquire().release()


def test_a_writer_whose_lock_was_taken_over_never_replaces_job_h5(tmp_path: Path) -> None:
    """A run frozen past its lock's lifetime (SIGSTOP, a stuck node) wakes after a takeover."""
    from qshpc.errors import StoreError
    from qshpc.store import JobWriter, TaskRecord, create_job

    job = tmp_path / "job"
    create_job(job, {"id": "j", "created": 1.0}, {})
    lock = JobLock(job).acquire()
    writer = JobWriter.open(job, {"mpi_size": 1, "ranks": [], "started": 1.0})
    writer.lock = lock
    record = TaskRecord("0", "k0", "m.f", "SUCCEEDED", 1, 0, "h", 1.0, 2.0, 3.0, result=1)
    writer.append_task(record)
    writer.commit()
    (job / LOCK_FILE).unlink()  # the next run judged this one dead and broke its lock
    other = JobLock(job).acquire()
    before = (job / "job.h5").read_bytes()
    with pytest.raises(StoreError, match="taken by another run"):
        writer.finalize("SUCCEEDED")
    assert (job / "job.h5").read_bytes() == before
    other.release()
    lock.release()


def test_rm_and_gc_keep_an_ended_job_a_resume_holds(tmp_path: Path, qshpc_home: Path) -> None:
    """A resume of an ended job holds its lock before its store says RUNNING: rm and gc keep it."""
    from qshpc.store.lock import JobLock

    prog = tmp_path / "ok.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 0, out.stderr
    job = job_dir_of(qshpc_home)
    lock = JobLock(job, "qshpc run --resume (test)").acquire()
    try:
        rm = run_cli("rm", job.name)
        assert rm.returncode == 2 and "is RUNNING" in rm.stderr, rm.stderr
        gc = run_cli("gc", "--older-than", "0s")
        assert gc.returncode == 0 and "kept 1 running" in gc.stdout, gc.stdout + gc.stderr
        assert (job / "job.h5").is_file()
    finally:
        lock.release()
    assert run_cli("rm", job.name).returncode == 0 and not job.exists()
