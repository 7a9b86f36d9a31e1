"""Slurm's view of a job merged into what the store says (``Job.info()`` for Slurm jobs).

The store is the source of truth for how the program ended; Slurm is asked
only when the store cannot know: the job is still QUEUED/RUNNING in the store
(queued, running, or killed before rank 0 could finalize), or it ended
CANCELED/FAILED from a signal that Slurm can explain (TIMEOUT, PREEMPTED,
NODE_FAIL, OUT_OF_MEMORY). Slurm's raw state is kept beside, in
``meta["slurm_state"]``. Once Slurm has said the job ended, its answer is kept
in ``JOB_DIR/slurm_state.json`` (and a terminal state the store lacks in
``status.json``), so a job Slurm has forgotten keeps its state and later reads
cost no ``sacct`` call.

A state Slurm reports that qshpc does not know is shown as UNKNOWN, with
Slurm's word beside it and a warning; it is never taken for RUNNING. The
commands that ask Slurm are in :mod:`qshpc.submit.slurm`; ``qshpc list`` asks
about every job at once (:func:`slurm_id_to_ask`, then one
:func:`~qshpc.submit.slurm.query_many`).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qshpc.errors import SlurmStateWarning
from qshpc.jobs.paths import (
    SLURM_STATE_FILE,
    ended_at,
    mark_terminal,
    read_override,
    read_slurm_cluster,
    read_small,
)
from qshpc.jobstate import TERMINAL, JobState
from qshpc.submit.slurm import is_slurm_id, other_cluster, query, query_live
from qshpc.submit.slurm_states import (
    EXPLAINS,
    REQUEUED,
    SLURM_STATES,
    SlurmView,
    parse_sacct,
    parse_scontrol,
)

CACHE_FILE = SLURM_STATE_FILE
#: A finished job Slurm no longer knows after this long is not asked about again.
FORGOTTEN_AFTER_S = 600


def kept_answer(job_dir: Path) -> dict[str, Any] | None:
    """Slurm's final answer kept in ``job_dir`` (``raw``, ``exit_code``, ``time``...), or None."""
    try:
        data = json.loads(read_small(job_dir / CACHE_FILE))
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
    try:
        from qshpc.store import perms

        perms.write_atomic(job_dir / CACHE_FILE, json.dumps(data).encode())
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
        if not view.known:
            _warn_unknown(meta, view)
        if state == JobState.RUNNING and view.state == JobState.QUEUED and view.source == "sacct":
            # sacct lags under load: it said PENDING of a job running tasks (`qshpc status`
            # showed it QUEUED). squeue knows live jobs: PENDING there is a real requeue.
            live = query_live(str(meta.get("slurm_job_id") or ""))
            if live is None or live.ended:
                return  # rank 0 started and only sacct says otherwise: the store's RUNNING
            view = live
            meta["slurm_state"] = view.raw
        meta["state"] = view.state.value
        return
    # Slurm says the job is over, the store does not: the ranks died before
    # finalizing, or finalize raced this read.
    fresh = _fresh_store_meta(job_dir)
    if fresh.get("state") in TERMINAL:
        meta.update(fresh)
        apply(job_dir, meta, view)
        return
    holder = _other_slurm_run(job_dir, str(meta.get("slurm_job_id") or ""))
    if holder is not None:
        # A run of another Slurm job holds the job (its run, not this Slurm job's: a
        # resume whose id was recorded over the running one's, hunt14a): its state stands.
        meta["sub_status"] = meta.get("sub_status") or (
            f"run by Slurm job {holder} (Slurm job {meta.get('slurm_job_id')} ended {view.raw})"
        )
        return
    new = "FAILED" if view.state == JobState.SUCCEEDED else view.state.value
    if view.raw in EXPLAINS:
        why = _explained(view, None, meta.get("id"))
    elif view.raw == "CANCELLED":
        why = "the job was cancelled (scancel) before the program finished"
    else:
        why = (
            f"the Slurm job ended {view.raw} (exit code {view.exit_code or '?'}) before the "
            "program finished: see `qshpc logs` (the slurm-* logs show start-up errors)"
        )
    now = mark_terminal(job_dir, new, why, found=True)
    _save_cache(job_dir, view)
    meta["state"], meta["error"] = new, why
    ended_at(meta, now, found=True)


def _other_slurm_run(job_dir: Path, slurm_id: str) -> str | None:
    """The Slurm job of a live run holding ``job_dir`` when it is not ``slurm_id``, else None.

    A run holds the lock under an array element's own id (``123_4``); one a qshpc before
    review34 started holds it under the element's raw id, which only Slurm can match to
    the element: None then.
    """
    from qshpc.store.lock import holder_alive

    holder = holder_alive(job_dir, runs_only=True)
    if holder is None or not holder.slurm_job or str(holder.slurm_job) == slurm_id:
        return None
    if "_" in slurm_id and "_" not in str(holder.slurm_job):
        return None
    return str(holder.slurm_job)


