"""SamplerV2 and EstimatorV2 with PUBs split over 2 ranks (QSHPC_DISTRIBUTE forces it) and the
same PUBs on one rank, in one job: the test compares them and Qiskit's exact values.

Run with ``QSHPC_DISTRIBUTE=10`` (or any N <= qubits): the ``qubits``-wide PUBs (default 12)
are split, the 4-qubit ones run as ordinary blocks in the same run.
"""

import os

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import ParameterVector
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp, random_pauli_list

from qshpc import distribute_task, get, get_arguments, save_result
from qshpc.aer import EstimatorV2, SamplerV2

n = int(get_arguments().get("qubits", 12))


def ansatz(width, measure):
    theta = ParameterVector("t", 2 * width)
    qr = QuantumRegister(width)
    c = QuantumCircuit(qr, name=f"ansatz{width}")
    for layer in range(2):
        for q in range(width):
            c.ry(theta[layer * width + q], q)
            c.rz(0.1 * (q + 1), q)
        for q in range(width - 1):
            c.cx(q, q + 1)
    if measure:
        m = min(5, width - 1)
        a, b = ClassicalRegister(m, "a"), ClassicalRegister(2, "b")
        c.add_register(a, b)
        c.measure(range(m), a)
        c.measure([width - 1, 2], b)
    return c


values = np.random.default_rng(3).uniform(0, np.pi, (3, 2 * n))
small_values = np.random.default_rng(4).uniform(0, np.pi, (2, 8))
fixed = ansatz(n, True).assign_parameters(values[0])
many = QuantumCircuit(
    22, name="many"
)  # more measured qubits than exact sampling takes: Aer samples
for q in range(22):
    many.ry(0.2 + 0.1 * q, q)
for q in range(21):
    many.cx(q, q + 1)
many.measure_all()
sampler_pubs = [
    (ansatz(n, True), values, 400),
    (ansatz(4, True), small_values, 300),
    fixed,
    (many, None, 200),
]
unitary = ansatz(n, False)
paulis = [
    "Z" * n,
    "X" + "Z" * (n - 2) + "Y",
    {"I" * (n - 1) + "X": 0.5, "YY" + "I" * (n - 2): -1.5},
    # more terms than qshpc.aer.v2.estimate.WHOLE_ABOVE: saved as one operator (hunt13a)
    SparsePauliOp(random_pauli_list(n, 80, seed=5, phase=False), np.linspace(-1, 1, 80)),
]
estimator_pubs = [
    (unitary, paulis, values[:2].reshape(2, 1, 2 * n)),
    (ansatz(4, False), "XYZI", small_values),
]


@distribute_task()
def square(i):
    return i * i


def v1():
    from qshpc.aer import Sampler

    bound = ansatz(n, True).assign_parameters(values[1])
    exact = Sampler().run([fixed, bound]).result().quasi_dists
    shots = Sampler(options={"shots": 500, "seed": 3}).run(ansatz(n, True), [values[0], values[2]])
    return [dict(d) for d in exact], [dict(d) for d in shots.result().quasi_dists]


@distribute_task(target={"ranks": 2})
def inside():
    """SamplerV2 and the V1 Sampler in a task that holds 2 ranks: they split over them."""
    return SamplerV2(seed=11).run(sampler_pubs[:1]).result()[0].data.a.array, v1()


held = inside()
small = [square(i) for i in range(8)]
split = {
    "sampler": SamplerV2(seed=11).run(sampler_pubs).result(),
    "estimator": EstimatorV2(seed=11).run(estimator_pubs).result(),
}
os.environ["QSHPC_DISTRIBUTE"] = "never"  # the same PUBs on one rank each
one = {
    "sampler": SamplerV2(seed=11).run(sampler_pubs).result(),
    "estimator": EstimatorV2(seed=11).run(estimator_pubs).result(),
}
one["v1"] = v1()
exact = [np.asarray(r.data.evs) for r in StatevectorEstimator().run(estimator_pubs).result()]
inside_v2, split["v1"] = get(held)
save_result({"split": split, "one": one, "exact": exact, "small": get(small), "inside": inside_v2})
