"""Slurm's view of a job, mapped onto qshpc's states (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED).

The store is the source of truth for how the program ended; Slurm is asked
only when the store cannot know: the job is still QUEUED/RUNNING in the store
(queued, running, or killed before rank 0 could finalize), or it ended
CANCELED/FAILED from a signal that Slurm can explain (TIMEOUT, PREEMPTED,
NODE_FAIL, OUT_OF_MEMORY). Slurm's raw state is kept beside, in
``meta["slurm_state"]``. Once Slurm has said the job ended, its answer is kept
in ``JOB_DIR/slurm_state.json`` (and a terminal state the store lacks in
``status.json``), so a job Slurm has forgotten keeps its state and later reads
cost no ``sacct`` call.

One ``sacct -X`` call per read, with a timeout; when accounting does not
answer, ``squeue``, then ``scontrol show job``.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qshpc.jobs.paths import mark_terminal, read_override

CACHE_FILE = "slurm_state.json"
TIMEOUT_S = 10
#: A finished job Slurm no longer knows after this long is not asked about again.
FORGOTTEN_AFTER_S = 600
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED")

#: Slurm job state -> qshpc state (as Parsl's translate tables, in the seed's names).
SLURM_STATES: dict[str, str] = {
    "PENDING": "QUEUED",
    "CONFIGURING": "QUEUED",
    "REQUEUED": "QUEUED",
    "REQUEUE_HOLD": "QUEUED",
    "REQUEUE_FED": "QUEUED",
    "RESV_DEL_HOLD": "QUEUED",
    "RUNNING": "RUNNING",
    "COMPLETING": "RUNNING",
    "SUSPENDED": "RUNNING",
    "STOPPED": "RUNNING",
    "SIGNALING": "RUNNING",
    "STAGE_OUT": "RUNNING",
    "RESIZING": "RUNNING",
    "COMPLETED": "SUCCEEDED",
    "CANCELLED": "CANCELED",
    "REVOKED": "CANCELED",
    "FAILED": "FAILED",
    "TIMEOUT": "FAILED",
    "PREEMPTED": "FAILED",
    "NODE_FAIL": "FAILED",
    "BOOT_FAIL": "FAILED",
    "DEADLINE": "FAILED",
    "OUT_OF_MEMORY": "FAILED",
    "SPECIAL_EXIT": "FAILED",
}

#: Slurm ended the job for these reasons; they explain a store state of CANCELED or FAILED.
EXPLAINS: dict[str, str] = {
    "TIMEOUT": "the job reached its time limit (raise --time-min)",
    "PREEMPTED": "Slurm preempted the job (submit with --requeue to have it restarted)",
    "NODE_FAIL": "a node of the job failed (submit with --requeue to have it restarted)",
    "BOOT_FAIL": "a node of the job failed to boot",
    "OUT_OF_MEMORY": "the job ran out of memory (raise --mem-gb, or use fewer ranks per node)",
    "DEADLINE": "the job reached its deadline",
}


#: Slurm states of a job that was requeued and waits to start again.
REQUEUED = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED")


@dataclass(frozen=True)
class SlurmView:
    """One answer from Slurm: raw state (``CANCELLED``, not ``CANCELLED by 0``), exit code, reason."""

    raw: str
    exit_code: str = ""
    reason: str = ""
    source: str = "sacct"

    @property
    def state(self) -> str:
        """The qshpc state for the raw state (unknown states count as RUNNING: not ended)."""
        return SLURM_STATES.get(self.raw, "RUNNING")

    @property
    def ended(self) -> bool:
        """True when Slurm says the job is over."""
        return self.state in TERMINAL


def _run(args: list[str]) -> str | None:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def parse_sacct(text: str, slurm_id: str) -> SlurmView | None:
    """The allocation's line of ``sacct -X --parsable2 --noheader --format=JobID,State,ExitCode,Reason``.

    ``slurm_id`` may be an array element (``123_4``): its own line, or the pending array's.
    """
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) >= 2 and _same_job(parts[0], slurm_id):
            raw = parts[1].split()[0].rstrip("+") if parts[1].strip() else ""
            if raw:
                return SlurmView(
                    raw,
                    parts[2] if len(parts) > 2 else "",
                    parts[3] if len(parts) > 3 else "",
                    "sacct",
                )
    return None


def _same_job(field: str, slurm_id: str) -> bool:
    """True when sacct's JobID ``field`` is the job ``slurm_id`` (``123``, or array element ``123_4``).

    A pending array shows as one line, ``123_[0-5%2]`` or ``123_[1,4]``, that covers its elements.
    """
    field = field.split("+")[0].strip()
    main, sep, index = slurm_id.partition("_")
    if not sep:
        return field.split("_")[0] == slurm_id
    if field == slurm_id:
        return True
    head, _, ranges = field.partition("_[")
    if head != main or not ranges.endswith("]"):
        return False
    for part in ranges[:-1].split("%")[0].split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (hi or lo).isdigit() and int(lo) <= int(index) <= int(hi or lo):
            return True
    return False


def parse_scontrol(text: str) -> SlurmView | None:
    """``JobState=... Reason=... ExitCode=...`` from ``scontrol show job``."""
    fields: dict[str, str] = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep and key in ("JobState", "Reason", "ExitCode"):
            fields.setdefault(key, value)
    if "JobState" not in fields:
        return None
    return SlurmView(
        fields["JobState"], fields.get("ExitCode", ""), fields.get("Reason", ""), "scontrol"
    )


def query(slurm_id: str) -> SlurmView | None:
    """Ask Slurm about one job: sacct, else squeue, else scontrol; None when nobody knows it."""
    out = _run(
        [
            "sacct",
            "-X",
            "--parsable2",
            "--noheader",
            "-j",
            slurm_id,
            "--format=JobID,State%30,ExitCode,Reason%60",
        ]
    )
    view = parse_sacct(out, slurm_id) if out else None
    if view is not None:
        return view
    out = _run(["squeue", "-h", "-j", slurm_id, "-o", "%T|%r"])
    if out and out.strip():
        raw, _, reason = out.strip().splitlines()[0].partition("|")
        return SlurmView(raw.strip(), "", reason.strip(), "squeue")
    out = _run(["scontrol", "show", "job", slurm_id])
    return parse_scontrol(out) if out else None


def _load_cache(job_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((job_dir / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _save_cache(job_dir: Path, view: SlurmView) -> None:
    data = {
        "raw": view.raw,
        "exit_code": view.exit_code,
        "reason": view.reason,
        "source": view.source,
        "time": time.time(),
    }
    tmp = job_dir / f".{CACHE_FILE}.tmp"
    try:
        from qshpc.store import perms

        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, perms.file_mode())
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, job_dir / CACHE_FILE)
    except OSError:
        pass  # a read-only job dir: ask Slurm again next time


def _fresh_store_meta(job_dir: Path) -> dict[str, Any]:
    from qshpc.store import JobReader

    try:
        with JobReader.open(job_dir) as r:
            return r.meta()
    except Exception:
        return {}


def apply(job_dir: Path, meta: dict[str, Any], view: SlurmView | None) -> None:
    """Merge Slurm's ``view`` into ``meta`` (state, slurm_state, error); persist final answers."""
    state = meta.get("state")
    if view is None:
        meta.setdefault("slurm_state", "UNKNOWN")
        finished = meta.get("finished")
        if state in TERMINAL and finished and time.time() - float(finished) > FORGOTTEN_AFTER_S:
            _save_cache(job_dir, SlurmView("", source="forgotten"))  # stop asking
        return
    meta["slurm_state"] = view.raw
    if view.exit_code:
        meta["slurm_exit_code"] = view.exit_code
    if state in TERMINAL:
        if state != "SUCCEEDED" and view.raw in REQUEUED:
            # The run ended (cancelled by the requeue, or failed) and Slurm will start it again.
            meta["state"] = "QUEUED"
            meta["sub_status"] = f"requeued by Slurm ({view.raw}): resumes from the stored results"
            return
        _apply_cached(meta, view)
        if view.ended:
            _save_cache(job_dir, view)
        return
    if not view.ended:
        meta["state"] = view.state
        return
    # Slurm says the job is over, the store does not: the ranks died before
    # finalizing, or finalize raced this read.
    fresh = _fresh_store_meta(job_dir)
    if fresh.get("state") in TERMINAL:
        meta.update(fresh)
        apply(job_dir, meta, view)
        return
    new = "FAILED" if view.state == "SUCCEEDED" else view.state
    if view.raw in EXPLAINS:
        why = _explained(view, None)
    elif view.raw == "CANCELLED":
        why = "the job was cancelled (scancel) before the program finished"
    else:
        why = (
            f"the Slurm job ended {view.raw} (exit code {view.exit_code or '?'}) before the "
            "program finished: see `qshpc logs` (the slurm-* logs show start-up errors)"
        )
    mark_terminal(job_dir, new, why)
    _save_cache(job_dir, view)
    meta["state"], meta["error"] = new, why


