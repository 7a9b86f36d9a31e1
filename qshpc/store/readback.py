"""Reading one task result back from a running job's store, by where the log put it.

Rank 0 keeps a large task result only in the store once it is written there
(:data:`qshpc.settings.RESULT_MEMORY_MAX`): each ``get`` reads it back from the
journal (a commit not yet folded) or from ``job.h5``'s ``/log/large`` (read
through the integrity seal). A lone numpy array, what large results mostly are,
is read straight into the array returned (one copy: no bytes object first);
any other value is read whole and decoded.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any, Protocol

from qshpc.errors import StoreError
from qshpc.store.encoding_blob import array_layout, decode_blob

#: Bytes read first: a lone array's header (descr and shape) lies within them.
_HEAD = 4096


class Source(Protocol):
    """An open file holding one blob."""

    name: str

    def read_into(self, pos: int, into: memoryview) -> None:
        """Fill ``into`` with the blob's bytes from ``pos`` on (all of them, or raise)."""

    def check(self, data: list[Any]) -> None:
        """Raise :class:`StoreError` when the blob's bytes read, ``data`` in order, are not
        those written (nothing for a source whose reads check themselves)."""

    def check_crc(self, crc: int) -> None:
        """:meth:`check`, given the crc32 of all the blob's bytes."""

    def close(self) -> None:
        """Close the file."""


class FileSource:
    """A blob at byte ``at`` of a plain file (the journal) whose crc32 is ``crc``."""

    def __init__(self, fd: int, at: int, name: str, crc: int) -> None:
        self.fd = fd
        self.at = at
        self.name = name
        self.crc = crc

    def check(self, data: list[Any]) -> None:
        crc = 0
        for piece in data:
            crc = zlib.crc32(piece, crc)
        self.check_crc(crc)

    def check_crc(self, crc: int) -> None:
        if crc != self.crc:
            raise StoreError(
                f"{self.name} was changed: the result's bytes at byte {self.at} do not match "
                "their checksum"
            )

    def read_into(self, pos: int, into: memoryview) -> None:
        done = 0
        while done < len(into):
            got = os.preadv(self.fd, [into[done:]], self.at + pos + done)
            if got <= 0:
                raise StoreError(f"{self.name} ends inside the result (at byte {pos + done})")
            done += got

    def close(self) -> None:
        os.close(self.fd)


class H5Source:
    """A blob at offset ``off`` of ``/log/large`` in an open job file."""

    def __init__(self, f: Any, off: int, name: str) -> None:
        from qshpc.store import layout as L

        self.f = f
        self.ds = f[L.LARGE]
        self.off = off
        self.name = name

    def read_into(self, pos: int, into: memoryview) -> None:
        import numpy as np

        n = len(into)
        start = self.off + pos
        if start + n > self.ds.shape[0]:
            raise StoreError(f"{self.name}: /log/large ends before the result's byte {pos + n}")
        if n:
            dest = np.frombuffer(into, np.uint8)
            self.ds.read_direct(dest, np.s_[start : start + n], np.s_[0:n])

    def check(self, data: list[Any]) -> None:
        pass  # read through the seal (layout.open_read): each block checked

    def check_crc(self, crc: int) -> None:
        pass  # likewise

    def close(self) -> None:
        self.f.close()


def open_h5(path: Path, off: int, n: int, nonce: bytes = b"") -> H5Source:
    """``job.h5``'s ``/log/large`` at ``off`` (its committed part must hold ``n`` bytes there);
    ``nonce``: the job's, which the file must carry (not another job's ``job.h5``).

    Raises:
        StoreError: The file cannot be read, is another job's, or holds no such bytes.
    """
    from qshpc.store import layout as L
    from qshpc.store.journal import check_nonce
    from qshpc.store.log import last_commit

    f = L.open_read(path)
    try:
        check_nonce(f, path, nonce)
        if off + n > last_commit(f).large:
            raise StoreError(f"{path} holds no result at byte {off} of /log/large")
        return H5Source(f, off, str(path))
    except BaseException:
        f.close()
        raise


def open_file(path: Path, at: int, crc: int) -> FileSource:
    """A plain file (the journal) at byte ``at``, the blob there of crc32 ``crc``."""
    from qshpc.store.seal import open_regular

    try:
        return FileSource(open_regular(path), at, str(path), crc)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror or exc}") from exc


def read_value(src: Source, n: int) -> Any:
    """The value whose ``n`` encoded bytes ``src`` holds.

    Raises:
        StoreError: The bytes cannot be read or decoded.
    """
    head = bytearray(min(n, _HEAD))
    src.read_into(0, memoryview(head))
    layout = array_layout(bytes(head), n)
    if layout is not None:
        import numpy as np

        dtype, shape, at = layout
        out: Any = np.empty(shape, dtype)
        data = memoryview(out.reshape(-1).view(np.uint8))
        if out.nbytes:
            src.read_into(at, data)
        src.check([memoryview(head)[:at], data])
        return out
    buf = bytearray(n)
    buf[: len(head)] = head
    src.read_into(len(head), memoryview(buf)[len(head) :])
    src.check([buf])
    return decode_blob(buf, True, src.name)


#: Bytes :func:`check_value` reads at a time.
_PIECE = 4 << 20


def check_value(src: Source, n: int) -> None:
    """Check that :func:`read_value` would give the value back, holding no more than a
    piece of it: a lone array's bytes are read 4 MiB at a time through the same checks
    (the seal, or the journal's crc); any other value is read and decoded (a pickle may
    name a class that cannot be loaded), then dropped.

    Raises:
        StoreError: The bytes cannot be read, do not match, or do not decode.
    """
    head = bytearray(min(n, _HEAD))
    src.read_into(0, memoryview(head))
    layout = array_layout(bytes(head), n)
    if layout is None:
        read_value(src, n)
        return
    crc = zlib.crc32(head)
    buf = memoryview(bytearray(min(_PIECE, max(n - len(head), 0))))
    pos = len(head)
    while pos < n:
        piece = buf[: min(len(buf), n - pos)]
        src.read_into(pos, piece)
        crc = zlib.crc32(piece, crc)
        pos += len(piece)
    src.check_crc(crc)


__all__ = [
    "FileSource", "H5Source", "Source", "check_value", "open_file", "open_h5", "read_value",
]  # fmt: skip
