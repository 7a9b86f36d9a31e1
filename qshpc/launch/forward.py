"""The ranks' output passed on to ``qshpc run``'s stdout and stderr; a reader that stops stalls no rank.

The launcher reads what mpiexec forwards of the ranks' output and writes it to
its own stdout and stderr. A reader there that stops reading (``qshpc run p.py
| sleep 75``, a ``| less`` left open, a terminal paused with Ctrl-S) once
stopped the whole job: the launcher blocked in its write, mpiexec's pipes
filled, and every rank stopped in its next print, with no line saying why
(review35 F4). Each stream now goes through a :class:`Forwarder`: the pump puts
lines in a bounded queue; a thread of its own writes them. When the queue is
full, the pump waits (and so do the ranks, as with ``python prog.py``) as long
as the reader takes something: a slow reader that reads gets every line. Only
once it has taken nothing for :data:`STALL_S` are lines dropped and counted, until
it reads again; at the end one line says how many and where they all are (the
ranks' logs: nothing is lost there). No line is dropped for its size alone.
A reader that has gone (EPIPE: ``| head -1``) gets nothing more, as before.
"""

from __future__ import annotations

import bisect
import itertools
import os
import threading
import time
from collections import deque
from typing import Any

#: What a stream's queue holds at most before the pump waits for the reader (one line
#: longer than that is taken alone: it is never dropped for its size).
QUEUE_BYTES = 32 << 20
QUEUE_LINES = 200_000
#: A full queue whose reader has taken nothing for this long drops lines (counted) until
#: it takes some again: the ranks do not wait on a reader that stopped (review35 F4).
STALL_S = 10.0
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
        max_bytes, max_lines: the queue's bounds (:data:`QUEUE_BYTES`, :data:`QUEUE_LINES`).
        stall_s: how long a reader may take nothing before lines are dropped (:data:`STALL_S`).
    """

    def __init__(
        self,
        dst: Any,
        name: str,
        max_bytes: int = QUEUE_BYTES,
        max_lines: int = QUEUE_LINES,
        stall_s: float = STALL_S,
    ) -> None:
        self.dst = dst
        self.name = name
        self.max_bytes = max_bytes
        self.max_lines = max_lines
        self.stall_s = stall_s
        self.dropped = 0
        self._waiting = 0  # puts waiting for room (their reader takes lines)
        self._lines: deque[bytes] = deque()
        self._bytes = 0
        self._gone = False  # the reader left (EPIPE): nothing more is written
        self._busy = 0  # lines in the write under way
        self._wrote_at = time.monotonic()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._write, name=f"qshpc-{name}", daemon=True)
        self._thread.start()

    def put(self, lines: list[bytes], wait: bool = True) -> None:
        """Queue ``lines``. While the queue is full, wait as long as its reader takes
        something (with ``wait``); drop and count a line when the reader has taken
        nothing for :attr:`stall_s` (or at once without ``wait``)."""
        with self._cond:
            for line in lines:
                while not self._gone and self._full():
                    stalled = time.monotonic() - self._wrote_at
                    if not wait or stalled > self.stall_s:
                        break
                    self._waiting += 1
                    try:
                        self._cond.wait(timeout=min(0.5, self.stall_s - stalled + 0.01))
                    finally:
                        self._waiting -= 1
                if self._gone:
                    return
                if self._full():
                    self.dropped += 1
                    continue
                self._lines.append(line)
                self._bytes += len(line)
                self._cond.notify_all()

    def _full(self) -> bool:
        """Whether the queue takes no more line (it always takes one when empty)."""
        if not self._lines:
            return False
        return self._bytes >= self.max_bytes or len(self._lines) >= self.max_lines

    def waiting(self) -> bool:
        """Whether a :meth:`put` waits for room, its reader taking lines."""
        with self._cond:
            return self._waiting > 0

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
                self._wrote_at = time.monotonic()  # a stall is counted from a write's start
                self._cond.notify_all()  # room: a waiting put goes on
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
