"""hunt14a: ``qshpc submit --resume`` under concurrency, damaged files, arrays; the
recorded Slurm cluster.

Real processes throughout: a second process holds the resume lock as a second shell's
``qshpc submit --resume`` would, and is killed (-9) as one killed mid-resume is.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

FAILS = "raise RuntimeError('boom')\n"

HOLDS = """
import sys, time
from pathlib import Path
from qshpc.store.lock import step_lock
with step_lock(Path(sys.argv[1]), "qshpc submit --resume"):
    print("held", flush=True)
    time.sleep(60)
"""


def _failed_job(tmp_path: Path) -> Path:
    prog = tmp_path / "fails.py"
    prog.write_text(FAILS)
    out = run_cli("run", str(prog), "--workers", "0", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    (job,) = (tmp_path / "qshpc-home" / "jobs").iterdir()
    return job


def _holder(job: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDS, str(job)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_resume_of_a_job_being_resumed_is_refused_and_a_killed_one_is_taken_over(
    tmp_path: Path,
) -> None:
    job = _failed_job(tmp_path)
    proc = _holder(job)
    try:
        # On 14ae6e2 two shells resuming one job each sbatched a Slurm job (seen on the
        # dev cluster: 729 and 730 for one job; 730's run was refused by the job lock, and
        # the files named one job, the marker the other).
        out = run_cli("submit", "--resume", job.name)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert f"being resumed by another process (host {os.uname().nodename}" in out.stderr
        assert f"pid {proc.pid}" in out.stderr, out.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert (job / "job.resume.lock").exists()  # the killed resume's lock is left
    # ... and taken over at once: the next resume goes on to look at the job (a local one).
    out = run_cli("submit", "--resume", job.name)
    assert out.returncode == 2 and "not submitted with `qshpc submit`" in out.stderr, out.stderr
    assert not (job / "job.resume.lock").exists()


def test_resume_of_a_job_a_live_run_holds_is_refused(tmp_path: Path) -> None:
    from qshpc.store.lock import JobLock

    job = _failed_job(tmp_path)
    # The store says FAILED (the last run's end) while a run holds the job (a
    # `qshpc run --resume` in the user's own batch script, starting): a new Slurm job's
    # run would be refused by the job lock and fail.
    with JobLock(job, "qshpc run --resume"):
        out = run_cli("submit", "--resume", job.name)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert f"job {job.name} is being run (host" in out.stderr, out.stderr


def test_resume_of_an_array_id_names_its_elements(tmp_path: Path) -> None:
    job = _failed_job(tmp_path)
    array = "20261203-120000-abcdef"
    for i in range(2):  # as qshpc submit --array names them
        shutil.copytree(job, job.parent / f"{array}-{i}")
        (job.parent / f"{array}-{i}" / "slurm_job_id").write_text(f"4242_{i}\n")
    for asked in (array, "4242"):  # qshpc's array id, and Slurm's
        out = run_cli("submit", "--resume", asked)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        # Was "no job '...'" on 14ae6e2, though `qshpc list --array` knows the id.
        assert "is a job array of 2 element(s)" in out.stderr, out.stderr
        assert f"`qshpc list --array {array}`" in out.stderr, out.stderr
    out = run_cli("submit", "--resume", "4243")
    assert out.returncode == 2 and "no job '4243'" in out.stderr, out.stderr


def test_an_unreadable_env_vars_file_refuses_the_resume(tmp_path: Path) -> None:
    from qshpc.errors import UserError
    from qshpc.submit.submission import ENV_FILE, SUBMITIT_DIR, _read_env_vars

    job = tmp_path / "job"
    (job / SUBMITIT_DIR).mkdir(parents=True)
    path = job / SUBMITIT_DIR / ENV_FILE
    assert _read_env_vars(job) == {}  # none were given
    path.write_text(json.dumps({"TOKEN": "x"}))
    assert _read_env_vars(job) == {"TOKEN": "x"}
    # On 14ae6e2 each of these resumed the program without its variables, silently.
    for text in ('{"TOKEN": "x"', '["x"]', '{"TOKEN": 3}', "\udcff"):
        path.write_text(text, errors="surrogateescape")
        with pytest.raises(UserError, match=r"env_vars file .* (cannot be read|is damaged)"):
            _read_env_vars(job)
    path.write_text("{}")
    path.chmod(0)
    if os.access(path, os.R_OK):
        return  # root reads it anyway
    with pytest.raises(UserError, match="Permission denied"):
        _read_env_vars(job)


def test_a_failed_cluster_name_query_is_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qshpc.submit import slurm

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    # scontrol that fails (a controller timing out under load), then answers.
    scontrol.write_text("#!/bin/sh\nexit 1\n")
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SLURM_CLUSTER_NAME", raising=False)
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "hunt14a.conf"))
    assert slurm.cluster_name() is None
    scontrol.write_text("#!/bin/sh\necho 'ClusterName             = north'\n")
    time.sleep(0.01)
    # On 14ae6e2 the failure was kept for the process: every later job it submitted
    # recorded no cluster, and the other-cluster check was skipped for them.
    assert slurm.cluster_name() == "north"
    scontrol.write_text("#!/bin/sh\necho 'ClusterName = south'\n")
    assert slurm.cluster_name() == "north"  # an answer is kept
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "hunt14a-2.conf"))
    assert slurm.cluster_name() == "south"


HANGS = """
import asyncio, sys
from pathlib import Path
from qshpc import distribute_task, get, save_result

