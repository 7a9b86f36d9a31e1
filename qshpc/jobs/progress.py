"""Live progress of a job, read from the store: ``qshpc wait`` and ``qshpc status --watch``.

The formatting is pure (a :class:`Snapshot` of the store's meta in, text
out) so it is tested without a job. :func:`watch` polls the store and shows
the text: a rich progress display on a terminal, plain lines (one every few
seconds, and on every state or sub-status change) otherwise, for logs.

The store counts finished tasks (done and failed) but not the tasks a
program will submit: the total, and so the ETA and a filled bar, are shown
only when the job's meta holds ``tasks_total``.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import IO, Any, Protocol

from qshpc.jobstate import TERMINAL, JobState
from qshpc.text import shown_seconds


class HasInfo(Protocol):
    """What :func:`watch` reads: anything with ``info()`` (``qshpc.client.job.Job`` has it)."""

    def info(self) -> dict[str, Any]:
        """The job's meta, as :meth:`qshpc.store.JobReader.meta` returns it (state included)."""
        ...


#: Where watching ends: a terminal state, or DAMAGED (its store cannot be read as written).
ENDS = (*TERMINAL, JobState.DAMAGED)
PLAIN_EVERY_S = 5.0
RATE_WINDOW_S = 30.0
STORE_RETRY_S = 10.0


@dataclass(frozen=True)
class Snapshot:
    """What the store says about a job at one moment.

    Attributes:
        job_id: The job id.
        state: QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELED.
        sub_status: The program's last ``update_status`` text.
        done: Tasks whose latest attempt SUCCEEDED.
        failed: Tasks whose latest attempt FAILED.
        total: Tasks the program will run, when known.
        started: Unix time the first run started, if it did.
        finished: Unix time it reached a terminal state, if it did.
        now: When the snapshot was taken.
        cached: Of the done tasks, those whose result came from the result cache.
    """

    job_id: str
    state: str
    sub_status: str
    done: int
    failed: int
    total: int | None
    started: float | None
    finished: float | None
    now: float
    cached: int = 0
    job_dir: str = ""
    stopped: int = 0  # of ``failed``: stopped unfinished when the job ended, not failures
    never: int = 0  # an ended job's calls submitted that never started (a cancel; its end)
    run: int = 1  # its latest run: 2 after a resume, and so on
    run_started: float | None = None  # when its latest run started (of a resumed job)
    run_finished: int | None = None  # tasks that ended in that run (of a resumed job)

    @property
    def failures(self) -> int:
        """Tasks that failed, without those stopped at the job's end."""
        return self.failed - self.stopped

    @property
    def elapsed(self) -> float | None:
        """Seconds since the job started (to its end when it ended)."""
        if not self.started:
            return None
        return max(0.0, (self.finished or self.now) - self.started)

    @property
    def resumed(self) -> bool:
        """Whether its latest run is a resume (its time and tasks counted apart)."""
        return self.run > 1 and bool(self.run_started) and self.run_finished is not None

    @property
    def run_elapsed(self) -> float | None:
        """Seconds since its latest run started (a resume's own), else :attr:`elapsed`:
        the time from the first start counts the pause before the resume (review44 F11c)."""
        if not self.resumed or self.run_started is None:
            return self.elapsed
        return max(0.0, (self.finished or self.now) - self.run_started)


def snapshot(meta: dict[str, Any], now: float | None = None) -> Snapshot:
    """A :class:`Snapshot` from :meth:`JobReader.meta` / :meth:`Job.info` output.

    Text from the store is escaped (:func:`qshpc.text.shown`): it is printed as is.
    """
    from qshpc.text import shown

    counts = meta.get("task_counts") or {}
    total = meta.get("tasks_total")
    failed = int(counts.get("FAILED", 0))
    done = int(counts.get("SUCCEEDED", 0))
    state = shown(meta.get("state", "?"))
    return Snapshot(
        job_id=shown(meta.get("id", "")),
        state=state,
        sub_status=shown(meta.get("sub_status") or ""),
        done=done,
        failed=failed,
        total=int(total) if total else None,
        started=float(meta["started"]) if meta.get("started") else None,
        finished=float(meta["finished"]) if meta.get("finished") else None,
        now=time.time() if now is None else now,
        cached=int(meta.get("tasks_from_cache") or 0),
        job_dir=str(meta.get("job_dir") or ""),
        stopped=min(failed, int(meta.get("tasks_stopped") or 0)),
        never=never_started(state, int(meta.get("tasks_submitted") or 0), done, failed),
        run=int(meta.get("runs") or 1),
        run_started=float(meta["last_started"]) if meta.get("last_started") else None,
        run_finished=(
            int(meta["tasks_this_run"]) if meta.get("tasks_this_run") is not None else None
        ),
    )


