"""Plain Aer: devices, then a 20-qubit run on the GPU (three settings) against the CPU."""

import numpy as np
from aer_small import timed_runs
from qiskit import transpile
from qiskit.circuit.random import random_circuit
from qiskit_aer import AerSimulator

print("aer devices:", AerSimulator().available_devices(), flush=True)
c = random_circuit(20, 10, seed=5)
c.save_probabilities()
probs = {}
settings: tuple[tuple[str, str, dict[str, object]], ...] = (
    ("CPU", "CPU", {}),
    ("GPU", "GPU", {}),
    ("GPU single", "GPU", {"precision": "single"}),
    ("GPU no-batch", "GPU", {"batched_shots_gpu": False, "blocking_enable": False}),
)
for label, dev, opts in settings:
    sim = AerSimulator(method="statevector", device=dev, **opts)
    times, r = timed_runs(sim, transpile(c, sim, optimization_level=1), 20)
    probs[label] = np.asarray(r.data(0)["probabilities"])  # type: ignore[attr-defined]
    meta = r.results[0]  # type: ignore[attr-defined]
    print(f"20q {label}: {[round(x, 3) for x in times]} s, device {meta.metadata.get('device')}")
print("max |p_cpu - p_gpu|", float(np.max(np.abs(probs["CPU"] - probs["GPU"]))), flush=True)
