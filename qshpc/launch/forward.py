"""The ranks' output passed on to ``qshpc run``'s stdout and stderr, never blocking the ranks.

The launcher reads what mpiexec forwards of the ranks' output and writes it to
its own stdout and stderr. A reader there that stops reading (``qshpc run p.py
| sleep 75``, a ``| less`` left open, a terminal paused with Ctrl-S) once
stopped the whole job: the launcher blocked in its write, mpiexec's pipes
filled, and every rank stopped in its next print, with no line saying why
(review35 F4). Each stream now goes through a :class:`Forwarder`: the pump puts
lines in a bounded queue and goes on reading; a thread of its own writes them.
When the queue is full, lines are dropped and counted, and at the end one
line says how many and where they all are (the ranks' logs: nothing is lost
there). A reader that has gone (EPIPE: ``| head -1``) gets nothing more, as before.
"""

from __future__ import annotations

import bisect
import itertools
import os
import threading
import time
from collections import deque
from typing import Any

#: What a stream's queue holds at most before lines are dropped (a slow reader keeps up).
QUEUE_BYTES = 32 << 20
QUEUE_LINES = 200_000
#: A write to a pipe of at most this many bytes is whole or not at all (POSIX PIPE_BUF):
#: lines are written in such chunks, so a reader that stopped leaves no line counted as
#: shown that was not (a longer line is written alone).
_ATOMIC = 4096
#: At the end: how long a reader may take nothing before what is left is given up.
STALLED_S = 5.0


class Forwarder:
    """Write lines to ``dst`` (a binary file object: its descriptor is written directly)
    from a thread of its own, never making the caller of :meth:`put` wait.

    Args:
        dst: ``sys.stdout.buffer`` or ``sys.stderr.buffer``.
        name: ``stdout`` or ``stderr``, for the note.
    """

    def __init__(self, dst: Any, name: str) -> None:
        self.dst = dst
        self.name = name
        self.dropped = 0
        self._lines: deque[bytes] = deque()
        self._bytes = 0
        self._gone = False  # the reader left (EPIPE): nothing more is written
        self._busy = 0  # lines in the write under way
        self._wrote_at = time.monotonic()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._write, name=f"qshpc-{name}", daemon=True)
        self._thread.start()

    def put(self, lines: list[bytes]) -> None:
        """Queue ``lines`` (dropped and counted once the queue is full)."""
        with self._cond:
            if self._gone:
                return
            for line in lines:
                if self._bytes + len(line) > QUEUE_BYTES or len(self._lines) >= QUEUE_LINES:
                    self.dropped += 1
                    continue
                self._lines.append(line)
                self._bytes += len(line)
            self._cond.notify()

    def _write(self) -> None:
        try:
            fd = self.dst.fileno()
            self.dst.flush()  # what this process wrote through it before: first
        except (OSError, ValueError, AttributeError):
            fd = -1
        while True:
            with self._cond:
                while not self._lines and not self._closing:
                    self._cond.wait()
                if not self._lines:
                    return
                chunk = [self._lines.popleft()]
                size = len(chunk[0])
                while self._lines and size + len(self._lines[0]) <= _ATOMIC:
                    chunk.append(self._lines.popleft())
                    size += len(chunk[-1])
                self._bytes -= size
                self._busy = len(chunk)
            try:
                self._write_chunk(fd, chunk)
            except (OSError, ValueError):
                from qshpc.runtime.logtee import to_null

                to_null(self.dst)
                with self._cond:
                    self._gone = True
                    self._lines.clear()
                    self._bytes = 0
            with self._cond:
                self._busy = 0
                self._wrote_at = time.monotonic()
                self._cond.notify_all()

    def _write_chunk(self, fd: int, chunk: list[bytes]) -> None:
        """Write ``chunk``'s lines, keeping :attr:`_busy` the count of those not all written."""
        if fd < 0:
            raise OSError("no descriptor")
        ends = list(itertools.accumulate(len(line) for line in chunk))
        view = memoryview(b"".join(chunk))
        done = 0
        while done < len(view):
            try:
                done += os.write(fd, view[done:])
            except InterruptedError:
                continue
            self._busy = len(chunk) - bisect.bisect_right(ends, done)
            self._wrote_at = time.monotonic()

    def finish(self) -> int:
        """Wait until the queue is written, or until its reader took nothing for
        :data:`STALLED_S`; return the lines not shown (dropped, or left unwritten)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            while (self._lines or self._busy) and not self._gone:
                if time.monotonic() - self._wrote_at > STALLED_S:
                    break
                self._cond.wait(timeout=0.1)
            if self._gone:
                return 0  # the reader left: nothing is shown there any more, by its choice
            return self.dropped + len(self._lines) + self._busy


def note_not_shown(forwarders: list[Forwarder], logs: str) -> str | None:
    """Wait for ``forwarders``; the line saying what they could not show, or None."""
    parts = []
    for fwd in forwarders:
        n = fwd.finish()
        if n:
            parts.append(
                f"{n} line(s) of the ranks' {fwd.name} not shown here ({fwd.name} not read)"
            )
    if not parts:
        return None
    return f"qshpc: {'; '.join(parts)}; all are in the ranks' logs, {logs}"


def say_if_read(line: str, wait_s: float = 1.0) -> None:
    """Write ``line`` to stderr when it takes it within ``wait_s`` (a stderr that is not read
    does not hold the command's end: the note is for a reader that reads)."""
    import select
    import sys

    try:
        sys.stderr.flush()
        fd = sys.stderr.fileno()
        if select.select([], [fd], [], wait_s)[1]:
            os.write(fd, f"{line}\n".encode(errors="replace"))
    except (OSError, ValueError, AttributeError):
        pass
