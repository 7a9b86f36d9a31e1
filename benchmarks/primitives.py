"""Qiskit 2 primitives: qshpc's SamplerV2/EstimatorV2 on N workers vs Aer's in one process.

Workloads (issue 15):

* ``sampler-large``: one PUB, a 10-qubit two-layer hardware-efficient ansatz
  (RY, RZ on every qubit, a CX ladder; 40 parameters) at R parameter rows
  (default 4096), 1024 shots.
* ``estimator-large``: the same circuit and rows, <H> of a 20-term Ising
  Hamiltonian (10 ZZ on a ring, 10 X).
* ``sampler-small``: P PUBs of one row each (default 1000), same circuit.
* ``client``: ``SamplerV2(mode=LocalClient(workers=N)).run(...)`` from a fresh
  Python process, the whole call (job start-up included), against Aer's
  SamplerV2 run in that same process afterwards.

Baselines, each in a fresh process pinned to the same N cores, in the same run:
``qiskit_aer.primitives.SamplerV2``/``EstimatorV2`` with its default options,
and with ``max_parallel_experiments=N`` (one experiment per parameter row side
by side, the setting that uses N cores best for circuits this small); the best
of them is the reference. qshpc runs ``qshpc run --workers N`` (1 + N ranks);
its time is the ``run(...).result()`` call inside the program, and the whole
command beside it. Every timed call follows one tiny call on a 2-qubit circuit
(imports, simulators, Aer's threads), in the baselines and in qshpc alike.

Run:
    python benchmarks/primitives.py                     # full sizes
    python benchmarks/primitives.py --quick             # small sizes (a check that it runs)
    python benchmarks/primitives.py --workers 1 2 --rows 2048 --only sampler-large
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMON = """\
import time
import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp


def hea(n, layers=2, measure=True):
    theta = ParameterVector("t", 2 * n * layers)
    qc = QuantumCircuit(n)
    k = 0
    for _ in range(layers):
        for q in range(n):
            qc.ry(theta[k], q)
            qc.rz(theta[k + 1], q)
            k += 2
        for q in range(n - 1):
            qc.cx(q, q + 1)
    if measure:
        qc.measure_all()
    return qc


def ising(n):
    terms = [("ZZ", [q, (q + 1) % n], -1.0) for q in range(n)]
    terms += [("X", [q], -0.5) for q in range(n)]
    return SparsePauliOp.from_sparse_list(terms, n)


def workload(kind, rows, pubs, qubits=10):
    rng = np.random.default_rng(1)
    if kind in ("sampler-large", "client"):
        qc = hea(qubits)
        return "sampler", [(qc, rng.uniform(0, np.pi, (rows, qc.num_parameters)))]
    if kind == "estimator-large":
        qc = hea(qubits, measure=False)
        return "estimator", [(qc, ising(qubits), rng.uniform(0, np.pi, (rows, qc.num_parameters)))]
    qc = hea(qubits)
    values = rng.uniform(0, np.pi, (pubs, qc.num_parameters))
    return "sampler", [(qc, values[i]) for i in range(pubs)]


def warm_up(primitive, what):
    # one tiny call first (imports, simulators, threads): the timed call pays none of it
    tiny = QuantumCircuit(2)
    tiny.h(0)
    tiny.cx(0, 1)
    if what == "sampler":
        tiny.measure_all()
        primitive.run([tiny]).result()
    else:
        primitive.run([(tiny, "ZZ")]).result()


def bench(label, run):
    start = time.perf_counter()
    cpu = time.process_time()
    result = run()
    wall = time.perf_counter() - start
    print(f"BENCH {label} wall_s={wall:.4f} cpu_s={time.process_time() - cpu:.4f} "
          f"pubs={len(result)}", flush=True)
    return result
"""

AER = (
    COMMON
    + """
import json, sys
from qiskit_aer.primitives import EstimatorV2, SamplerV2
kind, rows, pubs, options = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
what, work = workload(kind, rows, pubs)
opts = {"backend_options": options}
primitive = SamplerV2(seed=1, options=opts) if what == "sampler" else EstimatorV2(options=opts)
warm_up(primitive, what)
bench("aer", lambda: primitive.run(work).result())
"""
)

PROGRAM = (
    COMMON
    + """
from qshpc import get_arguments, save_result
from qshpc.aer import EstimatorV2, SamplerV2
a = get_arguments()
what, work = workload(a["kind"], a["rows"], a["pubs"])
primitive = SamplerV2(seed=1) if what == "sampler" else EstimatorV2()
warm_up(primitive, what)
result = bench("qshpc", lambda: primitive.run(work).result())
save_result({"pubs": len(result)})
"""
)

CLIENT = """\
import time
start = time.perf_counter()
import json, sys, os
"""

CLIENT_BODY = (
    COMMON
    + """
