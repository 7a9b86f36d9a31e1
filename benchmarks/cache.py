"""The result cache: what a key and a lookup cost, against what they replace.

Parts (each prints a table; ratios are taken within the same run):

1. ``keys``: the cost of a key for typical calls (plain values, a 1000-value
   array, a 12-qubit circuit, a parameterized ansatz with its values), beside
   what rank 0 already pays at a call today: pickling the arguments for the
   workers (circuits as QPY).
2. ``store``: one entry written (rename; with and without fsync), a hit read
   and decoded, a miss, on the folder given (default: a temporary folder; pass
   ``--dir`` on the shared file system to measure it there), for N entries.

Run:
    python benchmarks/cache.py                      # both parts
    python benchmarks/cache.py store --entries 20000 --dir /scratch/me/cachebench
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def per_call(fn: Callable[[], Any], n: int, repeat: int = 5) -> float:
    """Best of ``repeat`` mean seconds per call over ``n`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def part_keys() -> None:
    import numpy as np
    from qiskit.circuit.library import real_amplitudes
    from qiskit.circuit.random import random_circuit

    from qshpc.cache.keys import call_key, function_digest
    from qshpc.runtime.payload import dumps

    def task(*args: Any) -> None: ...

    d = function_digest(task)
    qc = random_circuit(12, 12, seed=1)
    qc.measure_all()
    small = random_circuit(2, 2, seed=1)
    small.measure_all()
    ansatz = real_amplitudes(8, reps=3)
    values = np.linspace(0, 1, ansatz.num_parameters)
    arr = np.arange(1000.0)
    cases = [
        ("3 plain values", (7, 0.5, "x"), 20000),
        ("1000-value array", (arr,), 5000),
        ("2-qubit random circuit (seed notebook)", (small,), 2000),
        ("12-qubit depth-12 circuit", (qc,), 500),
        ("8-qubit ansatz + values (same object each call)", (ansatz, values), 500),
    ]
    print(f"\n## keys ({load()})\n")
    print("| arguments | key µs | pickling for a worker today µs | key / pickling |")
    print("|---|---|---|---|")
    for name, args, n in cases:
        k = per_call(lambda args=args: call_key(d, args, None, None), n)  # type: ignore[misc]
        p = per_call(lambda args=args: dumps((args, {})), n)  # type: ignore[misc]
        print(f"| {name} | {k * 1e6:.1f} | {p * 1e6:.1f} | {k / p:.2f}x |")
    t0 = time.perf_counter()
    function_digest(task)
    print(f"\nfunction digest (once per function and process): {(time.perf_counter() - t0) * 1e6:.0f} µs")


def part_store(entries: int, folder: Path | None) -> None:
    import numpy as np

    from qshpc.cache.store import CacheDir
    from qshpc.store.encoding_blob import encode_blob

    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        print(f"\n## store: {entries} entries in {tmp} ({load()})\n")
        rows = []
        for label, value in (("int", 12345), ("1 KB dict", {i: i / 7 for i in range(60)}),
                             ("80 KB array", np.arange(10_000.0))):  # fmt: skip
            body = encode_blob(value)
            for fsync in (False, True):
                cache = CacheDir(Path(tmp) / f"{label}-{fsync}", fsync=fsync)
                keys = [os.urandom(32).hex() for _ in range(entries if not fsync else entries // 10)]
                t0 = time.perf_counter()
                for k in keys:
                    cache.put(k, body, "f", "job", "0")
                put = (time.perf_counter() - t0) / len(keys)
                if fsync:
                    rows.append((label, "put + fsync", put))
                    continue
                rows.append((label, "put", put))
                t0 = time.perf_counter()
                for k in keys:
                    assert cache.get(k, freshen=False) is not None
                rows.append((label, "hit", (time.perf_counter() - t0) / len(keys)))
                misses = [os.urandom(32).hex() for _ in range(len(keys))]
                t0 = time.perf_counter()
                for k in misses:
                    assert cache.get(k) is None
                rows.append((label, "miss", (time.perf_counter() - t0) / len(keys)))
        print("| value | operation | µs |")
        print("|---|---|---|")
        for label, op, t in rows:
            print(f"| {label} | {op} | {t * 1e6:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("parts", nargs="*", help="keys, store (default: all)")
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--dir", type=Path, default=None, help="Where the store part writes.")
    a = ap.parse_args()
    a.parts = a.parts or ["keys", "store"]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {load()}")
    if "keys" in a.parts:
        part_keys()
    if "store" in a.parts:
        part_store(a.entries, a.dir)


if __name__ == "__main__":
    main()
