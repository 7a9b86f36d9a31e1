"""Hunt 13a: the V2 primitives against Aer's own (final measurements in EstimatorV2,
``simulator_metadata``, sampler circuits without classical registers)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter
from qiskit.quantum_info import DensityMatrix, SparseObservable, SparsePauliOp

from qshpc.aer import EstimatorV2, SamplerV2


def _dephased_value(circuit: QuantumCircuit, measured: list[int], label: str) -> float:
    """<label> on the state of ``circuit`` after measuring ``measured`` (the mixture)."""
    rho = DensityMatrix(circuit).data
    index = np.arange(2**circuit.num_qubits)
    for q in measured:  # the coherences between different outcomes of a measured qubit go
        bit = (index >> q) & 1
        rho = rho * (bit[:, None] == bit[None, :])
    value = np.trace(rho @ SparsePauliOp(label).to_matrix())
    return float(np.real(value))


def test_final_measurements_collapse_the_measured_qubits_as_aer_reads_them() -> None:
    # was: <XX> of a measured Bell pair 1.0 (the measurements ignored); Aer's EstimatorV2 0.0
    theta = Parameter("t")
    qc = QuantumCircuit(3, 2)
    qc.ry(theta, 0)
    qc.h(2)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])  # qubit 2 is not measured: its X survives
    labels = ["IXX", "IZZ", "XZI", "XII", "IIX", "YYI", "ZIZ"]
    values = [[0.4], [1.3]]
    evs = EstimatorV2().run([(qc, labels, np.array(values)[:, None, :])]).result()[0].data.evs
    bare = qc.remove_final_measurements(inplace=False)
    for r, (t,) in enumerate(values):
        bound = bare.assign_parameters([t])
        want = [_dephased_value(bound, [0, 1], lb) for lb in labels]
        assert np.allclose(evs[r], want, atol=1e-12)
    assert evs[0][0] == 0.0 and abs(evs[0][3] - 1.0) < 1e-12  # X on the measured qubits: 0


def test_final_measurements_match_aer_within_its_shot_noise() -> None:
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.ry(0.7, 1)
    qc.cx(0, 1)
    qc.measure_all()
    obs = ["XX", "ZZ", "ZI", "IX", "YZ"]
    ours = EstimatorV2().run([(qc, obs)]).result()[0].data.evs
    aer = AerEstimator(options={"run_options": {"shots": 20000, "seed_simulator": 1}})
    theirs = aer.run([(qc, obs)]).result()[0].data.evs
    assert np.max(np.abs(ours - theirs)) < 0.04  # Aer averages 20000 collapsed shots


def test_a_projector_on_a_measured_qubit_reads_the_collapsed_state() -> None:
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.measure_all()
    evs = EstimatorV2().run([(qc, [SparseObservable("+"), SparseObservable("0")])]).result()
    assert np.allclose(evs[0].data.evs, [0.5, 0.5], atol=1e-12)  # pure |+>: 1.0 and 0.5


def test_pub_results_carry_simulator_metadata_as_aer_results_do() -> None:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    est = EstimatorV2(options={"backend_options": {"method": "density_matrix"}})
    meta = est.run([(qc, "ZZ")]).result()[0].metadata
    assert set(meta) == {"target_precision", "circuit_metadata", "simulator_metadata"}
    assert meta["simulator_metadata"]["method"] == "density_matrix"
    m = qc.measure_all(inplace=False)
    meta = SamplerV2(seed=1).run([(m, None, 8)]).result()[0].metadata
    assert set(meta) == {"shots", "circuit_metadata", "simulator_metadata"}
    assert meta["simulator_metadata"] == {
        "method": "statevector",
        "precision": "double",
        "blocks": 1,
    }


def test_a_circuit_without_registers_warns_and_comes_back_empty_beside_others() -> None:
    # was: PubError before any task; Aer's SamplerV2 and StatevectorSampler warn, give DataBin()
    a = Parameter("a")
    empty = QuantumCircuit(2)
    empty.rx(a, 0)
    q = QuantumRegister(3)
    alpha, beta = ClassicalRegister(2, "alpha"), ClassicalRegister(1, "beta")
    named = QuantumCircuit(q, alpha, beta)
    named.x(2)
    named.measure([0, 1], alpha)
    named.measure(2, beta)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = SamplerV2(seed=2).run([(empty, np.zeros((3, 1)), 5), named], shots=4).result()
    assert [str(w.message)[:40] for w in caught] == ["The 0-th pub's circuit has no output cla"]
    assert caught[0].filename == __file__  # points at the caller's run
    assert result[0].data.shape == (3,) and list(result[0].data) == []
    assert result[0].metadata["shots"] == 5
    assert result[1].data.alpha.get_counts() == {"00": 4}
    assert result[1].data.beta.get_counts() == {"1": 4}


@pytest.mark.parametrize("precision", [0.0, 0.1])
def test_broadcast_shapes_match_aer(precision: float) -> None:
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    t = [Parameter("x"), Parameter("y")]
    qc = QuantumCircuit(2)
    qc.ry(t[0], 0)
    qc.rx(t[1], 1)
    qc.cx(0, 1)
    values = np.arange(12).reshape(2, 3, 2) * 0.3
    pub = (qc, ["ZZ", "XI", "IY"], values, precision)
    ours = EstimatorV2(seed=3).run([pub]).result()[0].data
    theirs = AerEstimator().run([pub]).result()[0].data
    assert ours.evs.shape == theirs.evs.shape == ours.stds.shape == (2, 3)
    assert ours.evs.dtype == theirs.evs.dtype
    assert np.allclose(ours.evs, theirs.evs, atol=1e-12 if precision == 0 else 0.6)


@pytest.mark.parametrize("method", ["statevector", "density_matrix"])
def test_a_wide_projector_is_one_saved_operator_with_the_same_values(method: str) -> None:
    # "0" * 12 was 4,096 save instructions (8 s); one SparsePauliOp save now (< 1 s)
    from qiskit.quantum_info import Statevector

    from qshpc.aer.v2.estimate import WHOLE_ABOVE

    n = 7
    x = Parameter("x")
    qc = QuantumCircuit(n)
    qc.h(range(n))
    qc.ry(x, 2)
    qc.cx(0, 1)
    qc.rz(0.4, 3)
    wide = SparseObservable("0+r1-l0")  # 2**7 = 128 Pauli terms
    assert len(wide.as_paulis()) > WHOLE_ABOVE
    small = SparseObservable("IIIIZ0I")
    rows = np.array([[0.3], [1.1]])
    est = EstimatorV2(options={"backend_options": {"method": method}})
    evs = est.run([(qc, [[wide], [small]], rows[None, :, :])]).result()[0].data.evs
    assert evs.shape == (2, 2)
    for r, (t,) in enumerate(rows):
        state = Statevector(qc.assign_parameters([t]))
        for o, obs in enumerate((wide, small)):
            want = float(np.real(state.expectation_value(obs.as_paulis())))
            assert abs(evs[o, r] - want) < 1e-12


def test_large_observables_sharing_their_terms_keep_one_value_per_pauli() -> None:
    from qshpc.aer.v2.estimate import _whole_pays

    labels = [f"{i:07b}".replace("0", "Z").replace("1", "X") for i in range(100)]
    one = [(labels, np.ones(100))]
    assert _whole_pays(one)
    shared = [(labels, np.full(100, float(k))) for k in range(5)]  # 500 terms, 100 Paulis
    assert not _whole_pays(shared)
    qc = QuantumCircuit(7)
    qc.h(range(7))
    qc.rz(0.3, 1)
    observables = [SparsePauliOp(labels, np.full(100, k + 1.0)) for k in range(3)]
    evs = EstimatorV2().run([(qc, observables)]).result()[0].data.evs
    base = EstimatorV2().run([(qc, observables[0])]).result()[0].data.evs
    assert np.allclose(evs, [base, 2 * base, 3 * base], atol=1e-12)


def test_precision_noise_with_seed_simulator_is_aers_own() -> None:
    # was: qshpc's own stream keyed by the seed; with Aer's seed_simulator the same draws as Aer
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator

    a = Parameter("a")
    qc = QuantumCircuit(2)
    qc.rx(a, 0)
    qc.cx(0, 1)
    pubs = [(qc, ["ZZ", "XX"], np.linspace(0, 3, 5)[:, None, None], 0.05), (qc, "ZZ", [0.3])]
    options = {"run_options": {"seed_simulator": 42}, "default_precision": 0.1}
    ours = EstimatorV2(options=options).run(pubs).result()
    theirs = AerEstimator(options=options).run(pubs).result()
    for o, t in zip(ours, theirs, strict=True):
        assert np.allclose(o.data.evs, t.data.evs, rtol=0, atol=1e-12)
        assert np.array_equal(o.data.stds, t.data.stds)
    assert ours.metadata["seed"] == 42
    # the primitive's own seed keeps qshpc's stream (reproducible on any rank count)
    own = EstimatorV2(seed=42, default_precision=0.1).run(pubs).result()
    assert not np.allclose(own[0].data.evs, theirs[0].data.evs, atol=1e-6)
