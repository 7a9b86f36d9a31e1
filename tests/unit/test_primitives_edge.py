"""Edge cases of the Aer-backed primitives (V1 Sampler/Estimator/run_sweep, SamplerV2/EstimatorV2)
against exact references: what the exact path must not read off the final state, what Aer must
be given in a form it runs, and what must be refused with a clear message."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("qiskit_aer")

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit.classical import expr
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import Kraus, Pauli, Statevector

import qshpc.aer
from qshpc.aer import EstimatorV2, Sampler, SamplerV2
from qshpc.aer.v2.pubs import PubError

pytestmark = pytest.mark.usefixtures("fresh_aer")  # tests/unit/conftest.py


def v1(circuit: QuantumCircuit, shots: int | None = None) -> dict[int, float]:
    result = Sampler(options={"shots": shots, "seed": 5}).run(circuit).result()
    return dict(result.quasi_dists[0])


def v2_counts(circuit: QuantumCircuit, shots: int = 400, register: str = "c") -> dict[str, int]:
    result = SamplerV2(seed=5, default_shots=shots).run([circuit]).result()[0]
    counts: dict[str, int] = result.data[register].get_counts()
    return counts


# -- what the final state does not say ---------------------------------------------------------


def test_store_into_a_clbit_is_not_read_off_the_final_state() -> None:
    """``store`` writes clbits: the exact path (final measurements -> marginal) ignored it and
    returned the measured values only ({0: .5, 1: .5} where clbit 1 is always set)."""
    qc = QuantumCircuit(1, 2)
    qc.x(0)
    qc.measure(0, 0)
    qc.store(qc.clbits[1], expr.lift(True))
    assert v1(qc) == {3: 1.0}
    assert v1(qc, shots=50) == {3: 1.0}
    assert v2_counts(qc) == {"11": 400}
    over = QuantumCircuit(1, 1)  # a store after the measurement overwrites it
    over.x(0)
    over.measure(0, 0)
    over.store(over.clbits[0], expr.lift(False))
    assert v1(over) == {0: 1.0}
    assert v2_counts(over) == {"0": 400}


def test_noise_channels_are_sampled_not_one_branch() -> None:
    """A ``kraus`` in the circuit is a mixture; the statevector method's one exact shot took
    one random branch of it ({1: 1.0} or {0: 1.0}; the reference is 50/50)."""
    flip = Kraus([np.sqrt(0.5) * np.eye(2), np.sqrt(0.5) * np.diag([1.0, -1.0])])
    qc = QuantumCircuit(1, 1)
    qc.h(0)
    qc.append(flip, [0])  # full dephasing: |+> becomes the maximally mixed state
    qc.h(0)
    qc.measure(0, 0)
    for dist in (v1(qc), v1(qc, shots=4000)):
        assert dist[0] == pytest.approx(0.5, abs=0.05) and dist[1] == pytest.approx(0.5, abs=0.05)
    counts = v2_counts(qc, shots=4000)
    assert counts["0"] == pytest.approx(2000, abs=200)
    with pytest.raises(PubError, match="'kraus'"):
        EstimatorV2().run([(qc.remove_final_measurements(inplace=False), "Z")])


def test_initialize_after_gates_is_a_reset_and_at_the_start_is_exact() -> None:
    """``initialize`` resets its qubits first: on a qubit entangled with another, one exact
    shot collapsed the other at random (the estimator gave <Z> = +1 or -1; it is 0)."""
    qc = QuantumCircuit(2, 1)
    qc.h(0)
    qc.cx(0, 1)
    qc.initialize([1, 0], [0])
    qc.measure(1, 0)
    dist = v1(qc)
    assert dist[0] == pytest.approx(0.5, abs=0.05) and dist[1] == pytest.approx(0.5, abs=0.05)
    assert v2_counts(qc, shots=4000)["0"] == pytest.approx(2000, abs=200)
    with pytest.raises(PubError, match="'initialize' of a qubit after operations on it"):
        EstimatorV2().run([(qc.remove_final_measurements(inplace=False), "ZI")])
    start = QuantumCircuit(2)
    start.initialize([0.6, 0, 0, 0.8])
    start.h(1)
    ev = EstimatorV2().run([(start, ["ZZ", "XI"])]).result()[0].data.evs
    sv = Statevector(start)
    want = [sv.expectation_value(Pauli(label)).real for label in ("ZZ", "XI")]
    assert ev == pytest.approx(want, abs=1e-12)
    start.measure_all()
    want_probs = {int(k, 2): p for k, p in sv.probabilities_dict().items()}
    assert v1(start) == pytest.approx(want_probs, abs=1e-12)


def test_a_delay_after_the_final_measurements_keeps_them_final() -> None:
    """Delays do nothing to the state; one after a measurement made it 'mid-circuit': the
    estimator refused the circuit and V1 sampled 8192 shots instead of the exact values."""
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    qc.delay(100, 0)
    result = Sampler().run(qc).result()
    assert dict(result.quasi_dists[0]) == pytest.approx({0: 0.5, 3: 0.5}, abs=1e-12)
    assert "note" not in result.metadata[0]
    # the measured qubits read as collapsed, as Aer's EstimatorV2 reads them (hunt13a)
    assert EstimatorV2().run([(qc, ["ZZ", "XX", "ZI"])]).result()[0].data.evs == pytest.approx(
        [1.0, 0.0, 0.0], abs=1e-12
    )


# -- parameters Aer must be able to bind -------------------------------------------------------


@pytest.mark.parametrize("isa", [True, False])
def test_unbindable_parameter_inside_control_flow(isa: bool) -> None:
    """A ``crx(t)`` inside an ``if_else`` body: Aer binds no parameter of a controlled
    rotation, and only the top level was decomposed; Aer gave one result for three rows
    (SamplerV2: 'Result for experiment "1" could not be found'; V1: a zip() ValueError)."""
    from qiskit.circuit import Parameter

    t = Parameter("t")
    qc = QuantumCircuit(2, 2)
    qc.x(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.crx(t, 0, 1)
        if not isa:
            qc.csdg(0, 1)  # not in Aer's basis: the circuit is transpiled first
    qc.measure(1, 1)
    rows = [[0.0], [np.pi], [np.pi / 2]]
    data = SamplerV2(seed=5, default_shots=2000).run([(qc, rows)]).result()[0].data.c
    assert data[0].get_counts() == {"01": 2000}
    assert data[1].get_counts() == {"11": 2000}
    assert data[2].get_counts()["11"] == pytest.approx(1000, abs=150)
    dists = Sampler(options={"seed": 5}).run([qc] * 3, rows).result().quasi_dists
    assert [dict(d) for d in dists[:2]] == [{1: 1.0}, {3: 1.0}]
    assert dists[2][3] == pytest.approx(0.5, abs=0.05)


# -- operations Aer does not run ---------------------------------------------------------------


def test_boxes_run_as_their_bodies() -> None:
    """Aer runs no ``box`` and the preset pass manager refuses it for Aer's target: every
    primitive failed with a TranspilerError ('box' is not supported by the backend), and the
    estimators refused the circuit. A box is its body to an ideal simulator."""
    from qiskit.circuit import Parameter

    t = Parameter("t")
    qc = QuantumCircuit(2)
    with qc.box():
        qc.ry(t, 0)
        qc.csdg(0, 1)  # not in Aer's basis either
        qc.crx(t, 0, 1)
    flat = QuantumCircuit(2)
    flat.ry(t, 0)
    flat.csdg(0, 1)
    flat.crx(t, 0, 1)
    rows = [[0.3], [1.4]]
    evs = EstimatorV2().run([(qc, [["ZZ"], ["XY"], ["IZ"]], rows)]).result()[0].data.evs
    want = StatevectorEstimator().run([(flat, [["ZZ"], ["XY"], ["IZ"]], rows)]).result()[0]
    assert evs == pytest.approx(want.data.evs, abs=1e-12)
    qc.measure_all()
    flat.measure_all()
    for row in rows:
        bound = flat.remove_final_measurements(inplace=False).assign_parameters(row)
        ref = {int(k, 2): p for k, p in Statevector(bound).probabilities_dict().items()}
        got = Sampler().run(qc, row).result().quasi_dists[0]
        assert max(abs(got.get(k, 0.0) - ref.get(k, 0.0)) for k in range(4)) < 1e-12
    data = SamplerV2(seed=5, default_shots=100).run([(qc, rows)]).result()[0].data.meas
    assert data.shape == (2,) and data.num_shots == 100


def test_a_box_inside_control_flow() -> None:
    qc = QuantumCircuit(3, 3)
    qc.h(0)
    with qc.box():
        qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        with qc.box():
            qc.x(1)
            qc.cs(1, 2)
            qc.x(2)
    qc.measure([1, 2], [1, 2])
    counts = v2_counts(qc, shots=2000)
    assert set(counts) == {"000", "111"} and counts["111"] == pytest.approx(1000, abs=150)
    dist = v1(qc)
    assert set(dist) == {0, 7} and dist[7] == pytest.approx(0.5, abs=0.05)


def test_expectation_values_on_a_circuit_of_no_qubits() -> None:
    """On no qubits every observable is a scalar times the identity ``""``: Aer saves no
    expectation value there, and EstimatorV2 failed with 'Aer returned 1 results for 1 rows
    ...: a parameter it did not bind?', V1 Estimator with KeyError 'ev0'."""
    from qiskit.quantum_info import SparsePauliOp

    empty = QuantumCircuit(0)
    scalar = SparsePauliOp.from_list([("", 2.0)])
    assert EstimatorV2().run([(empty, scalar)]).result()[0].data.evs == pytest.approx(2.0)
    assert StatevectorEstimator().run([(empty, scalar)]).result()[0].data.evs == pytest.approx(2.0)
    assert qshpc.aer.Estimator().run([empty], [scalar]).result().values == pytest.approx([2.0])
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)  # the identity beside other terms: 1 without asking Aer
    evs = EstimatorV2().run([(bell, ["II", SparsePauliOp(["II", "XX"], [3, 1]), "ZI"])])
    assert evs.result()[0].data.evs == pytest.approx([1.0, 4.0, 0.0], abs=1e-12)


