"""Plain Aer, GPU against CPU, on small circuits: what one run costs on each."""

import time

from qiskit import transpile
from qiskit.circuit.random import random_circuit
from qiskit_aer import AerSimulator


def timed_runs(sim: AerSimulator, circuit: object, limit_s: float) -> tuple[list[float], object]:
    """Up to three runs; stop early once one takes over ``limit_s``."""
    times: list[float] = []
    result = None
    for _ in range(3):
        start = time.perf_counter()
        result = sim.run(circuit, shots=1).result()
        times.append(time.perf_counter() - start)
        if times[-1] > limit_s:
            break
    return times, result


for n in (2, 12, 16):
    c = random_circuit(n, 8, seed=3)
    c.save_probabilities()
    for dev in ("CPU", "GPU"):
        sim = AerSimulator(method="statevector", device=dev)
        times, r = timed_runs(sim, transpile(c, sim, optimization_level=1), 8)
        taken = r.results[0].time_taken  # type: ignore[attr-defined]
        print(f"{n}q {dev}: {[round(x, 4) for x in times]} s (Aer: {taken:.4f})", flush=True)
