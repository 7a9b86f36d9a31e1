"""One circuit over the 4 ranks of a 2-node x 2-task Slurm job, through the primitives.

A ``target={"ranks": 4}`` task runs SamplerV2 and EstimatorV2 on a ``qubits``-wide
circuit (default 22) with ``QSHPC_DISTRIBUTE=always``: each PUB is split over the 4
ranks the call holds (an ``srun`` step pinned to their nodes). Rank 0 then runs the
sampler PUB on one rank (``never``) and Qiskit's exact estimator, for the test.
"""

import os

import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit
from qiskit.primitives import StatevectorEstimator

from qshpc import distribute_task, get, get_arguments, save_result
from qshpc.aer import EstimatorV2, SamplerV2

n = int(get_arguments().get("qubits", 22))
unitary = QuantumCircuit(n, name="big")
for q in range(n):
    unitary.ry(0.1 + 0.07 * q, q)
for q in range(n - 1):
    unitary.cx(q, q + 1)
unitary.rz(0.4, n - 1)
unitary.cx(n - 1, 0)
measured = unitary.copy()
measured.add_register(ClassicalRegister(6, "c"))
measured.measure([0, 1, 2, n - 3, n - 2, n - 1], range(6))
observables = [
    "Z" * n,
    "X" + "Z" * (n - 2) + "Y",
    {"I" * (n - 1) + "X": 0.5, "YY" + "I" * (n - 2): -1.5},
]


def sample():
    return SamplerV2(seed=5).run([(measured, None, 2000)]).result()[0].data.c.array


@distribute_task(target={"ranks": 4})
def big():
    os.environ["QSHPC_DISTRIBUTE"] = "always"
    evs = EstimatorV2().run([(unitary, observables)]).result()[0].data.evs
    return sample(), np.asarray(evs)


split = get(big())
os.environ["QSHPC_DISTRIBUTE"] = "never"
one = sample()
exact = np.asarray(StatevectorEstimator().run([(unitary, observables)]).result()[0].data.evs)
save_result({"split": split, "one": one, "exact": exact})
