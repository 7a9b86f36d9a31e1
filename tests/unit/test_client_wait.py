"""Job.wait on a job this client started wakes when the launcher exits, not at its next poll."""

from __future__ import annotations

import subprocess
import sys
import time

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
