"""The log inside ``job.h5`` and the reader that joins it with the journal.

``/log`` holds the records and events of every commit folded in so far
(``fold``); the running writer's commits since then are in the journal
(:mod:`qshpc.store.journal`). :class:`LogReader` reads both as one log.
"""

from __future__ import annotations

import bisect
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qshpc.errors import DamagedStoreError, StoreError
from qshpc.store import layout as L
from qshpc.store.batch import Ends, Frame
from qshpc.store.encoding_blob import blob_decoder, decode_blob
from qshpc.store.journal import (
    JournalFrame,
    PinnedJournal,
    check_token,
    job_file_suspect,
    large_pieces,
    read_journal,
    read_large,
    token_of,
)
from qshpc.store.records import TASK_STATES, DeferredResult, InStore, TaskRecord, missing_class
from qshpc.store.table import TaskTable

_TABLES = ((L.RECORDS, "records"), (L.EVENTS, "events"))
_STREAMS = ((L.META, "meta"), (L.DATA, "data"), (L.LARGE, "large"))


def last_commit(f: h5py.File) -> Ends:
    """The ends of the log in ``f`` (its last commit row whose check matches)."""
    rows = f[L.COMMITS][-64:]
    for row in rows[::-1]:
        if int(row["check"]) == L.commit_check(row):
            return Ends(*(int(row[k]) for k in L.COMMIT_FIELDS))
    return Ends()


def _append(ds: h5py.Dataset, start: int, arr: np.ndarray[Any, Any]) -> None:
    if len(arr):
        ds.resize((start + len(arr),))
        ds[start : start + len(arr)] = arr


def append_frame(f: h5py.File, ends: Ends, frame: Frame, large: list[bytes]) -> Ends:
    """Append one frame's rows and bytes to ``/log`` at ``ends``; return the new ends."""
    _append(f[L.RECORDS], ends.records, frame.records)
    _append(f[L.EVENTS], ends.events, frame.events)
    _append(f[L.META], ends.meta, np.frombuffer(frame.meta, np.uint8))
    _append(f[L.DATA], ends.data, np.frombuffer(frame.data, np.uint8))
    pos = ends.large
    for blob in large:
        _append(f[L.LARGE], pos, np.frombuffer(blob, np.uint8))
        pos += len(blob)
    return Ends(
        ends.records + len(frame.records), ends.events + len(frame.events),
        ends.meta + len(frame.meta), ends.data + len(frame.data), pos,
    )  # fmt: skip


def fold(f: h5py.File, frames: list[JournalFrame], journal: Path, token: bytes) -> None:
    """Append the journal's frames to ``/log`` of ``f`` and commit them.

    The frames' rows and bytes are joined and appended once per dataset (each
    append of a compressed, chunked dataset costs milliseconds: a job's end
    folds a commit every 50 ms of its run); large blobs are copied frame by frame.
    """
    ends = last_commit(f)
    for name, field in (*_TABLES, *_STREAMS):
        f[name].resize((getattr(ends, field),))  # drop anything past the last commit
    start = ends
    records: list[np.ndarray[Any, Any]] = []
    events: list[np.ndarray[Any, Any]] = []
    meta: list[bytes] = []
    data: list[bytes] = []
    for jf in frames:
        if jf.frame.start != ends:
            raise StoreError(f"{journal} does not continue {f.filename}; it was not folded in")
        records.append(jf.frame.records)
        events.append(jf.frame.events)
        meta.append(jf.frame.meta)
        data.append(jf.frame.data)
        ends = Ends(
            ends.records + len(jf.frame.records), ends.events + len(jf.frame.events),
            ends.meta + len(jf.frame.meta), ends.data + len(jf.frame.data), ends.large,
        )  # fmt: skip
        if jf.large_lens:
            ends = _copy_large(f, journal, jf, ends)
    if frames:
        joined = Frame(start, _joined(records), _joined(events), b"".join(meta), b"".join(data))
        append_frame(f, start, joined, [])
    write_commit(f[L.COMMITS], ends)
    f[L.LOG].attrs[L.FOLDED_ATTR] = np.void(token)


