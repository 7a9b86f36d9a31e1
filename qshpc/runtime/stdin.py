"""Rank 0 reads the caller's stdin itself, and only as far as the program reads it.

``mpiexec`` reads its stdin at once and forwards it to rank 0, whether the
program reads it or not: ``ls *.py | while read f; do qshpc run "$f"; done``
ran only the first program, as the first ``qshpc run`` ate the rest of the list
(review38 F7; ``python prog.py`` and ``--workers 0`` leave it). When the
launcher's stdin is a pipe or a file, ``qshpc run`` gives mpiexec /dev/null
instead and names itself in ``QSHPC_LAUNCH_STDIN``; rank 0, on the same host,
opens the launcher's stdin through ``/proc`` (the same pipe; a file at the
launcher's offset) and reads it as ``python prog.py`` would: ``input()`` gets
what is piped in, and a program that never reads takes nothing. A terminal (or
anything else: a socket) still goes through mpiexec, as before. (A file is opened
anew: what rank 0 reads of it does not move the launcher's offset, so the caller's
next command reads it again; docs/running-locally.md says so, review41 F4.)
"""

from __future__ import annotations

import os
import stat

from qshpc import settings


def for_mpiexec(env: dict[str, str]) -> int | None:
    """The stdin to start mpiexec with: None (this process's own, as before), or
    ``subprocess.DEVNULL`` with ``env`` naming this process for rank 0 (:func:`take`)."""
    import socket
    import subprocess
    import sys

    if sys.stdin is None:  # closed at the start (`<&-`): 0 may name a file of this process's
        return None
    try:
        mode = os.fstat(0).st_mode
    except OSError:  # closed: mpiexec gets what it gets, as before
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISREG(mode)) or os.isatty(0):
        return None
    from qshpc.store.lock import PIDNS, start_ticks

    pid = os.getpid()  # with its start time and pid namespace: one process, not a reused pid
    ticks, ns = start_ticks(pid), PIDNS
    env[settings.LAUNCH_STDIN.name] = f"{socket.gethostname()}:{pid}:{ticks or ''}:{ns or ''}"
    return subprocess.DEVNULL


def take(word: str) -> bool:
    """In rank 0: make fd 0 the stdin of the launcher that ``word`` (``host:pid:ticks:pidns``,
    from :func:`for_mpiexec`) names, when it runs on this host, in this pid namespace, and
    is still that process (its start time: a pid is reused); whether it did."""
    import socket

    from qshpc.store.lock import process_is, same_pid_space

    host, pid, ticks, ns = [*word.rsplit(":", 3), "", "", ""][:4]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if (ns and not ns.isdigit()) or (ticks and not ticks.isdigit()):  # not this run's word
        return False
    if not same_pid_space(int(ns) if ns.isdigit() else None):  # another namespace's pid
        return False
    if ticks.isdigit() and not process_is(int(pid), int(ticks)):  # another process now
        return False
    try:  # (O_NONBLOCK: never wait in the open, whatever it is by now)
        fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # the launcher is gone, or /proc is not there
        return False
    try:
        os.set_blocking(fd, True)
        if stat.S_ISREG(os.fstat(fd).st_mode):  # a file: from where the launcher is in it
            os.lseek(fd, _offset(pid), os.SEEK_SET)
        os.dup2(fd, 0)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _offset(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/fdinfo/0", "rb") as f:
            for line in f:
                if line.startswith(b"pos:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0