def test_classical_variables_are_refused_before_aer_sees_them() -> None:
    """Aer fails on a Bool variable deep in its assembler (an AttributeError in the task,
    'Bool' object has no attribute 'width') and aborts the whole process on a Uint one; every
    primitive now refuses such a circuit up front, naming the variables and what to use."""
    from qiskit.circuit.classical import types

    from qshpc.errors import UserError

    qc = QuantumCircuit(2, 2)
    flag = qc.add_var("flag", expr.lift(False))
    qc.h(0)
    qc.measure(0, 0)
    qc.store(flag, qc.clbits[0])
    with qc.if_test(flag):
        qc.x(1)
    qc.measure(1, 1)
    words = r"classical variables \(flag\), which Aer cannot run"
    with pytest.raises(PubError, match=r"PUB 0: circuit .* cannot run on Aer: it has " + words):
        SamplerV2().run([qc])
    with pytest.raises(UserError, match=words):
        Sampler().run(qc)
    inner = QuantumCircuit(1, 1)  # declared inside a body, and an input variable
    inner.measure(0, 0)
    with inner.if_test((inner.clbits[0], 1)):
        inner.add_var("w", expr.lift(True))
    inner.add_input("b", types.Bool())
    with pytest.raises(PubError, match=r"classical variables \(b, w\)"):
        EstimatorV2().run([(inner, "Z")])
    with pytest.raises(UserError, match=r"classical variables \(b, w\)"):
        qshpc.aer.Estimator().run(inner, "Z")


