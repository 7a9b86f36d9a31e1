"""The seed program's fan-out with qiskit-aer's SamplerV2 (counts, not quasi-probabilities).

Arguments (all optional):
    circuits: measured circuits to sample (default: 8 random 4-qubit circuits).
    shots: shots per circuit (default 1024).

Each task transpiles its circuit with this rank's cached pass manager (random
circuits hold gates Aer rejects untranspiled) and samples it with the task's
seed, so a rerun with the same ``--seed`` gives the same counts on any rank.

Run:
    qshpc run examples/sampler_v2.py --workers 2 --seed 7
"""

from __future__ import annotations

from typing import Any

from qiskit import QuantumCircuit
from qiskit.circuit.random import random_circuit
from qiskit_aer.primitives import SamplerV2

from qshpc import current_task, distribute_task, get, get_arguments, save_result
from qshpc.aer import get_pass_manager, sim_spec


@distribute_task()
def sample_counts(circuit: QuantumCircuit, shots: int) -> dict[str, int]:
    """Counts of one circuit from SamplerV2 (seeded from the task when the job has a seed)."""
    isa = get_pass_manager(sim_spec()).run(circuit)
    task = current_task()
    seed = task.seed if task is not None else None
    sampler = SamplerV2(default_shots=shots, seed=seed)
    pub = sampler.run([isa]).result()[0]
    counts: dict[str, int] = pub.join_data().get_counts()
    return counts


def default_circuits(n: int = 8) -> list[QuantumCircuit]:
    circuits = []
    for i in range(n):
        circuit = random_circuit(4, 4, seed=i)
        circuit.measure_all()
        circuits.append(circuit)
    return circuits


arguments: dict[str, Any] = get_arguments()
circuits = arguments.get("circuits") or default_circuits()
shots = int(arguments.get("shots", 1024))

results = get([sample_counts(circuit, shots) for circuit in circuits])
save_result({"counts": results, "shots": shots})