def never_started(state: str, submitted: int, done: int, failed: int) -> int:
    """The calls an ended job never started (a cancel; the program's end), of the
    ``submitted``: review29 F11, `4 done` of 12 submitted said nothing of the other 8.
    None while it runs; none of a DAMAGED job, whose counts are of the results still
    readable (FAILED 0: :func:`qshpc.store.reader.damaged_meta`), not of the calls run."""
    return max(0, submitted - done - failed) if state in TERMINAL else 0


def never_text(never: int) -> str:
    """``, 6 never started`` (empty for none): as `qshpc status`, `list`, the watch line
    and the card say it."""
    return f", {never} never started" if never else ""


def done_text(s: Snapshot) -> str:
    """``6 done (2 from cache), 1 failed, 2 stopped, 3 never started``: the tasks of a job
    in `qshpc status` and `list`, and the notebook's jobs table."""
    text = f"{s.done} done" + (f" ({s.cached} from cache)" if s.cached else "")
    return text + failed_text(s.failed, s.stopped) + never_text(s.never)


def failed_text(failed: int, stopped: int) -> str:
    """``, 1 failed, 2 stopped`` (empty when neither): ``failed`` (the store's FAILED count)
    less the ``stopped``, which ran when the job ended (a cancel) and are no failures of
    their code (they were counted failed, in red: hunt23a)."""
    bad = failed - stopped
    return (f", {bad} failed" if bad else "") + (f", {stopped} stopped" if stopped else "")


class RateMeter:
    """Tasks per second over the last ``window`` seconds of samples."""

    def __init__(self, window: float = RATE_WINDOW_S) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, finished: int) -> None:
        """Record that ``finished`` tasks were done or failed at time ``now``."""
        self._samples.append((now, finished))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    def rate(self) -> float | None:
        """Tasks per second, or None before two samples a moment apart."""
        if len(self._samples) < 2:
            return None
        (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 - t0 > 0.5 else None


def average_rate(s: Snapshot) -> float | None:
    """Finished tasks per second since the job started; of a resumed job, those its latest
    run ended over that run's time (review44 F11c: the reused tasks and the pause before the
    resume counted)."""
    el = s.run_elapsed
    finished = s.run_finished if s.resumed and s.run_finished is not None else s.done + s.failed
    return finished / el if el and el > 0.5 else None


def eta(s: Snapshot, rate: float | None) -> float | None:
    """Seconds left at ``rate``, when the total is known and the job runs."""
    if s.total is None or not rate or rate <= 0 or s.state in TERMINAL:
        return None
    return max(0.0, (s.total - s.done - s.failed) / rate)


def format_duration(secs: float | None) -> str:
    """``7s``, ``3m05s``, ``2h03m``, ``1d02h``; ``-`` when unknown."""
    if secs is None:
        return "-"
    if not shown_seconds(secs):  # (a damaged status.json's time, NaN: review30 F5)
        return "?"
    n = round(secs)
    if n < 60:
        return f"{n}s"
    if n < 3600:
        return f"{n // 60}m{n % 60:02d}s"
    if n < 86400:
        return f"{n // 3600}h{n % 3600 // 60:02d}m"
    return f"{n // 86400}d{n % 86400 // 3600:02d}h"


def format_rate(rate: float | None) -> str:
    """``12.5 tasks/s``, ``3.0 tasks/min`` for slow jobs; ``-`` when unknown."""
    if rate is None:
        return "-"
    if 0 < rate < 0.1:
        return f"{rate * 60:.1f} tasks/min"
    return f"{rate:.1f} tasks/s"


def format_counts(s: Snapshot) -> str:
    """``40/100 tasks done (30 from cache), 1 failed, 2 stopped`` (``40 tasks done`` when the
    total is unknown), and ``, 6 never started`` once the job ended."""
    text = f"{s.done}/{s.total} tasks done" if s.total else f"{s.done} tasks done"
    text += f" ({s.cached} from cache)" if s.cached else ""
    return text + failed_text(s.failed, s.stopped) + never_text(s.never)


def format_state(s: Snapshot) -> str:
    """``RUNNING: sampling batch 3`` (the sub-status only while it runs)."""
    if s.sub_status and s.state == "RUNNING":
        return f"{s.state}: {s.sub_status}"
    return s.state


def format_line(s: Snapshot, rate: float | None = None) -> str:
    """One plain progress line: state, counts, rate, elapsed, ETA when known."""
    rate = rate if rate is not None else average_rate(s)
    parts = [format_state(s), format_counts(s)]
    if s.state != "QUEUED":
        parts += [format_rate(rate), f"elapsed {format_duration(s.run_elapsed)}"]
        if s.resumed:  # (its rate and time: the resume's own)
            parts[-1] += f" since the resume (run {s.run}: {s.run_finished} tasks ended in it)"
    left = eta(s, rate)
    if left is not None:
        parts.append(f"ETA {format_duration(left)}")
    return f"[{s.job_id}] " + " | ".join(parts)


def watch(
    job: HasInfo,
    timeout: float | None = None,
    stream: IO[str] | None = None,
    tty: bool | None = None,
    interval: float = 0.5,
    plain_every: float = PLAIN_EVERY_S,
) -> str:
    """Show ``job``'s progress until it ends; return its final state.

    Args:
        job: The job: a ``Job``, or anything whose ``info()`` gives its meta.
        timeout: Give up after this many seconds.
        stream: Where to write (default stderr).
        tty: Rich display (True) or plain lines (False); default: whether ``stream`` is a TTY.
        interval: Seconds between reads of the store.
        plain_every: Seconds between plain lines when nothing changed.

    Raises:
        TimeoutError: The job is still running after ``timeout`` seconds.
    """
    out = stream if stream is not None else sys.stderr
    if tty is None:
        tty = out.isatty()
    if tty:
        return _watch_rich(job, timeout, out, interval)
    return _watch_plain(job, timeout, out, interval, plain_every)


def _poll(job: HasInfo, meter: RateMeter) -> tuple[Snapshot, float | None]:
    s = snapshot(_read_meta(job))
    meter.add(s.now, s.done + s.failed)
    rate = meter.rate()
    return s, rate if rate is not None else average_rate(s)


def _read_meta(job: HasInfo, patience: float = STORE_RETRY_S) -> dict[str, Any]:
    """``job.info()``, retried while the store is briefly unreadable (a writer opening it).

    A store of another schema version is not retried: no writer makes it readable
    (``qshpc wait`` on a newer qshpc's job said so after 10 s of retries).
    """
    from qshpc.errors import SchemaVersionError, StoreError

    give_up = time.monotonic() + patience
    while True:
        try:
            return job.info()
        except SchemaVersionError:
            raise
        except StoreError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.1)


