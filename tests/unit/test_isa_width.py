"""A circuit transpiled onto a large device is sized by the qubits it acts on, in V1 too.

Qiskit users transpile for a backend (a 127-qubit ISA circuit acting on 3 of its
qubits) and run that circuit on Aer, which drops the idle qubits. The V1
Sampler sized its split by the declared width: the seed program's
``Sampler().run(circuit)`` of such a circuit was refused as needing about 10^25
ranks (SamplerV2 and the V1 Estimator already sized by the active width).
"""

from __future__ import annotations

import pytest

pytest.importorskip("qiskit_aer")


def _ghz_on_heavy_hex() -> object:
    from qiskit import QuantumCircuit, transpile
    from qiskit.transpiler import CouplingMap

    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.measure_all()
    return transpile(
        qc, coupling_map=CouplingMap.from_heavy_hex(7),
        basis_gates=["rz", "sx", "x", "ecr", "measure"], optimization_level=1, seed_transpiler=1,
    )  # fmt: skip


def test_the_v1_sampler_runs_a_transpiled_circuit_on_a_large_device() -> None:
    from qshpc.aer import Sampler

    isa = _ghz_on_heavy_hex()
    assert isa.num_qubits > 100  # type: ignore[attr-defined]
    dist = Sampler().run(isa).result().quasi_dists[0]
    big = {k: v for k, v in dist.items() if v > 1e-9}
    assert set(big) == {0, 7} and all(abs(v - 0.5) < 1e-9 for v in big.values())
    counts = Sampler().run(isa, shots=200, seed=3).result().quasi_dists[0]
    assert set(counts) <= {0, 7} and abs(sum(counts.values()) - 1) < 1e-9


def test_a_circuit_acting_on_too_many_qubits_is_still_refused_by_its_active_width() -> None:
    from qiskit import QuantumCircuit

    from qshpc.aer import Sampler
    from qshpc.errors import UserError

    wide = QuantumCircuit(60)
    wide.h(range(60))
    wide.measure_all()
    with pytest.raises(UserError, match="has 60 qubits"):
        Sampler().run(wide).result()


def test_the_v1_estimator_names_apply_layout_for_an_observable_of_the_logical_circuit() -> None:
    from qiskit import QuantumCircuit, transpile
    from qiskit.quantum_info import SparsePauliOp
    from qiskit.transpiler import CouplingMap

    from qshpc.aer import Estimator
    from qshpc.errors import UserError

    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    isa = transpile(qc, coupling_map=CouplingMap.from_heavy_hex(3),
                    basis_gates=["rz", "sx", "x", "ecr"], seed_transpiler=1)  # fmt: skip
    with pytest.raises(UserError, match=r"acts on 3 qubits, the circuit has 19; .*apply_layout"):
        Estimator().run(isa, SparsePauliOp("ZZI")).result()
    value = Estimator().run(isa, SparsePauliOp("ZZI").apply_layout(isa.layout)).result().values[0]
    assert abs(value - 1.0) < 1e-9  # GHZ: Z Z on two of its qubits
