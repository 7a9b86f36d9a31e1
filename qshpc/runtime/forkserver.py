"""The local launcher's fork server: qiskit imported once, every rank a fork of that process.

On the default local shape (rank 0 and a worker per core: 3 processes on a
2-core laptop) each rank imported qiskit and Aer itself, ~0.5 CPU s a rank,
three times over on two cores: the largest part of a small job's cost against
one plain process (issue 19). ``qshpc run``'s launcher now forks a server
(:func:`start`) before it starts ``mpiexec``; the server imports what the
program's tasks need (:func:`qshpc.runtime.worker.preload`'s choice) while
mpiexec and the ranks' Pythons start. Each rank ``mpiexec`` starts (``python
-m qshpc run ...``) hands itself over as its first act (:func:`hand_over`): it
sends the server its command line, environment, folder, umask, CPU affinity
and inherited descriptors (its standard streams and hydra's ``PMI_FD``), the
server forks a child that takes all of them and runs ``python -m qshpc`` with
that command line (:func:`_become`) with qiskit already imported, and the
process mpiexec started stays as a stand-in for it (:func:`_stand_in`): it
passes on every signal it gets and ends as the child ended (its exit code, or
killed by the same signal), so mpiexec, the launcher's watch and a user's
``kill`` see what they saw before. ``MPI_Init`` runs in the child only, after
the fork.

Lifetimes: the server dies with the launcher (and its children with it), a
child whose stand-in died (``kill -9`` by mpiexec) is killed by the server,
and a stand-in whose server died kills its child. Anything unusual before the
fork (no server, a server of another user, a server that died) and the rank
runs as before, importing for itself.

Under a user's ``mpiexec -n N`` (hydra), local rank 0 of each host starts its
host's server (:func:`join_local`). Rank 0 is forked before Aer is imported (it
runs the program; the workers' tasks need Aer); the MPI library is loaded (not
initialised) before any fork. Off with ``QSHPC_FORK_SERVER=0``; not used when the
program's tasks need nothing imported, nor for ``--cache`` jobs (their workers
import at their first batch only), nor under Slurm's ``srun``, another MPI's
``mpiexec``, or Linux before 5.3 (no pidfds). Only the standard library at
import: a rank's stand-in loads nothing else.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from qshpc.runtime.procs import (
    connect_within,
    die_with_parent,
    installed,
    peer_cred,
    stat_fields,
)

if TYPE_CHECKING:  # (imported where used: every `python -m qshpc` imports this module)
    import socket
    import subprocess
    from pathlib import Path

#: The variable naming the server's socket in the ranks' environment (the launcher sets it).
SOCKET_VAR = "QSHPC_FORK_SOCKET"
#: Signals a stand-in passes on to its rank.
FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCONT,
    signal.SIGALRM,
)
#: Signals a child may have inherited a handler for from the server: the defaults again.
_RESET = (*FORWARDED, signal.SIGCHLD, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
#: The longest a stand-in waits for its rank's fork (the server imports first); then it runs
#: the rank itself (the server kills a child forked after that: its stand-in hung up).
_FORK_WAIT_S = 120.0
#: The most descriptors a stand-in hands over (one SCM_RIGHTS message).
_MAX_FDS = 64
#: How often the server looks whether a stand-in was stopped (:func:`_mirror_stops`).
_WATCH_S = 0.25
#: The longest request the server reads (an environment is 2 MiB at most on Linux).
_MAX_REQUEST = 64 << 20
#: How long ranks still running when the launcher stops their server have to end after
#: their SIGTERM (:meth:`Server.stop`), before a SIGKILL.
STOP_GRACE_S = 10.0
#: ``pidfd_send_signal``'s flag (Linux 6.9): to the process group the pidfd's process leads.
_PIDFD_SIGNAL_PROCESS_GROUP = 4
_HEADER = struct.Struct("!I")
_PID = struct.Struct("!cq")
_END = struct.Struct("!cii")  # b"X", 0 = exit code / 1 = signal, value


class Server:
    """The launcher's handle on the fork server it started."""

    def __init__(self, proc: subprocess.Popen[bytes], name: str) -> None:
        self.proc = proc
        self.name = name

    def reap(self, within: float) -> None:
        """Wait ``within`` seconds at most for the server to end by itself (its children
        did), so that its CPU time counts in this process's children's."""
        import subprocess

        try:
            self.proc.wait(within)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, grace: float | None = None) -> None:
        """End the server and reap it.

        Normally mpiexec ended, so did the ranks: the server is killed. A rank still
        running (the launcher's own code raised) gets a SIGTERM first, as mpiexec
        would pass it on, and ``grace`` seconds (:data:`STOP_GRACE_S`) to end: rank 0
        then stores its end and makes the store final; a SIGKILL after that.
        """
        if self.proc.poll() is None:
            _end_children(self.proc.pid, STOP_GRACE_S if grace is None else grace)
            self.proc.kill()
        self.proc.wait()