@distribute_task()
async def hang(gate):
    Path(gate).write_text("started")
    await asyncio.sleep(3600)

async def main():
    return get(hang(sys.argv[1]))

save_result(asyncio.run(main()))
"""


def test_a_cancelled_job_whose_async_task_never_returns_exits(tmp_path: Path) -> None:
    prog = tmp_path / "hangs.py"
    prog.write_text(HANGS)
    gate = tmp_path / "gate"
    proc = subprocess.Popen(
        [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "0", "--", str(gate)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        while not gate.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert gate.exists(), proc.communicate(timeout=10)[0]
        proc.send_signal(signal.SIGTERM)  # what `qshpc cancel` sends
        # On 14ae6e2 the job was recorded CANCELED and the process never exited: the
        # interpreter joined the pool thread running the task (on Slurm: the nodes held
        # until the time limit).
        out = proc.communicate(timeout=20)[0]
    finally:
        proc.kill()
    assert "CANCELED" in out, out
    assert proc.returncode != 0


def test_an_async_tasks_error_starts_at_its_own_code() -> None:
    import asyncio

    from qshpc.task.execute import AwaitedCall, run_task

    async def bad(x: int) -> None:
        raise ValueError(f"bad {x}")

    async def main() -> object:  # under a running loop: the call runs on qshpc's threads
        return run_task(AwaitedCall(bad), (1,), {}, "t0", "bad", None, 1)

    for out in (asyncio.run(main()), run_task(AwaitedCall(bad), (2,), {}, "t1", "bad", None, 1)):
        text = out.error or ""  # type: ignore[attr-defined]
        # On 14ae6e2: 9 frames of qshpc, concurrent.futures and asyncio before the task's.
        assert text.splitlines()[1].endswith(", in bad"), text
        assert "execute.py" not in text and "runners.py" not in text, text


def test_a_live_run_of_another_slurm_job_is_not_marked_by_the_recorded_jobs_end(
    tmp_path: Path,
) -> None:
    from qshpc.jobs.paths import STATUS_OVERRIDE
    from qshpc.store.lock import JobLock
    from qshpc.submit.slurm_states import SlurmView
    from qshpc.submit.state import apply

    prog = tmp_path / "dies.py"  # rank 0 killed: the store says RUNNING
    prog.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    out = run_cli("run", str(prog), "--workers", "0", cwd=tmp_path)
    assert out.returncode != 0, out.stderr
    (job,) = (tmp_path / "qshpc-home" / "jobs").iterdir()
    # A run of Slurm job 222 holds the job (a resume that started), while the job's
    # recorded id is 111, a Slurm job that ended (a second resume's, refused by the job
    # lock, whose id was written over the first's: the window hunt14a's resume lock and
    # holder check leave, or a resume killed between its sbatch and its record).
    with JobLock(job, "qshpc run --resume", {"SLURM_JOB_ID": "222"}):
        meta = {"state": "RUNNING", "slurm_job_id": "111"}
        apply(job, meta, SlurmView("FAILED", "1:0"))
        # On 14ae6e2: marked FAILED for good ("the Slurm job ended FAILED before the
        # program finished") while the run went on.
        assert meta["state"] == "RUNNING", meta
        assert "run by Slurm job 222" in str(meta.get("sub_status")), meta
        assert not (job / STATUS_OVERRIDE).exists()
    meta = {"state": "RUNNING", "slurm_job_id": "111"}
    apply(job, meta, SlurmView("FAILED", "1:0"))  # no run holds it: the ranks died
    assert meta["state"] == "FAILED" and (job / STATUS_OVERRIDE).exists(), meta


def test_cancel_waits_for_a_resume_under_way(tmp_path: Path) -> None:
    import threading

    from qshpc.client.job import open_job

    job = _failed_job(tmp_path)
    holder = _holder(job)  # a `qshpc submit --resume` between its look and its record
    asked: list[bool] = []
    cancel = threading.Thread(target=lambda: asked.append(open_job(job.name).stop(wait=0)))
    cancel.start()
    try:
        cancel.join(1.0)
        # On 14ae6e2 the cancel answered at once "already ended FAILED", and the job the
        # resume then submitted ran (seen on the dev cluster, sbatch slowed 3 s).
        assert cancel.is_alive() and not asked
    finally:
        holder.send_signal(signal.SIGKILL)  # the resume ends (here: killed)
        holder.wait(10)
    cancel.join(10)
    assert asked == [False]  # then it sees the job as the resume left it: ended


def test_small_files_beside_a_store_that_are_fifos_or_endless_read_as_none(
    tmp_path: Path,
) -> None:
    from qshpc.jobs import paths
    from qshpc.submit.state import kept_answer

    readers = {
        paths.SLURM_ID_FILE: paths.read_slurm_id,
        paths.SLURM_CLUSTER_FILE: paths.read_slurm_cluster,
        paths.RESUBMITTED_FILE: paths.read_resubmitted,
        paths.STATUS_OVERRIDE: paths.read_override,
        paths.SLURM_STATE_FILE: kept_answer,
    }
    job = tmp_path / "job"
    job.mkdir()
    for name, read in readers.items():
        # On 14ae6e2 `qshpc status` of a live Slurm job waited for good on a FIFO named
        # slurm_cluster or slurm_job_id, and read a link to /dev/zero until memory ran out.
        os.mkfifo(job / name)
        assert read(job) is None, name
        (job / name).unlink()
        (job / name).symlink_to("/dev/zero")
        assert read(job) is None, name
        (job / name).unlink()


def test_the_resume_command_a_dead_runs_error_names_works(tmp_path: Path) -> None:
    prog = tmp_path / "dies.py"  # rank 0 killed: the post-mortem names what to do
    prog.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert run_cli("run", str(prog), "--workers", "0", cwd=tmp_path).returncode != 0
    (job,) = (tmp_path / "qshpc-home" / "jobs").iterdir()
    error = json.loads(run_cli("status", job.name, "--json").stdout)["error"]
    # Was `qshpc run --resume JOB`, which typer refuses (Missing argument 'program').
    assert f"`qshpc run {prog} --resume {job.name}`" in error, error
    again = run_cli("run", str(prog), "--resume", job.name, "--workers", "0", cwd=tmp_path)
    assert "Missing argument" not in again.stderr, again.stderr


def test_a_record_of_sbatchs_answer_that_cannot_be_written_says_the_job_was_submitted(
    tmp_path: Path,
) -> None:
    import errno
    from types import SimpleNamespace

    from qshpc.errors import StoreError
    from qshpc.submit.submission import _recording

    # The disk filling between sbatch and the record (not made real here: the dev
    # cluster's nodes would need the tmpfs): was an OSError traceback.
    with pytest.raises(StoreError, match=r"Slurm job 77 was submitted .* `scancel 77`"):
        with _recording(tmp_path, SimpleNamespace(job_id="77")):
            raise OSError(errno.ENOSPC, "No space left on device")


def test_the_resume_lock_is_refreshed_while_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qshpc.store import lock

    monkeypatch.setattr(lock, "REFRESH_S", 0.05)
    path = tmp_path / lock.RESUME_FILE
    with lock.step_lock(tmp_path, "qshpc submit --resume"):
        first = path.stat().st_mtime
        time.sleep(1.2)  # flufl.lock sets whole seconds
        # A resume whose sbatch outlived the lock's 60 s lifetime (a busy controller)
        # would have lost it to a second resume.
        assert path.stat().st_mtime > first
    assert not path.exists()


def test_a_resume_lock_that_is_a_fifo_neither_blocks_nor_passes(tmp_path: Path) -> None:
    from qshpc.errors import UserError
    from qshpc.store import lock

    os.mkfifo(tmp_path / lock.RESUME_FILE)
    started = time.monotonic()
    lock.wait_step(tmp_path)  # a cancel: read as no resume under way (was: blocked)
    assert time.monotonic() - started < 2
    with pytest.raises(UserError, match="exists but names no process"):
        with lock.step_lock(tmp_path, "qshpc submit --resume"):
            pass
