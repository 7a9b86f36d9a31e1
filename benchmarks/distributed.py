"""One statevector over k ranks (Aer with MPI) against one plain Aer process: memory and time.

For each width n and rank count k, a layered circuit (RY/RZ layers, a CX ladder
that crosses every rank boundary, all qubits measured, 1000 shots) runs as a
distributed step (qshpc.aer.distributed.launch, a nested mpiexec) and, as the
baseline, in one process of the PyPI Aer with the same cores. Printed per run:

- per-rank peak resident memory, the rank's share of the statevector
  (16 * 2**n / k bytes), and ``(peak - before) / share`` where ``before`` is the
  rank's memory just before the run (Python, qiskit, Aer, the circuit: the
  fixed overhead);
- Aer's run time on the ranks against the baseline's (ratio);
- whether the counts equal the baseline's (same seed).

    python benchmarks/distributed.py                         # 20 and 22 qubits, 1/2/4 ranks (quick)
    python benchmarks/distributed.py --qubits 24 26 28 --ranks 1 2 4 8
    QSHPC_AER_MPI=/path/to/other/build python benchmarks/distributed.py ...   # another build

Runs whose total memory would pass --max-gib (default 16) are skipped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GIB = 1024**3
MIB = 1024**2


def layered(n: int, depth: int) -> Any:
    """RY/RZ on every qubit, then a CX ladder (0-1, 1-2, ..., n-2 - n-1), ``depth`` times; measured."""
    from qiskit import QuantumCircuit

    c = QuantumCircuit(n)
    for d in range(depth):
        for q in range(n):
            c.ry(0.1 + 0.37 * q + 0.11 * d, q)
            c.rz(0.2 + 0.29 * q + 0.07 * d, q)
        for q in range(n - 1):
            c.cx(q, q + 1)
    c.measure_all()
    return c


def counts_digest(counts: dict[str, int]) -> str:
    """A digest of counts keyed by integer outcome (hex or binary keys alike)."""
    items = sorted((int(k, 16) if k.startswith("0x") else int(k, 2), v) for k, v in counts.items())
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:12]


def baseline_child(qpy_file: str, shots: int, seed: int, threads: int) -> None:
    """Run in a fresh process: the PyPI Aer on the circuit; prints JSON."""
    from qiskit import qpy
    from qiskit_aer import AerSimulator

    with open(qpy_file, "rb") as f:
        circuit = qpy.load(f)[0]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    sim = AerSimulator(method="statevector", max_parallel_threads=threads)
    t = time.perf_counter()
    result = sim.run(circuit, shots=shots, seed_simulator=seed).result()
    run_s = time.perf_counter() - t
    print(json.dumps({
        "run_s": run_s,
        "before": before,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "digest": counts_digest(result.get_counts()),
    }))  # fmt: skip


def baseline(qpy_file: Path, shots: int, seed: int, threads: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH",)}
    env["PYTHONPATH"] = str(ROOT)  # the PyPI Aer: no MPI build on the path
    out = subprocess.run(
        [sys.executable, __file__, "--baseline-child", str(qpy_file), str(shots), str(seed), str(threads)],
        capture_output=True, text=True, env=env, timeout=3600,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"baseline failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--qubits", type=int, nargs="+", default=[20, 22])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--blocking", type=int, nargs="*", default=[],
                   help="blocking_qubits values to try (default: one chunk per rank)")  # fmt: skip
    p.add_argument(
        "--chunks",
        type=int,
        nargs="*",
        default=[],
        help="chunks per rank to try (sets blocking_qubits = n - log2(k) - log2(c))",
    )
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=INT",
        help="extra AerSimulator option, e.g. chunk_swap_buffer_qubits=20 (repeatable)",
    )
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--shots", type=int, default=1000)
    p.add_argument("--max-gib", type=float, default=16.0)
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--json", type=Path, help="also write every row here")
    a = p.parse_args()

    from qiskit import qpy

    from qshpc.aer.distributed.install import locate
    from qshpc.aer.distributed.run import default_blocking_qubits, prepare, run_circuits

    extra = {kv.split("=")[0]: int(kv.split("=")[1]) for kv in a.option}
    aer = locate()
    if aer is None:
        sys.exit("no MPI build of Aer: make install-aer-mpi")
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {cores} cores, load {load:.1f}; "
          f"MPI Aer {aer.version} from {aer.site} (patched: {aer.patched})")  # fmt: skip
    print(f"{'n':>3} {'k':>2} {'K':>3} {'share MiB':>9} {'before':>7} {'peak':>7} {'(pk-bf)/share':>13} "
          f"{'run s':>7} {'base s':>7} {'time x':>6} {'base MiB':>8} {'same':>5}")  # fmt: skip
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="qshpc-bench-dist-") as tmp:
        for n in a.qubits:
            circuit = prepare([layered(n, a.depth)])[0]  # the baseline runs the same circuit
            qpy_file = Path(tmp) / f"c{n}.qpy"
            with qpy_file.open("wb") as f:
                qpy.dump(circuit, f)
            state = 16 * 2**n
            base = None
            if not a.no_baseline and state * 1.2 < a.max_gib * GIB:
                base = baseline(qpy_file, a.shots, 7, cores)
            for k in a.ranks:
                Ks = list(a.blocking) + [
                    n - (k - 1).bit_length() - (c - 1).bit_length() for c in a.chunks
                ]
                for K in Ks or [default_blocking_qubits(n, k)]:
                    if (
                        K > n - (k - 1).bit_length()
                        or state * 2.2 + k * 0.3 * GIB > a.max_gib * GIB
                    ):
                        continue
                    share = state / k
                    step = run_circuits([circuit], k, shots=a.shots, seed=7, transpile=False,
                                        options={"blocking_qubits": K,
                                                 "max_parallel_threads": max(1, cores // k),
                                                 **extra},
                                        timeout=3600)  # fmt: skip
                    before = max(r["before_run"]["VmRSS"] for r in step.ranks)
                    peak = max(r["peak_rss"] for r in step.ranks)
                    run_s = max(r["run_s"] for r in step.ranks)
                    same = base is not None and counts_digest(step.counts(0)) == base["digest"]
                    row = {"n": n, "ranks": k, "blocking_qubits": K, "share": share, "before": before,
                           "peak": peak, "over_share": (peak - before) / share, "run_s": run_s,
                           "baseline_s": base["run_s"] if base else None,
                           "baseline_peak": base["peak_rss"] if base else None, "same_counts": same,
                           "load": os.getloadavg()[0], "hosts": step.hosts()}  # fmt: skip
                    rows.append(row)
                    bs = (
                        f"{base['run_s']:7.2f} {run_s / base['run_s']:6.2f} {base['peak_rss'] / MIB:8.0f}"
                        if base
                        else f"{'-':>7} {'-':>6} {'-':>8}"
                    )
                    print(f"{n:>3} {k:>2} {K:>3} {share / MIB:9.0f} {before / MIB:7.0f} {peak / MIB:7.0f} "
                          f"{row['over_share']:13.2f} {run_s:7.2f} {bs} {same!s:>5}", flush=True)  # fmt: skip
    print(f"# load at the end {os.getloadavg()[0]:.1f}")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--baseline-child":
        baseline_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
