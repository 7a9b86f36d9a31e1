"""Copy a rank's stdout and stderr into ``logs/rank-<R>.out`` as they are written."""

from __future__ import annotations

import os
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

#: Tees whose descriptors this process still holds: a forked child lets go of them.
_live: weakref.WeakSet[LogTee] = weakref.WeakSet()
_hooked: list[bool] = []


def _after_fork_in_child() -> None:
    for tee in list(_live):
        tee._forked()


class LogTee:
    """Redirect file descriptors 1 and 2 through a pipe that a thread copies to a log file.

    The terminal (or Slurm's output file) still sees everything; the log file
    gets it as it is written, so logs are readable while the job runs.

    Args:
        path: The log file (created 0600).
        echo: Also write to the original stdout/stderr.

    Raises:
        UserError: The log file cannot be opened (its folder is a file, say).
    """

    def __init__(self, path: Path, echo: bool = True) -> None:
        from qshpc.store import perms

        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=perms.dir_mode())
            from qshpc.store.seal import open_append

            self._log = open_append(path, perms.file_mode())  # a FIFO there: refused, no hang
        except OSError as exc:  # `logs` is a file, a dangling link, not writable...
            from qshpc.errors import UserError

            raise UserError(
                f"cannot write the job's log {path}: {exc.strerror or exc}; it must be a file "
                "in a folder this user can write (move away what is there, then run again)"
            ) from None
        self._path = path
        self._echo = echo
        self._saved: dict[int, int] = {}
        self._threads: list[threading.Thread] = []
        self._reads: list[int] = []
        #: per pipe: held while a chunk read from it is copied (see :meth:`_drained`)
        self._copying: dict[int, threading.Lock] = {}
        self._pid = os.getpid()
        self._closed = False
        self._inherited = _pipes()  # the launcher's and MPI's, before the tee's own
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in (1, 2):
            r, w = os.pipe()
            self._saved[fd] = os.dup(fd)
            os.dup2(w, fd)
            os.close(w)
            self._reads.append(r)
            self._copying[r] = threading.Lock()
            t = threading.Thread(target=self._copy, args=(r, self._saved[fd]), daemon=True)
            t.start()
            self._threads.append(t)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
            except (AttributeError, ValueError):
                pass
        self._faults = _crash_reports_to(self._log)
        _live.add(self)
        if not _hooked:  # one hook per process, not one per tee
            os.register_at_fork(after_in_child=_after_fork_in_child)
            _hooked.append(True)

    def _forked(self) -> None:
        """In a child forked without exec (``os.fork``, multiprocessing): let go of the terminal.

        The copies of the original stdout/stderr kept for :meth:`close` held
        the launcher's output pipe open for as long as the child lived, and
        ``mpiexec`` (or ``qshpc run``) waited for it: a forked helper that
        outlived its task held the command until it ended (30 s for a
        ``sleep(30)`` on ac4d79c). The child writes into the tee's pipes, as a
        subprocess does; no thread copies them in the child. The other pipes
        the rank held from its start (the MPI library's copies of the output,
        those hydra's proxy leaks to its ranks) go to /dev/null in the child:
        their fds stay valid, and a write to one goes nowhere, never into a
        file the child opens under the same number.
        """
        if os.getpid() == self._pid:
            return
        _live.discard(self)  # done once: a grandchild must not close what reuses these numbers
        _crash_reports_back(self._faults)  # before the log's number can name another file
        _release_pipes(self._inherited, set(self._saved.values()))
        for fd in (*self._saved.values(), self._log, *self._reads):
            try:
                os.close(fd)
            except OSError:
                pass
        self._saved.clear()
        self._threads.clear()
        self._reads.clear()

    def _copy(self, r: int, orig: int) -> None:
        import select

        poller = select.poll()
        poller.register(r, select.POLLIN)
        copying = self._copying[r]
        while True:
            try:
                poller.poll()  # waits without the lock: close() sees an idle copier
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
            with copying:  # a chunk read is copied before close() can call the pipe drained
                try:
                    data = os.read(r, 65536)  # readable: does not block
                except OSError:
                    break
                if not data:
                    break
                try:
                    os.write(self._log, data)
                except OSError as exc:
                    from qshpc.store.space import disk_full, full_error, note_lost_output

                    if disk_full(exc):
                        note_lost_output(str(full_error(self._path, "the program's output")))
                if self._echo:
                    try:
                        os.write(orig, data)
                    except OSError:
                        pass
        os.close(r)

    def _drained(self, r: int) -> bool:
        """Nothing is left in pipe ``r`` and its thread copied all it read.

        The copier holds the pipe's lock from its read to the end of that chunk's
        copies, so an empty pipe seen under the lock is all copied. (On 0cd42bd a
        flag set after the read left a window: close() took a chunk just read as
        copied, the process exited, and the last lines (a ``qshpc: error:`` line)
        reached the log but not the terminal, about one run in ten under load.)
        """
        import fcntl
        import struct
        import termios

        with self._copying[r]:
            try:
                pending: int = struct.unpack("i", fcntl.ioctl(r, termios.FIONREAD, b"\0\0\0\0"))[0]
            except OSError:  # closed: its thread saw the end
                return True
            return pending == 0

    def close(self) -> None:
        """Restore stdout/stderr and copy what the pipes still hold.

        The pipes end when the last process holding their write end does. A
        process the program started and left running (``subprocess.Popen`` of
        a server, ``cmd &``) holds them on: then close waits only until what
        was written so far is copied (at most 5 s), and the threads go on
        copying that process's output until this one exits. (Waiting for the
        pipes' end made every rank with such a child wait 5 s per pipe.)
        """
        import time

        if os.getpid() != self._pid or self._closed:
            return  # a forked child's: its parent's to close (see _forked); or closed
        self._closed = True
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # the program's own (None, closed): what it holds is its own
                pass
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)  # closes the pipe's write end held by fd
        deadline = time.monotonic() + 5.0
        for t, r in zip(self._threads, self._reads, strict=True):
            while t.is_alive() and not self._drained(r) and time.monotonic() < deadline:
                t.join(timeout=0.002)
            t.join(timeout=0.05)  # a pipe whose writers are all gone ends at once
        if any(t.is_alive() for t in self._threads):
            return  # a child holds a pipe: its thread still needs the log and the terminal
        _crash_reports_back(self._faults)
        for saved in self._saved.values():
            os.close(saved)
        os.close(self._log)
        _live.discard(self)  # its numbers may be reused: a later fork must not close them