def start(
    token: str,
    ranks: int,
    modules: tuple[str, ...],
    blas: Mapping[str, str],
    label: tuple[str, ...] | list[str] = (),
    name: str | None = None,
    flags: tuple[str, ...] | list[str] = (),
) -> Server | None:
    """Start a server that imports ``modules`` and serves ``ranks`` ranks; None when it cannot.

    The socket is bound here, before mpiexec starts: a rank that connects
    before the server listens waits in its backlog. ``blas``: the BLAS thread
    variables a rank would set before numpy loads
    (:func:`qshpc.runtime.blas.limit_blas_threads`). ``label``: the ranks' command,
    shown after ``--`` in the server's command line, so in its children's
    (``ps``, ``pgrep -f`` find the ranks by their job as before). ``flags``: the
    interpreter's options the ranks run with (``-O``, ``-X dev``...).
    """
    import json
    import subprocess

    name = name or f"qshpc-fork-{token}"
    if not _pidfds():  # the server watches its children through pidfds
        return None
    try:
        listener = _listener(name, ranks)
    except OSError:
        return None
    fd = listener.fileno()
    args = [str(fd), str(ranks), ",".join(modules), json.dumps(dict(blas)), str(os.getpid())]
    try:
        proc = subprocess.Popen(
            [sys.executable, *flags, "-m", "qshpc.runtime.forkserver", *args, "--", *label],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            pass_fds=(fd,),
            process_group=0,  # a Ctrl-C reaches the ranks through mpiexec, not the terminal
        )
    except OSError:
        return None
    finally:
        listener.close()
    return Server(proc, name)


def _listener(name: str, ranks: int) -> socket.socket:
    """The server's socket, bound to ``name`` and listening, at a number above the standard
    streams': one closed here (``qshpc run ... <&-``) is the number the new socket would
    get, and the server's stdin (/dev/null) takes that number in the server."""
    import fcntl
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if sock.fileno() <= 2:
            high = fcntl.fcntl(sock.fileno(), fcntl.F_DUPFD_CLOEXEC, 3)
            sock.close()
            sock = socket.socket(fileno=high)
        sock.bind("\0" + name)
        sock.listen(max(ranks, 1) * 2)
    except OSError:
        sock.close()
        raise
    return sock


def encode_plan(token: str, ranks: int, modules: tuple[str, ...], blas: Mapping[str, str]) -> str:
    """:func:`start`'s arguments as one string (``QSHPC_FORK_PLAN``: a client to its launcher)."""
    import json

    return json.dumps({"token": token, "ranks": ranks, "modules": modules, "blas": dict(blas)})


def start_planned(plan: str, label: list[str]) -> Server | None:
    """:func:`start` with the arguments :func:`encode_plan` wrote (None: unreadable, or failed);
    the ranks' environment (this process's) names the server's socket then."""
    import json

    try:
        args = json.loads(plan)
        token, ranks = str(args["token"]), int(args["ranks"])
        modules = tuple(str(m) for m in args["modules"])
        blas = {str(k): str(v) for k, v in dict(args["blas"]).items()}
    except (ValueError, KeyError, TypeError):
        return None
    server = start(token, ranks, modules, blas, label)
    if server is not None:
        os.environ[SOCKET_VAR] = server.name
    return server


def main(argv: list[str]) -> None:
    """The server's process: ``python -m qshpc.runtime.forkserver FD RANKS MODULES BLAS``.

    Returns in each forked child only, which then runs the rank.
    """
    import json
    import socket

    parent = int(argv[4])  # (the starter's pid: it may be gone already)
    # The launcher's death (kill -9) reaches the ranks through mpiexec (its SIGTERM): the
    # server stays until its children end, then goes (a SIGTERM is that notice only). A
    # signal meant for a rank (`pkill -f` of its command, which the server's shows) is
    # not the server's either: its children get the defaults back (_become).
    die_with_parent(signal.SIGTERM)
    for sig in FORWARDED:
        signal.signal(sig, signal.SIG_IGN)
    if os.getppid() != parent:
        os._exit(1)
    listener = socket.socket(fileno=int(argv[0]))
    ranks = int(argv[1])
    modules = tuple(m for m in argv[2].split(",") if m)
    blas: dict[str, str] = json.loads(argv[3])
    os.environ.update(blas)
    # Rank 0 runs the program, whose tasks alone need Aer: it is forked before Aer loads.
    late = tuple(m for m in modules if m.startswith("qiskit_aer"))
    _preload(tuple(m for m in modules if m not in late), mpi=True)
    child = _serve(listener, ranks, parent, late)
    if child is None:
        os._exit(0)
    request, fds, server = child
    _become(request, fds, blas, server)
    import runpy

    runpy.run_module("qshpc", run_name="__main__", alter_sys=True)  # `python -m qshpc ARGS`


