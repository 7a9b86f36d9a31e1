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

from qshpc.store import rows as L
from qshpc.store.chunk import (
    WHERE_UNENCODED,
    RecordChunk,
    encode_hit_meta,
    encode_meta,
    provenance_noting,
)
from qshpc.store.encoding_blob import NOTED, Buffer, blob_len, encode_blob_parts
from qshpc.store.records import TaskRecord
from qshpc.store.unnoted import AS_BYTES, unnoted_loss


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
    large: list[list[Buffer]] = field(default_factory=list)  # each blob as its parts

    def end(self) -> Ends:
        """The ends after this frame."""
        s = self.start
        return Ends(
            s.records + len(self.records),
            s.events + len(self.events),
            s.meta + len(self.meta),
            s.data + len(self.data),
            s.large + sum(blob_len(b) for b in self.large),
        )


def prefix(frame: Frame, k: int) -> Frame:
    """``frame``'s first ``k`` records alone, with the stream bytes they refer to (its events
    and later records left out): what a full disk can still take of a commit (review50 F2:
    the whole batch was lost though the disk had room for most of it).

    Each stream is cut after the last byte those records use (bytes before it that only
    later records or the events use are kept, unreferenced); the large stream at a blob's
    end.
    """
    recs = frame.records[:k]
    start = frame.start

    def used(where: int | None, off: str, n: str, base: int) -> int:
        rows = recs if where is None else recs[recs["where"] == where]
        return int((rows[off] + rows[n]).max()) - base if len(rows) else 0

    data = used(L.WHERE_DATA, "res_off", "res_len", start.data)
    large_end = used(L.WHERE_LARGE, "res_off", "res_len", start.large)
    large: list[list[Buffer]] = []
    total = 0
    for blob in frame.large:
        if total >= large_end:
            break
        large.append(blob)
        total += blob_len(blob)
    return Frame(
        start=start,
        records=recs.copy(),
        events=frame.events[:0].copy(),
        meta=frame.meta[: used(None, "off", "meta_len", start.meta)],
        data=frame.data[:data],
        large=large,
    )


class _Stream:
    """Blobs queued for one dataset: ``flat`` keeps their buffers in one list (joined
    at the commit), otherwise each blob keeps its parts (``log/large``)."""

    def __init__(self, end: int, flat: bool = True) -> None:
        self.end = end
        self.flat = flat
        self.parts: list[Any] = []
        self.size = 0

    def put(self, blob: bytes | list[Buffer], n: int | None = None) -> int:
        """Queue ``blob`` (``n``: its length, when the caller knows it); its offset."""
        off = self.end + self.size
        if isinstance(blob, bytes):
            self.parts.append(blob if self.flat else [blob])
            self.size += len(blob)
        else:
            if self.flat:
                self.parts.extend(blob)
            else:
                self.parts.append(blob)
            self.size += blob_len(blob) if n is None else n
        return off

    def joined(self) -> bytes:
        return b"".join(self.parts)


