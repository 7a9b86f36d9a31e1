"""Copy a rank's stdout and stderr into ``logs/rank-<R>.out`` as they are written."""

from __future__ import annotations

import os
import sys
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
    """Redirect file descriptors 1 and 2 through pipes that a copier process copies to a log
    file.

    The terminal (or Slurm's output file) still sees everything; the log file
    gets it as it is written, so logs are readable while the job runs.

    The copier is a small process of its own (:mod:`qshpc.runtime.logcopier`,
    ``python -I -S``: ~9 ms of CPU, started by ``sh -c '... &'``: no child of
    the rank's), not a
    thread: what a rank printed just before it died (``os._exit``, a segfault,
    SIGKILL) is still in the pipes when it dies, and a thread died with it
    (review38 F5: the last ``print(..., flush=True)`` before ``os._exit``
    reached neither the terminal nor the log, 3 runs of 3). The copier ends
    when this process does (or at :meth:`close`), after it copied what the
    pipes hold. (Not a child forked without exec: it shared the rank's memory
    copy-on-write, and every page the rank wrote afterwards was copied, 23 MB
    of 54 in a short qiskit run.) A process that adopts orphans (PID 1, a child
    subreaper) would adopt the copier too: it copies from a thread instead (review41 F3).

    Args:
        path: The log file (created 0600).
        echo: Also write to the original stdout/stderr.

    Raises:
        UserError: The log file cannot be opened (its folder is a file, say).
    """

    def __init__(self, path: Path, echo: bool = True) -> None:
        from qshpc.store import perms

        try:
            # The log's folder, never the ones above (the job's: a job folder removed
            # stays removed, review50 F4: a worker's log made a removed job's J/logs again)
            path.parent.mkdir(exist_ok=True, mode=perms.dir_mode())
            from qshpc.store.seal import open_append

            log = open_append(path, perms.file_mode())  # a FIFO there: refused, no hang
        except OSError as exc:  # `logs` is a file, a dangling link, not writable...
            from qshpc.errors import UserError

            raise UserError(
                f"cannot write the job's log {path}: {exc.strerror or exc}; it must be a file "
                "in a folder this user can write (move away what is there, then run again)"
            ) from None
        self._path = path
        self._saved: dict[int, int] = {}
        self._pid = os.getpid()
        self._closed = False
        self._full = False
        self._ended = False
        self._inherited = _pipes()  # the launcher's and MPI's, before the tee's own
        sys.stdout.flush()
        sys.stderr.flush()
        pipes = [os.pipe() for _ in range(3)]  # stdout, stderr, crash reports (log only)
        life_r, self._life = os.pipe()  # its end (this process's) tells the copier to end
        self._back, back_w = os.pipe()  # the copier's answers: "E"/"L" copied, "D" disk full
        for fd in (1, 2):
            self._saved[fd] = os.dup(fd)
        try:
            fds = [r for r, _ in pipes] + [log, life_r, back_w]
            child = _copier_thread(fds, echo) if _adopts_orphans() else _spawn_copier(fds, echo)
        finally:
            for fd in (life_r, back_w, log, *(r for r, _ in pipes)):
                os.close(fd)
        if child is None:  # no copier: the pipes are not used, nothing changes
            for fd in (*(w for _, w in pipes), self._life, self._back, *self._saved.values()):
                os.close(fd)
            self._saved.clear()
            self._closed = True
            return
        os.set_blocking(self._back, False)
        self.copier = child
        if child:
            _copiers.add(child)
        for fd, (_, w) in zip((1, 2), pipes[:2], strict=True):
            os.dup2(w, fd)
            os.close(w)
        self._crash = pipes[2][1]
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
            except (AttributeError, ValueError):
                pass
        self._faults = _crash_reports_to(self._crash)
        _reap_ended()
        _live.add(self)
        if not _hooked:  # one hook per process, not one per tee
            os.register_at_fork(after_in_child=_after_fork_in_child)
            from qshpc.store.space import watch_lost_output

            watch_lost_output(_check_copiers)
            _hooked.append(True)

    def _forked(self) -> None:
        """In a child forked without exec (``os.fork``, multiprocessing): let go of the terminal.

        The copies of the original stdout/stderr kept for :meth:`close` held
        the launcher's output pipe open for as long as the child lived, and
        ``mpiexec`` (or ``qshpc run``) waited for it: a forked helper that
        outlived its task held the command until it ended (30 s for a
        ``sleep(30)`` on ac4d79c). The child writes into the tee's pipes, as a
        subprocess does; the copier copies them while this tee's process lives
        (the child holds no end of its lifeline: the copier ends with the
        rank, not with the child). The other pipes
        the rank held from its start (the MPI library's copies of the output,
        those hydra's proxy leaks to its ranks) go to /dev/null in the child:
        their fds stay valid, and a write to one goes nowhere, never into a
        file the child opens under the same number.
        """
        if os.getpid() == self._pid:
            return
        _live.discard(self)  # done once: a grandchild must not close what reuses these numbers
        _crash_reports_back(self._faults)  # before the pipe's number can name another file
        _release_pipes(self._inherited, set(self._saved.values()))
        for fd in (*self._saved.values(), self._crash, self._life, self._back):
            try:
                os.close(fd)
            except OSError:
                pass
        self._saved.clear()
        self._closed = True

    def _answers(self) -> bytes:
        """What the copier said since the last look (never waits); notes a full disk."""
        got = b""
        while True:
            try:
                chunk = os.read(self._back, 64)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if not chunk:
                self._ended = True  # the copier is gone (killed): nothing more comes
                break
            got += chunk
        if b"D" in got and not self._full:
            self._full = True
            from qshpc.store.space import full_error, note_lost_output

            note_lost_output(str(full_error(self._path, "the program's output")))
        return got

    def close(self) -> None:
        """Restore stdout/stderr and wait until the copier copied what was written so far.

        The pipes end when the last process holding their write end does. A
        process the program started and left running (``subprocess.Popen`` of
        a server, ``cmd &``) holds them on: then close waits only until what
        was written so far is copied (at most 5 s), and the copier goes on
        copying that process's output until this one exits. (Waiting for the
        pipes' end made every rank with such a child wait 5 s per pipe.)
        """
        import select
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
        _crash_reports_back(self._faults)
        os.close(self._crash)
        said = b""
        try:
            os.write(self._life, b"F")  # written after all this process wrote: copy up to here
        except OSError:  # the copier is gone (killed): nothing to wait for
            said = b"E"
        deadline = time.monotonic() + 5.0
        while not (b"E" in said or b"L" in said) and time.monotonic() < deadline:
            try:
                select.select([self._back], [], [], max(0.0, deadline - time.monotonic()))
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                pass
            said += self._answers()
            if self._ended:
                break
        for saved in self._saved.values():
            os.close(saved)
        if b"L" in said:
            return  # a child holds a pipe: the copier copies it until this process exits
        os.close(self._life)  # the copier ends now
        os.close(self._back)
        _live.discard(self)  # its numbers may be reused: a later fork must not close them
        _reap_ended()  # (not waited for: it ends by itself in a moment; a later look reaps it)


