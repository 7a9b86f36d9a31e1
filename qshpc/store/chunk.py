"""Task records encoded where the task ran, appended by rank 0 in one step.

A worker turns each finished attempt into the store's row and blobs itself
(:class:`ChunkBuilder`), so rank 0 appends a whole batch of records with a few
numpy operations instead of encoding every record in its own Python code: at
tens of thousands of tiny tasks a second, rank 0's per-task work is what
limits the rate. The bytes are exactly those :meth:`Batch.add_record` would
write, so readers see no difference.

No h5py and no numpy here: workers import this module, and a worker of a
program that never imports numpy does not load it (the rows are packed with
``struct``, :mod:`qshpc.store.rowpack`; rank 0 reads them as numpy rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import msgpack

from qshpc.store import rowpack as L
from qshpc.store.encoding_blob import NOTED, _pack, encode_blob
from qshpc.store.jsonable import to_jsonable
from qshpc.store.unnoted import AS_BYTES, unnoted_loss

if TYPE_CHECKING:
    import numpy as np

#: Results whose encoding is larger than this travel once, as the value, and
#: rank 0 encodes them (small ones travel twice: value and encoding).
SHIP_ENCODED_MAX = 64 * 1024
#: ``where`` of a row whose result rank 0 still has to encode.
WHERE_UNENCODED = 255
#: The provenance field of a record whose stored result is not exactly what the task
#: returned (a ``defaultdict`` stored as a dict): a type stored as another.
#: A resumed job runs such a task again. Not a name ``record_provenance(**fields)`` gives
#: (the same string as :data:`qshpc.store.records.INEXACT`: workers do not import that).
INEXACT = "qshpc.inexact"


def key_bytes(key: str) -> str | bytes:
    """How a task key is kept in the meta blob: 64 hex digits as 32 bytes, anything else as text.

    qshpc's own keys are blake2b-128 (32 hex digits,
    :func:`qshpc.program.backend.task_key`) and stay text: packing them would
    cost the worker about a microsecond a record for 16 bytes before gzip.
    64-digit keys (stores written when keys were sha256, and tests) are packed;
    readers turn bytes back into hex either way.
    """
    if len(key) == 64:
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            return key
        if raw.hex() == key:
            return raw
    return key


def encode_meta(
    task_id: str,
    key: str,
    function: str,
    host: str,
    error: str | None,
    provenance: dict[str, Any] | None,
) -> bytes:
    """The meta blob of one task record."""
    prov = to_jsonable(provenance) if provenance else None
    # Plain strings and JSON-able values only: straight to msgpack (encode_blob
    # would first check whether the list is a list of circuits).
    try:
        return _pack([task_id, key_bytes(key), function, host, error, prov])
    except UnicodeEncodeError:  # a lone surrogate (review55 E2): written escaped
        return _pack(_utf8_safe([task_id, key_bytes(key), function, host, error, prov]))


def _utf8_safe(value: Any) -> Any:
    """``value`` with each string made :func:`qshpc.text.utf8_safe` (lists and dicts walked)."""
    from qshpc.text import utf8_safe

    if isinstance(value, str):
        return utf8_safe(value)
    if isinstance(value, list):
        return [_utf8_safe(v) for v in value]
    if isinstance(value, dict):
        return {_utf8_safe(k): _utf8_safe(v) for k, v in value.items()}
    return value


def encode_hit_meta(
    task_id: str, key: str, function: str, host: str, provenance: dict[str, Any]
) -> bytes:
    """:func:`encode_meta` of a record with no error whose ``provenance`` is JSON-able as it
    is (a cache hit's): the same bytes, without :func:`to_jsonable`'s copy of it."""
    return _pack([task_id, key_bytes(key), function, host, None, provenance])


def provenance_noting(provenance: dict[str, Any] | None, inexact: str | None) -> Any:
    """``provenance`` with :data:`INEXACT` set to ``inexact`` (unless None)."""
    if inexact is None:
        return provenance
    return {**(provenance or {}), INEXACT: inexact}


def meta_noting(meta: bytes, inexact: str) -> bytes:
    """The meta blob ``meta`` (from :func:`encode_meta`) with :data:`INEXACT` in its
    provenance (rare: decoded and packed again only then)."""
    fields = msgpack.unpackb(meta, raw=False, strict_map_key=False)
    fields[5] = provenance_noting(fields[5], inexact)
    return _pack(fields)


@dataclass
class RecordChunk:
    """Records of consecutive tasks of one batch, encoded on the worker.

    Attributes:
        packed: The ``RECORD_DTYPE`` rows as bytes (:data:`qshpc.store.rowpack.RECORD`);
            ``off`` and ``res_off`` count from the start of ``meta`` and
            ``data``, ``run`` is 0 (the writer sets both). :attr:`rows` is
            them as a numpy array.
        meta: The meta blobs, back to back.
        data: The result blobs, back to back.
        unencoded: ``(row, value)`` for rows (``where == WHERE_UNENCODED``)
            whose result the writer encodes.
        raw: ``(row, encoded result)`` for rows (``where == WHERE_UNENCODED``)
            whose result is over ``rows.RAW_RESULT_MIN``: the writer puts it in
            ``/log/large``, as it does for the records it encodes itself.
        inexact: Rank 0's side: rows of ``unencoded`` whose value the writer
            stored as another type (a ``defaultdict`` as a dict): reading them
            back would not give the value.
    """

    packed: bytes
    meta: bytes
    data: bytes
    unencoded: list[tuple[int, Any]] = field(default_factory=list)
    raw: list[tuple[int, bytes]] = field(default_factory=list)
    inexact: list[int] = field(default_factory=list)

    @cached_property
    def rows(self) -> np.ndarray[Any, Any]:
        """The rows as a writeable ``RECORD_DTYPE`` array (made once; rank 0's side: numpy)."""
        import numpy as np

        from qshpc.store.rows import RECORD_DTYPE

        return np.frombuffer(bytearray(self.packed), RECORD_DTYPE)

    def _set_meta(self, i: int, meta: bytes) -> None:
        rows = self.rows
        off, size = int(rows["off"][i]), int(rows["meta_len"][i])
        self.meta = self.meta[:off] + meta + self.meta[off + size :]
        rows["meta_len"][i] = len(meta)
        rows["off"][i + 1 :] += len(meta)
        rows["off"][i + 1 :] -= size

    def _meta_of(self, i: int) -> bytes:
        off, size = int(self.rows["off"][i]), int(self.rows["meta_len"][i])
        return self.meta[off : off + size]

    def note(self, i: int, inexact: str) -> None:
        """Rank 0's side: note in record ``i``'s meta that its result is stored as another
        type, ``inexact`` (:data:`INEXACT`: a resumed job runs it again)."""
        self._set_meta(i, meta_noting(self._meta_of(i), inexact))

    def fail(self, i: int, error: str) -> None:
        """Rank 0's side: record ``i`` becomes a failure with ``error`` (its value arrived,
        but cannot be loaded there: :mod:`qshpc.runtime.unload`); its result bytes go."""
        import msgpack

        rows = self.rows
        fields = msgpack.unpackb(self._meta_of(i), raw=False, strict_map_key=False)
        fields[4] = error
        self._set_meta(i, _pack(fields))
        if rows["where"][i] == L.WHERE_DATA and rows["res_len"][i]:
            start, size = int(rows["res_off"][i]), int(rows["res_len"][i])
            self.data = self.data[:start] + self.data[start + size :]
            later = rows["where"] == L.WHERE_DATA
            later[: i + 1] = False
            rows["res_off"][later] -= size
        rows["state"][i] = 1
        rows["where"][i] = L.WHERE_NONE
        rows["res_off"][i] = rows["res_len"][i] = 0
        self.unencoded = [(j, v) for j, v in self.unencoded if j != i]
        self.raw = [(j, b) for j, b in self.raw if j != i]


class ChunkBuilder:
    """Collects encoded records on a worker, a column per field.

    Args:
        rank: This rank.
    """

    def __init__(self, rank: int) -> None:
        self.rank = rank
        self.clear()

    def clear(self) -> None:
        """Forget every record added."""
        self.failed: list[int] = []
        self.where: list[int] = []
        self.started: list[float] = []
        self.finished: list[float] = []
        self.meta: list[bytes] = []
        self.data: list[bytes] = []  # one entry per record, b"" when none
        self.unencoded: list[tuple[int, Any]] = []
        #: About how many bytes the values of :attr:`unencoded` hold (a worker sends
        #: its results so far once they hold many: :mod:`qshpc.runtime.batchrun`).
        self.unencoded_bytes = 0
        self.raw: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return len(self.failed)

    def add(self, meta: bytes, ok: bool, value: Any, started: float, finished: float) -> None:
        """Add one record (``meta`` from :func:`encode_meta`).

        Raises:
            SerializationError: When a successful ``value`` cannot be stored
                (nothing is added then).
        """
        blob = b""
        where = L.WHERE_NONE
        if ok:
            if getattr(value, "nbytes", 0) <= SHIP_ENCODED_MAX:
                noted = NOTED[0]  # encode_blob_noting, inline: this is the hot path
                blob = encode_blob(value)
                if NOTED[0] != noted:
                    meta = meta_noting(meta, NOTED[1])
                elif L.RAW_RESULT_MIN < len(blob) <= SHIP_ENCODED_MAX:  # a big one: the walk
                    lost = unnoted_loss(value)  # costs about its encoding (rank 0 walks the
                    if lost is not None:  # bigger ones it encodes: Batch.add_chunk)
                        meta = meta_noting(meta, lost)
                elif type(value) in AS_BYTES:  # a small one: only its top
                    meta = meta_noting(meta, f"builtins.{type(value).__qualname__}")
            # else an array (masked, a matrix...): rank 0 encodes it, exactly (pickled if
            # of an ndarray subclass not typed)
            if blob and L.RAW_RESULT_MIN < len(blob) <= SHIP_ENCODED_MAX:
                where = WHERE_UNENCODED  # encoded, but for /log/large: see RecordChunk.raw
                self.raw.append((len(self.failed), blob))
                blob = b""
            elif blob and len(blob) <= SHIP_ENCODED_MAX:
                where = L.WHERE_DATA
            else:
                self.unencoded_bytes += len(blob) if blob else int(getattr(value, "nbytes", 0))
                blob = b""
                where = WHERE_UNENCODED
                self.unencoded.append((len(self.failed), value))
        self.failed.append(0 if ok else 1)
        self.where.append(where)
        self.started.append(started)
        self.finished.append(finished)
        self.meta.append(meta)
        self.data.append(blob)

    def fail(self, i: int, meta: bytes) -> None:
        """Turn record ``i`` into a failure with a new ``meta`` (its value could not travel)."""
        self.failed[i] = 1
        self.where[i] = L.WHERE_NONE
        self.meta[i] = meta
        self.data[i] = b""
        self.unencoded = [(j, v) for j, v in self.unencoded if j != i]
        self.raw = [(j, b) for j, b in self.raw if j != i]

    def take(
        self,
        submitted: Any,
        attempts: list[int] | None = None,
        seeds: list[int | None] | None = None,
    ) -> RecordChunk:
        """The records as one chunk (the builder keeps them until :meth:`clear`).

        Args:
            submitted: Submission time of each record.
            attempts: Attempt of each record (None: all first attempts).
            seeds: Seed of each record (None: no seeds).
        """
        n = len(self.failed)
        if not n:
            return RecordChunk(b"", b"", b"")
        pack = L.RECORD.pack
        rank = self.rank
        rows: list[bytes] = []
        off = res_off = 0
        for failed, where, sub, start, end, meta, data, attempt, seed in zip(
            self.failed,
            self.where,
            submitted,
            self.started,
            self.finished,
            self.meta,
            self.data,
            [1] * n if attempts is None else attempts,
            [None] * n if seeds is None else seeds,
            strict=True,
        ):
            meta_len, res_len = len(meta), len(data)
            rows.append(
                pack(1, failed, where, seed is not None, 0, attempt, rank, seed or 0, sub, start,
                     end, off, meta_len, res_off if res_len else 0, res_len)
            )  # fmt: skip
            off += meta_len
            res_off += res_len
        return RecordChunk(
            b"".join(rows),
            b"".join(self.meta),
            b"".join(self.data),
            list(self.unencoded),
            list(self.raw),
        )


__all__ = [
    "INEXACT",
    "SHIP_ENCODED_MAX",
    "WHERE_UNENCODED",
    "ChunkBuilder",
    "RecordChunk",
    "encode_meta",
    "key_bytes",
    "meta_noting",
    "provenance_noting",
]
