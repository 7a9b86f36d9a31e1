"""Ctrl-C, SIGTERM and cancels of a local job, as users send them.

A terminal's Ctrl-C goes to the whole foreground process group (``qshpc run``
and the mpiexec it started; mpiexec passes it to every rank): here the command
runs in a session of its own and the test signals that group. The job ends
CANCELED, never FAILED, and ``qshpc run`` exits 130 after SIGINT and 143 after
SIGTERM (128 + the signal, as a shell reports a command the signal ended); the
results committed before stay readable. On main ae3c8a1 the launcher passed the
Ctrl-C to mpiexec a second time, mpiexec then killed every rank at once and the
job ended FAILED (exit 130 or 0); SIGTERM killed the workers first (FAILED).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qshpc import LocalClient, Program
from tests.conftest import PROGRAMS, job_dir_of, mpiexec, run_cli, start_cli

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(240)]


def _start(cmd: list[str]) -> subprocess.Popen[str]:
    return start_cli(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_results(home: Path, at_least: int, proc: subprocess.Popen[str]) -> Path:
    from qshpc.store import JobReader

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            job = job_dir_of(home)
            with JobReader.open(job) as r:
                if (r.meta().get("task_counts") or {}).get("SUCCEEDED", 0) >= at_least:
                    return job
        except Exception:  # not created or not readable yet
            pass
        time.sleep(0.2)
    raise AssertionError("the job never got going")


def _ended(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"still running {timeout} s after the signal:\n{out}") from None
    return proc.returncode, out


def _check_cancelled(job: Path, before: int, how: str) -> None:
    meta = json.loads(run_cli("status", str(job), "--json").stdout)
    assert meta["state"] in ("CANCELED", "FAILED"), meta
    assert f"received {how}" in meta["error"]
    assert meta["task_counts"]["SUCCEEDED"] >= before
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        assert r.task_result("0") == 0  # committed before the signal: still readable


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_ctrl_c_to_the_process_group_ends_canceled_exit_130(qshpc_home: Path, workers: int) -> None:
    cmd = [sys.executable, "-m", "qshpc", "run", str(PROGRAMS / "slow.py")]
    proc = _start([*cmd, "--workers", str(workers)])
    job = _wait_for_results(qshpc_home, 4, proc)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    code, out = _ended(proc)
    assert code == 130, out
    assert time.monotonic() - t0 < 30, out
    assert "BAD TERMINATION" not in out and "Traceback" not in out, out
    _check_cancelled(job, 4, "SIGINT")


def test_sigterm_to_qshpc_run_ends_canceled_exit_143(qshpc_home: Path) -> None:
    proc = _start([sys.executable, "-m", "qshpc", "run", str(PROGRAMS / "slow.py"), "-w", "2"])
    job = _wait_for_results(qshpc_home, 4, proc)
    proc.send_signal(signal.SIGTERM)  # the process alone (kill PID, a batch system, a client)
    code, out = _ended(proc)
    assert code == 143, out
    _check_cancelled(job, 4, "SIGTERM")


def test_ctrl_c_under_plain_mpiexec_ends_canceled(qshpc_home: Path) -> None:
    cmd = [mpiexec(), "-n", "3", sys.executable, "-m", "qshpc", "run", str(PROGRAMS / "slow.py")]
    proc = _start(cmd)
    job = _wait_for_results(qshpc_home, 4, proc)
    os.killpg(proc.pid, signal.SIGINT)
    code, out = _ended(proc)
    assert code == 130, out  # rank 0's code, passed on by mpiexec
    assert "BAD TERMINATION" not in out, out  # every rank ended cleanly
    _check_cancelled(job, 4, "SIGINT")


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_signal_while_the_ranks_start_cancels_at_once(qshpc_home: Path, name: str) -> None:
    """Every rank gets the signal just before MPI_Init (a Ctrl-C or scancel while the ranks
    import): it is remembered, rank 0 cancels the job as the program would start, exit
    128 + signal. On 2fbf896 the rank that got it during its imports died ('Aborted!',
    exit 1) and the others waited in MPI_Init or in their first exchange until the start
    watchdog (5 min by default; 2 of 8 random-delay Ctrl-Cs to `qshpc run` hung so)."""
    here = Path(__file__).parent / "signal_at_mpi_start.py"
    cmd = [mpiexec(), "-n", "3", sys.executable, str(here), name, "run", str(PROGRAMS / "slow.py")]
    proc = start_cli(
        cmd,
        env={"QSHPC_MPI_START_TIMEOUT_S": "60"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    code, out = _ended(proc, timeout=50)  # under the watchdog's 60 s
    assert code == 128 + getattr(signal, name), out
    assert "Traceback" not in out and "did not start" not in out and "BAD TERM" not in out, out
    meta = json.loads(run_cli("status", str(job_dir_of(qshpc_home)), "--json").stdout)
    assert meta["state"] == "CANCELED" and f"received {name}" in meta["error"], meta
    assert meta["task_counts"].get("SUCCEEDED", 0) == 0


def test_killing_qshpc_run_leaves_no_rank_running(qshpc_home: Path) -> None:
    """kill -9 of `qshpc run`: mpiexec gets SIGTERM (PR_SET_PDEATHSIG) and passes it on, or
    dies of its output pipe; no rank runs on, orphaned (on main, a job that printed nothing ran
    on to its end with no one to record it), and the job is not left RUNNING."""
    proc = _start([sys.executable, "-m", "qshpc", "run", str(PROGRAMS / "slow.py"), "-w", "2"])
    job = _wait_for_results(qshpc_home, 4, proc)
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 60
    left: list[str] = []
    while time.monotonic() < deadline:
        # -ww: whole command lines (under pytest, ps cuts them at 80 columns: the job's
        # path never matched, and the state was read while rank 0 was still cancelling)
        ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
        left = [line for line in ps.splitlines() if str(job) in line]
        if not left:
            break
        time.sleep(0.5)
    assert not left, left
    meta = json.loads(run_cli("status", str(job), "--json").stdout)
    assert meta["state"] in ("CANCELED", "FAILED"), meta


def test_stop_of_a_local_job_still_queued_ends_canceled(qshpc_home: Path) -> None:
    """Job.stop() at once, while the launcher is starting: CANCELED, not FAILED ('processes
    ended without finalizing the store', as on main ae3c8a1)."""
    for workers in (1, 0):
        job = LocalClient(workers=workers).run(
            Program(title="slow", entrypoint="slow.py", working_dir=str(PROGRAMS))
        )
        assert job.status() == "QUEUED"
        assert job.stop()
        assert job.wait(timeout=60) == "CANCELED"
        assert "cancel" in (job.error_message() or "")
        assert job._process is not None and job._process.poll() is not None


def test_stop_of_a_running_local_job_ends_canceled(qshpc_home: Path) -> None:
    job = LocalClient(workers=2).run(
        Program(title="slow", entrypoint="slow.py", working_dir=str(PROGRAMS))
    )
    deadline = time.monotonic() + 90
    while job.status() != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.stop()
    assert job.wait(timeout=60) == "CANCELED"
    assert job._process is not None and job._process.wait(timeout=30) == 143


def test_cancel_before_the_ranks_start_holds(qshpc_home: Path) -> None:
    """`qshpc cancel` of a QUEUED job whose launcher is elsewhere: the launcher does not
    start it (it checks before starting mpiexec, and rank 0 as the program would start)."""
    from qshpc.jobs.spec import create_program_job

    for workers in ("0", "1"):
        job_dir = create_program_job(
            Program(title="slow", entrypoint="slow.py", working_dir=str(PROGRAMS)), None, None, None
        )
        out = run_cli("cancel", str(job_dir))
        assert out.returncode == 0, out.stderr
        run = run_cli(
            "run", str(PROGRAMS / "slow.py"), "--job-dir", str(job_dir), "-w", workers, timeout=60
        )
        assert run.returncode == 143, run.stdout + run.stderr
        assert "CANCELED" in run_cli("status", str(job_dir)).stdout
    # A cancelled job stays so: another --job-dir run of it never runs it (refused, or
    # cancelled again before it starts); --resume is how to run it.
    again = run_cli("run", str(PROGRAMS / "slow.py"), "--job-dir", str(job_dir), timeout=60)
    assert again.returncode in (2, 143), again.stdout + again.stderr
    assert "CANCELED" in run_cli("status", str(job_dir)).stdout
