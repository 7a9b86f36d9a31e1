"""When this process reached each step of a job's start-up and end: cheap marks, written on request.

Every qshpc process of a job (the local launcher, each rank) calls :func:`mark`
at its steps (a list append). With ``QSHPC_TIMELINE=1`` in the environment,
:func:`write` saves them as ``<job dir>/logs/timeline-<who>.json``: the
process's start (from ``/proc``), the marks (epoch seconds, and the
process's CPU seconds at each), its CPU time so far and the third-party packages it had imported. ``benchmarks/coldstart.py``
reads them to show where a cold start spends its time, per rank.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path

from qshpc import settings

_marks: list[tuple[str, float, float]] = []


def mark(name: str, at: float | None = None, cpu: float | None = None) -> None:
    """Note that this process reached step ``name`` now (wall clock and CPU time so far),
    or at ``at`` with ``cpu`` (a step taken before this module could be imported)."""
    if at is not None and cpu is not None:
        _marks.append((name, at, cpu))
        return
    _marks.append((name, time.time(), time.process_time()))


def enabled() -> bool:
    """True when ``QSHPC_TIMELINE`` asks for the timelines to be written."""
    return settings.TIMELINE.get()


def process_start() -> float:
    """Epoch seconds at which this process started (10 ms resolution; now if unknown)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])  # field 22: starttime, clock ticks after boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - age
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


def write(
    folder: Path,
    who: str,
    marks: list[tuple[str, float, float]] | None = None,
    start: float | None = None,
) -> None:
    """Write this process's timeline to ``folder/timeline-<who>.json`` when enabled.

    ``marks`` and ``start``: a timeline of the caller's own instead of this process's
    marks and start (a client's ``run`` in a long-lived kernel: from the call on).
    Never raises, and never creates ``folder``: a timeline is a diagnostic, not
    part of the job (a job directory removed while it ran stays removed).
    """
    if not enabled():
        return
    stdlib = sys.stdlib_module_names
    packages = sorted(
        {m.split(".")[0] for m in list(sys.modules)} - stdlib - {"__main__", "qshpc"},
    )
    data = {
        "role": who,
        "pid": os.getpid(),
        "proc_start": process_start() if start is None else start,
        "marks": _marks if marks is None else marks,
        "cpu_s": time.process_time(),
        "modules": [p for p in packages if not p.startswith("_")],
    }
    _write_regular(folder / f"timeline-{who}.json", (json.dumps(data) + "\n").encode())


def _write_regular(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, never through a FIFO, a device or a link there (left as it
    is; hunt21b: a FIFO at ``logs/timeline-*.json`` hung the launcher after its SUCCEEDED
    line, for good, and SIGTERM did not end it). Never raises. (The store's own helpers,
    ``qshpc.store.perms``, are a layer above this module.)"""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)  # a FIFO nobody reads: ENXIO; a link: ELOOP
    except OSError:
        return
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.ftruncate(fd, 0)
            os.write(fd, data)
    except OSError:
        pass
    finally:
        os.close(fd)


class Span:
    """The timeline of one call in a long-lived process (``LocalClient.run`` in a notebook
    kernel): its start is the call's, its CPU seconds count from the call on."""

    def __init__(self, first: str) -> None:
        self.start = time.time()
        self._cpu0 = time.process_time()
        self.marks: list[tuple[str, float, float]] = [(first, self.start, 0.0)]

    def mark(self, name: str) -> None:
        """Note that the call reached step ``name`` now."""
        self.marks.append((name, time.time(), time.process_time() - self._cpu0))

    def write(self, folder: Path, who: str) -> None:
        """:func:`write` of this span's marks (when enabled; never raises)."""
        write(folder, who, self.marks, self.start)
