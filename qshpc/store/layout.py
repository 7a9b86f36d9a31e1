"""Names, versions and dtypes of the job file, and the helpers that open it."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qshpc.errors import DamagedStoreError, JobNotFoundError, SchemaVersionError, StoreError
from qshpc.store import records, rows, seal
from qshpc.store.records import JOB_FILE as JOB_FILE
from qshpc.store.records import SCHEMA_VERSION as SCHEMA_VERSION

SCHEMA_ATTR = "qshpc-schema-version"
ENC_TYPE = "encoding-type"
ENC_VERSION = "encoding-version"
FILE_ENCODING = "qshpc-job"

META_GROUP = "meta"
ARGUMENTS = "arguments"
RUNS = "runs"
RESULT = "result"
LOG = "log"
FOLDED_ATTR = "folded-journal"  # token of the last journal folded into /log
#: /log attr: the token of the journal the writer starts after this file was written (a
#: journal of another token beside it is not this job's: review49 F4). Absent: not checked.
JOURNAL_TOKEN_ATTR = "journal-token"
#: Root attr: 8 random bytes drawn when the job was created (or first opened by a writer
#: that knows it), so a writer knows the job.h5 it reopens is its own (review49 F3).
NONCE_ATTR = "job-nonce"
JOURNAL_FILE = records.JOURNAL_FILE
META = "log/meta"  # uint8, gzip: blob-encoded record fields
DATA = "log/data"  # uint8, gzip: blob-encoded small results and events
LARGE = "log/large"  # uint8, uncompressed: results over LARGE_THRESHOLD (RAW_RESULT_MIN) bytes
RECORDS = "log/records"  # one row per task record
EVENTS = "log/events"  # one row per state change, sub-status, saved result
COMMITS = "log/commits"  # one row per commit: how far every log dataset is valid
STREAMS = (META, DATA, LARGE)

LARGE_THRESHOLD = rows.LARGE_THRESHOLD
RAW_RESULT_MIN = rows.RAW_RESULT_MIN
DATA_CHUNK = 1 << 16
LARGE_CHUNK = 1 << 20
RECORD_CHUNK = 512
EVENT_CHUNK = 16
COMMIT_CHUNK = 64

WHERE_NONE, WHERE_DATA, WHERE_LARGE = rows.WHERE_NONE, rows.WHERE_DATA, rows.WHERE_LARGE
EVENT_STATE, EVENT_STATUS, EVENT_RESULT = 1, 2, 3
#: Rank 0's program and its waits, ``{"spans": [[t0, t1, kind, n], ...], "submitted": N}``
#: (see ``JobReader.spans``; N: tasks the program submitted so far).
EVENT_SPANS = 4
SPAN_GET, SPAN_WAIT, SPAN_PROGRAM = 0, 1, 2
COMMIT_MAGIC = 0x51534843  # "QSHC"

RECORD_DTYPE = rows.RECORD_DTYPE  # in rows.py: workers build record rows without h5py
EVENT_DTYPE, COMMIT_DTYPE, COMMIT_FIELDS = rows.EVENT_DTYPE, rows.COMMIT_DTYPE, rows.COMMIT_FIELDS


def commit_check(row: Any) -> int:
    """The check value of a commit row: a hash of its other fields, never 0."""
    fields = [int(row[k]) for k in COMMIT_FIELDS]
    return (zlib.crc32(struct.pack("<5Q", *fields)) << 32) | COMMIT_MAGIC


def stamp(obj: h5py.Group | h5py.Dataset, enc_type: str, version: str = "1") -> None:
    """Write the schema version and ``encoding-type``/``encoding-version`` attrs."""
    obj.attrs[SCHEMA_ATTR] = SCHEMA_VERSION
    obj.attrs[ENC_TYPE] = enc_type
    obj.attrs[ENC_VERSION] = version


def create_log(f: h5py.File) -> None:
    """Create the empty, appendable log datasets."""
    g = f.create_group(LOG)
    stamp(g, "qshpc-log")
    gz: dict[str, Any] = {"compression": "gzip", "compression_opts": 1}
    specs: list[tuple[str, Any, int, dict[str, Any]]] = [
        (META, np.uint8, DATA_CHUNK, gz),
        (DATA, np.uint8, DATA_CHUNK, gz),
        (LARGE, np.uint8, LARGE_CHUNK, {}),
        (RECORDS, RECORD_DTYPE, RECORD_CHUNK, {"shuffle": True, **gz}),
        (EVENTS, EVENT_DTYPE, EVENT_CHUNK, {}),
        (COMMITS, COMMIT_DTYPE, COMMIT_CHUNK, {}),
    ]
    for name, dtype, chunk, kw in specs:
        ds = f.create_dataset(name, (0,), maxshape=(None,), chunks=(chunk,), dtype=dtype, **kw)
        enc = "qshpc-msgpack" if dtype is np.uint8 else "qshpc-log-table"
        stamp(ds, enc)


def job_file(job_dir: Path) -> Path:
    """``job_dir/job.h5``; raises JobNotFoundError when ``job_dir`` does not exist."""
    if not job_dir.is_dir():
        raise JobNotFoundError(f"no job directory {job_dir}")
    return job_dir / JOB_FILE


def check_schema(f: h5py.File, path: Path) -> None:
    """Raise unless ``f`` is a qshpc job store of a schema version this code reads."""
    if SCHEMA_ATTR not in f.attrs:
        raise StoreError(f"{path} is an HDF5 file but not a qshpc store (no {SCHEMA_ATTR} attr)")
    raw = f.attrs[SCHEMA_ATTR]
    try:
        version = int(raw)
        if version != float(raw):
            raise ValueError(raw)
    except (TypeError, ValueError, OverflowError):
        shown = repr(raw)[:60]
        raise StoreError(
            f"{path} has a store schema version that is not a whole number ({SCHEMA_ATTR} = "
            f"{shown}): the file is damaged or was not written by qshpc"
        ) from None
    if version != SCHEMA_VERSION:
        newer = "a newer" if version > SCHEMA_VERSION else "an older, unsupported"
        raise SchemaVersionError(
            f"{path} has store schema version {version}, but this qshpc reads version "
            f"{SCHEMA_VERSION}; it was written by {newer} qshpc. Read it with the qshpc "
            f"version that wrote it (see its meta/qshpc_version), or upgrade qshpc."
        )


def open_error(path: Path, exc: BaseException) -> StoreError:
    if not path.exists():
        return StoreError(f"no job store at {path} (the job was never created, or it was removed)")
    return DamagedStoreError(path, f"it is truncated, corrupt or not HDF5 ({exc})")


class SealGoneError(DamagedStoreError):
    """A file qshpc sealed whose seal is missing or damaged: nothing in it can be verified."""


class UnsealedError(StoreError):
    """A file without an integrity seal: written by an older qshpc (read it isolated)."""


SEAL_GONE = (
    "its integrity seal is missing or damaged (the file was cut short, or bytes at its end "
    "changed), so none of it can be trusted"
)


def open_read(path: Path, plain: bool = False) -> h5py.File:
    """Open a store for reading (never blocks on, or blocks, a writer).

    ``job.h5`` is only ever replaced whole (written to a temp file and renamed),
    so any reader sees a complete file. A sealed file is read through
    :class:`~qshpc.store.seal.VerifiedFile`: a read that touches a damaged block
    fails (:func:`damage_of` then names it) instead of feeding HDF5 bad bytes.

    Args:
        path: The file.
        plain: Open a file without a seal with HDF5's own driver (only in the
            isolated reader's child process, which runs under a time limit).

    Raises:
        UnsealedError: ``path`` has no seal (an older qshpc wrote it) and not ``plain``.
        DamagedStoreError: ``path`` was sealed but its seal is gone, or its
            first blocks are damaged.
        StoreError: Missing, not a regular file, not HDF5, another schema.
    """
    try:
        fd = seal.open_regular(path)
    except FileNotFoundError as exc:
        raise open_error(path, exc) from exc
    except OSError as exc:
        raise StoreError(f"cannot read the job store {path}: {exc.strerror or exc}") from exc
    vf: seal.VerifiedFile | None = None
    try:
        found = seal.read_seal(fd, os.fstat(fd).st_size, lazy=True)  # its table as needed
        if found is None:
            if not plain and seal.sealed_layout(fd):
                raise SealGoneError(path, SEAL_GONE)
            if not plain:
                raise UnsealedError(f"{path} has no integrity seal (an older qshpc wrote it)")
            os.close(fd)
            fd = -1
            f = h5py.File(path, "r", locking=False)
        else:
            vf = seal.VerifiedFile(fd, found, str(path))
            fd = -1
            f = h5py.File(vf, "r")
            f._qshpc_vf = vf
    except (StoreError, KeyboardInterrupt):
        if vf is not None:
            vf.close()
        if fd >= 0:
            os.close(fd)
        raise
    except Exception as exc:
        bad = damage_of(vf)
        if vf is not None:
            vf.close()
        if fd >= 0:
            os.close(fd)
        if bad:
            raise DamagedStoreError(path, bad) from None
        raise open_error(path, exc) from exc
    try:
        check_schema(f, path)
    except Exception as exc:
        bad = damage_of(vf)
        close_read(f)
        if bad:
            raise DamagedStoreError(path, bad) from None
        if isinstance(exc, StoreError):
            raise
        raise open_error(path, exc) from exc
    return f


def damage_of(f: h5py.File | seal.VerifiedFile | None) -> str | None:
    """What is damaged in a file opened by :func:`open_read` (None: nothing seen so far)."""
    vf = f if isinstance(f, seal.VerifiedFile) or f is None else getattr(f, "_qshpc_vf", None)
    if vf is None or not vf.bad:
        return None
    size = vf._seal.block
    ranges = ", ".join(f"{i * size}-{(i + 1) * size - 1}" for i in sorted(vf.bad)[:5])
    more = f" and {len(vf.bad) - 5} more blocks" if len(vf.bad) > 5 else ""
    return f"bytes {ranges}{more} do not match its integrity seal"


def close_read(f: h5py.File) -> None:
    """Close a file from :func:`open_read` and the descriptor under it."""
    vf = getattr(f, "_qshpc_vf", None)
    try:
        f.close()
    finally:
        if vf is not None:
            vf.close()


def fsync_path(path: Path) -> None:
    """fsync a file (or directory) so a rename after it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # never waits on a FIFO
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
