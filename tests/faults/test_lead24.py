"""Session 24, lead: a signal ``qshpc run`` was started ignoring stays ignored (review28 F15)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qshpc import open_job
from tests.conftest import job_dir_of, run_cli, start_cli, wait_succeeded

pytestmark = pytest.mark.mpi

PROGRAM = """\
import time
from qshpc import distribute_task, get, save_result

@distribute_task()
def slow(i):
    time.sleep(0.4)
    return i

save_result(get([slow(i) for i in range(8)]))
"""


def _ignore_sigint() -> None:
    """A ``preexec_fn``: started as a script's background job is (``qshpc run p.py &``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(("ignored", "workers"), [(True, "2"), (True, "0"), (False, "2")])
def test_sigint_ignored_where_qshpc_run_started_stays_ignored(
    tmp_path: Path, qshpc_home: Path, ignored: bool, workers: str
) -> None:
    """A background job of a script starts with SIGINT ignored: a Ctrl-C meant for the
    script cancelled every job it had started so (review28 F15). Ignored, it runs on;
    not ignored, a SIGINT cancels it as before. (A SIGINT to the whole process group still
    reaches mpiexec, which hands it to the ranks: it cancels, as before.)"""
    prog = tmp_path / "slow.py"
    prog.write_text(PROGRAM)
    proc = start_cli(
        [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", workers],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_ignore_sigint if ignored else None,
    )
    try:
        wait_succeeded(qshpc_home, proc, 1)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    job = open_job(job_dir_of(qshpc_home))
    if ignored:
        assert proc.returncode == 0, err[-2000:]
        assert job.status() == "SUCCEEDED"
        assert job.result() == list(range(8))
    else:
        assert proc.returncode == 130, err[-2000:]
        assert job.status() == "CANCELED"


NAMESPACED = """\
import time
from qshpc import distribute_task, get, save_result

@distribute_task()
def slow(i):
    time.sleep(6)
    return i

save_result(get([slow(i) for i in range(2)]))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root")
def test_status_from_outside_a_pid_namespace_leaves_the_run_alone(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """review33 F2: a run in a pid namespace that keeps the host's name (apptainer
    --containall, unshare --pid) recorded pids of its own namespace under the host's name;
    one `qshpc status` from outside judged rank 0 gone (FAILED) and the run lost its lock."""
    prog = tmp_path / "slow.py"
    prog.write_text(NAMESPACED)
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "qshpc", "run",
         str(prog), "--workers", "1"],
        env={**os.environ, "QSHPC_PROGRESS_S": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_running(qshpc_home, proc)
        job = open_job(job_dir_of(qshpc_home))
        assert job.status() == "RUNNING"
        out = run_cli("status", job.job_id)
        assert "RUNNING" in out.stdout.splitlines()[0], out.stdout + out.stderr
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert job.status() == "SUCCEEDED" and job.result() == [0, 1]


def wait_running(home: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Wait until the job under ``home`` says RUNNING (its ranks recorded)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if open_job(job_dir_of(home)).status() == "RUNNING":
                time.sleep(1.0)  # (its tasks under way)
                return
        except Exception:  # not created yet
            pass
        time.sleep(0.2)
