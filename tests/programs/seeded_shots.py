"""Sampled counts that depend only on the job seed and the task index."""

from qiskit.circuit.random import random_circuit

from qshpc import distribute_task, get, save_result
from qshpc.aer import Sampler

circuits = []
for i in range(9):
    c = random_circuit(4, 4, seed=100 + i)
    c.measure_all()
    circuits.append(c)


@distribute_task()
def sample(circuit):
    return Sampler(options={"shots": 2000}).run(circuit).result().quasi_dists[0]


save_result({"results": get([sample(c) for c in circuits])})