from qshpc import LocalClient
from qshpc.aer import SamplerV2
rows, workers = int(sys.argv[1]), int(sys.argv[2])
what, work = workload("client", rows, 0)
call = time.perf_counter()
result = SamplerV2(seed=1, mode=LocalClient(workers=workers)).run(work).result()
end = time.perf_counter()
print(f"BENCH client wall_s={end - call:.4f} since_start_s={end - start:.4f}", flush=True)
from qiskit_aer.primitives import SamplerV2 as AerSampler
options = json.loads(sys.argv[3])
aer = AerSampler(seed=1, options={"backend_options": options})
warm_up(aer, "sampler")
bench("aer-here", lambda: aer.run(work).result())
"""
)


def _parse(out: str, label: str) -> dict[str, float]:
    for line in out.splitlines():
        if line.startswith(f"BENCH {label} "):
            return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", line)}
    raise RuntimeError(f"no BENCH {label} line in:\n{out[-3000:]}")


def _pin(workers: int) -> list[str]:
    cores = sorted(os.sched_getaffinity(0))
    if workers >= len(cores):
        return []
    return ["taskset", "-c", ",".join(str(c) for c in cores[:workers])]


def _run(cmd: list[str], env: dict[str, str], timeout: float = 3600) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:6])}... failed:\n{out.stdout[-2000:]}{out.stderr[-3000:]}"
        )
    return out.stdout


def aer_settings(workers: int) -> dict[str, dict[str, int]]:
    """Aer's single-process settings tried, by name."""
    return {
        "default": {},
        f"parallel experiments ({workers})": {
            "max_parallel_experiments": workers,
            "max_parallel_threads": workers,
        },
    }


def run_kind(kind: str, workers: list[int], rows: int, pubs: int, tmp: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QSHPC_HOME": str(tmp / "home")}
    (tmp / "aer.py").write_text(AER)
    (tmp / "program.py").write_text(PROGRAM)
    lines = []
    for n in workers:
        best = None
        for name, options in aer_settings(n).items():
            cmd = [*_pin(n), sys.executable, str(tmp / "aer.py"), kind, str(rows), str(pubs)]
            t = _parse(_run([*cmd, json.dumps(options)], env), "aer")["wall_s"]
            lines.append(f"| {kind} | {n} | Aer {name} | {t:.2f} | |")
            best = t if best is None else min(best, t)
        args = tmp / "args.json"
        args.write_text(json.dumps({"kind": kind, "rows": rows, "pubs": pubs}))
        start = time.perf_counter()
        out = _run(
            [
                sys.executable,
                "-m",
                "qshpc",
                "run",
                str(tmp / "program.py"),
                "--workers",
                str(n),
                "--arguments",
                str(args),
            ],
            env,
        )
        whole = time.perf_counter() - start
        t = _parse(out, "qshpc")["wall_s"]
        assert best is not None
        lines.append(
            f"| {kind} | {n} | qshpc, {n} workers | {t:.2f} (command {whole:.1f}) | "
            f"{best / t:.2f}x faster than Aer's best (target >= {0.9 * n:.1f}x) |"
        )
    return lines


def run_client(workers: list[int], rows: int, tmp: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QSHPC_HOME": str(tmp / "home")}
    (tmp / "client.py").write_text(CLIENT + CLIENT_BODY)
    (tmp / "aer.py").write_text(AER)
    one = _parse(
        _run(
            [
                *_pin(1),
                sys.executable,
                str(tmp / "aer.py"),
                "client",
                str(rows),
                "0",
                json.dumps({"max_parallel_threads": 1}),
            ],
            env,
        ),
        "aer",
    )["wall_s"]
    lines = []
    for n in workers:
        options = aer_settings(n)[f"parallel experiments ({n})"]
        cmd = [*_pin(n + 1), sys.executable, str(tmp / "client.py"), str(rows), str(n)]
        out = _run([*cmd, json.dumps(options)], env)
        client, aer = _parse(out, "client"), _parse(out, "aer-here")
        lines.append(
            f"| client | {n} | mode=LocalClient(workers={n}), whole call | {client['wall_s']:.2f} | "
            f"{client['wall_s'] / aer['wall_s']:.2f}x Aer's SamplerV2 in that process "
            f"({aer['wall_s']:.2f} s; target <= 1.5x); workload on 1 core: {one:.1f} s |"
        )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=None)
    p.add_argument("--rows", type=int, default=4096)
    p.add_argument("--pubs", type=int, default=1000)
    p.add_argument("--quick", action="store_true", help="small sizes: check that it runs")
    p.add_argument(
        "--only",
        nargs="+",
        default=["sampler-large", "estimator-large", "sampler-small", "client"],
    )
    a = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    workers = a.workers or sorted({1, cores})
    rows, pubs = (256, 100) if a.quick else (a.rows, a.pubs)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, {cores} cores, load {os.getloadavg()}")
    print(f"# rows={rows} pubs={pubs} workers={workers}")
    print("| workload | N | run | seconds | ratio |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for kind in a.only:
            lines = (
                run_client(workers, rows, tmp)
                if kind == "client"
                else run_kind(kind, workers, rows, pubs, tmp)
            )
            print("\n".join(lines), flush=True)
    print(f"# load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
