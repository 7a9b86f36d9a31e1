"""How many worker ranks a local run may start: a typo (``--workers 100000``) is refused.

review30 F2: ``qshpc run --workers 99999999999999999`` was accepted; mpiexec grew to
9 GB allocating for the ranks (and ignored SIGTERM meanwhile), on a machine shared by
others. A local run starts at most :func:`limit` workers: 64, or 8 per core where that
is more (a 128-core node: 1024). That is far past the cores (more workers than cores
only helps calls that wait, not compute), and below what exhausts the memory of the
machine: each rank is a Python process of 100 MB or more once qiskit is imported. A
user who means more sets ``QSHPC_MAX_WORKERS`` (consent, as mpiexec's own
``--oversubscribe``); no value passes Linux's largest pid space (``pid_max`` at most
2**22), which no run can exceed.
"""

from __future__ import annotations

import os

from qshpc import settings
from qshpc.errors import UserError

#: Workers started without consent at least (a machine of up to 8 cores).
FLOOR = 64
#: Workers started without consent per core of this machine.
PER_CORE = 8


def cores() -> int:
    """The cores this process may run on (its affinity)."""
    return max(1, len(os.sched_getaffinity(0)))


def limit() -> int:
    """The most workers a local run starts: ``QSHPC_MAX_WORKERS``, else 64 or 8 per core."""
    chosen = settings.MAX_WORKERS.get()
    return chosen if chosen is not None else max(FLOOR, PER_CORE * cores())


def check(n: int, client: str | None = None) -> None:
    """Refuse ``n`` workers above :func:`limit`, asked for by ``qshpc run --workers N``, or
    by ``client``'s ``workers=N`` (``LocalClient``, ``Configuration``) where given.

    Raises:
        UserError: Too many: the message names the option, the limit and the fix.
    """
    most = limit()
    if n <= most:
        return
    here = cores()
    asked, fewer = (
        (f"{client}(workers={n})", f"{client}(workers={here})")
        if client
        else (f"--workers {n}", f"--workers {here}")
    )
    if n > settings.PID_SPACE:
        raise UserError(
            f"{asked} is more processes than Linux can run at once (at most "
            f"{settings.PID_SPACE}): give fewer, such as {fewer} (one per core)"
        )
    why = (
        f"QSHPC_MAX_WORKERS={most}"
        if settings.MAX_WORKERS.get() is not None
        else f"{PER_CORE} per core of this machine's {here}, and never fewer than {FLOOR}"
    )
    raise UserError(
        f"{asked} is more worker ranks than a local run starts (at most {most}: {why}), "
        f"each a process of its own (a typo?): give fewer, such as {fewer} (one per core), "
        f"or set QSHPC_MAX_WORKERS={n} to start them anyway"
    )


__all__ = ["FLOOR", "PER_CORE", "check", "cores", "limit"]
