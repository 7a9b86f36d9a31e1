"""One cache entry: a file holding one task result, checked whole before it is used.

Layout (all integers big-endian)::

    magic      8 bytes   b"QSHPCC\\x01\\n" (format version 1)
    head_len   4 bytes   length of the header
    body_len   8 bytes   length of the body
    header     msgpack map: key, function, job, task, created, host, encoding,
               form, type
    body       the result, blob-encoded (:mod:`qshpc.store.encoding_blob`) in
               one of the forms of :mod:`qshpc.cache.body`
    checksum  16 bytes   BLAKE2b-128 of everything before it

A reader takes an entry only when the file is exactly as long as its lengths
say, its checksum matches and its header names the key it was looked up by.
A torn file (a writer killed part way, a node that crashed before its data
reached the disk) or one copied under another key's name is never used.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any

MAGIC = b"QSHPCC\x01\n"
_LENGTHS = struct.Struct(">IQ")
PREFIX = len(MAGIC) + _LENGTHS.size
CHECK = 16
#: The body's encoding, as the header names it.
ENCODING = "qshpc-msgpack/1"


class DamagedEntryError(Exception):
    """An entry file that is torn, altered, or not the entry it claims to be."""


@dataclass(frozen=True)
class Header:
    """What an entry says about itself.

    Attributes:
        key: The call's key (64 hex digits).
        function: The task function's name.
        job: Id of the job whose task computed it (None when stored by hand).
        task: That task's id.
        created: When it was stored (seconds since the epoch).
        host: Where it was stored.
        encoding: The body's encoding.
        form: ``blob``, ``typed`` or ``pickle`` (:mod:`qshpc.cache.body`).
        type: For ``typed``: the class and attributes of the result.
        plain: The body is the job store's encoding of the result (not so: a
            pickle; an entry before session 24 that kept a ``numpy.float64``,
            which the store made a float then): a hit's record can take it as
            it is (for ``typed``: the store's encoding of the plain dict).
        lazy: The body holds no pickle and decodes with no code of the program's
            (:attr:`qshpc.cache.body.Encoded.lazy`): a large hit may be decoded
            when the program reads it.
    """

    key: str
    function: str
    job: str | None
    task: str | None
    created: float
    host: str
    encoding: str = ENCODING
    form: str = "blob"
    type: dict[str, Any] | None = None
    plain: bool = True
    lazy: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The header as a plain dict."""
        out: dict[str, Any] = {
            "key": self.key,
            "function": self.function,
            "job": self.job,
            "task": self.task,
            "created": self.created,
            "host": self.host,
            "encoding": self.encoding,
            "form": self.form,
        }
        if self.type is not None:
            out["type"] = self.type
        if not self.plain:
            out["plain"] = False
        if self.lazy:
            out["lazy"] = True
        return out


def _checksum(*parts: Any) -> bytes:
    h = hashlib.blake2b(digest_size=CHECK)
    for p in parts:
        h.update(p)
    return h.digest()


def pack(header: Header, body: bytes) -> list[bytes]:
    """The bytes of an entry file, in pieces (for one ``writev``)."""
    from qshpc.store.encoding_blob import encode_blob

    head = encode_blob(header.as_dict())  # msgpack (the type's attributes may be any plain value)
    prefix = MAGIC + _LENGTHS.pack(len(head), len(body))
    return [prefix, head, body, _checksum(prefix, head, body)]


#: Decodes a header (no pickle), made once: :func:`~qshpc.store.encoding_blob.decode_blob`
#: and an import at each call cost a tiny hit ~1.5 us of its ~20 (an error names the file).
_decode_header: Any = None


def _header(raw: bytes, source: str) -> Header:
    global _decode_header
    try:
        if _decode_header is None:
            from qshpc.store.encoding_blob import blob_decoder

            _decode_header = blob_decoder(False, "a cache entry's header")
        d = _decode_header(raw)
        get = d.get
        job, task, kind = get("job"), get("task"), get("type")
        created = float(d["created"])
        if created - created != 0.0:  # inf or nan: never a time qshpc wrote (hunt19)
            raise ValueError(f"stored at {created}")
        # Filled in directly: a frozen dataclass's __init__ sets each field through
        # object.__setattr__, a few microseconds of every cache hit.
        header = object.__new__(Header)
        header.__dict__.update(
            key=str(d["key"]),
            function=str(d["function"]),
            job=None if job is None else str(job),
            task=None if task is None else str(task),
            created=created,
            host=str(get("host", "")),
            encoding=str(get("encoding", ENCODING)),
            form=str(get("form", "blob")),
            type=kind if isinstance(kind, dict) else None,
            plain=get("plain", True) is not False,
            lazy=get("lazy") is True,
        )
        return header
    except Exception as exc:
        raise DamagedEntryError(f"{source}: unreadable header ({exc})") from None


def lengths(prefix: bytes, source: str) -> tuple[int, int]:
    """``(head_len, body_len)`` from the first :data:`PREFIX` bytes of an entry."""
    if len(prefix) < PREFIX or not prefix.startswith(MAGIC):
        raise DamagedEntryError(f"{source}: not a qshpc cache entry (or a newer format)")
    head_len, body_len = _LENGTHS.unpack_from(prefix, len(MAGIC))
    return head_len, body_len


def unpack(data: bytes | memoryview, key: str | None, source: str) -> tuple[Header, memoryview]:
    """Check a whole entry file and split it into its header and body.

    Args:
        data: The file's bytes.
        key: The key it was looked up by (None: any).
        source: The file, for messages.

    Raises:
        DamagedEntryError: Torn, altered, or another key's entry.
    """
    view = memoryview(data)
    head_len, body_len = lengths(bytes(view[:PREFIX]), source)
    end = PREFIX + head_len + body_len
    if len(view) != end + CHECK:
        raise DamagedEntryError(
            f"{source}: {len(view)} bytes where its lengths say {end + CHECK} (torn)"
        )
    if _checksum(view[:end]) != bytes(view[end:]):
        raise DamagedEntryError(f"{source}: checksum mismatch (altered or torn)")
    header = _header(bytes(view[PREFIX : PREFIX + head_len]), source)
    if key is not None and header.key != key:
        raise DamagedEntryError(f"{source}: holds the entry of key {header.key}, not {key}")
    return header, view[PREFIX + head_len : end]


def read_header(prefix_and_head: bytes, source: str) -> Header:
    """The header from an entry's first bytes (not checked against the checksum)."""
    head_len, _ = lengths(prefix_and_head[:PREFIX], source)
    raw = prefix_and_head[PREFIX : PREFIX + head_len]
    if len(raw) != head_len:
        raise DamagedEntryError(f"{source}: truncated header")
    return _header(raw, source)


__all__ = [
    "CHECK",
    "ENCODING",
    "MAGIC",
    "PREFIX",
    "DamagedEntryError",
    "Header",
    "lengths",
    "pack",
    "read_header",
    "unpack",
]
