"""The ranks started first: ``qshpc run`` as a ``LocalClient`` starts it.

The client writes the command that starts the ranks (``mpiexec ... python -m
qshpc run ...``) and its environment (:func:`qshpc.launch.local.early_command`);
the launcher's first act, before it imports the rest of qshpc, is to start it
(:func:`spawn`), with the socket the ranks connect to already listening and its
stop signals already caught. The launcher then goes on as ``qshpc run`` does and
takes this ``mpiexec`` as its own (:func:`take`): it stays its parent (a launcher
killed takes mpiexec with it), forwards its output and signals, and records how
the job ended. Only the standard library here (and qshpc.runtime.procs, which has
no more): this runs before anything else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any

from qshpc.runtime.procs import die_with_parent

#: ``settings.LAUNCH_WATCH``'s name (not imported: settings costs its imports first).
WATCH_VAR = "QSHPC_LAUNCH_WATCH"
#: ``settings.FORK_PLAN``'s name: what the ranks' fork server is to import, if any.
PLAN_VAR = "QSHPC_FORK_PLAN"


class Started:
    """The ``mpiexec`` :func:`spawn` started, the listener it made, the signals caught since."""

    def __init__(
        self, proc: subprocess.Popen[bytes], listener: Any, caught: list[int], forks: Any = None
    ) -> None:
        self.proc = proc
        self.listener = listener
        self.caught = caught
        self.forks = forks  # the ranks' fork server (qshpc.runtime.forkserver.Server), or None
        self.at = time.time()
        self.cpu = time.process_time()


_started: list[Started] = []


def end_with_parent() -> None:
    """In mpiexec's process: a SIGTERM when ``qshpc run`` dies (kill -9), so no rank outlives it.

    mpiexec passes the SIGTERM to every rank (rank 0 starts storing CANCELED),
    but its output has no reader any more: it ends when the ranks print, and the
    ranks with it, before rank 0 is done. The job is then FAILED (by the next
    reader's post-mortem) rather than left running with no one to see it.
    """
    die_with_parent(signal.SIGTERM)


def listen(name: str | None) -> Any:
    """The socket the ranks connect to as they start (``_Deaths.listen``'s), or None."""
    if not name:
        return None
    import socket

    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.bind("\0" + name)  # abstract: nothing to remove, gone with this process
        sock.listen(1024)  # two connections per rank
    except OSError:
        return None
    return sock


def spawn(words: list[str]) -> Started:
    """Start ``words`` (the ranks' ``mpiexec``) with this process's environment, now.

    SIGINT, SIGTERM and SIGHUP are caught from here on and only noted: the
    launcher's own handling takes them over (a stop signal then reaches rank 0).
    """
    caught: list[int] = []

    def note(signum: int, frame: Any) -> None:
        caught.append(signum)

    signal.signal(signal.SIGTERM, note)
    for s in (signal.SIGINT, signal.SIGHUP):  # (ignored where started so: kept so)
        if signal.getsignal(s) != signal.SIG_IGN:
            signal.signal(s, note)
    listener = listen(os.environ.get(WATCH_VAR))
    forks = None
    plan = os.environ.pop(PLAN_VAR, None)
    if plan:  # the client's word: the ranks are forks of a server that imported qiskit
        from qshpc.runtime import forkserver

        forks = forkserver.start_planned(plan, words[4:])
    proc = subprocess.Popen(
        words, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=end_with_parent
    )
    started = Started(proc, listener, caught, forks)
    _started.append(started)  # for the launcher's take()
    return started


def take() -> Started | None:
    """The ``mpiexec`` :func:`spawn` started in this process (once), else None."""
    return _started.pop() if _started else None


def stop(started: Started) -> None:
    """End an ``mpiexec`` the launcher will not follow (its job was refused)."""
    import sys

    proc = started.proc
    if proc.poll() is None:
        proc.terminate()  # mpiexec passes it to the ranks
    try:
        out, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    sys.stdout.buffer.write(out)  # what the ranks said (the launcher's log)
    sys.stderr.buffer.write(err)
    if started.listener is not None:
        started.listener.close()
    if started.forks is not None:
        started.forks.stop()
