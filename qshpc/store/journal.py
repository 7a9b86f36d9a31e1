"""The journal: an append-only file of commit frames, beside ``job.h5``.

Why not append to ``job.h5`` itself: HDF5 rewrites metadata (chunk indexes,
object headers) in place on every flush, and a SIGKILL can land part way
through one flush. We saw it with SWMR: after one kill in about 150, an SWMR
reader hung retrying the chunk index of the results dataset, so every result
in it was lost. A journal only ever appends, so a kill can only leave a torn
last frame, which readers detect and skip.

File layout: a 16-byte header (``b"QSHJ"``, u32 version 1, 8-byte token), then
frames. A frame is a 32-byte head (``b"QSJF"``, u64 small length, u64 large
length, u32 crc32 of small, u32 crc32 of large, u32 crc32 of the head before
it), ``small`` (zlib of msgpack ``[start ends, records rows, events rows,
meta bytes, data bytes, large blob lengths]``) and ``large`` (the large blobs,
raw). ``small`` is zlib level 1 up to :data:`SMALL_FRAME` bytes, level 0
(stored) beyond. A frame counts only when it is whole: its head and small
part check out and the file holds all of its large part (frames are written
in order, so a file that holds a frame's last byte holds all of it). The crc of the large
part is checked when a large blob is read.
"""

from __future__ import annotations

import bisect
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from qshpc.errors import DamagedStoreError
from qshpc.store import layout as L
from qshpc.store import perms
from qshpc.store.batch import Ends, Frame
from qshpc.store.encoding_blob import blob_len

MAGIC = b"QSHJ"
FRAME_MAGIC = b"QSJF"
VERSION = 1
_HEADER = struct.Struct("<4sI8s")
_HEAD = struct.Struct("<4sQQIII")
#: A frame's small part up to this many bytes is compressed (zlib level 1);
#: a bigger one is stored (zlib level 0: the same format, read the same way).
#: Over that size it is task results that fill it, and zlib takes ~1.3 ms to
#: save ~20% of a 42 KB exact distribution of 12 qubits (~30 MB/s, msgpack'd
#: floats): on rank 0's path for every result (on the program's thread for
#: a cache hit), for a file that lives only until it is folded into job.h5
#: (whose datasets are compressed).
SMALL_FRAME = 64 << 10


@dataclass
class JournalFrame:
    """A frame read back: rows and small streams in memory, large blobs by file offset."""

    frame: Frame
    large_at: int  # file offset of the frame's large part
    large_lens: list[int]
    large_crc: int


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _encode(frame: Frame) -> tuple[bytes, bytes, list[int], int]:
    """A frame's head, its compressed small part, its large blobs' lengths and their CRC."""
    lens = [blob_len(b) for b in frame.large]
    packed = msgpack.packb(
        [frame.start.as_list(), frame.records.tobytes(), frame.events.tobytes(),
         frame.meta, frame.data, lens],
        use_bin_type=True,
    )  # fmt: skip
    small = zlib.compress(packed, 1 if len(packed) <= SMALL_FRAME else 0)
    large_crc = 0
    for blob in frame.large:
        for part in blob:
            large_crc = zlib.crc32(part, large_crc)
    head = _HEAD.pack(FRAME_MAGIC, len(small), sum(lens), zlib.crc32(small), large_crc, 0)
    head = head[:-4] + struct.pack("<I", zlib.crc32(head[:-4]))
    return head, small, lens, large_crc


