"""Session 16 hunt (parity16): researchers' programs on the current code, real Aer."""

from __future__ import annotations

import pytest

pytest.importorskip("qiskit_aer")


def _wide_isa(measure: bool):  # type: ignore[no-untyped-def]
    from qiskit import QuantumCircuit, transpile
    from qiskit.providers.fake_provider import GenericBackendV2

    qc = QuantumCircuit(5)
    qc.h(0)
    for i in range(4):
        qc.cx(i, i + 1)
    if measure:
        qc.measure_all()
    backend = GenericBackendV2(127, seed=1)
    return transpile(qc, backend, optimization_level=1, seed_transpiler=1)


def test_a_127_qubit_isa_circuit_on_5_qubits_is_sized_as_5() -> None:
    from qshpc.aer.sizing import active_width, estimate_for_circuits

    isa = _wide_isa(measure=True)
    assert isa.num_qubits == 127
    assert active_width(isa) == 5
    assert estimate_for_circuits([isa]).num_qubits == 5


def test_sampler_v2_runs_a_127_qubit_isa_circuit() -> None:
    from qshpc.aer import SamplerV2

    counts = SamplerV2().run([_wide_isa(measure=True)], shots=200).result()[0].data.meas
    assert set(counts.get_counts()) <= {"00000", "11111"}
    assert counts.num_shots == 200


def test_estimator_v2_runs_a_127_qubit_isa_circuit() -> None:
    from qiskit.quantum_info import SparsePauliOp

    from qshpc.aer import EstimatorV2

    isa = _wide_isa(measure=False)
    obs = [SparsePauliOp(p).apply_layout(isa.layout) for p in ("ZZIII", "XXXXX", "ZIIII")]
    evs = EstimatorV2().run([(isa, obs)]).result()[0].data.evs
    assert evs == pytest.approx([1.0, 1.0, 0.0], abs=1e-9)