class _Rank:
    """A stand-in's connection, and the child forked for it once it asked."""

    def __init__(self, conn: socket.socket, peer: int) -> None:
        self.conn = conn
        self.peer = peer  # the stand-in's pid
        self.stopped = False  # the stand-in was seen stopped (and its rank stopped with it)
        self.pid = 0
        self.pidfd = -1
        self.held: tuple[dict[str, Any], list[int]] | None = None  # asked, not forked yet
        self.data = bytearray()  # its request, as read so far
        self.fds: list[int] = []  # the descriptors sent with it
        self.asked: tuple[dict[str, Any], list[int]] | None = None  # its request, once whole

    def read(self) -> bool:
        """Read what the stand-in sent so far, never waiting (a stalled connection holds no
        other: the socket does not block); :attr:`asked` once the request is whole.
        False: unreadable or closed before it was (the descriptors received are closed)."""
        import json
        import socket

        try:
            data, fds, _flags, _addr = socket.recv_fds(self.conn, 65536, _MAX_FDS)
        except BlockingIOError:
            return True
        except OSError:
            data, fds = b"", []
        self.fds += fds
        self.data += data
        whole = len(self.data) >= _HEADER.size
        size = _HEADER.unpack_from(self.data)[0] if whole else 0
        if data and len(self.data) < _HEADER.size + size and len(self.data) <= _MAX_REQUEST:
            return True
        try:
            if len(self.data) != _HEADER.size + size or not whole:
                raise ValueError("request cut short, or too long")
            request = json.loads(bytes(self.data[_HEADER.size :]))
            if not isinstance(request, dict) or len(request.get("fds", ())) != len(self.fds):
                raise ValueError("descriptors lost")
            _check_fds(request["fds"], self.fds)
        except (ValueError, KeyError, TypeError, OSError):
            for fd in self.fds:
                os.close(fd)
            self.fds = []
            return False
        self.asked, self.fds, self.data = (request, self.fds), [], bytearray()
        return True


#: What the child of a fork returns: the request, its descriptors, the server's pid.
_Child = tuple[dict[str, Any], list[int], int]