class Batch:
    """Encodes records and events queued for the next commit."""

    def __init__(self, start: Ends, run: int) -> None:
        self.start = start
        self.run = run
        self._meta = _Stream(start.meta)
        self._data = _Stream(start.data)
        self._large = _Stream(start.large, flat=False)
        self._records: list[tuple[Any, ...]] = []  # rows not yet in an array
        self._arrays: list[np.ndarray[Any, Any]] = []
        self._events: list[tuple[Any, ...]] = []

    def _put(
        self, blob: bytes | list[Buffer], n: int | None = None, large: int = L.LARGE_THRESHOLD
    ) -> tuple[int, int]:
        if n is None:
            n = len(blob) if isinstance(blob, bytes) else blob_len(blob)
        if n > large:
            return L.WHERE_LARGE, self._large.put(blob, n)
        return L.WHERE_DATA, self._data.put(blob, n)

    def add_record(self, rec: TaskRecord) -> tuple[int, int, int] | None:
        """Encode and queue one task record; where its result goes (``where``, offset,
        length in that stream), or None for a failure or a result stored as another type."""
        ok = rec.state == "SUCCEEDED"
        blob: bytes | list[Buffer] | None = None
        prov = rec.provenance
        exact = True
        if ok:  # first: a value that cannot be encoded leaves nothing queued
            if rec.encoded is not None:  # a cache hit's: the cache keeps exact ones
                blob = rec.encoded
            else:
                noted = NOTED[0]  # encode_blob_noting, inline
                value = rec.result
                parts = encode_blob_parts(value)
                blob = parts[0] if len(parts) == 1 and type(parts[0]) is bytes else parts
                if NOTED[0] != noted:
                    lost = NOTED[1]
                elif type(value) in AS_BYTES:  # stored as bytes
                    lost = f"builtins.{type(value).__qualname__}"
                elif type(blob) is not bytes or len(blob) > L.RAW_RESULT_MIN:
                    lost = unnoted_loss(value)  # a big one: walked (it costs about its encoding)
                else:
                    lost = None
                if lost is not None:
                    prov = provenance_noting(prov, lost)
                    exact = False
        meta = encode_meta(rec.task_id, rec.key, rec.function, rec.host, rec.error, prov)
        off = self._meta.put(meta)
        where, res_off, res_len = L.WHERE_NONE, 0, 0
        if blob is not None:
            res_len = len(blob) if isinstance(blob, bytes) else blob_len(blob)
            where, res_off = self._put(blob, res_len, L.RAW_RESULT_MIN)
        seed = rec.seed
        self._records.append(
            (1, 0 if ok else 1, where, seed is not None, self.run, rec.attempt, rec.rank,
             seed or 0, rec.submitted, rec.started, rec.finished, off, len(meta), res_off,
             res_len)
        )  # fmt: skip
        return (where, res_off, res_len) if blob is not None and exact else None

    def add_hit(
        self,
        task_id: str,
        key: str,
        function: str,
        rank: int,
        host: str,
        submitted: float,
        finished: float,
        seed: int | None,
        provenance: dict[str, Any],
        encoded: bytes,
    ) -> None:
        """Queue the record of a cache hit: what :meth:`add_record` queues for a SUCCEEDED
        first attempt whose result is ``encoded`` and that started when it finished, byte
        for byte, without its general steps. ``provenance`` must be JSON-able as it is
        (:func:`qshpc.cache.jobcache.provenance`: strings, None, a finite float, an int):
        the meta blob takes it without :func:`~qshpc.store.jsonable.to_jsonable`."""
        meta = encode_hit_meta(task_id, key, function, host, provenance)
        off = self._meta.put(meta)
        n = len(encoded)
        where, res_off = self._put(encoded, n, L.RAW_RESULT_MIN)
        self._records.append(
            (1, 0, where, seed is not None, self.run, 1, rank, seed or 0, submitted, finished,
             finished, off, len(meta), res_off, n)
        )  # fmt: skip

    def add_chunk(self, chunk: RecordChunk) -> None:
        """Queue records a worker encoded (:mod:`qshpc.store.chunk`): offsets shifted, no loop."""
        self._flush_rows()
        blobs = []
        for i, value in chunk.unencoded:  # first: a note of a loss goes in the meta
            noted = NOTED[0]
            blob = encode_blob_parts(value)
            lost = NOTED[1] if NOTED[0] != noted else unnoted_loss(value)
            if lost is not None:  # resumed, run again (fix42a left the note out)
                chunk.inexact.append(i)
                chunk.note(i, lost)
            blobs.append((i, blob))
        rows = chunk.rows
        rows["run"] = self.run
        rows["off"] += self._meta.put(chunk.meta)
        if chunk.data:
            base = self._data.put(chunk.data)
            res_off = rows["res_off"]
            res_off[rows["where"] == L.WHERE_DATA] += base
        for i, blob in blobs:
            rows["where"][i], rows["res_off"][i] = self._put(blob, None, L.RAW_RESULT_MIN)
            rows["res_len"][i] = blob_len(blob)
        for i, raw in chunk.raw:
            rows["where"][i], rows["res_off"][i] = self._put(raw, len(raw), L.RAW_RESULT_MIN)
            rows["res_len"][i] = len(raw)
        assert not (rows["where"] == WHERE_UNENCODED).any()
        self._arrays.append(rows)

    def _flush_rows(self) -> None:
        if self._records:
            self._arrays.append(np.array(self._records, L.RECORD_DTYPE))
            self._records = []

    def add_event(self, kind: int, blob: bytes | list[Buffer]) -> int:
        """Queue one event (state change, sub-status or saved result); return where it went."""
        where, off = self._put(blob)
        n = len(blob) if isinstance(blob, bytes) else blob_len(blob)
        self._events.append((1, kind, where, self.run, time.time(), off, n))
        return where

    def empty(self) -> bool:
        """True when nothing is queued."""
        return not (self._records or self._arrays or self._events)

    def frame(self) -> Frame:
        """The queued rows and bytes as a frame."""
        self._flush_rows()
        arrays = self._arrays
        if len(arrays) == 1:
            records = arrays[0]
        elif arrays:
            records = np.concatenate(arrays)
        else:
            records = np.zeros(0, L.RECORD_DTYPE)
        return Frame(
            start=self.start,
            records=records,
            events=np.array(self._events, L.EVENT_DTYPE),
            meta=self._meta.joined(),
            data=self._data.joined(),
            large=list(self._large.parts),
        )
