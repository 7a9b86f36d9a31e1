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
    data: int = 0
    large: int = 0


def last_commit(f: h5py.File) -> Ends:
    """The ends of the last whole commit (all zero for an empty log)."""
    ds = f[L.COMMITS]
    ds.refresh() if f.swmr_mode else None
    n = ds.shape[0]
    start = max(0, n - 64)
    while True:
        rows = ds[start:n]
        for row in rows[::-1]:
            if int(row["check"]) == L.commit_check(row):
                return Ends(*(int(row[k]) for k in ("records", "events", "data", "large")))
        if start == 0:
            return Ends()
        n, start = start, 0


def write_commit(commits: h5py.Dataset, ends: Ends) -> None:
    """Append the commit row that makes everything up to ``ends`` visible."""
    row = np.zeros(1, L.COMMIT_DTYPE)
    row["records"], row["events"], row["data"], row["large"] = (
        ends.records, ends.events, ends.data, ends.large,
    )  # fmt: skip
    row["time"] = time.time()
    row["check"] = L.commit_check(row[0])
    n = commits.shape[0]
    commits.resize((n + 1,))
    commits[n : n + 1] = row


def _pad(n: int, chunk: int) -> int:
    return -(-n // chunk) * chunk


def _append(ds: h5py.Dataset, start: int, arr: np.ndarray[Any, Any], chunk: int) -> int:
    """Write ``arr`` at ``start``, zero-padded to a whole chunk; return the new end."""
    end = _pad(start + len(arr), chunk) if chunk else start + len(arr)
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


class LogWriter:
    """Buffers records and events, and appends them to the log on :meth:`commit`."""

    def __init__(self, f: h5py.File, run: int) -> None:
        self.f = f
        self.run = run
        self.ends = last_commit(f)
        # Keep the datasets open: closing one flushes its chunk cache, and HDF5
        # only warns (never raises) about a write that fails there.
        self._ds = {n: f[n] for n in (L.DATA, L.LARGE, L.RECORDS, L.EVENTS, L.COMMITS)}
        self._data: list[bytes] = []
        self._data_len = 0
        self._large: list[bytes] = []
        self._large_len = 0
        self._records: list[tuple[Any, ...]] = []
        self._events: list[tuple[Any, ...]] = []

    def _put(self, blob: bytes) -> tuple[int, int]:
        """Queue ``blob``; return (where, offset)."""
        if len(blob) > L.LARGE_THRESHOLD:
            off = self.ends.large + self._large_len
            self._large.append(blob)
            self._large_len += len(blob)
            return L.WHERE_LARGE, off
        off = self.ends.data + self._data_len
        self._data.append(blob)
        self._data_len += len(blob)
        return L.WHERE_DATA, off

    def add_record(self, rec: TaskRecord) -> None:
        """Encode and queue one task record."""
        ok = rec.state == TASK_STATES[0]
        prov = to_jsonable(rec.provenance) if rec.provenance else {}
        meta = encode_blob(
            [rec.task_id, _key_bytes(rec.key), rec.function, rec.host, rec.error, prov]
        )
        off = self.ends.data + self._data_len
        self._data.append(meta)
        self._data_len += len(meta)
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
        data = np.frombuffer(b"".join(self._data), dtype=np.uint8)
        new = Ends(
            records=_append(ds[L.RECORDS], e.records, np.array(self._records, L.RECORD_DTYPE),
                            L.RECORD_CHUNK),
            events=_append(ds[L.EVENTS], e.events, np.array(self._events, L.EVENT_DTYPE),
                           L.EVENT_CHUNK),
            data=_append(ds[L.DATA], e.data, data, L.DATA_CHUNK),
            large=e.large,
        )  # fmt: skip
        for blob in self._large:
            new.large = _append(ds[L.LARGE], new.large, np.frombuffer(blob, np.uint8), 0)
        self.f.flush()
        write_commit(ds[L.COMMITS], new)
        self.f.flush()
        self.ends = new
        self._data, self._data_len, self._large, self._large_len = [], 0, [], 0
        self._records, self._events = [], []


class LogReader:
    """Reads the committed part of the log of an open file."""

    def __init__(self, f: h5py.File, source: str) -> None:
        self.f = f
        self.source = source
        if f.swmr_mode:
            for name in (L.DATA, L.LARGE, L.RECORDS, L.EVENTS):
                f[name].refresh()
        self.ends = last_commit(f)
        self._data: bytes | None = None

    def data(self) -> bytes:
        """All committed bytes of ``log/data``."""
        if self._data is None:
            self._data = self.f[L.DATA][: self.ends.data].tobytes()
        return self._data

    def blob(self, where: int, off: int, n: int) -> bytes:
        """The bytes of one blob."""
        if where == L.WHERE_LARGE:
            return bytes(self.f[L.LARGE][off : off + n].tobytes())
        return self.data()[off : off + n]

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
            self.data()[off : off + n], False, self.source
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
            "provenance": prov,
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
