"""The record row of the job file's log as plain bytes: workers pack rows without numpy.

A worker of a program that never imports numpy does not load it for the store
either (0.08-0.10 CPU s a worker, session 13): :class:`qshpc.store.chunk.ChunkBuilder`
packs its rows with :data:`RECORD` (``struct``), and rank 0 reads them as
``RECORD_DTYPE`` rows (:mod:`qshpc.store.rows` builds that dtype from
:data:`RECORD_FIELDS`, so both are the same bytes by construction). The
constants the worker needs are here too; :mod:`qshpc.store.rows` re-exports them.
"""

from __future__ import annotations

import struct

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

#: The fields of a record row, in order: name and numpy type (packed, little-endian).
RECORD_FIELDS: tuple[tuple[str, str], ...] = (
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
)

_STRUCT_CODE = {"u1": "B", "<u2": "H", "<u4": "I", "<i4": "i", "<i8": "q", "<f8": "d", "<u8": "Q"}

#: One record row, packed as ``RECORD_DTYPE`` lays it out (no padding, little-endian).
RECORD = struct.Struct("<" + "".join(_STRUCT_CODE[t] for _, t in RECORD_FIELDS))


__all__ = [
    "LARGE_THRESHOLD",
    "RAW_RESULT_MIN",
    "RECORD",
    "RECORD_FIELDS",
    "WHERE_DATA",
    "WHERE_LARGE",
    "WHERE_NONE",
]