def _serve(
    listener: socket.socket, ranks: int, parent: int, late: tuple[str, ...]
) -> _Child | None:
    """Fork one child per stand-in that asks; report how each ended. In a child: its request.

    ``late``: modules to import once the waiting requests were read and rank 0's
    was forked (Aer: rank 0 runs the program, only the workers' tasks need it).
    """
    import select
    import socket
    import time

    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN)
    by_conn: dict[int, _Rank] = {}
    by_pidfd: dict[int, _Rank] = {}
    served = 0
    first = False  # rank 0 was forked (then the late imports need not wait for it)

    def fork(rank: _Rank, asked: tuple[dict[str, Any], list[int]]) -> _Child | None:
        nonlocal served, first
        first = first or asked[0].get("env", {}).get("PMI_RANK") == "0"
        me = os.getpid()
        # Blocked across the fork: a signal the stand-in passes on before the child set the
        # rank's handlers waits for them (_become unblocks), as a fresh rank defers it.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED)
        pid = _fork()
        if pid == 0:  # the child: nothing of the server's kept
            _let_go(poller, listener, [*by_conn.values(), *by_pidfd.values()], asked[1])
            return asked[0], asked[1], me
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for received in asked[1]:
            os.close(received)
        rank.held = None
        if pid > 0:
            try:
                rank.pidfd = os.pidfd_open(pid)
            except OSError:  # out of descriptors: this rank runs by itself after all
                _kill_rank(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pid = -1
        if pid < 0:  # no fork: that rank runs by itself (its stand-in reads no pid)
            del by_conn[rank.conn.fileno()]
            poller.unregister(rank.conn.fileno())
            rank.conn.close()
            return None
        served += 1
        rank.pid = pid
        by_pidfd[rank.pidfd] = rank
        poller.register(rank.pidfd, select.EPOLLIN)
        try:  # its pid, and a pidfd of it: a signal passed on never reaches another process
            if not socket.send_fds(rank.conn, [_PID.pack(b"P", pid)], [rank.pidfd]):
                raise OSError("nothing sent")
        except OSError:
            _kill_rank(pid, signal.SIGKILL)
        return None

    # Until every rank was forked and ended; or, once the process that started the server
    # is gone (a rank that never came: it ran by itself), until the children ended.
    watched = 0.0
    while (served < ranks and os.getppid() == parent) or by_pidfd or late:
        events = poller.poll(0.0 if late and first else 0.02 if late else _WATCH_S)
        if by_pidfd and time.monotonic() - watched >= _WATCH_S:
            watched = time.monotonic()
            _mirror_stops(by_pidfd.values())
        if late and (first or not events):  # rank 0 forked, or no request waits: load Aer
            _preload(late)
            late = ()
            for rank in [r for r in by_conn.values() if r.held is not None]:
                assert rank.held is not None
                child = fork(rank, rank.held)
                if child is not None:
                    return child
            continue
        for fd, _ in events:
            if fd == listener.fileno():
                try:
                    conn, _addr = listener.accept()
                except OSError:
                    continue
                try:
                    peer, uid = peer_cred(conn)
                    conn.setblocking(False)
                except OSError:
                    uid = -1
                if uid != os.getuid():  # an abstract name anyone can use: another user's
                    conn.close()  # closed unread
                    continue
                by_conn[conn.fileno()] = _Rank(conn, peer)
                poller.register(conn.fileno(), select.EPOLLIN)
            elif fd in by_pidfd:  # a child ended: reap it, tell its stand-in
                rank = by_pidfd.pop(fd)
                poller.unregister(fd)
                os.close(fd)
                _report(rank)
                if rank.conn.fileno() in by_conn:
                    del by_conn[rank.conn.fileno()]
                    poller.unregister(rank.conn.fileno())
                rank.conn.close()
            elif fd in by_conn:
                rank = by_conn[fd]
                if rank.pid or rank.held is not None:  # its stand-in died (mpiexec ended it)
                    if rank.pid:  # so does its child (reaped when its pidfd turns readable)
                        _kill_rank(rank.pid, signal.SIGKILL)
                    else:
                        for received in rank.held[1] if rank.held else []:
                            os.close(received)
                        rank.held = None
                        rank.conn.close()
                    del by_conn[fd]
                    poller.unregister(fd)
                    continue
                if not rank.read():  # unreadable: that rank runs by itself
                    del by_conn[fd]
                    poller.unregister(fd)
                    rank.conn.close()
                    continue
                asked, rank.asked = rank.asked, None
                if asked is None:  # (not whole yet)
                    continue
                if late and asked[0].get("env", {}).get("PMI_RANK") != "0":
                    rank.held = asked  # a worker: forked once Aer is loaded
                else:
                    child = fork(rank, asked)
                    if child is not None:
                        return child
    return None


def _mirror_stops(ranks: Iterable[_Rank]) -> None:
    """A stand-in stopped (SIGSTOP: no handler can pass it on, as a stand-in passes on a
    signal) stops its rank's group too, as it stopped the rank before the server; the
    SIGCONT that continues the stand-in is passed on as any other, and sent here too once
    the stand-in is seen running again (a SIGCONT passed on just before this SIGSTOP
    arrived would have left the rank stopped)."""
    for rank in ranks:
        stopped = stat_fields(rank.peer)[:1] == [b"T"]
        if stopped != rank.stopped:
            _signal_rank(rank.pidfd, rank.pid, signal.SIGSTOP if stopped else signal.SIGCONT)
        rank.stopped = stopped


def _let_go(poller: Any, listener: socket.socket, ranks: list[_Rank], mine: list[int]) -> None:
    """In a child: close the server's descriptors (each once: a rank may be listed twice),
    other stand-ins' held ones included, and those sent with a request not read whole yet
    (another rank's streams and ``PMI_FD``: its ends would not be seen while this rank
    ran); ``mine``: this child's own, kept."""
    poller.close()
    listener.close()
    for rank in {id(r): r for r in ranks}.values():
        rank.conn.close()
        extra = [rank.pidfd] if rank.pidfd >= 0 else []
        extra += [fd for fd in (rank.held[1] if rank.held else []) if fd not in mine]
        extra += [fd for fd in rank.fds if fd not in mine]
        for fd in extra:
            try:
                os.close(fd)
            except OSError:
                pass


def _signal_rank(pidfd: int, pid: int, sig: int) -> None:
    """``sig`` to the forked rank ``pidfd`` (pid ``pid``) and what it started in its process
    group, as hydra signals a rank's group; to the rank alone while it has no group (before
    its ``setsid``). Through its pidfd: never to another process that took its pid once it
    ended. Before Linux 6.9 (no group flag) its group is signalled by number, while the
    rank is seen not reaped (its number is its group's then)."""
    try:
        signal.pidfd_send_signal(pidfd, sig, None, _PIDFD_SIGNAL_PROCESS_GROUP)
        return
    except ProcessLookupError:  # no group of its own (not yet, or no more)
        pass
    except OSError:  # EINVAL: a kernel before 6.9
        try:
            signal.pidfd_send_signal(pidfd, 0)
            os.killpg(pid, sig)
            return
        except OSError:
            pass
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except OSError:  # ended
        pass


def _end_children(parent: int, grace: float) -> None:
    """SIGTERM to the running ranks the server ``parent`` forked (and their groups), ``grace``
    seconds for them to end, then SIGKILL (:meth:`Server.stop`)."""
    import select
    import time

    ranks = _children_of(parent)
    try:
        for pidfd, pid in ranks:
            _signal_rank(pidfd, pid, signal.SIGTERM)
            _signal_rank(pidfd, pid, signal.SIGCONT)  # (one stopped acts on it, as kill(1)'s)
        poller = select.poll()
        for pidfd, _ in ranks:
            poller.register(pidfd, select.POLLIN)
        left = {pidfd for pidfd, _ in ranks}
        deadline = time.monotonic() + grace
        while left and (wait := deadline - time.monotonic()) > 0:
            for pidfd, _ in poller.poll(wait * 1000):
                left.discard(pidfd)
                poller.unregister(pidfd)
        for pidfd, pid in ranks:
            if pidfd in left:
                _signal_rank(pidfd, pid, signal.SIGKILL)
    finally:
        for pidfd, _ in ranks:
            os.close(pidfd)


def _children_of(parent: int) -> list[tuple[int, int]]:
    """``(pidfd, pid)`` of each child of ``parent`` that still runs. Each pid read from
    /proc is checked once its pidfd is open: still ``parent``'s child, and not ended (so
    the pid was that child's all along)."""
    import select

    try:
        with open(f"/proc/{parent}/task/{parent}/children") as listing:
            pids = [int(word) for word in listing.read().split()]
    except (OSError, ValueError):  # (a kernel without CONFIG_PROC_CHILDREN: none found)
        return []
    found = []
    for pid in pids:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            continue
        fields = stat_fields(pid)
        ppid = int(fields[1]) if len(fields) > 1 else -1
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if ppid == parent and not poller.poll(0):
            found.append((pidfd, pid))
        else:
            os.close(pidfd)
    return found


def _kill_rank(pid: int, sig: int) -> None:
    """``sig`` to a forked rank and what it started in its process group (as hydra signals
    a rank's group); to the rank alone when that fails."""
    try:
        os.killpg(pid, sig)
    except OSError:
        _kill(pid, sig)


def _fork() -> int:
    """``os.fork()``; -1 when it failed."""
    try:
        return os.fork()
    except OSError:
        return -1


#: The server's one loading thread (see :func:`_in_loader`), started at its first preload.
_loader: Any = None


def _in_loader(work: Callable[[], None]) -> None:
    """Run ``work`` (the preload's imports) in the server's loading thread, and wait for it.

    Not in the thread that forks: an import can seed that thread's random generators,
    which Python cannot reseed in a child. Qiskit draws a Parameter's UUID from Rust's
    thread-local RNG, seeded at ``import qiskit``: every child drew the same UUIDs, a
    task's first Parameter had rank 0's first one's UUID, and a circuit holding both
    had one parameter (review31 F1). A child is a copy of the forking thread alone,
    whose generators are then seeded afresh in each. One thread does every import
    (qiskit's, then Aer's after rank 0 forked), and stays, idle, until the server
    ends: a second thread importing Aer after the first had ended crashed in Qiskit's
    Rust code (a segfault in ``_accelerate``).
    """
    global _loader
    import queue
    import threading

    if _loader is None:
        jobs: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = queue.SimpleQueue()

        def serve() -> None:
            while True:
                job, done = jobs.get()
                try:
                    job()
                except BaseException:  # (the thread serves on: the next preload waits on it)
                    pass
                finally:
                    done.set()

        thread = threading.Thread(target=serve, name="qshpc-preload", daemon=True)
        thread.start()
        _loader = (jobs, thread)
    jobs, thread = _loader
    if not thread.is_alive():  # (never expected: then in this thread, as before)
        work()
        return
    done = threading.Event()
    jobs.put((work, done))
    while not done.wait(1.0):  # a loader that died meanwhile never sets it (review33 F1)
        if not thread.is_alive():
            return


def _preload(modules: tuple[str, ...], mpi: bool = False) -> None:
    """Import ``modules`` as a worker's preload would (failures left to the tasks to report);
    with ``mpi``, load the MPI library too (not ``MPI_Init``: each rank's, after the fork).

    The collector is off meanwhile, and what the imports made is frozen after: the
    children's collections never touch (copy) it (:func:`qshpc.runtime.gctune.uncollected`).
    """
    import gc
    import importlib

    from qshpc.runtime.gctune import uncollected

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except BaseException:  # missing or broken (a module's own sys.exit at import,
                pass  # review33 F1, hung the run): a task that needs it says so

    with uncollected():
        _in_loader(load)
    gc.freeze()  # (with QSHPC_GC=default too: the children's collections never copy it)
    if not mpi:
        return
    try:
        # What ``from mpi4py import MPI`` does first: find and dlopen libmpi (the PyPI
        # MPICH's: 13 MB, ~40 ms of CPU in every rank); its answer is kept, the library
        # stays loaded, and each child's import of ``mpi4py.MPI`` then links to it.
        from mpi4py import _mpiabi

        _mpiabi._get_mpiabi()  # type: ignore[attr-defined]  # (private: see the except)
    except Exception:  # another mpi4py: each rank loads its MPI itself, as before
        pass


def fork_plan(
    program: Path,
    cache: dict[str, Any] | None,
    ranks: int,
    env: Mapping[str, str],
    cpus_per_task: int | None = None,
) -> tuple[tuple[str, ...], dict[str, str]] | None:
    """What the ranks' fork server imports, and the BLAS variables it sets; None: no server.

    A server pays when the program's tasks need qiskit or Aer (what a worker would
    preload): each of the ``ranks`` then starts as a fork of one process that
    imported them, instead of importing them itself. Not with ``QSHPC_FORK_SERVER=0``,
    and not for a job whose cache is on for every task (``cache``: the command
    line's word, else ``QSHPC_CACHE_JOB`` in ``env``; its workers import at their
    first batch only: a rerun whose calls all hit imports nothing there); only
    with the PyPI MPICH's mpiexec (hydra: the hand-over is tested with it).
    """
    from qshpc import settings
    from qshpc.runtime.mpi import pypi_mpich

    if not settings.FORK_SERVER.get(env) or not pypi_mpich() or not _pidfds():
        return None
    if cache["enabled"] if cache is not None else settings.CACHE_JOB.get(env):
        return None
    names = settings.PRELOAD.get(env)
    if names == ("auto",):
        names = program_needs(program)
    if installed(
        "qiskit_aer_gpu"
    ):  # CUDA does not survive a fork once started: each rank loads Aer itself
        names = tuple(n for n in names if not n.startswith("qiskit_aer"))
    if not names:
        return None
    from qshpc.runtime.blas import USER_VARS
    from qshpc.task.context import cores_for_rank

    cpus = str(cores_for_rank(ranks, cpus_per_task, len(os.sched_getaffinity(0))))
    user = any(env.get(v) for v in USER_VARS)
    return names, ({} if user else {"OPENBLAS_NUM_THREADS": cpus, "MKL_NUM_THREADS": cpus})


def _pidfds() -> bool:
    """Whether this kernel has pidfds (Linux 5.3+; RHEL 8's 4.18 has not): the server needs
    them, and every rank of a host decides alike (none waits for a server that cannot be)."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (OSError, AttributeError):
        return False
    return True


#: What the program's imports say the workers will need (``QSHPC_PRELOAD=auto``).
AER_USERS = ("qiskit_aer", "qshpc.aer", "qshpc.primitives")


#: A program larger than this is not read for its imports (:func:`program_needs`).
NEEDS_MAX_BYTES = 8 << 20


def program_needs(program: Path) -> tuple[str, ...]:
    """The modules to preload for ``program``, from the imports in its source.

    ``qiskit`` and ``qiskit_aer`` when it imports Aer (or qshpc's Aer layer:
    ``qshpc.aer``, ``qshpc.primitives``) anywhere in the file, ``qiskit`` alone
    when it imports only qiskit, nothing otherwise (a program whose tasks need
    none of them starts without 1-2 s of imports per worker). An unreadable
    program preloads both; so does one that is no regular file (a FIFO would block the
    read for good, a device such as ``/dev/zero`` never end it: review35 F3; the launch
    refuses it next, :func:`qshpc.jobs.prepare.check_program`) or is over
    :data:`NEEDS_MAX_BYTES` (not read here).
    """
    import ast
    import stat

    try:
        fd = os.open(program, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > NEEDS_MAX_BYTES:
                return ("qiskit", "qiskit_aer")
            with os.fdopen(fd, "rb", closefd=False) as fh:
                source = fh.read(NEEDS_MAX_BYTES + 1)
        finally:
            os.close(fd)
        tree = ast.parse(source, str(program))
    except (OSError, SyntaxError, ValueError):
        return ("qiskit", "qiskit_aer")
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    if any(n == m or n.startswith(m + ".") for n in names for m in AER_USERS):
        return ("qiskit", "qiskit_aer")
    if any(n == "qiskit" or n.startswith("qiskit.") for n in names):
        return ("qiskit",)
    return ()


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _report(rank: _Rank) -> None:
    """Reap the child of ``rank`` and tell its stand-in how it ended."""
    try:
        _, status = os.waitpid(rank.pid, 0)
    except ChildProcessError:
        return
    code = os.waitstatus_to_exitcode(status)
    end = _END.pack(b"X", 1, -code) if code < 0 else _END.pack(b"X", 0, code)
    try:
        rank.conn.sendall(end)
    except OSError:
        pass


def _check_fds(numbers: list[Any], fds: list[int]) -> None:
    """ValueError unless a child can put ``fds`` at ``numbers`` (:func:`_take_descriptors`)
    within this process's hard limit of descriptors (else that rank runs by itself)."""
    import resource

    if not all(isinstance(n, int) and n >= 0 for n in numbers):
        raise ValueError("descriptor numbers")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and _above(numbers, fds) + len(fds) > hard:
        raise ValueError("descriptors beyond the limit")


def _above(numbers: list[int], fds: list[int]) -> int:
    """The lowest number where copies of ``fds`` clash with none of ``numbers`` or ``fds``."""
    return max([*numbers, *fds, 2]) + 1


def _become(request: dict[str, Any], fds: list[int], blas: Mapping[str, str], server: int) -> None:
    """In the forked child: take the stand-in's place (descriptors, environment, folder...).

    The forwarded signals are blocked from before the fork (:func:`_serve`) until the
    rank's own handling of them is in place: its deferral, as :mod:`qshpc.__main__` sets
    it first in a fresh rank, and what the stand-in ignored (``nohup``) ignored.
    """
    die_with_parent(signal.SIGKILL)  # nothing would report its end once the server is gone
    if os.getppid() != server:
        os._exit(1)
    try:
        os.setsid()  # as hydra starts each rank: a session (and process group) of its own
    except OSError:
        pass
    stopsig = sys.modules.get("qshpc.runtime.stopsig")
    if stopsig is not None:  # (preloaded by QSHPC_PRELOAD): a rank, not a child a rank forked
        stopsig.forked.clear()
    _take_descriptors(request["fds"], fds)
    _open_streams(request["fds"])
    os.environ.clear()
    os.environ.update(request["env"])
    for key, value in blas.items():  # what the rank would have set before numpy loaded
        os.environ.setdefault(key, value)
    try:
        os.chdir(request["cwd"])
    except OSError:  # removed (renamed) since the stand-in asked: the folder it is in still
        os.chdir(f"/proc/{int(request.get('pid', 0))}/cwd")
    os.umask(int(request["umask"]))
    try:
        os.sched_setaffinity(0, request["affinity"])
    except (OSError, ValueError):
        pass
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:  # the server's seed would be every child's: a fresh one each
        numpy_random.seed()
    sys.argv = list(request["argv"])
    for sig in _RESET:
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in request.get("ignored", []):
        signal.signal(sig, signal.SIG_IGN)
    from qshpc.runtime.stopsig import defer_if_rank

    defer_if_rank(sys.argv)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)


