"""The integrity seal of an HDF5 file qshpc wrote: readers never parse a damaged byte.

Why: HDF5 checks its own metadata only in part. Its global heap (where
variable-length strings live: every ``encoding-type`` attribute) has no
checksum, and 4 KiB of zeros inside one made ``H5HG__cache_heap_deserialize``
loop forever (an object header of size 0 never advances the parse: seen with
py-spy in ``qshpc status``, ``list`` and ``gc``). Raw data has no checksum at
all, so a flipped byte in an uncompressed dataset reads back as a wrong value.

The seal: qshpc writes every ``job.h5`` (and arguments file) to a temp file and
renames it into place, never changing it in place. After HDF5 closes the temp
file, :func:`seal` appends a trailer: the CRC32 of every 64 KiB block of the
file, then a footer with its own CRC. HDF5 does not see the trailer (it stops
at its end-of-file address; older qshpc versions open sealed files unchanged).
Files are also created with a 512-byte HDF5 user block whose first line says
what the file is (:data:`MARK`), so a sealed file whose trailer was cut off or
damaged is told apart from an unsealed file of an older version.

Readers open a sealed file through :class:`VerifiedFile`, an h5py file object
that checks each block's CRC the first time HDF5 reads any byte of it and
fails that read otherwise. So HDF5 only ever parses bytes that are exactly
what was written (no hang, no crash, no wrong value from damage), a read
touching a damaged block fails cleanly, and every read that does not touch
one still works (what is recoverable is readable). Only the blocks HDF5 reads
are checked: ``qshpc status`` of a job holding a 1 GiB result checks a few
metadata blocks, not the gigabyte.

Files without a valid seal (written by an older qshpc, or whose seal is
damaged) are read in a child process with a time limit instead
(:mod:`qshpc.store.isolate`).

A reader reads the CRC table (4 bytes a 4 KiB block: 100 MB for a 100 GB
store) a page at a time, as it needs it (review38 F16: ``qshpc status`` read it
whole); a damaged entry makes its block read as damaged. What reads the whole
file (the copy of a resume or fold, ``qshpc status --verify``) checks the
table's own CRC first.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import struct
import sys
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path

USERBLOCK = 512
MARK = b"qshpc sealed HDF5 file: the HDF5 data starts at byte 512, a CRC32 seal ends the file\n"
BLOCK = 1 << 12  # 4 KiB: one damaged page costs little beside it
MAGIC = b"QSHPSEAL"
VERSION = 1
_FOOTER = struct.Struct("<8sIIQIII")  # magic, version, block, data_len, blocks, table crc, crc
FOOTER_SIZE = _FOOTER.size
_READ = 1 << 22  # bytes per read when sealing or copying


class SealError(OSError):
    """A read touched a block whose CRC does not match the seal."""


class _LazyCrcs:
    """The CRC table of a sealed file, read 1024 entries (4 KiB) at a time when asked."""

    _PAGE = 1024

    def __init__(self, fd: int, at: int, n: int) -> None:
        self._fd = fd
        self._at = at
        self._n = n
        self._pages: dict[int, array[int]] = {}

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> int:
        if not 0 <= i < self._n:
            raise IndexError(i)
        page, j = divmod(i, self._PAGE)
        got = self._pages.get(page)
        if got is None:
            count = min(self._PAGE, self._n - page * self._PAGE)
            raw = os.pread(self._fd, 4 * count, self._at + 4 * page * self._PAGE)
            got = array("I")
            got.frombytes(raw[: len(raw) - len(raw) % 4])
            if sys.byteorder != "little":  # pragma: no cover
                got.byteswap()
            self._pages[page] = got
        if j >= len(got):  # the file shrank under us: no entry, so no block checks out
            return -1
        return int(got[j])


@dataclass
class Seal:
    """The trailer of a sealed file.

    Attributes:
        data_len: Bytes of HDF5 data the seal covers (the file before the trailer).
        block: Block size.
        crcs: CRC32 of each block.
    """

    data_len: int
    block: int
    crcs: array[int] | _LazyCrcs = field(default_factory=lambda: array("I"))

    def trailer_size(self) -> int:
        return 4 * len(self.crcs) + FOOTER_SIZE


def _crcs(data: bytes | memoryview, block: int) -> list[int]:
    view = memoryview(data)
    return [zlib.crc32(view[i : i + block]) for i in range(0, len(view), block)]


def _table(crcs: array[int]) -> bytes:
    if sys.byteorder != "little":  # pragma: no cover
        crcs = array("I", crcs)
        crcs.byteswap()
    return crcs.tobytes()


def _trailer(crcs: array[int], data_len: int, block: int) -> bytes:
    table = _table(crcs)
    head = _FOOTER.pack(MAGIC, VERSION, block, data_len, len(crcs), zlib.crc32(table), 0)
    footer = head[:-4] + struct.pack("<I", zlib.crc32(head[:-4]))
    return table + footer


def mark_userblock(fd: int) -> None:
    """Write :data:`MARK` into the (empty) user block of a file HDF5 created with one."""
    os.pwrite(fd, MARK, 0)


def seal(path: Path) -> None:
    """Append the seal to the closed HDF5 file ``path`` (a temp file, before its rename)."""
    fd = os.open(path, os.O_RDWR)
    try:
        head = os.pread(fd, USERBLOCK + 8, 0)
        if head[USERBLOCK : USERBLOCK + 8] == b"\x89HDF\r\n\x1a\n":
            mark_userblock(fd)
        data_len = os.fstat(fd).st_size
        crcs: array[int] = array("I")
        pos = 0
        while pos < data_len:
            chunk = os.pread(fd, min(_READ, data_len - pos), pos)
            if not chunk:
                raise OSError(f"{path} shrank while it was sealed")
            crcs.extend(_crcs(chunk, BLOCK))
            pos += len(chunk)
        trailer = _trailer(crcs, data_len, BLOCK)
        if os.pwrite(fd, trailer, data_len) != len(trailer):
            raise OSError(28, "No space left on device", str(path))
        os.ftruncate(fd, data_len + len(trailer))  # frees space kept past the end for HDF5
    finally:
        os.close(fd)


def read_seal(fd: int, size: int, lazy: bool = False) -> Seal | None:
    """The seal of the open file ``fd`` of ``size`` bytes, or None when it has no valid one.

    ``lazy``: read the CRC table a page at a time as it is used (its own CRC then
    unchecked: a damaged entry fails its block's check), for readers of a few blocks.
    """
    if size < FOOTER_SIZE:
        return None
    raw = os.pread(fd, FOOTER_SIZE, size - FOOTER_SIZE)
    if len(raw) != FOOTER_SIZE:
        return None
    magic, version, block, data_len, n, table_crc, crc = _FOOTER.unpack(raw)
    if magic != MAGIC or zlib.crc32(raw[:-4]) != crc or version != VERSION or block <= 0:
        return None
    if n != -(-data_len // block) or data_len + 4 * n + FOOTER_SIZE != size:
        return None
    if lazy:
        return Seal(data_len, block, _LazyCrcs(fd, data_len, n))
    table = os.pread(fd, 4 * n, data_len)
    if len(table) != 4 * n or zlib.crc32(table) != table_crc:
        return None
    crcs: array[int] = array("I")
    crcs.frombytes(table)
    if sys.byteorder != "little":  # pragma: no cover
        crcs.byteswap()
    return Seal(data_len, block, crcs)


def has_mark(fd: int) -> bool:
    """True when the file starts with :data:`MARK` (written sealed by this qshpc)."""
    return os.pread(fd, len(MARK), 0) == MARK


def sealed_layout(fd: int) -> bool:
    """True when the file was written by a qshpc that seals: its HDF5 data starts at 512.

    (The mark itself may be damaged; an HDF5 signature at 512 and none at 0 says the same.)
    """
    if has_mark(fd):
        return True
    sig = b"\x89HDF\r\n\x1a\n"
    return os.pread(fd, 8, 0) != sig and os.pread(fd, 8, USERBLOCK) == sig


def is_sealed_layout(path: Path) -> bool:
    """:func:`sealed_layout` of the file at ``path``."""
    fd = open_regular(path)
    try:
        return sealed_layout(fd)
    finally:
        os.close(fd)


class NotRegular(OSError):
    """:func:`open_regular` found a FIFO, a socket, a device or a folder: not opened for reading."""


def open_regular(path: Path) -> int:
    """Open ``path`` for reading without ever blocking: a FIFO or device is refused.

    Raises:
        FileNotFoundError: No such file.
        NotRegular: Not a regular file (an OSError, ``errno`` None), its message naming it.
        OSError: Unreadable.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(f"{path} is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_new(path: Path, mode: int) -> int:
    """Open a new file at ``path`` for writing, first removing what is there (a killed
    writer's leftover, a FIFO, a link), so that nothing is ever written through it.

    hunt22c: ``job.h5.tmp`` was opened with ``O_TRUNC``: a FIFO there made ``--resume``
    wait for good (SIGTERM did not end it), and a link there had the file it named
    overwritten with a copy of the store. The job's lock keeps other writers away.

    Raises:
        OSError: Cannot be removed or created (a folder there, no write permission).
    """
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)


#: ``(st_dev, st_ino)`` of the files :func:`open_append` opened in this process: written
#: with ``os.write``, no Python buffer holds data for them (:func:`qshpc.runtime.leave.exit_now`).
appended: set[tuple[int, int]] = set()


def open_append(path: Path, mode: int) -> int:
    """Open (create with ``mode``) ``path`` for appending without ever blocking: a FIFO or a
    device in its place is refused (hunt16: a FIFO as a job's log hung its ``--resume``).

    Raises:
        OSError: Not a regular file (its ``strerror`` says so), or not writable.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO nobody reads
            raise OSError(exc.errno, "not a regular file (a FIFO)", str(path)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    appended.add((st.st_dev, st.st_ino))
    return fd


class VerifiedFile(io.RawIOBase):
    """A read-only file object for h5py that checks each block against the seal.

    HDF5 sees the file as ``seal.data_len`` bytes long. A read touching a block
    whose CRC differs raises :class:`SealError` (HDF5 then fails that
    operation); the damaged blocks are listed in :attr:`bad`.
    """

    def __init__(self, fd: int, seal_: Seal, name: str) -> None:
        super().__init__()
        self._fd = fd
        self._seal = seal_
        self.name = name
        self._pos = 0
        self._ok: set[int] = set()  # the blocks checked (not one byte per block of the file)
        self.bad: set[int] = set()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self._seal.data_len + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def fileno(self) -> int:
        raise io.UnsupportedOperation("no file descriptor")  # keep h5py on the Python path

    def _check(self, start: int, end: int, read: memoryview | None = None) -> None:
        """Check the blocks of bytes ``start``-``end``; ``read``: those bytes, read already
        (a block they hold whole is checked in them, not read again)."""
        block = self._seal.block
        first, last = start // block, (end - 1) // block
        for i in range(first, last + 1):
            if i in self._ok:
                continue
            lo = i * block
            n = min(block, self._seal.data_len - lo)
            if read is not None and start <= lo and lo + n <= end:
                data: bytes | memoryview = read[lo - start : lo - start + n]
            else:
                data = os.pread(self._fd, n, lo)
            if len(data) != n or zlib.crc32(data) != self._seal.crcs[i]:
                self.bad.add(i)
                raise SealError(
                    f"{self.name}: bytes {lo}-{lo + n - 1} are damaged (they do not match "
                    "the file's integrity seal)"
                )
            self._ok.add(i)

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read, then check the blocks read against the seal in the bytes read (one read
        of the file, not one more per block: a 1 MiB result read back took 256 preads
        more); bytes of a block that fails are not handed on (the read raises)."""
        view = memoryview(buffer).cast("B")
        start = self._pos
        end = min(start + len(view), self._seal.data_len)
        if end <= start:
            return 0
        got = os.preadv(self._fd, [view[: end - start]], start)
        if got < end - start:  # the file shrank: its blocks are read (and refused) alone
            self._check(start, end)
        self._check(start, start + got, view[:got])
        self._pos += got
        return got

    def write(self, data: object) -> int:
        raise io.UnsupportedOperation("read-only")

    def close(self) -> None:
        if not self.closed and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()


def damaged_blocks(fd: int, seal_: Seal) -> list[tuple[int, int]]:
    """Byte ranges ``(first, last)`` of every block that does not match the seal (reads it all)."""
    out: list[tuple[int, int]] = []
    pos = 0
    i = 0
    while pos < seal_.data_len:
        chunk = os.pread(fd, min(_READ, seal_.data_len - pos), pos)
        for crc in _crcs(chunk, seal_.block):
            lo = i * seal_.block
            if crc != seal_.crcs[i]:
                out.append((lo, min(lo + seal_.block, seal_.data_len) - 1))
            i += 1
        pos += len(chunk)
        if not chunk:
            break
    return out


def copy_verified(src: Path, dst: Path) -> bool:
    """Copy the HDF5 data of ``src`` to ``dst`` (no seal), checking it against the seal.

    Returns:
        True when ``src`` was sealed (and every block matched); False when it has
        no seal (copied as is: the caller must check it another way).

    Raises:
        SealError: When a block of a sealed ``src`` is damaged (``dst`` is left
            for the caller to remove).
    """
    fd = open_regular(src)
    try:
        size = os.fstat(fd).st_size
        seal_ = read_seal(fd, size)
        length = seal_.data_len if seal_ else size
        out = create_new(dst, 0o600)
        try:
            pos = 0
            while pos < length:
                chunk = os.pread(fd, min(_READ, length - pos), pos)
                if not chunk:
                    raise OSError(f"{src} shrank while it was copied")
                if seal_ is not None:
                    first = pos // seal_.block
                    for j, crc in enumerate(_crcs(chunk, seal_.block)):
                        if crc != seal_.crcs[first + j]:
                            lo = (first + j) * seal_.block
                            raise SealError(
                                f"{src}: bytes {lo}-{min(lo + seal_.block, length) - 1} are "
                                "damaged (they do not match the file's integrity seal)"
                            )
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
                pos += len(chunk)
        finally:
            os.close(out)
        return seal_ is not None
    finally:
        os.close(fd)
