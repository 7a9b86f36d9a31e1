"""``job.watch()``: the job's card, updated live, until the job ends.

In a Jupyter kernel the card is shown at once and a daemon thread re-reads
the store and updates it; the call returns, so the kernel keeps running
cells. The card is an ``ipywidgets.HTML`` when ipywidgets is installed, else
a display with a ``display_id`` that is updated in place. The thread runs in
a copy of the calling cell's context, so its updates belong to that cell.
It stops when the job ends, on :meth:`JobWatch.stop`, or after ``timeout``.

Outside a kernel (a terminal, a script) it shows the terminal progress of
``qshpc wait`` and blocks until the job ends.

Reading the store never blocks the job (see :mod:`qshpc.store`); the polls
slow down for big jobs, to at most one every five read times.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from qshpc.jobs.progress import RateMeter, snapshot
from qshpc.jobstate import TERMINAL
from qshpc.notebook.display import JobLike

MIN_INTERVAL_S = 0.2


def in_kernel() -> bool:
    """True inside a Jupyter (ipykernel) kernel."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class JobWatch:
    """A live view of a job.

    Attributes:
        job: The job.
        state: The last state read (a terminal state once the job ended).
        error: The last error met reading the store (the watch keeps trying).
    """

    def __init__(self, job: JobLike, interval: float = 1.0, timeout: float | None = None) -> None:
        self.job = job
        self.interval = max(MIN_INTERVAL_S, float(interval))
        self.timeout = timeout
        self.state = "?"
        self.error: str | None = None
        self.updates = 0
        self._stop = threading.Event()
        #: Set by the thread as it ends: ``running`` and ``wait`` ask it, not the thread.
        #: A kernel interrupt inside ``Thread.join`` (CPython 3.11) left the Thread saying
        #: it was not alive while it ran on (review32 F1: w.wait() returned at once).
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False
        self._update: Callable[[str], None] | None = None
        self._republish: Callable[[], None] | None = None
        self._last: str | None = None
        self._again: Callable[[], None] | None = None  # another view of the card (shown)
        self._shown_in: int | None = None  # the cell (execution count) that showed it

    def __repr__(self) -> str:
        what = "watching" if self.running else "stopped"
        return f"<JobWatch | {self.job.job_dir.name} | {what} | {self.state}>"

    @property
    def running(self) -> bool:
        """True while the thread updates the display."""
        return self._thread is not None and not self._ended.is_set()

    def _ipython_display_(self) -> None:
        if not self._shown:
            self.show()
        elif self._again is not None and (self._shown_in is None or _cell() != self._shown_in):
            # ``w`` typed again in a later cell: the card there too, kept up to date with
            # the first (review32 F10: it showed nothing). Not in the cell that showed it:
            # ``job.watch()`` as a cell's last line showed two cards (review44 F5).
            self._again()

    def show(self) -> None:
        """Display the card (an ipywidgets HTML when available, else an updatable display)."""
        from IPython.display import display

        from qshpc.notebook.display import job_html

        html = job_html(self.job)
        try:
            import ipywidgets
        except ImportError:
            # A bundle with a text form: a front end that shows no HTML (a console, a
            # saved notebook read as text) showed `<IPython.core.display.HTML object>`.
            handle = display(_bundle(html), raw=True, display_id=True)

            def update(text: str) -> None:
                if handle is not None:
                    handle.update(_bundle(text), raw=True)

            def republish() -> None:
                if handle is not None and self._last is not None:
                    handle.update(_bundle(self._last), raw=True)

            def again() -> None:  # one more output of the same display: updated with it
                if handle is not None:
                    display(_bundle(self._last or html), raw=True, display_id=handle.display_id)

            self._update, self._again = update, again
        else:
            widget = ipywidgets.HTML(value=html)
            display(widget)

            def set_value(text: str) -> None:
                widget.value = text

            def resend() -> None:
                widget.send_state("value")

            self._update, republish = set_value, resend
            self._again = lambda: display(widget)  # (a widget shown twice: two live views)
        self._republish = republish
        self._shown = True
        self._shown_in = _cell()

    def start(self) -> JobWatch:
        """Show the card and start the thread that updates it; return at once."""
        if not self._shown:
            self.show()
        ctx = contextvars.copy_context()
        self._ended.clear()
        self._thread = threading.Thread(
            target=ctx.run, args=(self._watch,), name="qshpc-watch", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop updating (the card keeps its last content)."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the watch ends (the job ended, stopped, or timed out); return the state.

        A kernel interrupt stops this wait only: the watch and the job go on, and
        the ``KeyboardInterrupt`` says so.
        """
        if self._thread is not None:
            try:
                ended = self._ended.wait(timeout)
            except KeyboardInterrupt:
                raise KeyboardInterrupt(
                    f"job {self.job.job_dir.name} was left {self.state} and is still watched: "
                    "w.wait() waits again, w.stop() stops watching, job.stop() cancels the job"
                ) from None
            if ended and self._republish is not None:
                # The thread's updates belong to the cell that started the watch: a
                # notebook executed headless (nbconvert, papermill, nbclient) stops
                # listening to that cell when it ends, and kept the card it saw then
                # (QUEUED). Sent again from here, the last card is saved with this cell.
                self._republish()
        return self.state

    def _watch(self) -> None:
        try:
            self._loop()
        finally:
            self._ended.set()

    def _loop(self) -> None:
        from qshpc.report.card import card_html

        meter = RateMeter()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while not self._stop.is_set():
            began = time.monotonic()
            meta: dict[str, Any] | None = None
            try:
                meta = self.job.info()
                self.error = None
            except Exception as exc:  # a store being replaced, a slow file system: try again
                self.error = str(exc)
            took = time.monotonic() - began
            if meta is not None:
                s = snapshot(meta)
                meter.add(s.now, s.done + s.failed)
                self.state = s.state
                if self._update is not None:
                    self._last = card_html(meta, rate=meter.rate())
                    self._update(self._last)
                    self.updates += 1
                if s.state in TERMINAL:
                    return
            if deadline is not None and time.monotonic() > deadline:
                return
            self._stop.wait(max(self.interval, 5 * took))


def watch(
    job: JobLike, interval: float = 1.0, timeout: float | None = None, block: bool | None = None
) -> JobWatch:
    """Show ``job``'s progress live; in a kernel return at once, elsewhere block until it ends.

    Args:
        job: The job.
        interval: Seconds between reads of the store (at least 0.2).
        timeout: Stop watching after this many seconds (the job keeps running).
        block: In a kernel, also wait here for the end (outside a kernel it always waits).

    Raises:
        UserError: ``timeout`` is NaN, infinite or negative (it never ran out: review30 F6).
    """
    from qshpc.jobs.seconds import seconds

    timeout = seconds(timeout, "timeout=", "None to watch until the job ends")
    w = JobWatch(job, interval, timeout)
    if in_kernel():
        w.start()
        if block:
            w.wait()
        return w
    from qshpc.jobs.progress import watch as terminal_watch

    try:
        w.state = terminal_watch(job, timeout=timeout, interval=w.interval)
    except TimeoutError:
        w.state = snapshot(job.info()).state
    return w


def _bundle(html: str) -> dict[str, str]:
    """The card as HTML and as one line of text (its words, tags left out)."""
    import html as _html
    import re

    text = _html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))).strip()
    return {"text/html": html, "text/plain": text}


def _cell() -> int | None:
    """The execution count of the cell IPython runs now (None: not under IPython)."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return None if shell is None else int(shell.execution_count)
    except Exception:  # an IPython without it: the card is shown as before
        return None
