"""qshpc.runtime.leave: a rank that is done leaves; a process that goes on is left alone."""

from __future__ import annotations

import threading
import time

from qshpc.runtime.leave import leave_within


def test_a_process_that_is_not_exiting_is_never_ended() -> None:
    """``qshpc run`` called in-process (typer's CliRunner in the tests, a user's own script)
    arms the watchdog too; on 97ed98c it ended the whole pytest run, exit code 0, 10 s
    later, because a test had left a thread running."""
    stop = threading.Event()
    left = threading.Thread(target=stop.wait, name="left-by-a-test")
    left.start()
    try:
        leave_within(5, 0.05)
        time.sleep(0.5)  # the watchdog has looked: this process is still here
        assert left.is_alive()
    finally:
        stop.set()
        left.join()