def _explained(view: SlurmView, error: Any) -> str:
    head = f"Slurm ended the job {view.raw}: {EXPLAINS[view.raw]}"
    return f"{head}\n{error}" if error else head


def reconcile_slurm(job_dir: Path, meta: dict[str, Any]) -> None:
    """Update ``meta`` in place from Slurm for the job whose id is ``meta["slurm_job_id"]``.

    Called by ``Job.info()`` for store states QUEUED/RUNNING and for
    CANCELED/FAILED. Never raises for Slurm trouble: an unreachable Slurm
    leaves the store's state, with ``slurm_state`` UNKNOWN.
    """
    cached = _load_cache(job_dir)
    override = read_override(job_dir)
    if override and meta.get("state") not in TERMINAL:
        meta["state"] = override.get("state")
        meta["error"] = override.get("error")
    if cached is not None:
        raw = str(cached.get("raw") or "")
        if raw:
            meta["slurm_state"] = raw
            if cached.get("exit_code"):
                meta["slurm_exit_code"] = str(cached["exit_code"])
            _apply_cached(meta, SlurmView(raw, str(cached.get("exit_code") or "")))
        else:
            meta.setdefault("slurm_state", "UNKNOWN")
        return
    slurm_id = str(meta.get("slurm_job_id") or "")
    main, sep, index = slurm_id.partition("_")
    if not main.isdigit() or (sep and not index.isdigit()):
        return
    apply(job_dir, meta, query(slurm_id))


def _apply_cached(meta: dict[str, Any], view: SlurmView) -> None:
    """A store state of CANCELED/FAILED that Slurm explains becomes FAILED with the reason."""
    if meta.get("state") != "SUCCEEDED" and view.raw in EXPLAINS:
        if meta.get("state") != "FAILED" or not str(meta.get("error") or "").startswith(
            "Slurm ended"
        ):
            meta["error"] = _explained(view, meta.get("error"))
        meta["state"] = "FAILED"
