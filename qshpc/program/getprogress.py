"""``get(refs, progress=True)``: show how many of the awaited tasks are done while waiting.

A rich progress bar on a terminal; on anything else (logs, pipes, mpiexec's
forwarded output) one plain line every few seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from qshpc.program.backend import FROM_CACHE
from qshpc.program.refs import TaskRef, wait_all

_PLAIN_EVERY_S = 5.0


def _count(refs: list[TaskRef[Any]]) -> tuple[int, int, int]:
    """``(done, failed, from the cache)`` among ``refs``."""
    done = failed = 0
    for r in refs:
        if r.done():
            done += 1
            if r._error is not None:
                failed += 1
    cached = sum(1 for r in refs if r in FROM_CACHE) if FROM_CACHE else 0
    return done, failed, cached


def _notes(failed: int, cached: int) -> str:
    parts = [f"{failed} failed"] * bool(failed) + [f"{cached} from cache"] * bool(cached)
    return ", ".join(parts)


def wait_with_progress(
    refs: list[TaskRef[Any]],
    timeout: float | None,
    waiter: Callable[[list[TaskRef[Any]], float | None], None] = wait_all,
) -> None:
    """Wait for ``refs`` like ``wait_all``, showing progress on stderr."""
    total = len(refs)
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    tty = sys.stderr.isatty()
    bar: Any = None
    task: Any = None
    if tty:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        bar.start()
        task = bar.add_task("tasks", total=total)
    last_line = 0.0
    try:
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            step = 0.25 if tty else 1.0
            try:
                waiter(refs, step if remaining is None else max(0.0, min(step, remaining)))
                finished = True
            except TimeoutError:
                finished = False
            done, failed, cached = _count(refs)
            notes = _notes(failed, cached)
            if bar is not None:
                bar.update(
                    task, completed=done, description=f"tasks ({notes})" if notes else "tasks"
                )
            elif finished or time.monotonic() - last_line > _PLAIN_EVERY_S:
                last_line = time.monotonic()
                elapsed = last_line - start
                rate = done / elapsed if elapsed > 0 else 0.0
                eta = f", ETA {(total - done) / rate:.0f} s" if rate > 0 and done < total else ""
                fails = f", {notes}" if notes else ""
                print(
                    f"qshpc: {done}/{total} tasks done ({rate:.1f}/s{eta}{fails})",
                    file=sys.stderr,
                    flush=True,
                )
            if finished:
                return
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"{total - done} of {total} tasks not done after {timeout} s")
    finally:
        if bar is not None:
            bar.stop()