#: Pids of the copiers that may be this process's children (as PID 1, or a subreaper, it
#: adopts them): each is left out at the first look that finds it no child, or reaped.
_copiers: set[int] = set()


def copier_pids() -> set[int]:
    """The pids of this process's log copiers (:class:`LogTee`) that are its children."""
    return set(_copiers)


def _check_copiers() -> None:
    """Let every live tee read what its copier said (a full disk): for ``lost_output``."""
    _reap_ended()
    for tee in list(_live):
        if os.getpid() == tee._pid and not tee._closed:
            tee._answers()


def _gone(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # reaped already (a SIGCHLD handler of the program's)
        done = pid
    if done:
        _copiers.discard(pid)
    return bool(done)


def _reap_ended() -> None:
    """Reap the copiers that ended (a zombie meanwhile is harmless: the exit reaps it)."""
    for pid in list(_copiers):
        _gone(pid)


def _adopts_orphans() -> bool:
    """Whether an orphan of this process's becomes its child again: it is PID 1 (a
    container without an init, ``unshare --pid --fork``) or a child subreaper."""
    if os.getpid() == 1:
        return True
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    flag = ctypes.c_int(0)
    try:  # PR_GET_CHILD_SUBREAPER
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(37, ctypes.byref(flag), 0, 0, 0) == 0 and flag.value != 0
    except (OSError, AttributeError):
        return False


def _copier_thread(fds: list[int], echo: bool) -> int:
    """Copy as :func:`_spawn_copier`'s process would, from a thread of this process's (its
    own copies of ``fds``); 0. For a process that adopts orphans: a copier process would be
    its child whatever starts it, and a program's wait-until-ECHILD loop would wait for it
    for ever (review41 F3). What the process prints just before it dies may then be lost
    (as before the copier process: review38 F5)."""
    import fcntl
    import threading

    from qshpc.runtime import logcopier

    out, err, crash, log, life, back = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds)
    echoes = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) if echo else -1 for fd in (1, 2)]

    def run() -> None:
        try:
            logcopier.copy({out: echoes[0], err: echoes[1], crash: -1}, life, log, back)
        except OSError:
            pass
        finally:
            for fd in (out, err, crash, log, life, back, *echoes):
                if fd >= 0:
                    os.close(fd)

    threading.Thread(target=run, name="qshpc-log-copier", daemon=True).start()
    return 0


