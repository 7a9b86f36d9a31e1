"""What the program or a task leaves set in its process, undone before the rank goes on.

User code runs in the rank's own process, and a few of its leftovers broke the
rank after it (found on main ac4d79c):

- ``sys.stdout``/``sys.stderr`` replaced (a ``StringIO``, ``None``): qshpc's own
  messages went into it. A program that failed after ``sys.stderr = None``
  was recorded as "rank 0 died", its traceback lost; a worker whose task set
  ``sys.stderr = None`` exited 1 at the end of a job that SUCCEEDED.
- A ``signal.alarm``/``setitimer`` left armed, with a handler that raises (a
  timeout the task forgot to cancel): it fired in the worker's own loop, the
  worker stopped serving, and the job FAILED 30 s later with "stopped
  responding (killed, crashed or out of memory?)". Left armed at the end, it
  killed the rank in its exit (Python resets its handlers, and SIGALRM's
  default ends the process): "BAD TERMINATION ... Alarm clock" and exit 14 for
  a job that SUCCEEDED.
- A task's own SIGINT/SIGTERM handlers: a worker's Ctrl-C handling
  (:class:`qshpc.runtime.worker._StopSignals`) was gone for the rest of the job.

:class:`Tidy` takes the rank's state before user code runs; :meth:`Tidy.restore`
puts it back (a worker after each batch, rank 0 when the program ends). Only in
the main thread: a loopback worker (a thread, in the unit tests) shares its
process's streams and signals with the program.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]
import signal
import sys
import threading
from typing import Any

#: The signals whose handlers are put back. SIGALRM: the timer that fires it
#: is disarmed too. (SIGCHLD, SIGUSR1 and the profilers' timers are left as set.)
SIGNALS = (signal.SIGALRM, signal.SIGINT, signal.SIGTERM)


class Tidy:
    """This process's streams and signal handlers as they are now, to put back later."""

    def __init__(self) -> None:
        self.main = threading.current_thread() is threading.main_thread()
        self.out, self.err = sys.stdout, sys.stderr
        self.handlers: dict[int, Any] = (
            {s: signal.getsignal(s) for s in SIGNALS} if self.main else {}
        )
        self.raw: dict[int, Any] = {s: _signal.getsignal(s) for s in self.handlers}
        # A timer armed already is not user code's (pytest-timeout's): never disarmed.
        self.timer = self.main and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)

    def changed(self) -> bool:
        """Did user code change what :meth:`restore` puts back (cheap: once per batch)?"""
        if not self.main:
            return False
        if sys.stdout is not self.out or sys.stderr is not self.err:
            return True
        if getattr(self.out, "closed", False) or getattr(self.err, "closed", False):
            return True
        get = _signal.getsignal  # (signal.getsignal's enum conversion costs 0.5 us a call)
        for s, h in self.raw.items():
            if get(s) is not h:
                return True
        return self.timer and signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0)

    def restore(self) -> list[str]:
        """Put the streams and handlers back, disarm the alarm timer; say what was changed."""
        if not self.main:
            return []
        changed: list[str] = []
        if self.timer and signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0):
            signal.setitimer(signal.ITIMER_REAL, 0.0)
            changed.append("an alarm timer (signal.alarm or setitimer)")
        for s, handler in self.handlers.items():
            if signal.getsignal(s) is not handler:
                changed.append(f"the {signal.Signals(s).name} handler")
                try:
                    signal.signal(s, handler)
                except (OSError, TypeError, ValueError):
                    pass  # None: set outside Python; nothing better to put back
        for name, fd in (("stdout", 1), ("stderr", 2)):
            stream, now = getattr(self, name[3:]), getattr(sys, name)
            if now is not stream:
                changed.append(f"sys.{name}")
                try:
                    if now is not None:
                        now.flush()
                except Exception:
                    pass  # the program's stream: whatever it is, it is no longer used
                setattr(sys, name, stream)
            if getattr(stream, "closed", False):  # sys.stdout.close(): its fd stays open
                changed.append(f"sys.{name} closed")
                stream = open(fd, "w", closefd=False, errors="backslashreplace", buffering=1)
                setattr(self, name[3:], stream)
                setattr(sys, name, stream)
        return changed
