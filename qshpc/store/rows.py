"""The rows of the job file's log, without h5py: workers build record rows with them.

:mod:`qshpc.store.chunk` (on the workers) and :mod:`qshpc.store.batch` encode
records and events into these rows without loading h5py;
:mod:`qshpc.store.layout` (which needs h5py) re-exports the names, and the
rest of the file's layout is there.
"""

from __future__ import annotations

import numpy as np

#: Results whose encoding is larger than this go to ``/log/large``.
LARGE_THRESHOLD = 1 << 20
#: A task result that rank 0 records (a cache hit's bytes, a call rank 0 ran, a
#: worker's result over ``chunk.SHIP_ENCODED_MAX``) goes to ``/log/large`` above
#: this size: written raw to the journal and copied uncompressed into the job
#: file. Compressing it (zlib in the journal, gzip level 1 at the fold) cost
#: rank 0 ~1.3 ms per 45 KB distribution (4,094 floats) for ~20% of its size.
RAW_RESULT_MIN = 16 << 10
#: Where a record's result is: none, ``/log/data``, ``/log/large``.
WHERE_NONE, WHERE_DATA, WHERE_LARGE = 0, 1, 2

RECORD_DTYPE = np.dtype(
    [
        ("valid", "u1"),
        ("state", "u1"),
        ("where", "u1"),
        ("has_seed", "u1"),
        ("run", "<u2"),
        ("attempt", "<u4"),
        ("rank", "<i4"),
        ("seed", "<i8"),
        ("submitted", "<f8"),
        ("started", "<f8"),
        ("finished", "<f8"),
        ("off", "<u8"),
        ("meta_len", "<u4"),
        ("res_off", "<u8"),
        ("res_len", "<u8"),
    ]
)

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
