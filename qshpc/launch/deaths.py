"""Which of a local run's ranks ended first, and in what order (``qshpc run`` without a launcher).

mpiexec kills the other ranks within milliseconds of one's death and names
whichever it reaped first; :class:`Deaths` sees the real order through each
rank's pidfd and a socket every rank connects to as it starts. :func:`rank_pids`
finds this run's ranks among mpiexec's grandchildren in ``/proc``.
"""

from __future__ import annotations

import os
import select
import time
from pathlib import Path
from typing import Any

from qshpc.launch import early
from qshpc.runtime.mpi import peer_cred


def rank_pids(mpiexec: int, found: dict[int, int]) -> list[tuple[int, int]]:
    """This run's ranks not in ``found`` yet: ``(rank, pid)`` of mpiexec's grandchildren.

    mpiexec starts a proxy that starts the ranks; each rank's environment holds
    its ``PMI_RANK``. Read from ``/proc`` as soon as the ranks exist, this is
    the run's own (a resumed job's store lists the previous run's ranks until
    this run's rank 0 records its own, and their pids may belong to anyone by now).
    """
    new: list[tuple[int, int]] = []
    known = set(found.values())
    for proxy in children(mpiexec):
        for pid in children(proxy):
            if pid in known:
                continue
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                continue
            for item in environ.split(b"\0"):
                if item.startswith(b"PMI_RANK=") and item[9:].isdigit():
                    rank = int(item[9:])
                    found[rank] = pid
                    new.append((rank, pid))
                    break
    return new


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            pass
    return out


class Deaths:
    """Which rank's process ended first, seen through pidfds (Linux 5.3+; ranks on this host).

    When a rank dies, mpiexec kills the others within milliseconds, and its
    banner names whichever process it reaped first (often rank 0, when rank 1
    was the one killed). A pidfd turns readable the moment its process ends,
    before mpiexec reacts (about 20 ms earlier on this VM), so the order is
    the real one. They are read through epoll, whose ready list is in the order
    the descriptors turned ready: when this process was not scheduled for a
    while and finds several ranks dead in one wait (the killed worker and the
    rank 0 that mpiexec then killed), the first in the list is still the first
    dead (``select.poll`` lists them by descriptor, which blamed rank 0).
    """

    def __init__(self) -> None:
        self.poller = select.epoll()
        self.fds: dict[int, tuple[int, int]] = {}  # fd -> (rank, pid)
        self.order: list[tuple[int, int]] = []  # (rank, pid), first dead first
        self.end_fd: int | None = None  # mpiexec's pidfd: ends every wait when it exits
        self.ranks: dict[int, int] = {}  # pid -> rank, of every rank watched
        self.listener: Any = None  # the socket the ranks connect to (see listen)
        self.conns: dict[int, int] = {}  # fd -> pid of the rank at its other end
        self.connected: set[int] = set()  # pids that connected
        self.closed: list[int] = []  # pids whose connection closed, first first

    def listen(self, token: str) -> str | None:
        """A socket each rank connects to as it starts; its name (None when there is none).

        A process's sockets close early in its exit (with its files, when mpiexec
        also sees the rank's pipes close and starts ending the others), its pidfd
        turns readable only at the very end: under load a rank mpiexec killed
        can finish dying before the rank that died first does (seen: rank 2
        blamed for rank 1's kill -9). The connections' order is causal when a
        rank's connection closes before its PMI descriptor, whose close makes
        mpiexec's proxy kill the others: each rank holds two, one on a low and
        one on a high descriptor (the kernel releases a dead process's files
        lowest or highest first, by version: :func:`qshpc.runtime.start._moved_high`),
        and the first of a rank's two to close counts.
        """
        name = self.name(token)
        sock = early.listen(name)  # abstract: nothing to remove, gone with this process
        if sock is None:
            return None
        self.listener = sock
        self.poller.register(sock.fileno(), select.EPOLLIN)
        return name

    @staticmethod
    def name(token: str) -> str:
        """The name of the socket :meth:`listen` makes for the run of ``token``."""
        return f"qshpc-ranks-{token}"

    def adopt(self, listener: Any) -> None:
        """Take ``listener``, the socket :meth:`listen` would have made (made first)."""
        if listener is None:
            return
        self.listener = listener
        self.poller.register(listener.fileno(), select.EPOLLIN)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            try:
                pid, uid = peer_cred(conn)
            except OSError:
                conn.close()
                continue
            if uid != os.getuid():  # only this user's processes (the ranks) count
                conn.close()
                continue
            fd = conn.detach()
            self.conns[fd] = pid
            self.connected.add(pid)
            self.poller.register(fd, select.EPOLLIN | select.EPOLLRDHUP)

    def ordered(self) -> list[tuple[int, int]]:
        """``(rank, pid)`` of the ranks that ended, first first.

        By their connections' close (see :meth:`listen`) when every rank that
        ended had connected; else by their pidfds.
        """
        if not self.closed or any(pid not in self.connected for _, pid in self.order):
            return list(self.order)
        first = [(self.ranks[pid], pid) for pid in self.closed if pid in self.ranks]
        return first + [(r, p) for r, p in self.order if p not in self.closed]

    def watch(self, rank: int, pid: int) -> None:
        """Watch one rank's process (a child of this run's mpiexec)."""
        self.ranks[pid] = rank
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self.order.append((rank, pid))  # gone before it could be watched: among the first
            return
        except (OSError, AttributeError):
            return  # no pidfd here: the post-mortem falls back on mpiexec's banner
        self.fds[fd] = (rank, pid)
        self.poller.register(fd, select.EPOLLIN)

    def watch_end(self, pid: int) -> None:
        """Make every :meth:`wait` return the moment process ``pid`` (mpiexec) ends."""
        try:
            self.end_fd = os.pidfd_open(pid)
        except (OSError, AttributeError):
            return  # no pidfd: the waits run their full time
        self.poller.register(self.end_fd, select.EPOLLIN)

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, noting every rank that ends meanwhile."""
        if not self.fds and self.end_fd is None and self.listener is None:
            time.sleep(seconds)
            return
        for fd, _ in self.poller.poll(seconds):  # in the order they turned ready
            if fd == self.end_fd:
                continue
            if self.listener is not None and fd == self.listener.fileno():
                self._accept()
                continue
            pid = self.conns.pop(fd, None)
            if pid is not None:  # a rank never writes: readable = closed, it is ending
                if pid not in self.closed:  # (each rank holds two: the first counts)
                    self.closed.append(pid)
            else:
                self.order.append(self.fds.pop(fd))
            self.poller.unregister(fd)
            os.close(fd)

    def close(self) -> None:
        for fd in [*self.fds, *self.conns]:
            os.close(fd)
        self.fds.clear()
        self.conns.clear()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.end_fd is not None:
            os.close(self.end_fd)
            self.end_fd = None
        self.poller.close()