# -- noise models ------------------------------------------------------------------------------


def _depolarized_x() -> tuple[QuantumCircuit, object]:
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.5, 1), ["x"])
    qc = QuantumCircuit(1)
    qc.x(0)
    return qc, noise  # P(1) = 0.75, <Z> = -0.5


def test_v1_sampler_with_a_noise_model_and_no_shots_samples() -> None:
    """Without shots, a noise model went to the exact path: one Aer shot is one noisy
    trajectory, so the 'exact' distribution was {1: 1.0} or {0: 1.0} at random (a readout
    error was not applied at all)."""
    qc, noise = _depolarized_x()
    qc.measure_all()
    result = Sampler(options={"noise_model": noise, "seed": 3}).run(qc).result()
    assert result.quasi_dists[0][1] == pytest.approx(0.75, abs=0.03)
    assert "Aer run options (noise_model) change it" in result.metadata[0]["note"]
    plain = Sampler(options={"noise_model": None, "max_parallel_threads": 1}).run(qc).result()
    assert dict(plain.quasi_dists[0]) == {1: 1.0} and "note" not in plain.metadata[0]


def test_estimator_v2_with_a_noise_model_needs_the_density_matrix() -> None:
    """The statevector method gave the <Z> of one random trajectory (-1 or +1, where Aer's
    EstimatorV2 gives -0.5): refused with the fix; the density matrix gives the average."""
    qc, noise = _depolarized_x()
    with pytest.raises(PubError, match="needs Aer's density_matrix method"):
        options = {"backend_options": {"noise_model": noise, "method": "statevector"}}
        EstimatorV2(options=options).run([(qc, "Z")])
    options = {"backend_options": {"noise_model": noise, "method": "density_matrix"}}
    evs = EstimatorV2(options=options).run([(qc, "Z")]).result()[0].data.evs
    assert evs == pytest.approx(-0.5, abs=1e-12)


