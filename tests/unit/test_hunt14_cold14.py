"""Workers without numpy (issue 19): the record rows a worker packs with ``struct`` are the
bytes the numpy table made, and a worker that never imported numpy encodes exactly what
one with numpy does."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from typing import Any

import numpy as np

from qshpc.store import rows as L
from qshpc.store.chunk import ChunkBuilder, RecordChunk, encode_meta
from qshpc.store.rowpack import RECORD
from tests.conftest import ROOT


def _numpy_rows(b: ChunkBuilder, submitted: Any, attempts: Any, seeds: Any) -> bytes:
    """The rows as ``ChunkBuilder.take`` built them with numpy until session 14."""
    n = len(b.failed)
    rows = np.zeros(n, L.RECORD_DTYPE)
    rows["valid"] = 1
    rows["state"] = b.failed
    rows["where"] = b.where
    rows["attempt"] = 1 if attempts is None else attempts
    rows["rank"] = b.rank
    if seeds is not None:
        rows["has_seed"] = [s is not None for s in seeds]
        rows["seed"] = [s or 0 for s in seeds]
    rows["submitted"] = submitted
    rows["started"] = b.started
    rows["finished"] = b.finished
    meta_len = np.fromiter(map(len, b.meta), np.int64, n)
    res_len = np.fromiter(map(len, b.data), np.int64, n)
    rows["meta_len"] = meta_len
    rows["off"] = np.cumsum(meta_len) - meta_len
    rows["res_len"] = res_len
    rows["res_off"] = np.where(res_len > 0, np.cumsum(res_len) - res_len, 0)
    return rows.tobytes()


def test_packed_rows_are_the_numpy_rows() -> None:
    assert RECORD.size == L.RECORD_DTYPE.itemsize == 74
    b = ChunkBuilder(rank=7)
    values: list[Any] = [1, None, "x" * 100, np.arange(5000.0), b"y" * 20_000, 2.5, {"a": 1}]
    for i, v in enumerate(values):
        meta = encode_meta(str(i), "k" * 32, "f", "host", None if i != 1 else "boom", {"i": i})
        b.add(meta, i != 1, v, 10.0 + i, 11.5 + i)
    n = len(values)
    submitted = [5.0 + i / 3 for i in range(n)]
    for attempts, seeds in (
        (None, None),
        ([1, 2, 3, 1, 1, 9, 1], [None, 3, 2**62, 0, None, 12, 1]),
    ):
        chunk = b.take(submitted, attempts, seeds)
        assert chunk.packed == _numpy_rows(b, submitted, attempts, seeds)
        assert chunk.rows.tobytes() == chunk.packed and chunk.rows.flags.writeable
        assert int(chunk.rows["where"][1]) == L.WHERE_NONE  # the failure has no result
    empty = ChunkBuilder(rank=1).take([])
    assert empty.packed == b"" and len(empty.rows) == 0


#: Run in a process where ``import numpy`` fails: a worker's encoding of plain values.
_CHILD = r"""
import pickle, sys
sys.modules["numpy"] = None  # any import of numpy from here on raises ImportError
from qshpc.runtime.results import Results
from qshpc.store.encoding_blob import encode_blob
values = pickle.loads(sys.stdin.buffer.read())
r = Results(rank=1, host="h")
for i, v in enumerate(values):
    prov = {"seed": i, "t": (1, 2.5), "c": 1 + 2j, 3: "int key", "f": float("nan")}
    r.add(str(i), "k" * 32, "f", True, v, None, "", prov, i, 1.0, 2.0)
msg = r.message(0, 0, [0.5] * len(values), None, True)
blobs = [encode_blob(v) for v in values]
sys.stdout.buffer.write(pickle.dumps((msg, blobs), protocol=5))
"""


def test_a_worker_without_numpy_stores_the_same_bytes() -> None:
    from qshpc.runtime.results import Results
    from qshpc.store.encoding_blob import decode_blob, encode_blob

    values: list[Any] = [
        1, -2**70, 2.5, float("inf"), "s", b"b", None, True, 1 - 1j, (1, "a"), {1, 2},
        frozenset({3}), {"k": [1, {2: (3.5,)}]}, [[1, 2], [3]], bytearray(b"ba"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], input=pickle.dumps(values), capture_output=True,
        env=env, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    msg, blobs = pickle.loads(out.stdout)
    assert blobs == [encode_blob(v) for v in values]  # numpy loaded here
    here = Results(rank=1, host="h")
    for i, v in enumerate(values):
        prov = {"seed": i, "t": (1, 2.5), "c": 1 + 2j, 3: "int key", "f": float("nan")}
        here.add(str(i), "k" * 32, "f", True, v, None, "", prov, i, 1.0, 2.0)
    mine = here.message(0, 0, [0.5] * len(values), None, True)
    chunk, theirs = mine[4], msg[4]
    assert isinstance(theirs, RecordChunk)
    assert (theirs.packed, theirs.meta, theirs.data) == (chunk.packed, chunk.meta, chunk.data)
    assert [decode_blob(b) for b in blobs[:3]] == values[:3]
