"""A rank that is done leaves, even when the program left threads running.

Python waits at exit for every non-daemon thread. A program (or a task) that
started one and never ended it (a watcher loop, a server) kept its rank alive
after the job ended: the job's state was stored, but the command never
returned and its allocation ran on to the time limit. :func:`leave_within`
gives such threads a grace period (``QSHPC_EXIT_GRACE_S``, 10 s), then says
which threads were left, runs the program's ``atexit`` handlers and ends the
process with the job's exit code (``MPI_Finalize`` first when MPI is still up,
and the C library's exit, so that the launcher sees a clean end). Threads
that end at exit on their own (an executor's idle workers) are not waited for
beyond their own end.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any


def leave_within(code: int, grace_s: float) -> None:
    """Make sure this process exits within ``grace_s`` seconds of now, with ``code``.

    Starts a daemon thread that does nothing when the process ends by itself
    in time (the usual case: it dies with the process), and nothing when the
    process is not exiting then (its main thread still runs: ``run`` was called
    by a program of its own, or a test, that goes on).

    Args:
        code: The exit code the rank returns.
        grace_s: Seconds given to threads the program left running.
    """
    _say_processes_left()
    threading.Thread(
        target=_leave_after, args=(code, grace_s), name="qshpc-leave", daemon=True
    ).start()


def processes_left() -> list[tuple[int, str]]:
    """``(pid, command)`` of this process's children still running, but multiprocessing's.

    ``subprocess.Popen`` children, ``cmd &``, ``os.fork`` without exec: nothing ends
    them with the job, and nothing waits for them (a rank does not wait for its
    children: see :mod:`qshpc.runtime.logtee`). multiprocessing's own children
    are left out: its exit ends or joins them (:func:`_processes`), and its
    forkserver and resource tracker end with this process. Zombies are not running.
    """
    me = os.getpid()
    try:
        tasks = os.listdir(f"/proc/{me}/task")
    except OSError:
        return []  # no /proc: nothing to say
    pids: set[int] = set()
    for tid in tasks:
        try:
            with open(f"/proc/{me}/task/{tid}/children", "rb") as f:
                pids.update(int(c) for c in f.read().split())
        except (OSError, ValueError):
            pass
    pids -= _multiprocessing_pids()
    from qshpc.runtime.logtee import copier_pids

    pids -= copier_pids()  # the rank's own log copiers: they end with it
    try:
        with open(f"/proc/{me}/cmdline", "rb") as f:
            mine = f.read()
    except OSError:
        mine = b""
    left: list[tuple[int, str]] = []
    for pid in sorted(pids):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, IndexError):
            continue  # ended meanwhile
        if state in (b"Z", b"X"):
            continue
        if cmdline == mine:
            name = "a fork of this rank"
        else:
            name = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
            name = name if len(name) <= 60 else name[:57] + "..."
        left.append((pid, name))
    return left


def _multiprocessing_pids() -> set[int]:
    """The pids of multiprocessing's children, its forkserver and its resource tracker."""
    pids: set[int] = set()
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return pids
    try:
        pids.update(p.pid for p in mp.active_children() if p.pid is not None)
    except Exception:
        pass
    for module, attr in (("forkserver", "_forkserver"), ("resource_tracker", "_resource_tracker")):
        helper = getattr(sys.modules.get(f"multiprocessing.{module}"), attr, None)
        pid = getattr(helper, "_forkserver_pid", None) or getattr(helper, "_pid", None)
        if isinstance(pid, int):
            pids.add(pid)
    return pids


def _say_processes_left() -> None:
    """One line naming the processes the program or its tasks left running, if any.

    On main 2dca53c a ``subprocess.Popen(["sleep", "300"])`` that a task never
    waited for ran on after the job, and no one said so.
    """
    try:
        left = processes_left()
    except Exception:  # never a reason not to leave
        return
    if not left:
        return
    from qshpc.task.context import rank_info

    names = ", ".join(f"{name!r} (pid {pid})" for pid, name in left[:3])
    if len(left) > 3:
        names += f" and {len(left) - 3} more"
    try:  # one write: the ranks share the launcher's pipe
        sys.stderr.write(
            f"qshpc: warning: rank {rank_info().rank} leaves {len(left)} process(es) the "
            f"program or its tasks started running: {names}; they run on without the job "
            "(wait for them, or end them, before the program or task returns)\n"
        )
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def lingering() -> list[threading.Thread]:
    """The non-daemon threads other than the main thread that still run."""
    main = threading.main_thread()
    return [t for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()]


