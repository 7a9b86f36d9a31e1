"""Turning task records and events into log rows and byte streams (no h5py here).

The log is four streams of bytes (``meta``, ``data``, ``large``) and two row
tables (``records``, ``events``) whose rows point into the streams by offset.
A :class:`Batch` collects what one commit appends, at offsets that continue
from the log's current :class:`Ends`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qshpc.store import layout as L
from qshpc.store.encoding_blob import encode_blob
from qshpc.store.jsonable import to_jsonable
from qshpc.store.records import TaskRecord


@dataclass
class Ends:
    """How long each log table and stream is."""

    records: int = 0
    events: int = 0
    meta: int = 0
    data: int = 0
    large: int = 0

    def as_list(self) -> list[int]:
        """The ends in ``layout.COMMIT_FIELDS`` order."""
        return [getattr(self, k) for k in L.COMMIT_FIELDS]


@dataclass
class Frame:
    """What one commit appends: rows and stream bytes, starting at ``start``."""

    start: Ends
    records: np.ndarray[Any, Any]
    events: np.ndarray[Any, Any]
    meta: bytes
    data: bytes
    large: list[bytes] = field(default_factory=list)

    def end(self) -> Ends:
        """The ends after this frame."""
        s = self.start
        return Ends(
            s.records + len(self.records),
            s.events + len(self.events),
            s.meta + len(self.meta),
            s.data + len(self.data),
            s.large + sum(len(b) for b in self.large),
        )


def _key_bytes(key: str) -> str | bytes:
    if len(key) == 64:
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            return key
        if raw.hex() == key:
            return raw
    return key


class _Stream:
    def __init__(self, end: int) -> None:
        self.end = end
        self.parts: list[bytes] = []
        self.size = 0

    def put(self, blob: bytes) -> int:
        off = self.end + self.size
        self.parts.append(blob)
        self.size += len(blob)
        return off


class Batch:
    """Encodes records and events queued for the next commit."""

    def __init__(self, start: Ends, run: int) -> None:
        self.start = start
        self.run = run
        self._meta = _Stream(start.meta)
        self._data = _Stream(start.data)
        self._large = _Stream(start.large)
        self._records: list[tuple[Any, ...]] = []
        self._events: list[tuple[Any, ...]] = []

    def _put(self, blob: bytes) -> tuple[int, int]:
        if len(blob) > L.LARGE_THRESHOLD:
            return L.WHERE_LARGE, self._large.put(blob)
        return L.WHERE_DATA, self._data.put(blob)

    def add_record(self, rec: TaskRecord) -> None:
        """Encode and queue one task record."""
        ok = rec.state == "SUCCEEDED"
        prov = to_jsonable(rec.provenance) if rec.provenance else None
        fields = [rec.task_id, _key_bytes(rec.key), rec.function, rec.host, rec.error, prov]
        meta = encode_blob(fields)
        off = self._meta.put(meta)
        where, res_off, res_len = L.WHERE_NONE, 0, 0
        if ok:
            blob = encode_blob(rec.result)
            where, res_off = self._put(blob)
            res_len = len(blob)
        seed = rec.seed
        self._records.append(
            (1, 0 if ok else 1, where, seed is not None, self.run, rec.attempt, rec.rank,
             seed or 0, rec.submitted, rec.started, rec.finished, off, len(meta), res_off,
             res_len)
        )  # fmt: skip

    def add_event(self, kind: int, blob: bytes) -> None:
        """Queue one event (state change, sub-status or saved result)."""
        where, off = self._put(blob)
        self._events.append((1, kind, where, self.run, time.time(), off, len(blob)))

    def empty(self) -> bool:
        """True when nothing is queued."""
        return not (self._records or self._events)

    def frame(self) -> Frame:
        """The queued rows and bytes as a frame."""
        return Frame(
            start=self.start,
            records=np.array(self._records, L.RECORD_DTYPE),
            events=np.array(self._events, L.EVENT_DTYPE),
            meta=b"".join(self._meta.parts),
            data=b"".join(self._data.parts),
            large=list(self._large.parts),
        )
