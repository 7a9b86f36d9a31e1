"""The append-only log: task records and events written under SWMR.

Write protocol of one :meth:`LogWriter.commit` (what makes a SIGKILL safe):

1. Append the buffered bytes to ``log/data`` (padded with zeros to a whole
   chunk, so a compressed chunk is written once and never rewritten), big
   results to ``log/large``, and rows to ``log/records`` / ``log/events``
   (padded to whole chunks with ``valid=0`` rows). ``flush()``.
2. Append one row to ``log/commits`` holding the new end of every log dataset
   and a check value. ``flush()``.

Readers take the last commit row whose check matches and read nothing past
its ends, so a commit cut short by a kill is invisible and every earlier one
stays whole.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from qshpc.store import layout as L
from qshpc.store.encoding_blob import decode_blob, encode_blob
from qshpc.store.jsonable import to_jsonable
from qshpc.store.records import TASK_STATES, TaskRecord


@dataclass
class Ends:
    """How far each log dataset is committed."""

    records: int = 0
    events: int = 0
    meta: int = 0
    data: int = 0
    large: int = 0


_STREAMS = ((L.META, "meta", L.DATA_CHUNK), (L.DATA, "data", L.DATA_CHUNK), (L.LARGE, "large", 0))


def last_commit(f: h5py.File) -> Ends:
    """The ends of the last whole commit (all zero for an empty log)."""
    ds = f[L.COMMITS]
    if f.swmr_mode:
        ds.refresh()
    n = ds.shape[0]
    start = max(0, n - 64)
    while True:
        rows = ds[start:n]
        for row in rows[::-1]:
            if int(row["check"]) == L.commit_check(row):
                return Ends(*(int(row[k]) for k in L.COMMIT_FIELDS))
        if start == 0:
            return Ends()
        n, start = start, 0


def write_commit(commits: h5py.Dataset, ends: Ends) -> None:
    """Append the commit row that makes everything up to ``ends`` visible."""
    row = np.zeros(1, L.COMMIT_DTYPE)
    for k in L.COMMIT_FIELDS:
        row[k] = getattr(ends, k)
    row["time"] = time.time()
    row["check"] = L.commit_check(row[0])
    n = commits.shape[0]
    commits.resize((n + 1,))
    commits[n : n + 1] = row


def _append(ds: h5py.Dataset, start: int, arr: np.ndarray[Any, Any], chunk: int) -> int:
    """Write ``arr`` at ``start``, zero-padded to a whole chunk; return the new end."""
    end = -(-(start + len(arr)) // chunk) * chunk if chunk else start + len(arr)
    if end == start:
        return end
    if end != start + len(arr):
        padded = np.zeros(end - start, dtype=arr.dtype)
        padded[: len(arr)] = arr
        arr = padded
    if ds.shape[0] < end:
        ds.resize((end,))
    ds[start:end] = arr
    return end


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
    """Bytes queued for one byte stream."""

    def __init__(self, end: int) -> None:
        self.end = end
        self.parts: list[bytes] = []
        self.size = 0

    def put(self, blob: bytes) -> int:
        off = self.end + self.size
        self.parts.append(blob)
        self.size += len(blob)
        return off


class LogWriter:
    """Buffers records and events, and appends them to the log on :meth:`commit`."""

    def __init__(self, f: h5py.File, run: int) -> None:
        self.f = f
        self.run = run
        self.ends = last_commit(f)
        # Keep the datasets open: closing one flushes its chunk cache, and HDF5
        # only warns (never raises) about a write that fails there.
        self._ds = {n: f[n] for n in (*L.STREAMS, L.RECORDS, L.EVENTS, L.COMMITS)}
        self._reset()

    def _reset(self) -> None:
        self._meta = _Stream(self.ends.meta)
        self._data = _Stream(self.ends.data)
        self._large = _Stream(self.ends.large)
        self._records: list[tuple[Any, ...]] = []
        self._events: list[tuple[Any, ...]] = []

    def _put(self, blob: bytes) -> tuple[int, int]:
        """Queue a value blob; return (where, offset)."""
        if len(blob) > L.LARGE_THRESHOLD:
            return L.WHERE_LARGE, self._large.put(blob)
        return L.WHERE_DATA, self._data.put(blob)

    def add_record(self, rec: TaskRecord) -> None:
        """Encode and queue one task record."""
        ok = rec.state == "SUCCEEDED"
        prov = to_jsonable(rec.provenance) if rec.provenance else None
        meta = encode_blob(
            [rec.task_id, _key_bytes(rec.key), rec.function, rec.host, rec.error, prov]
        )
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

    def release(self) -> None:
        """Close the open datasets (before the file is closed)."""
        for ds in self._ds.values():
            with contextlib.suppress(Exception):
                ds.id.close()
        self._ds = {}

    def pending(self) -> bool:
        """True when something is queued."""
        return bool(self._records or self._events)

    def commit(self) -> None:
        """Append everything queued and flush twice (data, then the commit row)."""
        if not self.pending():
            return
        ds, e = self._ds, self.ends
        new = Ends(
            records=_append(ds[L.RECORDS], e.records, np.array(self._records, L.RECORD_DTYPE),
                            L.RECORD_CHUNK),
            events=_append(ds[L.EVENTS], e.events, np.array(self._events, L.EVENT_DTYPE),
                           L.EVENT_CHUNK),
        )  # fmt: skip
        for name, field, chunk in _STREAMS:
            stream: _Stream = getattr(self, "_" + field)
            end = stream.end
            if chunk:
                buf = np.frombuffer(b"".join(stream.parts), dtype=np.uint8)
                end = _append(ds[name], end, buf, chunk)
            else:
                for part in stream.parts:
                    end = _append(ds[name], end, np.frombuffer(part, np.uint8), 0)
            setattr(new, field, end)
        self.f.flush()
        write_commit(ds[L.COMMITS], new)
        self.f.flush()
        self.ends = new
        self._reset()


class LogReader:
    """Reads the committed part of the log of an open file."""

    def __init__(self, f: h5py.File, source: str) -> None:
        self.f = f
        self.source = source
        if f.swmr_mode:
            for name in (*L.STREAMS, L.RECORDS, L.EVENTS):
                f[name].refresh()
        self.ends = last_commit(f)
        self._cache: dict[str, bytes] = {}

    def load(self, name: str) -> bytes:
        """All committed bytes of one stream (cached)."""
        if name not in self._cache:
            end = getattr(self.ends, name.rsplit("/", 1)[1])
            self._cache[name] = self.f[name][:end].tobytes()
        return self._cache[name]

    def blob(self, where: int, off: int, n: int) -> bytes:
        """The bytes of one value blob."""
        name = L.LARGE if where == L.WHERE_LARGE else L.DATA
        if name in self._cache:
            return self._cache[name][off : off + n]
        return bytes(self.f[name][off : off + n].tobytes())

    def records(self) -> np.ndarray[Any, Any]:
        """The committed record rows (valid ones only), in commit order."""
        rows: np.ndarray[Any, Any] = self.f[L.RECORDS][: self.ends.records]
        valid: np.ndarray[Any, Any] = rows[rows["valid"] == 1]
        return valid

    def events(self) -> np.ndarray[Any, Any]:
        """The committed event rows (valid ones only), in commit order."""
        rows: np.ndarray[Any, Any] = self.f[L.EVENTS][: self.ends.events]
        valid: np.ndarray[Any, Any] = rows[rows["valid"] == 1]
        return valid

    def record_fields(self, row: Any) -> dict[str, Any]:
        """The dict of one record row without its result."""
        off, n = int(row["off"]), int(row["meta_len"])
        task_id, key, function, host, error, prov = decode_blob(
            self.load(L.META)[off : off + n], False, self.source
        )
        return {
            "task_id": task_id,
            "key": key.hex() if isinstance(key, bytes) else key,
            "function": function,
            "state": TASK_STATES[int(row["state"])],
            "attempt": int(row["attempt"]),
            "rank": int(row["rank"]),
            "host": host,
            "run": int(row["run"]),
            "submitted": float(row["submitted"]),
            "started": float(row["started"]),
            "finished": float(row["finished"]),
            "seed": int(row["seed"]) if row["has_seed"] else None,
            "error": error,
            "provenance": prov or {},
        }

    def record_result(self, row: Any, allow_pickle: bool) -> Any:
        """The decoded result of one record row (None for a failed task)."""
        where = int(row["where"])
        if where == L.WHERE_NONE:
            return None
        raw = self.blob(where, int(row["res_off"]), int(row["res_len"]))
        return decode_blob(raw, allow_pickle, self.source)

    def done_records(self, allow_pickle: bool) -> dict[str, TaskRecord]:
        """Key -> latest SUCCEEDED record, results loaded."""
        latest: dict[str, tuple[dict[str, Any], Any]] = {}
        self.load(L.DATA)
        for row in self.records():
            if int(row["state"]) != 0:
                continue
            fields = self.record_fields(row)
            latest[fields["key"]] = (fields, row)
        out: dict[str, TaskRecord] = {}
        for key, (fields, row) in latest.items():
            fields.pop("run")
            out[key] = TaskRecord(**fields, result=self.record_result(row, allow_pickle))
        return out