class JournalWriter:
    """Appends frames to a new journal file."""

    def __init__(self, path: Path, token: bytes) -> None:
        self.path = path
        self.token = token
        self._fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, perms.file_mode()
        )
        try:
            _write_all(self._fd, _HEADER.pack(MAGIC, VERSION, token))
        except BaseException:
            os.close(self._fd)
            path.unlink(missing_ok=True)
            raise
        self._size = _HEADER.size  # where the last whole frame ends
        #: ``(start, at, length)`` of each frame's large part: its offset in the log's
        #: large stream, in this file, and its length (:meth:`large_at` finds a blob by them).
        self.large_parts: list[tuple[int, int, int]] = []
        #: Of each entry of :attr:`large_parts`: the frame's blob lengths and its crc.
        self._frames: list[tuple[list[int], int]] = []
        #: ``off -> (length, crc32)`` of the blobs of frames :meth:`blob_crc` checked.
        self._crcs: dict[int, tuple[int, int]] = {}

    def append(self, frame: Frame) -> None:
        """Write one frame; it is readable by others (and survives a kill) on return.

        A large blob's parts (views of a result array's memory) are written as
        they are: no copy of the blob is made.
        """
        head, small, lens, large_crc = _encode(frame)
        try:
            _write_all(self._fd, head + small)
            for blob in frame.large:
                for part in blob:
                    _write_all(self._fd, part)
        except OSError:
            self.cut()
            raise
        if lens:
            at = self._size + len(head) + len(small)
            self.large_parts.append((frame.start.large, at, sum(lens)))
            self._frames.append((lens, large_crc))
        self._size += len(head) + len(small) + sum(lens)

    def room(self) -> int:
        """Bytes its file system can still take (for this user)."""
        st = os.fstatvfs(self._fd)
        return st.f_bavail * st.f_frsize

    @staticmethod
    def size_of(frame: Frame) -> int:
        """Bytes :meth:`append` would write for ``frame``."""
        head, small, lens, _ = _encode(frame)
        return len(head) + len(small) + sum(lens)

    def large_at(self, off: int, n: int) -> int | None:
        """Where in this file the ``n`` bytes at ``off`` of the log's large stream lie (a
        blob a commit of this journal wrote), or None when it wrote none there."""
        i = bisect.bisect_right(self.large_parts, (off, 1 << 62)) - 1
        if i < 0:
            return None
        start, at, length = self.large_parts[i]
        return at + off - start if off + n <= start + length else None

    def blob_crc(self, off: int, n: int) -> int:
        """The crc32 of the blob of ``n`` bytes at ``off`` of the log's large stream (one
        a commit of this journal wrote): at the first call for its frame, the frame's large
        part is read whole and checked against the frame's crc, and each of its blobs'
        crc noted; a read of the blob checks its own bytes against it (review45 F4: a
        changed byte gave a wrong value silently).

        Raises:
            DamagedStoreError: The frame's bytes do not match its crc, or the file ends
                inside them; or the journal wrote no such blob.
        """
        hit = self._crcs.get(off)
        if hit is None:
            i = bisect.bisect_right(self.large_parts, (off, 1 << 62)) - 1
            if i >= 0:
                start, at, _ = self.large_parts[i]
                lens, crc = self._frames[i]
                self._check_frame(start, at, lens, crc)
                hit = self._crcs.get(off)
        if hit is None or hit[0] != n:
            raise DamagedStoreError(self.path, f"it holds no result of {n} bytes at {off}")
        return hit[1]

    def _check_frame(self, start: int, at: int, lens: list[int], crc: int) -> None:
        from qshpc.store.seal import open_regular

        whole = 0
        crcs = []
        with open(open_regular(self.path), "rb", closefd=True) as fh:  # never a FIFO's
            fh.seek(at)
            for n in lens:
                one, left = 0, n
                while left:
                    chunk = fh.read(min(left, 1 << 22))
                    if not chunk:
                        raise DamagedStoreError(
                            self.path, f"it ends inside the large result at {at}"
                        )
                    one = zlib.crc32(chunk, one)
                    whole = zlib.crc32(chunk, whole)
                    left -= len(chunk)
                crcs.append(one)
        if whole != crc:
            raise DamagedStoreError(
                self.path, f"a large result at byte {at} does not match its checksum"
            )
        for n, one in zip(lens, crcs, strict=True):
            self._crcs[start] = (n, one)
            start += n

    def cut(self) -> None:
        """Drop a frame whose write failed (a full disk) so that the next one follows a whole frame."""
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            pass  # readers take a torn last frame for what it is; the next append would not

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class PinnedJournal:
    """The journal opened once: every later read through it sees this file, even after a
    fold replaced ``job.h5`` and unlinked it (review49 F1: ``qshpc status`` checked a frame
    it had read at the same offsets of the NEW journal, and called a healthy job DAMAGED,
    or met no journal at all: a FileNotFoundError traceback). Closed when dropped.

    Raises:
        FileNotFoundError: When there is no journal.
        OSError: It cannot be read, or is not a regular file.
    """

    def __init__(self, path: Path) -> None:
        from qshpc.store.seal import open_regular

        self.fd = -1
        self.fd = open_regular(path)

    def close(self) -> None:
        """Close the file (idempotent)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # (at interpreter exit, or closed already by another path)
            pass


def _open(path: Path, fd: int | None) -> Any:
    """A binary file object over ``fd`` (a copy of it: ``fd`` stays open), else over ``path``
    opened anew (never a FIFO's)."""
    from qshpc.store.seal import open_regular

    return open(open_regular(path) if fd is None else os.dup(fd), "rb", closefd=True)


def read_journal(path: Path, fd: int | None = None) -> tuple[bytes, list[JournalFrame], str | None]:
    """The token and whole frames of the journal at ``path``, and what is damaged in it (None: nothing).

    ``fd``: read the journal open at it (a :class:`PinnedJournal`'s) instead of ``path``.

    Reading stops at the first frame that does not check out. That is normal at
    the end of the file (a writer killed part way through its last write leaves
    a torn frame, or a power cut a tail of zeros); anywhere else the journal is
    damaged, and the third value says where (the frames before it are returned).

    Raises:
        FileNotFoundError: When there is no journal.
    """
    with _open(path, fd) as fh:
        size = os.fstat(fh.fileno()).st_size
        out: list[JournalFrame] = []
        header = fh.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return b"", out, None  # killed while creating it: nothing committed
        magic, version, token = _HEADER.unpack(header)
        if magic != MAGIC:
            return b"", out, "its header is not a qshpc journal's"
        if version != VERSION:
            return (
                b"",
                out,
                (f"its header says journal version {version} (damaged, or a newer qshpc wrote it)"),
            )
        pos = _HEADER.size
        while True:
            fh.seek(pos)
            head = fh.read(_HEAD.size)
            if len(head) < _HEAD.size:
                break
            fm, small_len, large_len, small_crc, large_crc, head_crc = _HEAD.unpack(head)
            if fm != FRAME_MAGIC or zlib.crc32(head[:-4]) != head_crc:
                return token, out, _tail_or_damage(fh, pos)
            large_at = pos + _HEAD.size + small_len
            if large_at + large_len > size:
                break  # torn: the writer died part way through this frame
            small = fh.read(small_len)
            if zlib.crc32(small) != small_crc:
                return token, out, _damage(pos)
            try:
                start, records, events, meta, data, lens = msgpack.unpackb(
                    zlib.decompress(small), raw=False
                )
                frame = Frame(
                    start=Ends(*start),
                    records=np.frombuffer(records, L.RECORD_DTYPE),
                    events=np.frombuffer(events, L.EVENT_DTYPE),
                    meta=meta,
                    data=data,
                )
            except Exception:
                return token, out, _damage(pos)
            out.append(JournalFrame(frame, large_at, lens, large_crc))
            pos = large_at + large_len
    return token, out, None


def _damage(pos: int) -> str:
    return f"from byte {pos} on its commits cannot be read (those before it can)"


def _tail_or_damage(fh: Any, pos: int) -> str | None:
    """None when the bytes from ``pos`` on are all zeros (a tail a power cut can leave)."""
    fh.seek(pos)
    while True:
        chunk = fh.read(1 << 20)
        if not chunk:
            return None
        if chunk.count(0) != len(chunk):
            return _damage(pos)


def read_large(
    path: Path, jf: JournalFrame, verify: bool = True, fd: int | None = None
) -> list[bytes]:
    """The large blobs of one frame (crc checked); ``fd``: as :func:`read_journal`'s."""
    with _open(path, fd) as fh:
        fh.seek(jf.large_at)
        blobs = [fh.read(n) for n in jf.large_lens]
    crc = 0
    for blob in blobs:
        crc = zlib.crc32(blob, crc)
    if verify and (crc != jf.large_crc or sum(map(len, blobs)) != sum(jf.large_lens)):
        raise DamagedStoreError(
            path, f"a large result at byte {jf.large_at} does not match its checksum"
        )
    return blobs


def large_pieces(
    path: Path, jf: JournalFrame, piece: int, fd: int | None = None
) -> Iterator[bytes]:
    """One frame's large part, ``piece`` bytes at a time (nothing kept), its crc checked
    once the last piece is out; ``fd``: as :func:`read_journal`'s.

    Raises:
        DamagedStoreError: The file ends inside the part, or the bytes do not match.
    """
    total = sum(jf.large_lens)
    crc = 0
    pos = 0
    with _open(path, fd) as fh:
        fh.seek(jf.large_at)
        while pos < total:
            chunk = fh.read(min(piece, total - pos))
            if not chunk:
                raise DamagedStoreError(path, f"it ends inside the large result at {jf.large_at}")
            crc = zlib.crc32(chunk, crc)
            pos += len(chunk)
            yield chunk
    if crc != jf.large_crc:
        raise DamagedStoreError(
            path, f"a large result at byte {jf.large_at} does not match its checksum"
        )


def check_large(path: Path, jf: JournalFrame, fd: int | None = None) -> None:
    """Check one frame's large part against its crc, 4 MiB at a time (``fd``: as
    :func:`read_journal`'s).

    :func:`read_large` holds the frame's blobs whole: ``qshpc status`` of a running
    1.6 GB job took 740-810 MB for them (review38 F16).

    Raises:
        DamagedStoreError: The bytes do not match, or the file ends inside them.
    """
    for _ in large_pieces(path, jf, 1 << 22, fd):
        pass


def token_of(f: Any) -> bytes:
    """The token of the journal already folded into an open job file (b"" if none)."""
    return _void(f[L.LOG].attrs.get(L.FOLDED_ATTR, b""))


def _void(value: Any) -> bytes:
    return bytes(value.tobytes() if hasattr(value, "tobytes") else value)


def nonce_of(f: Any) -> bytes:
    """The job's nonce in an open job file (b"": a file of a qshpc before session 27)."""
    return _void(f.attrs.get(L.NONCE_ATTR, b""))


def check_nonce(f: Any, path: Path, nonce: bytes) -> None:
    """Raise unless the open job file ``f`` (at ``path``) is the job whose nonce is ``nonce``
    (review49 F3: another job's sealed ``job.h5`` put in its place passed every check,
    and rank 0 read that job's results back as its own).

    Raises:
        DamagedStoreError: Naming the file, and the job it holds when that can be read.
    """
    found = nonce_of(f)
    if not nonce or found == nonce:
        return
    raise DamagedStoreError(path, f"it is not this job's file: {_whose(f)} put in its place")


def _whose(f: Any) -> str:
    """``job ID's job.h5`` for the job in ``f`` (``another job's job.h5`` when unreadable)."""
    jid = _job_id(f)
    return f"job {jid}'s job.h5" if jid is not None else "another job's job.h5"


def _job_id(f: Any) -> str | None:
    """The id of the job in the open job file ``f`` (None when unreadable)."""
    try:
        from qshpc.store.encoding_h5 import read_native

        jid = read_native(f[L.META_GROUP], False, "").get("id")
    except Exception:
        return None
    return jid if isinstance(jid, str) else None


def job_file_suspect(f: Any, job_file: Path, journal: Path) -> DamagedStoreError | None:
    """The error that names ``job.h5`` (``f``, open, at ``job_file``) when it holds another
    job than the one its folder was made for (:func:`qshpc.store.jobref.made_for`), not
    the journal beside it; else None (review53 N2: after another job's ``job.h5`` was put
    in place of a running job's, every reader called the job's own journal damaged, and a
    user who believed it could delete the only copy of the results since the last fold).
    """
    from qshpc.store.jobref import made_for

    want, held = made_for(job_file.parent), _job_id(f)
    if want is None or held is None or held == want:
        return None
    return DamagedStoreError(
        job_file,
        f"it is not this job's file: job {held}'s job.h5 put in its place (the folder was "
        f"made for job {want}); the journal beside it ({journal}) holds this job's commits "
        "since its last fold: keep it",
    )


def expect_token(f: Any, token: bytes) -> None:
    """Record in the open job file ``f`` that the journal beside it will be ``token``'s.

    Kept with the folded journal's token and the count of runs: a qshpc that does
    not know this attribute (an older one, resuming the job) changes one of them, and the
    record then no longer counts (it would name its journal foreign).
    """
    runs = len(f[L.RUNS]) if L.RUNS in f else 0
    f[L.LOG].attrs[L.JOURNAL_TOKEN_ATTR] = np.void(token + struct.pack("<I", runs) + token_of(f))


class ForeignJournalError(DamagedStoreError):
    """Another job's or run's journal beside ``job.h5``: its text names its own way on
    (keep it aside, then read or resume the job from ``job.h5`` alone)."""


def check_token(f: Any, journal: Path, token: bytes) -> None:
    """Raise unless ``token`` (a journal's header) is that of the journal the open job file
    ``f`` expects beside it (review49 F4: another job's journal put in its place was
    folded in at the job's end, and the job SUCCEEDED with that job's values).

    Raises:
        DamagedStoreError: Naming the journal, and the way on.
    """
    raw = _void(f[L.LOG].attrs.get(L.JOURNAL_TOKEN_ATTR, b""))
    if not token or len(raw) < 12:
        return
    runs = len(f[L.RUNS]) if L.RUNS in f else 0
    if raw[8:12] != struct.pack("<I", runs) or raw[12:] != token_of(f) or raw[:8] == token:
        return  # as expected, or no longer recorded (see expect_token)
    raise ForeignJournalError(
        journal,
        "it is not the journal its job.h5 expects (another job's journal, or another run's, "
        "put in its place): none of its records were taken as this job's. Keep it aside "
        f"(mv {journal} {journal}.other) to read the job, or --resume it, from job.h5 alone",
    )
