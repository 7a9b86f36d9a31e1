"""Energy scan of a small ansatz with qiskit-aer's EstimatorV2, one task per chunk of the grid.

Arguments (all optional):
    qubits: ansatz width, 2 to 4 (default 2).
    points: grid points per parameter axis (default 9; the grid has points**2 points).
    chunk: grid points per task (default 16).
    hamiltonian: list of (pauli string, coefficient) pairs (default: a transverse-field
        Ising chain, ZZ couplings and X fields).

The ansatz has two parameters (a layer of RY(a) and a layer of RY(b) around a
CNOT ladder). Each task transpiles the template once with this rank's cached
pass manager and evaluates its whole chunk as ONE EstimatorV2 pub (Aer binds
the parameters itself), so tasks stay few and large.

Run:
    qshpc run examples/parameter_sweep.py --workers 2
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2

from qshpc import distribute_task, get, get_arguments, save_result
from qshpc.aer import get_pass_manager, sim_spec


def ansatz(qubits: int) -> QuantumCircuit:
    """RY(a) layer, CNOT ladder, RY(b) layer."""
    a, b = Parameter("a"), Parameter("b")
    circuit = QuantumCircuit(qubits)
    for q in range(qubits):
        circuit.ry(a, q)
    for q in range(qubits - 1):
        circuit.cx(q, q + 1)
    for q in range(qubits):
        circuit.ry(b, q)
    return circuit


def ising(qubits: int, field: float = 0.5) -> list[tuple[str, float]]:
    """Transverse-field Ising chain: -sum Z_i Z_{i+1} - field * sum X_i."""
    terms = []
    for q in range(qubits - 1):
        label = ["I"] * qubits
        label[q] = label[q + 1] = "Z"
        terms.append(("".join(label), -1.0))
    for q in range(qubits):
        label = ["I"] * qubits
        label[q] = "X"
        terms.append(("".join(label), -field))
    return terms


@distribute_task()
def energies(
    circuit: QuantumCircuit, terms: list[tuple[str, float]], points: list[list[float]]
) -> list[float]:
    """Exact energies of one chunk of the grid, as one EstimatorV2 pub."""
    isa = get_pass_manager(sim_spec()).run(circuit)
    observable = SparsePauliOp.from_list(terms).apply_layout(isa.layout)
    result = EstimatorV2().run([(isa, observable, np.asarray(points))]).result()
    return [float(e) for e in np.ravel(result[0].data.evs)]


arguments: dict[str, Any] = get_arguments()
qubits = int(arguments.get("qubits", 2))
points = int(arguments.get("points", 9))
chunk = int(arguments.get("chunk", 16))
terms = [(str(p), float(c)) for p, c in arguments.get("hamiltonian", ising(qubits))]

axis = np.linspace(0.0, np.pi, points)
grid = [[float(a), float(b)] for a in axis for b in axis]
circuit = ansatz(qubits)
chunks = [grid[i : i + chunk] for i in range(0, len(grid), chunk)]
values = get([energies(circuit, terms, part) for part in chunks])
flat = [e for part in values for e in part]
best = int(np.argmin(flat))
save_result(
    {
        "parameters": grid,
        "energies": flat,
        "minimum": {"parameters": grid[best], "energy": flat[best]},
    }
)
