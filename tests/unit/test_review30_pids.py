"""review30 F1: a job's rank 0 is its pid AND its start time; a pid now another process's
(reused once the rank was killed) is not the job's, and is never signalled.

The process is real; only its recorded start time differs, which is what a reused pid
looks like (the forced reuse itself, as root: tests/mpi/test_review30.py).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from qshpc.client.job import _rank0_alive, _rank0_pid, _signal_rank0
from qshpc.store.lock import process_is, start_ticks


@pytest.fixture
def other() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process (it handles SIGTERM by default: it would die of it)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def _meta(pid: int, ticks: int | None, host: str | None = None) -> dict[str, object]:
    rank = {"rank": 0, "host": host or socket.gethostname(), "pid": pid}
    if ticks is not None:
        rank["start_ticks"] = ticks
    return {"state": "RUNNING", "ranks": [rank]}


def test_a_pid_whose_start_time_differs_is_not_the_jobs(
    other: subprocess.Popen[bytes],
) -> None:
    ticks = start_ticks(other.pid)
    assert ticks is not None
    assert process_is(other.pid, ticks) and process_is(other.pid, None)
    assert not process_is(other.pid, ticks + 1)
    reused = _meta(other.pid, ticks + 1)  # rank 0 started at another time: not this process
    assert not _rank0_alive(reused)
    assert _rank0_pid(reused) is None
    import signal

    assert _signal_rank0(reused, signal.SIGTERM) is False
    time.sleep(0.2)
    assert other.poll() is None, "the unrelated process was signalled"


def test_the_jobs_own_rank0_and_an_old_record_are_as_before(
    other: subprocess.Popen[bytes],
) -> None:
    """Its own start time: alive and signalled; an older job (no start time recorded): the
    pid alone, as before; another host's rank 0: assumed alive, never signalled."""
    import signal

    assert _rank0_alive(_meta(other.pid, None)) and _rank0_pid(_meta(other.pid, None))
    assert not _signal_rank0(_meta(other.pid, 1, host="elsewhere"), signal.SIGTERM)
    assert _rank0_alive(_meta(other.pid, 1, host="elsewhere"))
    own = _meta(other.pid, start_ticks(other.pid))
    assert _rank0_alive(own) and _rank0_pid(own) == other.pid
    assert _signal_rank0(own, signal.SIGTERM)
    assert other.wait(timeout=30) == -signal.SIGTERM
    assert not _rank0_alive(own) and not _signal_rank0(own, signal.SIGTERM)