def _take_descriptors(numbers: list[int], fds: list[int]) -> None:
    """Put each received descriptor at the number it had in the stand-in.

    Each is first copied above every number to fill; when that is past the soft
    limit of descriptors (one at the stand-in's limit - 1), the limit is raised to
    the hard one meanwhile (:func:`_check_fds` saw that it suffices).
    """
    import fcntl
    import resource

    above = _above(numbers, fds)  # the copies clash with no number to fill
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = limit[0] != resource.RLIM_INFINITY and above + len(fds) > limit[0]
    if raised:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit[1], limit[1]))
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, above) for fd in fds]
    for fd in fds:
        os.close(fd)
    for target in (0, 1, 2):
        if target not in numbers:  # closed in the stand-in: closed here too
            try:
                os.close(target)
            except OSError:
                pass
            setattr(sys, ("stdin", "stdout", "stderr")[target], None)
    for number, fd in zip(numbers, high, strict=True):
        os.dup2(fd, number, inheritable=True)
        os.close(fd)
    if raised:
        resource.setrlimit(resource.RLIMIT_NOFILE, limit)


def _open_streams(numbers: list[int]) -> None:
    """The standard streams the server has not (closed in its launcher: ``qshpc run ...
    2>&-``) and the stand-in has, opened as Python opens them at its start: else the rank
    ran with ``sys.stderr`` None, its errors unseen (a job failed, exit 1, without a word)."""

    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        if fd not in numbers or getattr(sys, name) is not None:
            continue
        stream = open(
            fd,
            "r" if fd == 0 else "w",
            errors="backslashreplace" if fd == 2 else None,
            buffering=1 if fd == 2 or os.isatty(fd) else -1,  # (1: by line)
            closefd=False,
        )
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


