"""Scaling: random circuits through qshpc on 1 and 2 workers vs the best single process.

Workload: N random circuits (default 200 of 12 qubits, depth 12, seeded), 1024
shots each.

Baseline: the best single-process pipeline: one preset pass manager (level 1,
the level qshpc uses), transpile all circuits, one AerSimulator batch run, on 1
core and on all cores. Timed twice: in this process (circuits in memory,
modules imported), and as a fresh process that starts Python, imports qiskit
and Aer, loads the circuits from QPY, runs and saves the counts.

qshpc: the seed-style program (one ``@distribute_task`` call per circuit, each
``Sampler(options={"shots": S}).run(circuit)``) through
``mpiexec -n K python -m qshpc run PROGRAM --arguments ARGS`` with K-1 workers.
Two figures per run: the program's own fan-out time, which the program prints
on stdout as ``BENCH fanout_s=...`` (set beside the in-process baseline), and
the subprocess wall time (interpreter start, imports, MPI init, store writes
included; set beside the baseline process). "Equal cores": 1 worker against
the 1-core baseline, 2 or more against the all-cores one (rank 0 only
dispatches and sleeps).

Run:
    python benchmarks/scaling.py                  # defaults above
    python benchmarks/scaling.py --circuits 64 --workers 1 2 4 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = """\
import time

from qshpc import distribute_task, get, get_arguments, save_result
from qshpc.aer import Sampler


@distribute_task()
def sample(circuit, shots):
    return Sampler(options={"shots": shots}).run(circuit).result().quasi_dists[0]


arguments = get_arguments()
start = time.perf_counter()
results = get([sample(c, arguments["shots"]) for c in arguments["circuits"]])
elapsed = time.perf_counter() - start
print(f"BENCH fanout_s={elapsed:.4f} tasks={len(results)}", flush=True)
save_result({"n": len(results), "fanout_s": elapsed})
"""


def make_circuits(n: int, qubits: int, depth: int, seed: int) -> list:  # type: ignore[type-arg]
    """Seeded random circuits, measured."""
    from qiskit.circuit.random import random_circuit

    circuits = []
    for i in range(n):
        circuit = random_circuit(qubits, depth, seed=seed + i)
        circuit.measure_all()
        circuits.append(circuit)
    return circuits


def baseline(circuits: list, shots: int, threads: int) -> dict[str, float]:  # type: ignore[type-arg]
    """One pass manager, transpile all, one Aer batch: the best single process."""
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_aer import AerSimulator

    t0 = time.perf_counter()
    sim = AerSimulator(max_parallel_threads=threads, max_parallel_experiments=0)
    pm = generate_preset_pass_manager(optimization_level=1, backend=sim)
    t1 = time.perf_counter()
    isa = pm.run(circuits, num_processes=1 if threads == 1 else None)
    t2 = time.perf_counter()
    result = sim.run(isa, shots=shots, seed_simulator=1).result()
    t3 = time.perf_counter()
    assert len(result.results) == len(circuits)
    return {"setup_s": t1 - t0, "transpile_s": t2 - t1, "run_s": t3 - t2, "total_s": t3 - t0}


def per_circuit(circuits: list, shots: int) -> float:  # type: ignore[type-arg]
    """Plain qiskit + Aer, one process, one core: transpile and run each circuit in turn.

    What any one-call-per-circuit execution costs before a framework adds
    anything: on this machine, alternating transpile and simulation makes both
    slower than in the batch pipeline (caches), about 1.15x.
    """
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_aer import AerSimulator

    t0 = time.perf_counter()
    sim = AerSimulator(max_parallel_threads=1, max_parallel_experiments=0, max_parallel_shots=1)
    pm = generate_preset_pass_manager(optimization_level=1, backend=sim)
    for i, circuit in enumerate(circuits):
        sim.run(pm.run(circuit), shots=shots, seed_simulator=i).result()
    return time.perf_counter() - t0


BASELINE_SCRIPT = """\
import json, sys
from qiskit import qpy
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator

qpy_file, shots, threads, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
with open(qpy_file, "rb") as f:
    circuits = qpy.load(f)
sim = AerSimulator(max_parallel_threads=threads, max_parallel_experiments=0)
pm = generate_preset_pass_manager(optimization_level=1, backend=sim)
isa = pm.run(circuits, num_processes=1 if threads == 1 else None)
result = sim.run(isa, shots=shots, seed_simulator=1).result()
with open(out, "w") as f:
    json.dump([result.get_counts(i) for i in range(len(circuits))], f)
