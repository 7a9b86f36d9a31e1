"""A worker whose process is gone, seen on its own host: lost at once, not at the timeout.

Under ``srun`` nothing tells rank 0 that a worker died (a SIGKILL, the OOM
killer, a task's ``os._exit``): the other tasks of the step run on, and rank 0
lost the worker only when its heartbeats had been missing for
``QSHPC_WORKER_TIMEOUT_S`` (30 s; review44 F2). A process on the same host, in
the same PID namespace, sees the worker's process end: rank 0 looks at the
workers of its own host, and each worker's heartbeat thread at the other
workers of its host, telling rank 0 (:data:`qshpc.runtime.protocol.TAG_GONE`).
A rank is named by its pid and its start time (``/proc/PID/stat``), recorded
at MPI's start (:func:`qshpc.runtime.mpi.start`), so a pid reused by another
process is never taken for it. A worker alone on its host (and none on rank
0's) is still lost at the timeout.
"""

from __future__ import annotations

import socket
from typing import Any

from qshpc.runtime.procs import stat_fields


def neighbours(records: list[dict[str, Any]] | None, me: int) -> dict[int, tuple[int, int]]:
    """``rank -> (pid, start ticks)`` of the workers (not rank 0, not ``me``) that share
    ``me``'s host and PID namespace, and that this process sees as started now."""
    if not records or me >= len(records):
        return {}
    mine = records[me]
    if mine.get("host") != socket.gethostname() or mine.get("pidns") is None:
        return {}
    found: dict[int, tuple[int, int]] = {}
    for rec in records[1:]:
        rank, pid, ticks = int(rec["rank"]), int(rec.get("pid") or 0), rec.get("start_ticks")
        if rank == me or not pid or not isinstance(ticks, int):
            continue
        if rec.get("host") == mine["host"] and rec.get("pidns") == mine["pidns"]:
            if not ended(pid, ticks):  # seen alive: its end will be seen too
                found[rank] = (pid, ticks)
    return found


def ended(pid: int, ticks: int) -> bool:
    """Whether the process ``pid`` started at ``ticks`` has ended (gone, or a zombie)."""
    fields = stat_fields(pid)
    if len(fields) <= 19 or fields[19] != str(ticks).encode():
        return True  # gone, or its pid is another process's now
    return fields[0] in (b"Z", b"X")
