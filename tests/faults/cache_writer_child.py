"""Child process for test_cache_kill: fills and reads one cache until it is killed.

Usage: python cache_writer_child.py CACHE_DIR SEED

Draws keys 0..KEYS-1 at random; a hit must hold exactly ``expected(i)`` (else
it prints the mismatch on stderr and exits 3); a miss stores ``expected(i)``,
now and then over an existing entry. Prints the number of operations done
after each one.
"""

from __future__ import annotations

import random
import sys
from typing import Any

import numpy as np

from qshpc.cache.store import CacheDir

KEYS = 300


def key(i: int) -> str:
    """The key of entry ``i``."""
    return f"{i:04d}".encode().hex().ljust(64, "0")


def expected(i: int) -> Any:
    """The value of entry ``i``: small dicts, 100 KB arrays, and now and then 8 MB ones."""
    if i % 25 == 7:
        return np.full(1_000_000, i, dtype=np.float64)
    if i % 5 == 1:
        return np.arange(12_500, dtype=np.float64) * i
    return {"i": i, "s": "é" * (i % 40), "t": (i, str(i))}


def same(a: Any, b: Any) -> bool:
    """Equal values (arrays compared element-wise)."""
    if isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and a.shape == b.shape and bool((a == b).all())
    return bool(a == b)


def main() -> None:
    root, seed = sys.argv[1], int(sys.argv[2])
    rng = random.Random(seed)
    cache = CacheDir(root)
    n = 0
    while True:
        i = rng.randrange(KEYS)
        hit = cache.get(key(i))
        if hit is not None:
            if not same(hit.value, expected(i)) or hit.header.task != str(i):
                print(f"entry {i}: wrong value {hit.value!r:.200}", file=sys.stderr, flush=True)
                sys.exit(3)
        if hit is None or rng.random() < 0.1:
            cache.put(key(i), _body(i), "f", f"writer-{seed}", str(i), replace=hit is not None)
        n += 1
        print(n, flush=True)


_bodies: dict[int, bytes] = {}


def _body(i: int) -> bytes:
    from qshpc.store.encoding_blob import encode_blob

    if i not in _bodies:
        _bodies[i] = encode_blob(expected(i))
    return _bodies[i]


if __name__ == "__main__":
    main()
