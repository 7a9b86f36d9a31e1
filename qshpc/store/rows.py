"""The rows of the job file's log, without h5py.

:mod:`qshpc.store.batch` encodes records and events into these rows without
loading h5py (workers pack theirs without numpy: :mod:`qshpc.store.rowpack`,
whose fields ``RECORD_DTYPE`` is built from);
:mod:`qshpc.store.layout` (which needs h5py) re-exports the names, and the
rest of the file's layout is there.
"""

from __future__ import annotations

import numpy as np

from qshpc.store.rowpack import (
    LARGE_THRESHOLD,
    RAW_RESULT_MIN,
    RECORD_FIELDS,
    WHERE_DATA,
    WHERE_LARGE,
    WHERE_NONE,
)

RECORD_DTYPE = np.dtype(list(RECORD_FIELDS))

EVENT_DTYPE = np.dtype(
    [
        ("valid", "u1"),
        ("kind", "u1"),
        ("where", "u1"),
        ("run", "<u2"),
        ("time", "<f8"),
        ("off", "<u8"),
        ("len", "<u8"),
    ]
)
COMMIT_DTYPE = np.dtype(
    [
        ("records", "<u8"),
        ("events", "<u8"),
        ("meta", "<u8"),
        ("data", "<u8"),
        ("large", "<u8"),
        ("time", "<f8"),
        ("check", "<u8"),
    ]
)
COMMIT_FIELDS = ("records", "events", "meta", "data", "large")


__all__ = [
    "COMMIT_DTYPE",
    "COMMIT_FIELDS",
    "EVENT_DTYPE",
    "LARGE_THRESHOLD",
    "RAW_RESULT_MIN",
    "RECORD_DTYPE",
    "WHERE_DATA",
    "WHERE_LARGE",
    "WHERE_NONE",
]
