"""Names, versions and dtypes of the job file, and the helpers that open it."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qshpc.errors import JobNotFoundError, SchemaVersionError, StoreError
from qshpc.store import rows
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
JOURNAL_FILE = "job.journal"
META = "log/meta"  # uint8, gzip: blob-encoded record fields
DATA = "log/data"  # uint8, gzip: blob-encoded small results and events
LARGE = "log/large"  # uint8, uncompressed: results over LARGE_THRESHOLD bytes
RECORDS = "log/records"  # one row per task record
EVENTS = "log/events"  # one row per state change, sub-status, saved result
COMMITS = "log/commits"  # one row per commit: how far every log dataset is valid
STREAMS = (META, DATA, LARGE)

LARGE_THRESHOLD = rows.LARGE_THRESHOLD
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
    version = int(f.attrs[SCHEMA_ATTR])
    if version != SCHEMA_VERSION:
        newer = "a newer" if version > SCHEMA_VERSION else "an older, unsupported"
        raise SchemaVersionError(
            f"{path} has store schema version {version}, but this qshpc reads version "
            f"{SCHEMA_VERSION}; it was written by {newer} qshpc. Read it with the qshpc "
            f"version that wrote it (see its meta/qshpc_version), or upgrade qshpc."
        )


def open_error(path: Path, exc: Exception) -> StoreError:
    if not path.exists():
        return StoreError(f"no job store at {path} (the job was never created, or it was removed)")
    return StoreError(
        f"cannot read the job store {path}: it is truncated, corrupt or not HDF5 ({exc})"
    )


def open_read(path: Path) -> h5py.File:
    """Open a store for reading (file locking off: never blocks on, or blocks, a writer).

    ``job.h5`` is only ever replaced whole (written to a temp file and renamed),
    so any reader sees a complete file.
    """
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise open_error(path, exc) from exc
    try:
        check_schema(f, path)
    except BaseException:
        f.close()
        raise
    return f


def fsync_path(path: Path) -> None:
    """fsync a file (or directory) so a rename after it is durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
