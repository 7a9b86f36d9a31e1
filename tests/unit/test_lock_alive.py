"""A lock's holder is alive only while its process runs: a killed, unreaped one is not."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from qshpc.store.lock import pid_alive


def test_a_zombie_holds_nothing() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # killed, not reaped: a zombie; a resume right after a kill must not wait for it
        assert not pid_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid)
