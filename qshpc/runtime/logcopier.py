"""A rank's log copier: ``python -I -S logcopier.py ECHO`` (see :class:`qshpc.runtime.logtee.LogTee`).

Started by the rank through ``sh -c '... &'``, so that it is no child of the rank's (a
program's ``while True: os.wait()`` until ECHILD waited for it, for ever: it ends after
the rank).

Started by the rank (``posix_spawn``) with these descriptors: 1 and 2 the rank's
original stdout and stderr, 3 and 4 the pipes the rank's stdout and stderr now
write into, 5 the pipe of its crash reports (faulthandler: to the log only), 6
the log file (``O_APPEND``), 7 its lifeline (read: ends when the rank does; a
``b"F"`` asks to copy what was written so far and answer), 8 its answers to the
rank (``b"E"`` copied, and nobody else writes the pipes; ``b"L"`` copied, a
child of the rank still holds them; ``b"D"``, once: the log could not be
written, a full disk). It copies each pipe into the log and (ECHO ``1``) to the
terminal as it comes, and ends once the rank is gone and the pipes are copied:
what a rank printed just before it died is not lost with it.

Only the standard library, no ``site``: it starts in a few milliseconds.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import sys

_OUT, _ERR, _CRASH, _LOG, _LIFE, _BACK = 3, 4, 5, 6, 7, 8
#: Signals the copier ignores (a stop sent to the rank's process group, Slurm's signal to
#: every process of a step): it ends with its rank, once the rank's output is copied.
IGNORED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")


def main(echo: bool) -> None:
    sigs = [getattr(signal, name) for name in IGNORED if hasattr(signal, name)]
    for sig in sigs:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs)  # (blocked by the rank until here)
    try:
        os.closerange(_BACK + 1, os.sysconf("SC_OPEN_MAX"))  # the rank's inheritable leftovers
    except (OSError, ValueError):
        pass
    copy({_OUT: 1 if echo else -1, _ERR: 2 if echo else -1, _CRASH: -1}, _LIFE, _LOG, _BACK)


def copy(streams: dict[int, int], life: int, log: int, back: int) -> None:
    """Copy each pipe of ``streams`` (read end: where to echo it, -1 nowhere) into ``log``
    until ``life`` ends, answering ``back`` (also run in a thread of the rank's, by
    :class:`qshpc.runtime.logtee.LogTee`, where a copier process would be its child)."""
    for fd in (*streams, life):
        os.set_blocking(fd, False)
    poller = select.poll()
    for fd in (*streams, life):
        poller.register(fd, select.POLLIN)
    full = [False]
    alive = True
    while alive:
        try:
            poller.poll()
        except InterruptedError:
            continue
        try:
            said = os.read(life, 64)
        except BlockingIOError:
            said = b"-"
        except OSError:
            said = b""
        alive = bool(said)
        for r in list(streams):  # after the lifeline: what was written before its word
            if not copy_out(r, streams[r], full, log, back):
                poller.unregister(r)
                del streams[r]
        if b"F" in said:
            write_all(back, b"L" if streams else b"E")


def copy_out(r: int, echo: int, full: list[bool], log: int = _LOG, back: int = _BACK) -> bool:
    """Copy what pipe ``r`` holds now; False once it ended."""
    while True:
        try:
            data = os.read(r, 65536)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        try:
            write_all(log, data)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT) and not full[0]:
                full[0] = True
                try:
                    write_all(back, b"D")
                except OSError:
                    pass
        if echo >= 0:
            try:
                write_all(echo, data)
            except OSError:
                pass


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[n:]


if __name__ == "__main__":
    try:
        main(sys.argv[1:2] == ["1"])
    except BaseException:
        os._exit(1)
    os._exit(0)