def _check_deadline(s: Snapshot, deadline: float | None, timeout: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        from qshpc.jobs.paths import job_ref

        ref = job_ref(s.job_dir) if s.job_dir else s.job_id
        raise TimeoutError(
            f"job {s.job_id} still {s.state} after {timeout} s: keep waiting with "
            f"`qshpc wait {ref}`, or see `qshpc status {ref}`"
        )


def _watch_plain(
    job: HasInfo, timeout: float | None, out: IO[str], interval: float, every: float
) -> str:
    deadline = None if timeout is None else time.monotonic() + timeout
    meter = RateMeter()
    delay = 0.05  # short first polls: a job that ends at once returns at once
    last_key: tuple[str, str, int, int] | None = None
    last_at = 0.0
    while True:
        s, rate = _poll(job, meter)
        key = (s.state, s.sub_status, s.done, s.failed)
        changed = last_key is None or key[:2] != last_key[:2]
        if s.state in ENDS or changed or (key != last_key and s.now - last_at >= every):
            print(format_line(s, rate), file=out, flush=True)
            last_key, last_at = key, s.now
        if s.state in ENDS:
            return s.state
        _check_deadline(s, deadline, timeout)
        time.sleep(delay)
        delay = min(interval, delay * 1.5)


def _watch_rich(job: HasInfo, timeout: float | None, out: IO[str], interval: float) -> str:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    deadline = None if timeout is None else time.monotonic() + timeout
    meter = RateMeter()
    delay = 0.05  # short first polls: a job that ends at once returns at once
    console = Console(file=out)
    columns = (
        SpinnerColumn(),
        BarColumn(bar_width=20),
        TextColumn("{task.description}", markup=False),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("", total=None)
        while True:
            s, rate = _poll(job, meter)
            bar.update(
                task, description=format_line(s, rate), completed=s.done + s.failed, total=s.total
            )
            if s.state in ENDS:
                if s.total is None:
                    bar.update(task, total=max(1, s.done + s.failed), completed=s.done + s.failed)
                return s.state
            _check_deadline(s, deadline, timeout)
            time.sleep(delay)
            delay = min(interval, delay * 1.5)
