"""Parameter sweep as one task per point vs one Aer batch with parameter binds.

Workload: an energy scan of a hardware-efficient ansatz (default 10 qubits, 3
layers, 2 parameters per qubit per layer... bound from one scan parameter)
over P points (default 400), exact expectation value of a transverse-field
Ising Hamiltonian.

Baseline: the best single process: transpile the template once, one
AerSimulator run with ``parameter_binds`` for every point and
``save_expectation_value`` (what ``qshpc.aer.run_sweep`` does in a task).

qshpc: the naive program, one ``@distribute_task`` call per point, each
``qshpc.aer.Estimator().run(template, observable, [theta])``, on 1 and 2
workers, with cooperative groups (the default) and without
(``QSHPC_COOP_WIDTH=1``, the previous approach: one transpile and one Aer
run per task).

Run:
    python benchmarks/sweep.py
    python benchmarks/sweep.py --points 200 --qubits 8 --workers 1 2
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
from qshpc.aer import Estimator


@distribute_task()
def energy(circuit, observable, theta):
    return float(Estimator().run(circuit, observable, [theta]).result().values[0])


a = get_arguments()
start = time.perf_counter()
values = get([energy(a["circuit"], a["observable"], t) for t in a["thetas"]])
print(f"BENCH fanout_s={time.perf_counter() - start:.4f} n={len(values)}", flush=True)
save_result({"energies": values})
"""


def ansatz(qubits: int, layers: int):  # type: ignore[no-untyped-def]
    """RY/RZ layers with a CNOT ladder; every angle is a multiple of one parameter."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    theta = Parameter("theta")
    circuit = QuantumCircuit(qubits)
    for layer in range(layers):
        for q in range(qubits):
            circuit.ry(theta * (1 + 0.1 * q + 0.01 * layer), q)
            circuit.rz(theta * (0.5 + 0.05 * q), q)
        for q in range(qubits - 1):
            circuit.cx(q, q + 1)
    return circuit


def ising(qubits: int):  # type: ignore[no-untyped-def]
    from qiskit.quantum_info import SparsePauliOp

    terms = []
    for q in range(qubits - 1):
        label = ["I"] * qubits
        label[q] = label[q + 1] = "Z"
        terms.append(("".join(label)[::-1], -1.0))
    for q in range(qubits):
        label = ["I"] * qubits
        label[q] = "X"
        terms.append(("".join(label)[::-1], -0.5))
    return SparsePauliOp.from_list(terms)


def baseline(circuit, observable, thetas: list[float]) -> float:  # type: ignore[no-untyped-def]
    """Transpile once, one Aer run binding every point, on one core."""
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_aer import AerSimulator
    from qiskit_aer.library import SaveExpectationValue

    t0 = time.perf_counter()
    sim = AerSimulator(max_parallel_threads=1, max_parallel_experiments=0)
    pm = generate_preset_pass_manager(optimization_level=1, backend=sim)
    isa = pm.run(circuit)
    layout = isa.layout.final_index_layout() if isa.layout else list(range(circuit.num_qubits))
    isa.append(SaveExpectationValue(observable, label="ev"), [isa.qubits[q] for q in layout])
    param = next(iter(isa.parameters))
    result = sim.run([isa], shots=1, parameter_binds=[{param: thetas}]).result()
    assert len(result.results) == len(thetas)
    return time.perf_counter() - t0


def qshpc_run(program: Path, args: Path, workdir: Path, ranks: int, width: str) -> float:
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        raise SystemExit("mpiexec not found (pip install mpich)")
    job_dir = Path(tempfile.mkdtemp(prefix=f"job-{ranks}-{width}-", dir=workdir))
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "QSHPC_ROOT_WORKS": "0", "QSHPC_COOP_WIDTH": width}
    cmd = [mpiexec, "-n", str(ranks), sys.executable, "-m", "qshpc", "run", str(program),
           "--arguments", str(args), "--job-dir", str(job_dir)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    match = re.search(r"BENCH fanout_s=([0-9.]+)", proc.stdout)
    if match is None:
        raise SystemExit(f"no BENCH line:\n{proc.stdout}\n{proc.stderr}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=400)
    parser.add_argument("--qubits", type=int, default=10)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    opts = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from qshpc import save_arguments

    circuit = ansatz(opts.qubits, opts.layers)
    observable = ising(opts.qubits)
    thetas = [float(t) for t in np.linspace(0.0, np.pi, opts.points)]
    base = min(baseline(circuit, observable, thetas) for _ in range(opts.repeat))
    print(
        f"workload: {opts.points} points, {opts.qubits} qubits, {opts.layers} layers, "
        f"exact <H>; {os.cpu_count()} cores"
    )
    print(
        f"baseline (1 process, 1 core, 1 transpile, 1 Aer run with parameter binds): {base:.2f} s"
    )
    print(f"{'workers':>8} {'groups':>8} {'fan-out s':>10} {'vs baseline':>12}")
    with tempfile.TemporaryDirectory(prefix="qshpc-sweep-") as tmp:
        workdir = Path(tmp)
        program = workdir / "sweep_program.py"
        program.write_text(PROGRAM)
        args = workdir / "args.h5"
        save_arguments(args, {"circuit": circuit, "observable": observable, "thetas": thetas})
        for workers in opts.workers:
            for width, label in (("1", "off"), ("16", "on")):
                runs = [
                    qshpc_run(program, args, workdir, workers + 1, width)
                    for _ in range(opts.repeat)
                ]
                best = min(runs)
                print(f"{workers:>8} {label:>8} {best:>10.2f} {best / base:>11.2f}x")


if __name__ == "__main__":
    main()
