"""What was running when a job's ranks died: which rank, which host, which tasks.

Rank 0's dispatcher appends one line per batch it sends to ``logs/dispatch.log``
(``<rank> <task ids>``); the store holds the tasks that finished. A task sent
to a rank and never finished is one that rank held when it died. The launcher
adds what the MPI launcher reported (which PID died, with which exit code).
"""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

DISPATCH_LOG = "dispatch.log"


def compress_ids(ids: list[str]) -> str:
    """``["3", "4", "5"]`` -> ``"3-5"``; anything not a contiguous run -> comma list."""
    if ids and all(i.isdigit() for i in ids):
        first, last = int(ids[0]), int(ids[-1])
        if last - first == len(ids) - 1 and [str(x) for x in range(first, last + 1)] == ids:
            return f"{first}-{last}" if last != first else ids[0]
    return ",".join(ids)


def expand_ids(text: str) -> list[str]:
    """The inverse of :func:`compress_ids`."""
    if "," not in text and "-" in text and text.replace("-", "").isdigit():
        a, b = text.split("-")
        return [str(x) for x in range(int(a), int(b) + 1)]
    return text.split(",")


def held_tasks(job_dir: Path, finished: set[str]) -> dict[int, list[str]]:
    """Tasks sent to each rank that have no stored outcome."""
    held: dict[int, list[str]] = {}
    try:
        lines = (job_dir / "logs" / DISPATCH_LOG).read_text().splitlines()
    except OSError:
        return held
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            continue  # a torn last line
        ids = [t for t in expand_ids(parts[1]) if t not in finished]
        if ids:
            held.setdefault(int(parts[0]), []).extend(ids)
    return held


_HYDRA = re.compile(r"PID (\d+) RUNNING AT (\S+)\s+=\s+EXIT CODE: (\d+)", re.S)
_SRUN = re.compile(r"srun: error: (\S+): tasks? ([\d,\-]+): (.+)")


def _exit_text(code: int) -> str:
    if code > 128 or code == 9:
        sig = code - 128 if code > 128 else code
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (killed: out of memory, or kill -9)" if sig == 9 else ""
        hint = " (segmentation fault)" if sig == 11 else hint
        return f"{name}{hint}"
    return f"exit code {code}"


def describe(
    job_dir: Path, meta: dict[str, Any], finished: set[str], launcher_output: str = ""
) -> str:
    """A message naming the rank(s) that died, their host, and the tasks they held."""
    ranks = meta.get("ranks") or []
    by_pid = {int(r["pid"]): r for r in ranks if r.get("pid")}
    held = held_tasks(job_dir, finished)
    parts: list[str] = []
    dead: set[int] = set()
    for pid, host, code in _HYDRA.findall(launcher_output):
        r = by_pid.get(int(pid))
        rank = int(r["rank"]) if r else -1
        dead.add(rank)
        who = f"rank {rank}" if r else f"a process (pid {pid})"
        parts.append(f"{who} on host {host} (pid {pid}) died: {_exit_text(int(code))}")
    for host, tasks, what in _SRUN.findall(launcher_output):
        parts.append(f"Slurm task(s) {tasks} on host {host}: {what.strip()}")
        dead.update(int(t) for t in tasks.split(",") if t.isdigit())
    # Rank 0 holds no tasks: when the launcher names only it (the first process it
    # saw end), every rank's unfinished tasks are shown.
    only_known = dead & set(held)
    for rank in sorted(held):
        if only_known and rank not in only_known:
            continue
        ids = held[rank]
        shown = ", ".join(ids[:20]) + (" ..." if len(ids) > 20 else "")
        host = next((str(r.get("host")) for r in ranks if r.get("rank") == rank), "?")
        parts.append(f"rank {rank} on {host} held {len(ids)} unfinished task(s): {shown}")
    if not parts:
        parts.append("the job's processes ended without finalizing the store")
    parts.append(f"{len(finished)} finished task results are kept in the store")
    return "; ".join(parts)
