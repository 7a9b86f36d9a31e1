"""Circuits transpiled onto a 57-qubit device (heavy hex), acting on 12 of its qubits, split
over 2 ranks (run with ``QSHPC_DISTRIBUTE=10``), then on one rank (``never``): SamplerV2,
EstimatorV2 and the V1 Sampler in a task holding 2 ranks. The test compares them with each
other and with Qiskit's exact values of the 12-qubit circuit."""

import os

from qiskit import transpile
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit.transpiler import CouplingMap

from qshpc import distribute_task, get, save_result
from qshpc.aer import EstimatorV2, Sampler, SamplerV2

qc = random_circuit(12, 4, max_operands=2, seed=3)
device = CouplingMap.from_heavy_hex(5)  # 57 qubits
isa = transpile(qc, coupling_map=device, basis_gates=["u", "cx"], seed_transpiler=1)
labels = [("Z" * 12, 1.0), ("X" + "I" * 11, 0.5), ("IIZZ" + "I" * 8, -0.25)]
observable = SparsePauliOp.from_list(labels)
on_device = observable.apply_layout(isa.layout)
# X on a qubit the transpiled circuit leaves idle (|0>): it reads 0
acted = {isa.find_bit(q).index for inst in isa.data for q in inst.qubits}
idle = min(set(range(isa.num_qubits)) - acted)
idle_x = SparsePauliOp("".join("X" if q == idle else "I" for q in reversed(range(isa.num_qubits))))
measured = qc.copy()
measured.measure_all()
isa_measured = transpile(measured, coupling_map=device, basis_gates=["u", "cx"], seed_transpiler=1)
# measure_all() after transpiling: 57 qubits measured, 12 acted on (the 45 others read 0)
after = isa.copy()
after.measure_all()


@distribute_task(target={"ranks": 2})
def v1(circuit):
    return Sampler().run(circuit).result().quasi_dists[0]


def runs():
    pubs = [(isa, on_device), (isa, idle_x)]
    est = EstimatorV2().run(pubs).result()
    samp = SamplerV2(seed=11).run([isa_measured, after], shots=2000).result()
    return {
        "evs": [float(r.data.evs) for r in est],
        "counts": samp[0].data.meas.get_counts(),
        "v1": dict(get(v1(isa_measured))),
        "after_counts": samp[1].data.meas.get_counts(),
        "after_v1": {str(k): v for k, v in get(v1(after)).items()},
        "widths": [isa.num_qubits, isa_measured.num_qubits],
    }


split = runs()
os.environ["QSHPC_DISTRIBUTE"] = "never"
one = runs()
exact = Statevector(qc)
save_result(
    {
        "split": split,
        "one": one,
        "exact_ev": float(exact.expectation_value(observable).real),
        "exact_p": {int(k, 2): float(v) for k, v in exact.probabilities_dict().items()},
        "physical": list(isa.layout.final_index_layout()),
    }
)
