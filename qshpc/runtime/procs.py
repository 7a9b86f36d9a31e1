"""Process and socket helpers of the ranks' start, the standard library only.

What the MPI start (:mod:`qshpc.runtime.mpi`), the fork server
(:mod:`qshpc.runtime.forkserver`) and the launcher need alike, before qshpc's
other modules load: who is at the other end of a Unix socket, a connect that
waits for its listener, whether a distribution is installed, a signal at the
parent's death, a process's state and parent from ``/proc``.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (imported where used: `python -m qshpc` loads this module for any command)
    import socket

#: Linux's ``prctl`` option: a signal to this process when its parent ends.
_PR_SET_PDEATHSIG = 1


def peer_cred(sock: socket.socket) -> tuple[int, int]:
    """``(pid, uid)`` of the process at the other end of the Unix socket ``sock``."""
    import socket
    import struct

    cred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, _ = struct.unpack("3i", cred)
    return pid, uid


def connect_within(address: str, deadline: float) -> socket.socket | None:
    """A Unix stream socket connected to ``address``, retrying (1 ms, doubling to 10 ms)
    while nothing listens there, until ``deadline`` (``time.monotonic``); None then."""
    import socket
    import time

    pause = 0.001
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(address)
            return sock
        except (ConnectionRefusedError, FileNotFoundError):
            sock.close()
        except BaseException:
            sock.close()
            raise
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.01)


def installed(prefix: str) -> bool:
    """Whether a distribution whose ``*.dist-info`` folder starts with ``prefix`` is on
    ``sys.path`` (about 1 ms; ``importlib.metadata`` takes about 20 ms to say the same)."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:  # a zip, a path hook, a folder that is gone
            continue
        if any(n.startswith(prefix) and n.endswith(".dist-info") for n in names):
            return True
    return False


def die_with_parent(sig: int) -> None:
    """``sig`` to this process when its parent ends (Linux's PR_SET_PDEATHSIG); nothing
    where the C library has no ``prctl``."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        pass


def stat_fields(pid: int) -> list[bytes]:
    """The fields of ``/proc/PID/stat`` after the command's name: ``[0]`` the state
    (``R``, ``S``, ``T`` stopped, ``Z`` zombie...), ``[1]`` the parent's pid, and so on;
    empty when the process is gone or unreadable. Plain system calls only: a fork of a
    process with threads (the start watchdog) may call it."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        return data[data.rindex(b")") + 2 :].split()
    except (OSError, ValueError):
        return []


__all__ = ["connect_within", "die_with_parent", "installed", "peer_cred", "stat_fields"]
