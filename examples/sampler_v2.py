"""The seed program's fan-out with Qiskit 2's SamplerV2, spread over the ranks by qshpc.

Arguments (all optional):
    circuits: measured circuits to sample (default: 8 random 4-qubit circuits).
    shots: shots per circuit (default 1024).
    sweep_rows: rows of a parameter sweep sampled as one PUB (default 64).

``SamplerV2().run(pubs)`` on rank 0 returns at once; each PUB becomes a task
and the sweep's PUB is cut into blocks of rows, one task each. Circuits that
are not ISA for Aer (random circuits) are transpiled once per rank. With
``--seed`` the counts are bit-identical on any number of ranks. The result is
saved as Qiskit's own ``PrimitiveResult`` (``qshpc result`` summarizes it,
``qshpc plot`` draws it, ``qshpc.open_job(id).result()`` returns it).

Run:
    qshpc run examples/sampler_v2.py --workers 2 --seed 7
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.circuit.random import random_circuit

from qshpc import get_arguments, save_result
from qshpc.aer import SamplerV2


def default_circuits(n: int = 8) -> list[QuantumCircuit]:
    circuits = []
    for i in range(n):
        circuit = random_circuit(4, 4, seed=i)
        circuit.measure_all()
        circuits.append(circuit)
    return circuits


def sweep_circuit(qubits: int = 4) -> QuantumCircuit:
    theta = ParameterVector("theta", qubits)
    circuit = QuantumCircuit(qubits)
    for q in range(qubits):
        circuit.ry(theta[q], q)
    for q in range(qubits - 1):
        circuit.cx(q, q + 1)
    circuit.measure_all()
    return circuit


arguments: dict[str, Any] = get_arguments()
circuits = arguments.get("circuits") or default_circuits()
shots = int(arguments.get("shots", 1024))
rows = int(arguments.get("sweep_rows", 64))

sweep = sweep_circuit()
angles = np.linspace(0, np.pi, rows)[:, None] * np.ones(sweep.num_parameters)

job = SamplerV2(default_shots=shots).run([*circuits, (sweep, angles)])
result = job.result()
counts = [pub.join_data().get_counts() for pub in result[: len(circuits)]]
save_result({"counts": counts, "shots": shots, "result": result})
