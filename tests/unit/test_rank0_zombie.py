"""A job's rank 0 that is a zombie (killed, not reaped) is dead to ``qshpc status``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from qshpc.client.job import _rank0_alive


def test_a_zombie_rank0_is_not_alive() -> None:
    """``os.kill(pid, 0)`` succeeds on a zombie: a rank 0 killed with its launcher and not yet
    reaped (in a container whose first process reaps no orphans, never) kept its job RUNNING."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # exited, not reaped: a zombie
        with open(f"/proc/{child.pid}/stat", "rb") as f:
            if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                break
        time.sleep(0.01)
    meta = {"ranks": [{"rank": 0, "host": socket.gethostname(), "pid": child.pid}]}
    try:
        os.kill(child.pid, 0)  # what the check used to rely on: it succeeds
        assert not _rank0_alive(meta)
        assert _rank0_alive(
            {"ranks": [{"rank": 0, "host": socket.gethostname(), "pid": os.getpid()}]}
        )
        assert _rank0_alive({"ranks": [{"rank": 0, "host": "elsewhere", "pid": child.pid}]})
    finally:
        child.wait()