def _explained(view: SlurmView, error: Any, job_id: Any = None) -> str:
    """Slurm's reason, and for a time limit the command that finishes the job (review24
    F11: "raise --time-min" read as "submit it again", all tasks over)."""
    head = f"Slurm ended the job {view.raw}: {EXPLAINS[view.raw]}"
    ref = job_id or "JOB"
    if view.raw == "TIMEOUT":
        head += f" (`qshpc submit --resume {ref} --time-min M` runs only the unfinished tasks)"
    elif view.raw in _RESUMABLE:  # (review34 F8: a node's failure named only --requeue)
        head += f"; `qshpc submit --resume {ref}` runs only the unfinished tasks"
    if error and view.raw in _ENDS_WITH_SIGTERM:
        # Slurm's own SIGTERM as it ended the job, which rank 0 stored as a cancel: said
        # so, not as a stop someone asked for (review34 F8).
        error = str(error).replace(
            "job cancelled: received SIGTERM",
            f"rank 0 received Slurm's SIGTERM as it ended the job ({view.raw})",
        )
    return f"{head}\n{error}" if error else head


#: Slurm's ends after which ``qshpc submit --resume`` finishes the job.
_RESUMABLE = ("PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "OUT_OF_MEMORY", "DEADLINE")
#: Slurm's ends that send the job's processes SIGTERM first.
_ENDS_WITH_SIGTERM = ("TIMEOUT", "PREEMPTED", "NODE_FAIL", "DEADLINE")


def reconcile_slurm(
    job_dir: Path, meta: dict[str, Any], views: Mapping[str, SlurmView | None] | None = None
) -> None:
    """Update ``meta`` in place from Slurm for the job whose id is ``meta["slurm_job_id"]``.

    Called by ``Job.info()`` for store states QUEUED/RUNNING and for
    CANCELED/FAILED. Never raises for Slurm trouble: an unreachable Slurm
    leaves the store's state, with ``slurm_state`` UNKNOWN.

    Args:
        job_dir: The job directory.
        meta: The store's meta (with ``slurm_job_id``), updated in place.
        views: Answers already fetched for many jobs (``qshpc list``); a job
            not in it is asked about on its own.
    """
    cached = kept_answer(job_dir)
    override = read_override(job_dir)
    if override and meta.get("state") not in TERMINAL:
        meta["state"] = override.get("state")
        meta["error"] = override.get("error")
        ended_at(meta, override.get("time"), override.get("found"))  # else it runs on to now
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
    if not is_slurm_id(slurm_id):
        return
    recorded = read_slurm_cluster(job_dir)
    here = other_cluster(recorded)
    if here is not None:
        # Ids are per cluster: here this id names another job, never asked about.
        meta.setdefault("slurm_state", "UNKNOWN")
        meta["slurm_cluster"] = recorded
        if not meta.get("sub_status"):
            meta["sub_status"] = (
                f"Slurm job {slurm_id} is on cluster {recorded!r}; this host's Slurm is "
                f"{here!r}: ask on a login node of {recorded!r} for Slurm's view"
            )
        return
    view = views[slurm_id] if views is not None and slurm_id in views else query(slurm_id)
    apply(job_dir, meta, view)


def slurm_id_to_ask(job_dir: Path, meta: dict[str, Any]) -> str | None:
    """The Slurm id :func:`reconcile_slurm` would ask Slurm about for this job, or None.

    None for a job that is not a Slurm job, that SUCCEEDED, or whose final
    answer from Slurm is already kept in the job directory.
    """
    slurm_id = str(meta.get("slurm_job_id") or "")
    if not is_slurm_id(slurm_id) or meta.get("state") == JobState.SUCCEEDED:
        return None
    if (job_dir / CACHE_FILE).is_file():
        return None
    if other_cluster(read_slurm_cluster(job_dir)) is not None:
        return None
    return slurm_id


def _warn_unknown(meta: dict[str, Any], view: SlurmView) -> None:
    warnings.warn(
        f"Slurm reports job {meta.get('slurm_job_id')} ({meta.get('id', '?')}) in state "
        f"{view.raw!r}, which this qshpc does not know: shown as UNKNOWN (Slurm's word is "
        "kept as slurm_state); qshpc keeps asking until Slurm says the job ended",
        SlurmStateWarning,
        stacklevel=4,
    )


def _apply_cached(meta: dict[str, Any], view: SlurmView) -> None:
    """A store state of CANCELED/FAILED that Slurm explains becomes FAILED with the reason."""
    if meta.get("state") != "SUCCEEDED" and view.raw in EXPLAINS:
        if meta.get("state") != "FAILED" or not str(meta.get("error") or "").startswith(
            "Slurm ended"
        ):
            meta["error"] = _explained(view, meta.get("error"), meta.get("id"))
        meta["state"] = "FAILED"


__all__ = [
    "CACHE_FILE",
    "SLURM_STATES",
    "SlurmView",
    "apply",
    "kept_answer",
    "parse_sacct",
    "parse_scontrol",
    "reconcile_slurm",
    "slurm_id_to_ask",
]
