"""Job.wait on a job this client started wakes when the launcher exits, not at its next poll."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from qshpc.client.job import _wait_for_exit


def test_wait_for_exit_returns_when_the_process_ends() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    t0 = time.monotonic()
    _wait_for_exit(proc, 30.0)
    assert time.monotonic() - t0 < 20  # woken by the exit, not by the 30 s timeout
    assert proc.wait(timeout=5) == 0


def test_wait_for_exit_returns_at_the_timeout() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _wait_for_exit(proc, 0.2)
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_wait_for_exit_of_a_reaped_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    _wait_for_exit(proc, 5.0)  # returns at once


def test_wait_reads_the_store_only_at_its_longest_pause_while_the_launcher_runs(
    tmp_path: Path,
) -> None:
    """A look reads the whole meta (20-50 ms of CPU for 512 tasks): with the launcher's
    exit to wake it, ``wait`` no longer looks at 0.05, 0.125, 0.24 ... s (the CPU came
    from the job's own ranks on a small machine, session 14), and still returns at the exit."""
    from qshpc.client.job import Job
    from qshpc.store import create_job

    job_dir = tmp_path / "job"
    create_job(job_dir, {"id": "job", "created": time.time()}, {})
    ends = (
        "import sys, time; from pathlib import Path; from qshpc.jobs.paths import mark_terminal; "
        "time.sleep(1.5); mark_terminal(Path(sys.argv[1]), 'CANCELED', 'stopped')"
    )
    proc = subprocess.Popen([sys.executable, "-c", ends, str(job_dir)])
    looks: list[float] = []

    class Counted(Job):
        def store_meta(self, verify: bool = False, deep: bool = False) -> dict[str, Any]:
            looks.append(time.monotonic())
            return super().store_meta(verify, deep)

    t0 = time.monotonic()
    try:
        assert Counted(job_dir, proc).wait(poll=0.2) == "CANCELED"
    finally:
        proc.kill()
        proc.wait()
    took = time.monotonic() - t0
    # at the start, after each longest pause (1 s), at the exit: the back-off made 9
    assert len(looks) <= 4, [round(t - t0, 2) for t in looks]
    assert took < 15  # woken by the exit


def test_wait_with_a_timeout_looks_at_the_deadline(tmp_path: Path) -> None:
    from qshpc.client.job import Job
    from qshpc.store import create_job

    job_dir = tmp_path / "job"
    create_job(job_dir, {"id": "job", "created": time.time()}, {})
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    t0 = time.monotonic()
    try:
        with pytest.raises(TimeoutError, match=r"still QUEUED after 0\.5 s"):
            Job(job_dir, proc).wait(timeout=0.5, poll=2)  # its longest pause: 10 s
        assert time.monotonic() - t0 < 5
    finally:
        proc.kill()
        proc.wait()
