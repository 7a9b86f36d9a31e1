"""An ended job whose final fold found no room: its journal folded by a later read.

``JobWriter.finalize`` commits the final state (and the saved result) to the
journal, then folds the journal into a copy of ``job.h5``. When the disk has no
room for that copy the job still ends SUCCEEDED (or FAILED, CANCELED) and qshpc's
readers read the journal, but plain h5py sees neither ``state`` nor ``/result``
in ``job.h5``. A later ``qshpc status``/``result`` or ``Job.result()`` folds it
here, once there is room, as ``finalize`` would have.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from qshpc.errors import StoreError, UserError
from qshpc.store import layout as L
from qshpc.store.records import TERMINAL_STATES


def fold_ended(job_dir: Path) -> bool:
    """Fold an ended job's journal into ``job.h5`` (atomic), under the job's lock.

    Nothing happens, and False is returned, when there is no journal, the job has
    not ended, a run holds the job (a ``--resume``), or the fold cannot be written
    (still no room, someone else's job): the journal stays, and qshpc's readers
    read it as before.
    """
    journal = L.job_file(job_dir).with_name(L.JOURNAL_FILE)
    try:
        if not _room(job_dir, journal, 0):  # still full: no lock taken, nothing read
            return False
    except OSError:  # no journal (folded meanwhile), or no job
        return False
    from qshpc.store.lock import FOLD_COMMAND, JobLock

    try:
        lock = JobLock(job_dir, FOLD_COMMAND).acquire()
    except (UserError, StoreError, OSError):  # a run holds it, or the folder is not ours
        return False
    try:
        if not _fold(job_dir, journal):
            return False
        from qshpc.store.space import drop_reserve

        # As finalize does (a writer killed in it left its 1 MiB reserve); under the
        # lock: a --resume taking it next makes its own
        drop_reserve(job_dir)
        return True
    except (StoreError, OSError):
        return False
    finally:
        lock.release()


def fold_dead(job_dir: Path) -> bool:
    """:func:`qshpc.store.recover` (fold a dead writer's journal into ``job.h5``) under the
    job's lock: False, and nothing done, while another process holds it (a run, or another
    reader folding the same journal).

    hunt16: two ``qshpc status`` of a killed job at once each folded its journal through
    the one temporary copy of ``job.h5``, and one renamed the other's half-written copy
    over the store (DAMAGED, nothing recoverable).
    """
    from qshpc.store.lock import FOLD_COMMAND, JobLock
    from qshpc.store.writer import recover

    try:
        lock = JobLock(job_dir, FOLD_COMMAND).acquire()
    except (UserError, StoreError, OSError):  # another holds it: it folds, or it runs
        return False
    try:
        recover(job_dir)
        return True
    finally:
        lock.release()


def _fold(job_dir: Path, journal: Path) -> bool:
    from qshpc.store.encoding_blob import PickleRefusedError, encode_blob_parts
    from qshpc.store.reader import JobReader

    if not journal.exists():  # folded while the lock was taken
        return False
    with JobReader.open(job_dir) as r:
        meta = r.meta()
        state = meta.get("state")
        if state not in TERMINAL_STATES:
            return False  # a dead writer's journal: recover() after the postmortem folds it
        value: Any = None
        native = False
        if meta.get("has_result"):
            try:
                value = r.result()
                native = True
            except PickleRefusedError:  # pickled: stays in the log only (never unpickled here)
                native = False
    size = sum(len(p) for p in encode_blob_parts(value)) if native else 0
    native = native and size <= L.LARGE_THRESHOLD  # a large result stays in /log, as finalize
    finished = meta.get("finished") or time.time()

    def complete(f: Any) -> None:
        if native and L.RESULT not in f:
            from qshpc.store.encoding_h5 import write_native

            write_native(f, L.RESULT, value)
            f[L.RESULT].attrs[L.SCHEMA_ATTR] = L.SCHEMA_VERSION
        f.attrs["state"] = state
        f.attrs["finished"] = finished

    if not _room(job_dir, journal, 4 * size):
        return False
    from qshpc.store.snapshot import snapshot

    snapshot(L.job_file(job_dir), complete, "fold", 4 * size)
    return True


def _room(job_dir: Path, journal: Path, growth: int) -> bool:
    """Whether the disk has room for the fold: the copy, the whole journal, ``growth``, a margin.

    snapshot() allocates what it expects HDF5 to add, but counts only the journal's
    large stream: a journal of many smaller results outgrew it, and HDF5 met the
    full disk (a failed write inside h5py, which `qshpc status` printed).
    """
    import shutil

    need = L.job_file(job_dir).stat().st_size + journal.stat().st_size + growth + _MARGIN
    return shutil.disk_usage(job_dir).free >= need


#: Free bytes kept beyond the fold's own estimate.
_MARGIN = 4 << 20


__all__ = ["fold_dead", "fold_ended"]