_forked: list[bool] = []  # not empty in a rank the server forked (or one its launcher's should)


def hand_over(argv: list[str] | None = None) -> None:
    """In a rank mpiexec started for ``qshpc run``'s launcher: have the fork server run it.

    Returns only when there is no server to hand over to, or the hand-over
    failed before the rank was forked (then this process runs the rank), or in
    the forked rank itself. Otherwise this process stands in for the rank until
    it ends, and exits as it did.
    """
    name = os.environ.pop(SOCKET_VAR, None)
    if name is not None:  # (forked, or a server's to ask: join_local has nothing to do)
        _forked.append(True)
    if name == "":  # the forked rank: its stand-in marked it so
        return
    argv = sys.argv if argv is None else argv
    if not name or argv[1:2] != ["run"] or "PMI_RANK" not in os.environ:
        return
    _hand_over_to(name, argv, 0.0)


def join_local(program: Path, cache: dict[str, Any] | None) -> None:
    """A rank of a user's ``mpiexec`` (hydra), one of several on this host: be forked too.

    Local rank 0 starts the host's server (its socket named after hydra's
    proxy, as :func:`qshpc.runtime.mpi.local_rendezvous`'s), every local rank
    hands itself over to it (the others wait for its socket 5 s at most). Each
    rank decides alike (the same program, environment, host): when the
    program needs nothing imported, or the cache is on for every task, none
    of them does this. Nothing in a rank already forked, nor under Slurm.
    """
    env = os.environ
    if _forked or "SLURM_JOB_ID" in env:
        return
    _forked.append(False)  # tried once: a rank whose hand-over failed runs by itself
    try:
        count = int(env.get("MPI_LOCALNRANKS", "0"))
        mine = int(env.get("MPI_LOCALRANKID", "-1"))
        fd = int(env.get("PMI_FD", "-1"))
    except ValueError:
        return
    if count < 2 or not 0 <= mine < count or fd < 0:
        return
    plan = fork_plan(program, cache, count, env)
    if plan is None:
        return
    import socket

    from qshpc.runtime.mpi import proxy_pid

    proxy = proxy_pid(fd)
    if proxy is None:
        return
    name = f"qshpc-fork-{socket.gethostname()}-{proxy}-{count}"
    if mine == 0:
        import subprocess

        flags = subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]
        server = start("", count, plan[0], plan[1], sys.argv, name, flags)
        if server is None:
            return  # (the others find no server: they run by themselves after their wait)
        _servers.append(server)  # reaped by this stand-in once its rank ended
    _hand_over_to(name, sys.argv, 5.0)