def _processes() -> list[Any]:
    """The multiprocessing children that Python's exit waits for (non-daemon, alive).

    (A task's ``multiprocessing.Process`` that outlived it held its rank until it ended.)
    """
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return []
    try:
        return [p for p in mp.active_children() if not p.daemon]
    except Exception:
        return []


def _leave_after(code: int, grace_s: float) -> None:
    time.sleep(grace_s)
    if threading.main_thread().is_alive():
        return  # not exiting (``qshpc run`` called inside another program, a test): not ours to end
    threads = ", ".join(repr(t.name) for t in lingering())
    children = _processes()
    if not threads and not children:
        return  # still exiting, but not for a thread (the exit handlers): not ours to cut
    processes = ", ".join(f"{p.name!r} (pid {p.pid})" for p in children)
    left = " and ".join(
        ([f"thread(s) {threads}"] if threads else [])
        + ([f"process(es) {processes}"] if processes else [])
    )
    from qshpc.task.context import rank_info

    print(
        f"qshpc: warning: rank {rank_info().rank} is done but the program left {left} "
        f"running {grace_s:g} s later; it exits without them (join the threads and "
        "processes the program needs before it ends, or make them daemons)",
        file=sys.stderr,
    )
    try:
        import atexit

        if children:  # multiprocessing's exit handler joins them: the very wait cut here
            util = sys.modules.get("multiprocessing.util")
            atexit.unregister(getattr(util, "_exit_function", id))
        atexit._run_exitfuncs()  # what the program registered runs, as at a normal exit
    except BaseException:  # a handler that fails does not keep the rank
        pass
    _c_exit(code)
    os._exit(code)  # no libc to call: leave without the exit handlers


def _c_exit(code: int) -> None:
    """Flush the standard streams, finalize MPI when still up, end with the C library's exit.

    libc's exit, not os._exit: the C exit handlers run (MPICH ends its PMI
    connection in one; without it the launcher takes this rank's end for a crash
    and kills the ranks still finishing; HDF5 closes what is open). Called with the
    GIL held (PyDLL), so that no Python thread runs while the libraries'
    destructors do. Returns only when there is no libc to call.
    """
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # closed, a broken pipe: as Python's own exit, leave anyway
            pass
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None:
        try:
            if mpi.Is_initialized() and not mpi.Is_finalized():
                mpi.Finalize()
        except Exception:  # leaving anyway
            pass
    try:
        import ctypes

        ctypes.PyDLL(None).exit(code)
    except Exception:  # no libc to call
        return


def exit_now(code: int) -> None:
    """End this ``qshpc run`` process with ``code`` now: Python's exit steps, not its teardown.

    What a normal exit does first is done here, in its order: the non-daemon
    threads are joined (``threading._shutdown``, so that :func:`leave_within`'s
    grace applies as before) and the ``atexit`` handlers run. Then, when no
    file is left open for writing, the
    standard streams are flushed, MPI is finalized when still up, and the C
    library's exit runs its handlers (HDF5 closes what is open, MPICH its PMI
    connection). What is skipped is the interpreter's teardown, which frees
    every module's objects one by one: 15-25 ms of CPU in a rank that loaded
    qiskit, ~10 ms in the launcher, all of it on the command's tail
    (benchmarks/RESULTS.md, Session 18, lean19). A file the program or a task
    left open is closed by that teardown (a gzip file gets its trailer then):
    with one, this returns and Python exits as usual. It returns too where
    Python does not offer these steps, or off the main thread.
    """
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None or threading.current_thread() is not threading.main_thread():
        return
    shutdown()
    import atexit

    global _noted
    _noted = None
    atexit._run_exitfuncs()  # (the program's end notes the files it found open)
    noted, _noted = _noted, None
    if _files_left_open(noted):
        return
    _c_exit(code)  # returns only without a libc to call: then Python's own exit


def _files_left_open(among: list[Any] | None = None) -> bool:
    """Whether the program or a task may have left a file open for writing (see below)."""
    return flush_open_files(among) or _other_files_open()


