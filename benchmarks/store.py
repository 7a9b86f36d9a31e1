"""Benchmark: appending small task results to the job store.

Appends N task records whose results are quasi-distributions (dicts of 4
int -> float) and floats, committing every 1000, and compares with a naive
baseline in the same run (one HDF5 group + dataset per task, 5k tasks).

Prints a markdown table: results/s, file size, the JSON size of the same
result values (``json.dumps([...])``) and the ratio, for two kinds of values:
probabilities from 1024 shots (k/1024, what a sampler returns) and random
doubles (incompressible mantissas, the worst case). "values stored" is what
the result values take in the file (``log/data`` + ``log/large``); the rest
is per-record metadata (a 32-byte sha256 key, a 63-bit seed, three times,
task id, rank, host, function).

Run: python benchmarks/store.py [N]
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from qshpc.store import JOB_FILE, JobReader, JobWriter, TaskRecord, create_job


def make_values(n: int, kind: str, seed: int = 0) -> list[Any]:
    """Half quasi-dists of 4 entries, half floats."""
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for i in range(n):
        if kind == "shots":
            counts = rng.multinomial(1024, [0.4, 0.3, 0.2, 0.1])
            probs = [int(c) / 1024 for c in counts]
        else:
            probs = rng.random(4).tolist()
        out.append({k: p for k, p in enumerate(probs)} if i % 2 == 0 else probs[0])
    return out


def make_records(values: list[Any]) -> list[TaskRecord]:
    """Records with realistic metadata (sha256 keys, 63-bit seeds, times)."""
    rng = np.random.default_rng(1)
    t = time.time()
    recs = []
    for i, v in enumerate(values):
        key = hashlib.sha256(f"f-args-{i}".encode()).hexdigest()
        s = t + i * 1e-3
        recs.append(
            TaskRecord(
                task_id=str(i),
                key=key,
                function="sweep.run_circuit",
                state="SUCCEEDED",
                attempt=1,
                rank=1 + i % 15,
                host=f"node{i % 2}",
                submitted=s,
                started=s + 0.0002,
                finished=s + 0.0011,
                seed=int(rng.integers(2**62)),
                result=v,
            )
        )
    return recs


def _as_json(rec: TaskRecord) -> dict[str, Any]:
    """A record as a JSON object with the same fields the store holds."""
    d = dict(rec.__dict__)
    v = d["result"]
    d["result"] = {str(k): x for k, x in v.items()} if isinstance(v, dict) else v
    return d


def bench_store(recs: list[TaskRecord], tmp: Path) -> tuple[float, int, int, float]:
    """Append all records, commit every 1000.

    Returns:
        results/s (append + commit to the journal), file bytes, the stored bytes of
        the result values alone, and the seconds finalize took (folding the
        journal into job.h5).
    """
    job = tmp / f"job-{time.monotonic_ns()}"
    create_job(job, {"id": "bench", "created": time.time()}, None)
    w = JobWriter.open(job, {"mpi_size": 16, "ranks": [], "started": time.time()})
    t0 = time.perf_counter()
    for i, rec in enumerate(recs, 1):
        w.append_task(rec)
        if i % 1000 == 0:
            w.commit()
    w.commit()
    dt = time.perf_counter() - t0
    t1 = time.perf_counter()
    w.finalize("SUCCEEDED")
    fin = time.perf_counter() - t1
    with JobReader.open(job) as r:
        assert len(r.tasks()) == len(recs)
    with h5py.File(job / JOB_FILE, "r") as f:
        values = f["log/data"].id.get_storage_size() + f["log/large"].id.get_storage_size()
    return len(recs) / dt, (job / JOB_FILE).stat().st_size, values, fin


def bench_naive(recs: list[TaskRecord], tmp: Path) -> tuple[float, int]:
    """One group per task with a dataset per result and attrs for the metadata."""
    path = tmp / f"naive-{time.monotonic_ns()}.h5"
    t0 = time.perf_counter()
    with h5py.File(path, "w", libver="latest") as f:
        for i, rec in enumerate(recs, 1):
            g = f.create_group(rec.task_id)
            v = rec.result
            g["result"] = np.array(list(v.values())) if isinstance(v, dict) else v
            for name in ("key", "function", "host", "rank", "seed", "started", "finished"):
                g.attrs[name] = getattr(rec, name)
            if i % 1000 == 0:
                f.flush()
    dt = time.perf_counter() - t0
    return len(recs) / dt, path.stat().st_size


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    n_naive = min(n, 5000)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for kind in ("shots", "random"):
            values = make_values(n, kind)
            recs = make_records(values)
            json_values = len(json.dumps(values))
            json_records = len(json.dumps([_as_json(r) for r in recs]))
            rate, size, vsize, fin = bench_store(recs, tmp)
            print(f"{kind}: finalize (fold {n} records into job.h5) took {fin:.2f} s")
            print(
                f"{kind}: the same records as JSON (every field the store holds): "
                f"{json_records / 1e6:.2f} MB; job.h5 / JSON records = {size / json_records:.2f}"
            )
            rows.append((f"qshpc store, {kind}", n, rate, size, vsize, json_values))
            sub = recs[:n_naive]
            nrate, nsize = bench_naive(sub, tmp)
            rows.append((f"naive 1 dataset/task, {kind}", n_naive, nrate, nsize, None,
                         len(json.dumps(values[:n_naive]))))  # fmt: skip
    print(
        "| writer | results | results/s | file MB | values stored MB | JSON of values MB "
        "| file / JSON | values / JSON |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, count, rate, size, vsize, js in rows:
        vs = f"{vsize / 1e6:.2f}" if vsize is not None else "-"
        vr = f"{vsize / js:.2f}" if vsize is not None else "-"
        print(
            f"| {name} | {count} | {rate:,.0f} | {size / 1e6:.2f} | {vs} | {js / 1e6:.2f} "
            f"| {size / js:.2f} | {vr} |"
        )


if __name__ == "__main__":
    main()