_servers: list[Server] = []  # the server a local rank 0 started, to reap at its end


def _hand_over_to(name: str, argv: list[str], wait: float) -> None:
    """Hand this rank over to the server at ``name`` (retrying ``wait`` s for its socket)."""
    pending: list[int] = []
    child: list[tuple[int, int]] = []  # the rank's pid and pidfd, once forked

    def forward(signum: int, frame: Any) -> None:
        if child:
            _signal_rank(child[0][1], child[0][0], signum)
        else:
            pending.append(signum)

    before = {s: signal.signal(s, forward) for s in FORWARDED}
    ignored = [int(s) for s, handler in before.items() if handler == signal.SIG_IGN]
    stopsig = sys.modules.get("qshpc.runtime.stopsig")
    noted = list(stopsig.received) if stopsig is not None else []  # deferred since the start
    import time

    conn = connect_within("\0" + name, time.monotonic() + wait)
    try:
        if conn is None:
            raise ConnectionRefusedError(name)
        if peer_cred(conn)[1] != os.getuid():  # an abstract name: not ours, tell it nothing
            raise ValueError("fork server of another user")
        _ask(conn, argv, ignored)
        conn.settimeout(_FORK_WAIT_S)
        forked = _read_pid(conn)
        conn.settimeout(None)
    except (OSError, ValueError):
        forked = None
    if forked is None:  # nothing forked: this process is the rank (signals noted meanwhile too)
        if conn is not None:
            conn.close()  # (a child forked for it after all is killed by the server)
        for sig, handler in before.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for signum in pending:
            os.kill(os.getpid(), signum)
        return
    assert conn is not None
    child.append(forked)
    for signum in [*noted, *pending]:  # (blocked in the child until its handlers are set)
        _signal_rank(forked[1], forked[0], signum)
    _stand_in(conn, *forked)