def _joined(arrays: list[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    """The rows of ``arrays`` (one dtype) as one array."""
    nonempty = [a for a in arrays if len(a)]
    if len(nonempty) == 1:
        return nonempty[0]
    return np.concatenate(nonempty) if nonempty else arrays[0]


#: A journal frame's large part up to this size is kept once read (LogReader.blob).
_KEEP_LARGE = 1 << 26
_COPY = 1 << 26  # 64 MiB at a time: folding a 1 GiB result needs no GiB of memory


def _copy_large(f: h5py.File, journal: Path, jf: JournalFrame, ends: Ends) -> Ends:
    """Append a frame's large blobs from the journal to ``/log/large``, piece by piece."""
    total = sum(jf.large_lens)
    ds = f[L.LARGE]
    start = ends.large
    ds.resize((start + total,))
    pos = 0
    for chunk in large_pieces(journal, jf, _COPY):
        ds[start + pos : start + pos + len(chunk)] = np.frombuffer(chunk, np.uint8)
        pos += len(chunk)
    return replace(ends, large=start + total)


def journal_error(jpath: Path, exc: OSError) -> StoreError:
    """The error of a journal that cannot be read; a FIFO or a folder in its place gets the
    way on (review50 F5)."""
    from qshpc.store.seal import NotRegular

    if isinstance(exc, NotRegular):
        return StoreError(
            f"cannot read {jpath}: it is not a regular file (a FIFO or a folder stands where "
            f"the job's journal goes): move it aside (mv {jpath} {jpath}.bad), and "
            f"{L.JOB_FILE} is read alone"
        )
    return StoreError(f"cannot read {jpath}: {exc}")


def journal_frames(
    f: h5py.File, path: Path, strict: bool = True, pinned: PinnedJournal | None = None
) -> list[JournalFrame]:
    """The whole frames of the journal beside ``path`` not yet folded into ``f``
    (``pinned``: of that journal, open already).

    Raises:
        DamagedStoreError: The journal is damaged before its end (unless not
            ``strict``: then the frames before the damage are returned).
    """
    jpath = path.with_name(L.JOURNAL_FILE)
    try:
        token, frames, damage = read_journal(jpath, pinned.fd if pinned else None)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise journal_error(jpath, exc) from exc
    if token and token == token_of(f):
        return []  # folded in already (a writer died between the rename and the unlink)
    try:
        check_token(f, jpath, token)
    except DamagedStoreError as exc:
        if strict:
            raise job_file_suspect(f, path, jpath) or exc from None
        return []  # another job's: none of its records are this job's
    if damage and strict:
        from qshpc.store.lock import holder_alive

        # While a writer runs, what looks damaged may be its last commit on its way:
        # on NFS another node can see a later page of an append before an earlier
        # one. Only a journal nobody writes is judged; until then, what precedes it.
        if holder_alive(path.parent) is None:
            raise DamagedStoreError(path.with_name(L.JOURNAL_FILE), damage)
    return frames if token else []


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


def _counted(ends: Ends) -> str:
    return f"{ends.records} task records and {ends.events} events"


def _not_continued(journal: Path, start: Ends, ends: Ends) -> str:
    """Why a journal whose commits do not start where ``job.h5``'s end is not read: the
    counts in words, ``job.h5`` named first (review52 F11: another job's job.h5 moved over
    a running job's was reported as a damaged journal, with two ``Ends(...)`` reprs)."""
    return (
        f"it does not end where the commits of {journal} begin: it holds "
        f"{_counted(ends)}, and the journal goes on from {_counted(start)}. This job.h5 "
        "was most likely replaced (another job's, or an older copy of this one); else the "
        "journal is not this job's. Nothing of the journal was taken"
    )


def frame_end(jf: JournalFrame) -> Ends:
    """The ends of the log after the journal frame ``jf``."""
    pos = jf.frame.start
    return Ends(
        pos.records + len(jf.frame.records), pos.events + len(jf.frame.events),
        pos.meta + len(jf.frame.meta), pos.data + len(jf.frame.data),
        pos.large + sum(jf.large_lens),
    )  # fmt: skip


class LogReader:
    """The committed log: ``/log`` of an open job file followed by journal frames."""

    def __init__(
        self,
        f: h5py.File,
        source: str,
        frames: list[JournalFrame],
        journal: Path,
        pinned: PinnedJournal | None = None,
    ) -> None:
        self.f = f
        self.source = source
        self.journal = journal
        #: The journal ``frames`` were read from, open: their large blobs are read from it
        #: (None: from ``journal`` opened anew, which a fold may have replaced meanwhile).
        self.pinned = pinned
        self.ends = last_commit(f)
        self.frames = frames
        pos = self.ends
        for jf in frames:
            if jf.frame.start != pos:
                raise DamagedStoreError(source, _not_continued(journal, jf.frame.start, pos))
            pos = frame_end(jf)
        self._cache: dict[str, bytes] = {}
        self._starts: dict[str, list[int]] = {}  # each frame's start in a stream (stream())
        #: A journal frame's large blobs, read once (frames of many results over
        #: ``RAW_RESULT_MIN``: reading each record's result must not read the frame again).
        self._large: dict[int, list[bytes]] = {}

    def journal_fd(self) -> int | None:
        """The pinned journal's file descriptor (None: none pinned)."""
        return self.pinned.fd if self.pinned is not None else None

    def load(self, name: str) -> bytes:
        """All committed bytes of the ``meta`` or ``data`` stream (cached)."""
        if name not in self._cache:
            field = name.rsplit("/", 1)[1]
            folded = self._cache.pop(f"{name}@h5", None)  # held once, in the whole stream
            parts = [self._read_folded(name) if folded is None else folded]
            parts += [getattr(jf.frame, field) for jf in self.frames]
            self._cache[name] = b"".join(parts)
        return self._cache[name]

    def _read_folded(self, name: str) -> bytes:
        field = name.rsplit("/", 1)[1]
        return bytes(self.f[name][: getattr(self.ends, field)].tobytes())

    def warm(self, name: str) -> None:
        """Read ``job.h5``'s part of the ``meta`` or ``data`` stream once, for the many
        reads of a loop over records (the journal's part is read from its frames)."""
        if name not in self._cache and f"{name}@h5" not in self._cache:
            self._cache[f"{name}@h5"] = self._read_folded(name)

    def stream(self, name: str, off: int, n: int) -> bytes:
        """``n`` bytes at ``off`` of the ``meta`` or ``data`` stream. Bytes a journal frame
        holds are taken from that frame alone (review52 F9: one damaged block of
        ``job.h5``'s 9-byte data stream made 382 intact results in the journal "lost")."""
        field = name.rsplit("/", 1)[1]
        whole = self._cache.get(name)
        if whole is not None:
            return whole[off : off + n]
        if off >= getattr(self.ends, field):
            starts = self._starts.get(field)
            if starts is None:
                starts = self._starts[field] = [
                    getattr(jf.frame.start, field) for jf in self.frames
                ]
            i = bisect.bisect_right(starts, off) - 1  # the last frame starting at or before off
            part: bytes = getattr(self.frames[i].frame, field) if i >= 0 else b""
            return part[off - starts[i] : off - starts[i] + n] if part else b""
        folded = self._cache.get(f"{name}@h5")
        if folded is not None:
            return folded[off : off + n]
        return bytes(self.f[name][off : off + n].tobytes())

    def blob(self, where: int, off: int, n: int) -> bytes:
        """The bytes of one value blob."""
        if where != L.WHERE_LARGE:
            return self.stream(L.DATA, off, n)
        if off < self.ends.large:
            return bytes(self.f[L.LARGE][off : off + n].tobytes())
        for jf in self.frames:
            pos = jf.frame.start.large
            if pos <= off < pos + sum(jf.large_lens):
                blobs = self._large.get(jf.large_at)
                if blobs is None:
                    blobs = read_large(self.journal, jf, fd=self.journal_fd())
                    if sum(jf.large_lens) <= _KEEP_LARGE:  # many results read in a row
                        self._large[jf.large_at] = blobs
                for blob in blobs:
                    if pos == off:
                        return blob
                    pos += len(blob)
        raise StoreError(f"{self.source}: a large result at {off} is missing")

    def blob_head(self, where: int, off: int, n: int, k: int) -> bytes:
        """The first ``k`` bytes of the value blob of ``n`` bytes at ``off``. One still in
        a journal frame's large part is not held: the part is streamed 4 MiB at a time,
        its checksum checked, and only the head kept (review52 F2: ``qshpc report`` of a
        running job's 200 MB saved result took 384 MB, and the msgpack decoder's buffer
        limit then hid its shape)."""
        if where != L.WHERE_LARGE or off < self.ends.large:
            return self.blob(where, off, min(n, k))
        for jf in self.frames:
            pos = jf.frame.start.large
            if pos <= off < pos + sum(jf.large_lens):
                at, end, got = off - pos, off - pos + min(n, k), b""  # in the piece at hand
                for piece in large_pieces(self.journal, jf, 1 << 22, self.journal_fd()):
                    if at < len(piece) and end > 0:
                        got += piece[max(at, 0) : end]
                    at, end = at - len(piece), end - len(piece)
                return got
        raise StoreError(f"{self.source}: a large result at {off} is missing")

    def blob_buffer(self, where: int, off: int, n: int) -> bytes | bytearray:
        """:meth:`blob`, for decoding: a committed large blob is read straight into the
        buffer returned (the slice and ``.tobytes()`` of :meth:`blob` are two copies:
        a 1.1 GiB result touched 2.2 GiB before its decoding began)."""
        ds = self.f[L.LARGE] if where == L.WHERE_LARGE and 0 <= off < self.ends.large else None
        if ds is None or not 0 < n <= ds.shape[0] - off:  # the rest as blob() reads it
            return self.blob(where, off, n)
        buf = bytearray(n)
        ds.read_direct(np.frombuffer(buf, np.uint8), np.s_[off : off + n])
        return buf

    def _rows(self, name: str, field: str) -> np.ndarray[Any, Any]:
        rows = [self.f[name][: getattr(self.ends, field)]]
        rows += [getattr(jf.frame, field) for jf in self.frames]
        out: np.ndarray[Any, Any] = np.concatenate(rows)
        valid: np.ndarray[Any, Any] = out[out["valid"] == 1]
        return valid

    def records(self) -> np.ndarray[Any, Any]:
        """All committed record rows, in commit order."""
        return self._rows(L.RECORDS, "records")

    def events(self) -> np.ndarray[Any, Any]:
        """All committed event rows, in commit order."""
        return self._rows(L.EVENTS, "events")

    def record_fields(self, row: Any) -> dict[str, Any]:
        """The dict of one record row without its result."""
        off, n = int(row["off"]), int(row["meta_len"])
        if off < self.ends.meta:
            self.warm(L.META)  # one read of job.h5's part for the many records of a loop
        task_id, key, function, host, error, prov = decode_blob(
            self.stream(L.META, off, n), False, self.source
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

    def task_table(self) -> TaskTable:
        """Every committed record as columns (see :class:`TaskTable`)."""
        rows = self.records()
        stream = memoryview(self.load(L.META))
        decode = blob_decoder(False, self.source)
        blobs = [
            decode(stream[off : off + n])
            for off, n in zip(rows["off"].tolist(), rows["meta_len"].tolist(), strict=True)
        ]
        task_id, key, function, host, error, prov = (
            (list(col) for col in zip(*blobs, strict=True)) if blobs else ([] for _ in range(6))
        )
        return TaskTable(
            task_id=task_id,
            key=[k.hex() if isinstance(k, bytes) else k for k in key],
            function=function,
            host=host,
            error=error,
            provenance=[p or {} for p in prov],
            failed=rows["state"] != 0,
            attempt=rows["attempt"].astype(np.int64),
            rank=rows["rank"].astype(np.int64),
            run=rows["run"].astype(np.int64),
            seed=np.where(rows["has_seed"] != 0, rows["seed"], -1).astype(np.int64),
            has_seed=rows["has_seed"] != 0,
            submitted=rows["submitted"].astype(np.float64),
            started=rows["started"].astype(np.float64),
            finished=rows["finished"].astype(np.float64),
        )

    def record_result(self, row: Any, allow_pickle: bool) -> Any:
        """The decoded result of one record row (None for a failed task)."""
        where = int(row["where"])
        if where == L.WHERE_NONE:
            return None
        raw = self.blob_buffer(where, int(row["res_off"]), int(row["res_len"]))
        return decode_blob(raw, allow_pickle, self.source)

    def done_records(
        self,
        allow_pickle: bool,
        defer: bool = False,
        lazy_over: int | None = None,
        hold: int | None = None,
    ) -> dict[str, TaskRecord]:
        """Key -> latest SUCCEEDED record, results loaded.

        ``defer``: a result whose pickle names a class that cannot be found now (one the
        program defines, pickled by reference to ``__main__``: a resume reads the records
        before the program runs) is left a :class:`DeferredResult`, decoded when the
        program asks for it (review48 F2: the resume failed, "corrupt blob-encoded value
        (Can't get attribute 'Pt' ...)", exit 2, and only a new job could go on).

        ``lazy_over`` (a resume): a result in the large stream whose encoding is over
        this many bytes, or that would take the large results loaded past ``hold`` bytes
        in all, is not read: it is left an :class:`InStore` (where it lies), read back
        when the program takes it. A job of 2 GB of results needed 2 GB on rank 0 before
        its program ran (session 26's closing note).
        """
        latest: dict[str, tuple[dict[str, Any], Any]] = {}
        for row in self.records():
            if int(row["state"]) != 0:
                continue
            fields = self.record_fields(row)
            latest[fields["key"]] = (fields, row)
        if any(
            int(row["where"]) not in (L.WHERE_LARGE, L.WHERE_NONE)
            and int(row["res_off"]) < self.ends.data
            for _, row in latest.values()
        ):
            self.warm(L.DATA)  # one read of job.h5's part instead of one per record
        out: dict[str, TaskRecord] = {}
        held, budget = 0, (1 << 62) if hold is None else hold
        for key, (fields, row) in latest.items():
            fields.pop("run")
            if lazy_over is not None and int(row["where"]) == L.WHERE_LARGE:
                n = int(row["res_len"])
                if n > lazy_over or held + n > budget:
                    out[key] = TaskRecord(**fields, result=InStore(int(row["res_off"]), n))
                    continue
                held += n
            try:
                result = self.record_result(row, allow_pickle)
            except StoreError as exc:
                if not (defer and missing_class(exc)):
                    raise
                raw = self.blob_buffer(int(row["where"]), int(row["res_off"]), int(row["res_len"]))
                result = DeferredResult(bytes(raw), allow_pickle, self.source)
            out[key] = TaskRecord(**fields, result=result)
        return out