def test_a_delay_whose_duration_is_a_parameter_is_a_user_error() -> None:
    """Aer binds no delay duration and a delay does not decompose: that was a bare ValueError
    (a failed task, not bad input); it is a UserError (exit code 2) saying what to do."""
    from qiskit.circuit import Parameter

    from qshpc.errors import UserError

    t = Parameter("t")
    qc = QuantumCircuit(1)
    qc.delay(t, 0)
    qc.h(0)
    qc.measure_all()
    with pytest.raises(
        UserError, match=r"cannot bind the parameters of delay.*bind the parameters"
    ):
        Sampler().run(qc, [10.0])


@pytest.mark.parametrize("name", ["shape", "keys", "ndim"])
def test_a_register_named_like_a_databin_attribute_is_refused_before_running(name: str) -> None:
    """Qiskit's DataBin cannot hold a field named ``shape``, ``keys``...: the result failed to
    assemble after every block had run (as Qiskit's own samplers fail); refused up front."""
    reg = ClassicalRegister(1, name)
    qc = QuantumCircuit(QuantumRegister(1), reg)
    qc.x(0)
    qc.measure(0, reg[0])
    with pytest.raises(PubError, match=f"PUB 0: the classical register '{name}' cannot be a"):
        SamplerV2().run([qc])
    fine = ClassicalRegister(1, "get")
    ok = QuantumCircuit(QuantumRegister(1), fine)
    ok.x(0)
    ok.measure(0, fine[0])
    assert SamplerV2(seed=1).run([ok], shots=5).result()[0].data.get.get_counts() == {"1": 5}


def test_stretches_are_refused_before_aer_sees_them() -> None:
    """A delay of a stretch duration made Aer's circuit builder raise a TypeError ('gate():
    incompatible function arguments') in the task; refused up front, saying what to do."""
    from qshpc.errors import UserError

    qc = QuantumCircuit(1)
    gap = qc.add_stretch("gap")
    qc.h(0)
    qc.delay(gap, 0)
    qc.measure_all()
    with pytest.raises(PubError, match=r"stretches \(gap\), which Aer cannot run; give the delays"):
        SamplerV2().run([qc])
    with pytest.raises(UserError, match=r"stretches \(gap\)"):
        Sampler().run(qc)