def _ask(conn: socket.socket, argv: list[str], ignored: list[int]) -> None:
    """Send the request: what the rank's process is, and its inheritable descriptors."""
    import json
    import socket

    numbers = _inherited()
    body = json.dumps(
        {
            "argv": argv,
            "env": {**os.environ, SOCKET_VAR: ""},  # (the forked rank hands over no more)
            "cwd": os.getcwd(),
            "pid": os.getpid(),  # (its folder, /proc/PID/cwd, should that name go meanwhile)
            "umask": _umask(),
            "affinity": sorted(os.sched_getaffinity(0)),
            "fds": numbers,
            "ignored": ignored,
        }
    ).encode()
    data = _HEADER.pack(len(body)) + body
    sent = socket.send_fds(conn, [data[:4096]], numbers)
    conn.sendall(data[sent:])


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _inherited() -> list[int]:
    """This process's descriptors that its parent gave it (inheritable: Python's own are not):
    the standard streams and hydra's ``PMI_FD`` always, others while 64 fit in one message
    (hydra leaks ~15 + 2 x local rank of its own into each rank: those are dropped first)."""
    numbers: list[int] = []
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        names = ["0", "1", "2"]
    for entry in names:
        fd = int(entry)
        try:
            if os.get_inheritable(fd):
                numbers.append(fd)
        except OSError:  # the listing's own descriptor, closed by now
            continue
    pmi = os.environ.get("PMI_FD", "")
    needed = [fd for fd in numbers if fd <= 2 or str(fd) == pmi]
    others = [fd for fd in sorted(numbers) if fd not in needed]
    return sorted(needed + others[: max(0, _MAX_FDS - len(needed))])


def _read_pid(conn: socket.socket) -> tuple[int, int] | None:
    """The forked rank's pid and a pidfd of it (the server's message ``P``); None: no rank."""
    import socket

    data, fds, _flags, _addr = socket.recv_fds(conn, _PID.size, 1)
    if not fds:  # (no pidfd: nothing to signal it by; the server kills what it forked)
        return None
    rest = _read_exactly(conn, _PID.size - len(data)) if data else None
    if rest is None:
        os.close(fds[0])
        return None
    kind, pid = _PID.unpack(data + rest)
    if kind != b"P" or pid <= 0:
        os.close(fds[0])
        return None
    return pid, fds[0]


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        more = conn.recv(size - len(data))
        if not more:
            return None
        data += more
    return data


def _stand_in(conn: socket.socket, pid: int, pidfd: int) -> NoReturn:
    """Wait for the rank's end (signals passed on meanwhile); end as it did."""
    try:
        data = _read_exactly(conn, _END.size)
    except OSError:
        data = None
    if data is None:  # the server is gone: nothing reports the rank's end, so it ends now
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except OSError:
            pass
        print(
            f"qshpc: error: the fork server of this rank (pid {pid}) ended before it; "
            "the rank was ended",
            file=sys.stderr,
            flush=True,
        )
        os._exit(1)
    _, kind, value = _END.unpack(data)
    for server in _servers:  # the other ranks end with this one (MPI_Finalize): so does it
        server.reap(2.0)
    if kind == 1:
        _end_by_signal(value)
    os._exit(value)


def _end_by_signal(sig: int) -> NoReturn:
    """End this process by ``sig``, as its rank ended (no core file of this stand-in)."""
    import resource

    for step in (
        lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)),
        lambda: signal.signal(sig, signal.SIG_DFL),  # (refused for SIGKILL: default anyway)
        lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig]),
        lambda: os.kill(os.getpid(), sig),
    ):
        try:
            step()
        except (OSError, ValueError):
            pass
    os._exit(128 + sig)


__all__ = [
    "FORWARDED",
    "SOCKET_VAR",
    "Server",
    "fork_plan",
    "hand_over",
    "join_local",
    "main",
    "program_needs",
    "start",
]


if __name__ == "__main__":
    main(sys.argv[1:])