"""


def baseline_process(workdir: Path, circuits: list, shots: int, threads: int) -> float:  # type: ignore[type-arg]
    """Wall time of the baseline as a fresh process: interpreter, imports, load, run, save.

    The figure to set beside qshpc's subprocess wall time (which includes its
    own start-up, MPI init and store writes).
    """
    from qiskit import qpy

    qpy_file = workdir / "circuits.qpy"
    if not qpy_file.exists():
        with qpy_file.open("wb") as f:
            qpy.dump(circuits, f)
    script = workdir / "baseline_process.py"
    script.write_text(BASELINE_SCRIPT)
    cmd = [sys.executable, str(script), str(qpy_file), str(shots), str(threads),
           str(workdir / "baseline_counts.json")]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, timeout=900)
    return time.perf_counter() - t0


def qshpc_run(program: Path, args_file: Path, workdir: Path, ranks: int) -> dict[str, float]:
    """Run the program under mpiexec with ``ranks`` ranks; time it and parse its stdout."""
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit("mpiexec not found (pip install mpich)")
    job_dir = Path(tempfile.mkdtemp(prefix=f"job-{ranks}-", dir=workdir))
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    # Rank 0 only runs the program here, so "K workers" means K cores of work
    # (QSHPC_ROOT_WORKS=auto would let rank 0 take tasks too when it has a core).
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "QSHPC_ROOT_WORKS": os.environ.get("QSHPC_ROOT_WORKS", "0"),
    }
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    cmd = [mpiexec, "-n", str(ranks), sys.executable, "-m", "qshpc", "run", str(program),
           "--arguments", str(args_file), "--job-dir", str(job_dir)]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        out = f"{proc.stdout}\n{proc.stderr}"
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out}")
    match = re.search(r"BENCH fanout_s=([0-9.]+)", proc.stdout)
    if match is None:
        raise SystemExit(f"no BENCH line in the program's stdout:\n{proc.stdout}\n{proc.stderr}")
    return {"wall_s": wall, "fanout_s": float(match.group(1))}


def _total(b: dict[str, float]) -> float:
    return b["total_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--circuits", type=int, default=200)
    parser.add_argument("--qubits", type=int, default=12)
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--shots", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best counts")
    opts = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from qshpc import save_arguments

    circuits = make_circuits(opts.circuits, opts.qubits, opts.depth, opts.seed)
    print(
        f"workload: {opts.circuits} random circuits, {opts.qubits} qubits, depth {opts.depth}, "
        f"{opts.shots} shots; {os.cpu_count()} cores"
    )
    cores = os.cpu_count() or 1
    repeat = max(1, opts.repeat)
    base1 = min((baseline(circuits, opts.shots, 1) for _ in range(repeat)), key=_total)
    base = min((baseline(circuits, opts.shots, cores) for _ in range(repeat)), key=_total)
    for label, b in ((f"all {cores} cores", base), ("1 core", base1)):
        print(
            f"baseline (1 process, 1 pass manager, 1 Aer batch, {label}): {b['total_s']:.2f} s "
            f"(setup {b['setup_s']:.2f}, transpile {b['transpile_s']:.2f}, run {b['run_s']:.2f})"
        )
    each = min(per_circuit(circuits, opts.shots) for _ in range(repeat))
    print(
        f"reference (1 process, 1 core, transpile + run per circuit, no framework): {each:.2f} s "
        f"= {each / base1['total_s']:.2f}x the 1-core baseline"
    )

    rows = []
    with tempfile.TemporaryDirectory(prefix="qshpc-bench-") as tmp:
        workdir = Path(tmp)
        proc = {
            k: min(baseline_process(workdir, circuits, opts.shots, k) for _ in range(repeat))
            for k in sorted({1, cores})
        }
        print(
            "baseline as a fresh process (python start, imports, load QPY, run, save): "
            + ", ".join(f"{k} core{'s' if k > 1 else ''} {t:.2f} s" for k, t in proc.items())
        )
        program = workdir / "bench_program.py"
        program.write_text(PROGRAM)
        args_file = workdir / "args.h5"
        save_arguments(args_file, {"circuits": circuits, "shots": opts.shots})
        for workers in opts.workers:
            runs = [qshpc_run(program, args_file, workdir, workers + 1) for _ in range(repeat)]
            res = min(runs, key=lambda r: r["fanout_s"])
            rows.append((workers, res))

    # "Equal cores": K workers against the baseline on K cores (rank 0 only
    # dispatches and sleeps; see QSHPC_ROOT_WORKS).
    # Fan-out against the in-process baseline; wall against the baseline process.
    header = ("workers", "ranks", "fan-out s", "base s", "fan-out/base", "wall s", "proc s",
              "wall/proc")  # fmt: skip
    print(" ".join(f"{h:>12}" for h in header))
    for workers, res in rows:
        equal = 1 if workers == 1 else cores
        ref = (base1 if equal == 1 else base)["total_s"]
        wall, fan = res["wall_s"], res["fanout_s"]
        cells = (workers, workers + 1, f"{fan:.2f}", f"{ref:.2f}", f"{fan / ref:.2f}",
                 f"{wall:.2f}", f"{proc[equal]:.2f}", f"{wall / proc[equal]:.2f}")  # fmt: skip
        print(" ".join(f"{c:>12}" for c in cells))
    by_workers = dict(rows)
    if 1 in by_workers and 2 in by_workers:
        for key, label in (("fanout_s", "fan-out"), ("wall_s", "wall")):
            eff = by_workers[1][key] / (2 * by_workers[2][key])
            print(f"parallel efficiency 1->2 workers ({label}): {eff:.0%}")


if __name__ == "__main__":
    main()