def _spawn_copier(fds: list[int], echo: bool) -> int | None:
    """Start :mod:`qshpc.runtime.logcopier` with ``fds`` (out, err, crash pipes' read ends,
    log, lifeline, answers) as its descriptors 3-8, and this process's stdout and stderr as
    its own; its pid (the shell that started it says it), or None when it could not start
    (the rank then goes without a log).

    The stop signals are blocked in it until it ignores them (as the copier of a rank that
    was asked to stop, it copies what the rank still prints, and ends with it).
    """
    import fcntl
    import signal

    from qshpc.runtime import logcopier

    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in fds]  # above 3-8: no clash
    said_r, said_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)  # the shell says the copier's pid
    high.append(said_w)
    try:
        actions: list[tuple[Any, ...]] = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
        actions += [(os.POSIX_SPAWN_DUP2, fd, 3 + i) for i, fd in enumerate(high)]
        sigs = {getattr(signal, n) for n in logcopier.IGNORED if hasattr(signal, n)}
        # Through sh's `&`: the copier is no child of this process's (a program's
        # `while True: os.wait()` until ECHILD waited for it, for ever); sh is reaped here.
        words = [sys.executable, logcopier.__file__, "1" if echo else "0"]
        shell = os.posix_spawn(
            "/bin/sh",
            ["/bin/sh", "-c", '"$0" -I -S "$1" "$2" 9>&- & echo $! >&9', *words],
            os.environ,  # (-I: no PYTHON* variable applies; LD_LIBRARY_PATH may be needed)
            file_actions=actions,
            setsigmask=sigs,
            setsigdef=sigs,
        )
        _, status = os.waitpid(shell, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise OSError(f"/bin/sh exited {os.waitstatus_to_exitcode(status)}")
        try:
            return int(os.read(said_r, 64))
        except (OSError, ValueError):  # it started, unnamed: only copier_pids misses it
            return shell
    except OSError as exc:
        print(
            f"qshpc: warning: cannot start the copier of this rank's output into its log "
            f"({sys.executable}: {exc.strerror or exc}); the output goes to the terminal only",
            file=sys.stderr,
            flush=True,
        )
        return None
    finally:
        for fd in (*high, said_r):
            os.close(fd)


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