def _crash_reports_to(log: int) -> bool | None:
    """Have a crash of this process (SIGSEGV, SIGBUS, SIGFPE, SIGABRT, SIGILL) write every
    thread's Python traceback straight into the log file ``log``; return whether
    :mod:`faulthandler` was on before (None: it could not be turned on).

    Written into the tee's pipe, the report was lost with the process that died
    (nothing reads the pipe once its thread is gone): a task that crashed in
    compiled code (``ctypes.string_at(0)``) left ``rank-1.out`` empty, and the
    post-mortem pointed at that empty log. The log file is opened ``O_APPEND``,
    so the report lands after the output copied before it.
    """
    import faulthandler

    was = faulthandler.is_enabled()
    try:
        faulthandler.enable(file=log, all_threads=True)
    except (OSError, ValueError, RuntimeError):
        return None
    return was


def _crash_reports_back(was: bool | None) -> None:
    """Undo :func:`_crash_reports_to` before the log's descriptor is closed (a crash
    report must never go to a file opened later under the same number)."""
    import faulthandler

    if was is None:
        return
    faulthandler.disable()
    if was:
        try:
            faulthandler.enable(file=sys.__stderr__ or 2, all_threads=True)
        except (OSError, ValueError, RuntimeError, AttributeError):
            pass


def to_null(stream: Any) -> None:
    """``stream`` (a file object of this process) and this process's stdout/stderr that are the
    same file (``2>&1 | head``) write to /dev/null from now on: their reader left (EPIPE).

    What the stream still holds goes too, so that the exit's flush does not fail on it.
    """
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return
    fds = [fd for fd in (1, 2) if _same_file(fd, st)] or [stream.fileno()]
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for fd in fds:
        try:
            os.dup2(null, fd)
        except OSError:
            pass
    os.close(null)
    try:
        stream.flush()
    except (OSError, ValueError):
        pass


def _same_file(fd: int, st: os.stat_result) -> bool:
    try:
        other = os.fstat(fd)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


def _open_fds() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return []


def _pipes() -> dict[int, tuple[int, int]]:
    """The pipes this process holds besides fds 0-2, by fd: copies of the output pipes (the
    MPI library's), and those the launcher left open in the rank (hydra's proxy leaks its
    own output pipes to its ranks: a forked child that held them held ``mpiexec``)."""
    import stat

    found: dict[int, tuple[int, int]] = {}
    for fd in _open_fds():
        if fd <= 2:
            continue
        try:
            st = os.fstat(fd)
        except OSError:
            continue  # the listing's own fd, closed since
        if stat.S_ISFIFO(st.st_mode):
            found[fd] = (st.st_dev, st.st_ino)
    return found


def _release_pipes(pipes: dict[int, tuple[int, int]], own: set[int]) -> None:
    """In a forked child: the pipes held since the rank started (``pipes``) read /dev/null."""
    null = -1
    for fd, key in pipes.items():
        if fd in own:
            continue
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) != key:
            continue  # closed and its number reused: not the launcher's any more
        if null < 0:
            null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd, inheritable=False)
    if null >= 0:
        os.close(null)