def flush_open_files(among: list[Any] | None = None) -> bool:
    """Whether a file object with data Python could still be holding is open for writing;
    each one found is flushed, text files before the buffered ones under them.
    ``among``: weak references to the files a walk made a moment ago found (see
    :func:`note_open_files`): only those are looked at.

    That is a buffered or text file on a file descriptor, other than the
    standard streams (flushed on the way out): an in-memory one
    (``BytesIO``) loses nothing at the exit, nor does a raw one (no buffer).
    Looks at every object the collector tracks but those frozen before the
    program ran (:mod:`qshpc.runtime.gctune`; walking those too would cost
    20-30 ms), the garbage not yet collected included; each object is tested
    against the C base of every ``io`` class (no ABC check per object: ~2 ms
    for a rank).

    Why flush: Python's teardown does not always. A program's globals are no
    module's (runpy's copy): they go with the collector's last pass, which can
    finalize a text file's buffer before the text file, and the text it still
    held is dropped (``qshpc run --workers 0`` left such files empty on f163b7c).
    """
    import io

    try:
        found = open_files() if among is None else _still_open(among)
    except Exception:  # unsure: the usual exit
        return True
    found.sort(key=lambda f: not isinstance(f, io.TextIOBase))  # text first: into its buffer
    for stream in found:
        try:
            stream.flush()
        except Exception:  # as at a normal exit: the others are still flushed
            pass
    return bool(found)


def open_files() -> list[Any]:
    """The file objects :func:`flush_open_files` flushes: buffered or text, open for
    writing on a descriptor, not a standard stream, not frozen (may raise: unsure)."""
    import gc
    import io

    base: Any = io.IOBase.__mro__[1]  # _io._IOBase: every io class and subclass derives from it
    raw: Any = io.RawIOBase.__mro__[1]  # _io._RawIOBase
    std: set[int] = set()
    for stream in (sys.stdin, sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        while stream is not None and id(stream) not in std:
            std.add(id(stream))
            stream = getattr(stream, "buffer", None) or getattr(stream, "raw", None)
    found: list[Any] = []
    for obj in gc.get_objects():
        if (
            isinstance(obj, base)
            and not isinstance(obj, raw)
            and id(obj) not in std
            and not obj.closed
            and obj.writable()
            and _on_a_descriptor(obj)
        ):
            found.append(obj)
    return found


#: The files :func:`open_files` found at the program's end, when
#: :func:`qshpc.runtime.program_main.finalize_program` looked, held weakly (its
#: freeing closes those only the program held): :func:`exit_now` then checks
#: those still open instead of walking every object again (7-13 ms on rank 0,
#: mend23). None: nothing noted (walk).
_noted: list[Any] | None = None


def note_open_files(found: list[Any]) -> None:
    """Keep what a walk found, for :func:`exit_now` when it runs the ``atexit`` handlers."""
    import weakref

    global _noted
    try:
        _noted = [weakref.ref(f) for f in found]
    except TypeError:  # (every io object takes one; unsure: walk)
        _noted = None


def _still_open(noted: list[Any]) -> list[Any]:
    """The noted files not closed since. A file opened after the note is not among them:
    when none of the noted is left, :func:`_other_files_open` finds it by its descriptor."""
    files = (ref() for ref in noted)
    return [f for f in files if f is not None and not f.closed]


def _on_a_descriptor(stream: Any) -> bool:
    try:
        stream.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation: in memory
        return False
    return True


def _other_files_open() -> bool:
    """Whether a file descriptor above 2 is open for writing on a file qshpc did not open.

    What the walk of :func:`flush_open_files` cannot see: a file object frozen
    with the imports (a module the worker preloaded opened it), a file HDF5 or
    another library holds. qshpc's own logs are written with ``os.write``
    (:data:`qshpc.store.seal.appended`); a deleted file (MPICH's shared memory)
    is nobody's to read. Without ``/proc``: unsure, so yes.
    """
    import fcntl
    import stat

    from qshpc.store.seal import appended

    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return True
    for name in names:
        fd = int(name)
        if fd <= 2:
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink == 0:
                continue
            if (st.st_dev, st.st_ino) in appended:
                continue
            if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
                continue
        except OSError:  # the listing's own descriptor, closed since
            continue
        return True
    return False
