"""SamplerV2 and EstimatorV2 on the ranks: one large PUB cut into blocks, small PUBs, broadcasting.

Arguments (optional): rows (default 40), rows_per_task (default: automatic), seed.
"""

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import ParameterVector
from qiskit.circuit.random import random_circuit

from qshpc import get_arguments, save_result
from qshpc.aer import EstimatorV2, SamplerV2

args = get_arguments()
rows = int(args.get("rows", 40))
options = {"rows_per_task": args["rows_per_task"]} if args.get("rows_per_task") else None

theta = ParameterVector("t", 8)
qr = QuantumRegister(4)
alpha, beta = ClassicalRegister(3, "alpha"), ClassicalRegister(2, "beta")
ansatz = QuantumCircuit(qr, alpha, beta)
for layer in range(2):
    for q in range(4):
        ansatz.ry(theta[4 * layer + q], q)
    for q in range(3):
        ansatz.cx(q, q + 1)
ansatz.measure([0, 1, 2], alpha)
ansatz.measure([3, 0], beta)
values = np.random.default_rng(5).uniform(0, np.pi, (rows, 8))

random = random_circuit(4, 4, seed=11)  # not ISA: transpiled on each rank
random.measure_all()
mid = QuantumCircuit(2, 2)  # a mid-circuit measurement: Aer samples it
mid.h(0)
mid.measure(0, 0)
mid.cx(0, 1)
mid.ry(theta[0], 1)
mid.measure(1, 1)

sampler = SamplerV2(default_shots=300, seed=args.get("seed"), options=options)
job = sampler.run(
    [
        (ansatz, values),
        (ansatz, values[:3].reshape(3, 1, 8), 50),
        random,
        (mid, [[0.3], [1.2], [2.0]]),
    ]
)
unitary = ansatz.remove_final_measurements(inplace=False)
observables = [["ZZII", "IIXX"], [{"ZIII": 0.5, "IYYI": -1.5}, "IIIZ"]]  # shape (2, 2)
letters = np.random.default_rng(9).choice(list("IXYZ"), (64, 4))
paulis = ["".join(row) for row in letters]
estimator = EstimatorV2(seed=args.get("seed"), options=options)
ejob = estimator.run(
    [
        (unitary, observables, values[:3].reshape(3, 1, 1, 8)),
        (unitary, "ZZZZ", values, 0.05),
        (unitary, paulis, values[0]),  # one row, 64 observables: split by elements
    ]
)
save_result({"sampler": job.result(), "estimator": ejob.result(), "job_id": job.job_id()})
