"""Atomic rewrites of ``job.h5``: copy, fold the journal in, change, rename."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path

import h5py

from qshpc.errors import DamagedStoreError, StoreError
from qshpc.store import layout as L
from qshpc.store import perms, seal
from qshpc.store.journal import (
    check_nonce,
    check_token,
    expect_token,
    read_journal,
    token_of,
)
from qshpc.store.log import fold
from qshpc.store.space import room_after


def io_error(path: Path, exc: BaseException, what: str) -> StoreError:
    """A StoreError for a failed write, naming the file and what to do."""
    from qshpc.store.space import disk_full, full_error

    if disk_full(exc):
        return full_error(path, what)
    why = getattr(exc, "strerror", None) or str(exc)
    return StoreError(
        f"cannot {what} {path}: {why}. Free space on its file system (df -h {path.parent}) "
        f"or make it writable; everything committed before this error is intact"
    )


class NotWritten(StoreError):
    """The new copy of ``job.h5`` could not be written, for another reason than a full disk
    (the job folder made read-only while the job ran: hunt21b; the process out of memory:
    review38 F17). Nothing was replaced:
    ``job.h5`` and the journal beside it are as they were, whole, and qshpc's readers
    read both; a later fold (``qshpc status``) completes the file once it can be written.
    """


#: What a folder (or ``job.h5``) made read-only under a running job gives.
_REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS)

SLACK = 256 << 10  # room for what a change adds besides the journal (a run entry, attrs)


def snapshot(
    path: Path,
    change: Callable[[h5py.File], None],
    what: str,
    growth: int = 0,
    nonce: bytes = b"",
    next_token: bytes = b"",
) -> None:
    """Rewrite ``path`` with the journal folded in and ``change`` applied, atomically.

    The journal is folded in only when it is the one ``job.h5`` expects
    (:func:`~qshpc.store.journal.check_token`); ``nonce``: the job's writer's, which
    ``job.h5`` must carry (:func:`~qshpc.store.journal.check_nonce`: not another job's
    file put in its place). ``next_token``: the token of the journal the writer starts next,
    recorded for readers and later folds.

    The journal is deleted once the new file is in place. A crash at any point
    leaves either the old file and the journal, or the new file (which records
    the folded journal's token, so a left-over journal is not read twice).

    ``growth``: bytes ``change`` may add beyond :data:`SLACK` (a native
    result); that room and the journal's size are allocated before HDF5 writes.

    Raises:
        StoreError: When the file cannot be read or written.
    """
    journal = path.with_name(L.JOURNAL_FILE)
    tmp = path.with_name(path.name + ".tmp")
    try:
        token, frames, damage = read_journal(journal)
    except FileNotFoundError:
        token, frames, damage = b"", [], None
    if damage:
        raise DamagedStoreError(journal, damage)
    try:
        try:
            sealed = seal.copy_verified(path, tmp)
        except seal.SealError as exc:
            raise DamagedStoreError(path, str(exc).split(": ", 1)[-1]) from None
        perms.set_file_mode(tmp)
        if not sealed:
            from qshpc.store.isolate import probe

            probe(path)  # an older qshpc wrote it: read it all, time-limited, before HDF5 here
            if seal.is_sealed_layout(path):
                raise L.SealGoneError(path, L.SEAL_GONE)
        fd = os.open(tmp, os.O_RDWR)
        try:  # the growth: the journal folded in, a run entry, a small result
            folded = sum(jf.large_at + sum(jf.large_lens) for jf in frames[-1:])
            room_after(fd, folded + SLACK + growth)
        finally:
            os.close(fd)
        try:
            f = h5py.File(tmp, "r+", libver="latest", locking=False)
        except OSError as exc:
            raise L.open_error(path, exc) from exc
        with f:
            L.check_schema(f, path)
            check_nonce(f, path, nonce)
            if token and token != token_of(f):
                check_token(f, journal, token)
                fold(f, frames, journal, token)
            change(f)
            if next_token:
                expect_token(f, next_token)
        seal.seal(tmp)
        L.fsync_path(tmp)
        os.replace(tmp, path)
        L.fsync_path(path.parent)
        journal.unlink(missing_ok=True)
    except OSError as exc:
        if "memory allocation failed" in str(exc):  # HDF5's MemoryError: as below
            raise NotWritten(
                f"cannot {what} {path}: out of memory while the journal was folded in ({exc})"
            ) from MemoryError(str(exc))
        if not path.exists():
            raise L.open_error(path, exc) from exc
        if exc.errno in _REFUSED:
            raise NotWritten(str(io_error(path, exc, what))) from exc
        raise io_error(path, exc, what) from exc
    except StoreError as exc:
        from qshpc.store.space import disk_full

        if disk_full(exc) and not isinstance(exc, DamagedStoreError):
            raise io_error(path, exc, what) from exc
        raise
    except MemoryError as exc:  # (review38 F17: a traceback) nothing replaced, as above
        raise NotWritten(
            f"cannot {what} {path}: out of memory while the journal was folded in"
        ) from exc
    finally:
        with contextlib.suppress(OSError):  # EROFS even for a missing one: the error above stands
            tmp.unlink(missing_ok=True)
