"""Sampler against qiskit's Statevector (exact) and a chi-square test (shots), real Aer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("qiskit_aer")

from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import Statevector

import qshpc.aer
from qshpc.aer import Sampler, run_sweep
from qshpc.errors import UserError

pytestmark = pytest.mark.usefixtures("fresh_aer")  # tests/unit/conftest.py


def reference(circuit: QuantumCircuit) -> dict[int, float]:
    """V1 reference values: Statevector of the circuit without final measurements."""
    sv = Statevector(circuit.remove_final_measurements(inplace=False))
    return {int(k, 2): float(v) for k, v in sv.probabilities_dict().items()}


def max_diff(a: dict[int, float], b: dict[int, float]) -> float:
    return max(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def seed_circuits(n: int, qubits: int, depth: int) -> list[QuantumCircuit]:
    circuits = []
    for s in range(n):
        c = random_circuit(qubits, depth, seed=1000 + s)
        c.measure_all()
        circuits.append(c)
    return circuits


def test_seed_style_circuits_exact() -> None:
    circuits = seed_circuits(20, 2, 2)
    dists = Sampler().run(circuits).result().quasi_dists
    for c, q in zip(circuits, dists, strict=True):
        assert max_diff(q, reference(c)) < 1e-9
        assert all(isinstance(k, int) for k in q)
        assert q.shots is None


def test_one_circuit_call_shape() -> None:
    c = seed_circuits(1, 2, 2)[0]
    q = Sampler().run(c).result().quasi_dists[0]
    assert max_diff(q, reference(c)) < 1e-9
    assert set(q.binary_probabilities(2)) <= {"00", "01", "10", "11"}


@pytest.mark.parametrize("qubits", [5, 8, 12])
def test_random_circuits_exact(qubits: int) -> None:
    circuits = seed_circuits(3, qubits, 6)
    result = Sampler().run(circuits).result()
    assert result.metadata == [{}, {}, {}]
    for c, q in zip(circuits, result.quasi_dists, strict=True):
        assert max_diff(q, reference(c)) < 1e-9
        assert abs(sum(q.values()) - 1.0) < 1e-9


def test_bell_keys_are_register_values() -> None:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    q = Sampler().run(qc).result().quasi_dists[0]
    assert set(q) == {0, 3}
    assert q.binary_probabilities() == pytest.approx({"00": 0.5, "11": 0.5})


def test_measure_subset_keyed_by_clbits() -> None:
    qc = QuantumCircuit(3, 2)
    qc.h(0)
    qc.x(2)
    qc.measure(2, 0)  # qubit 2 (always 1) -> clbit 0
    qc.measure(0, 1)  # qubit 0 (50/50) -> clbit 1
    q = Sampler().run(qc).result().quasi_dists[0]
    assert q == pytest.approx({1: 0.5, 3: 0.5})
    # Statevector marginal over qubits [2, 0] agrees
    sv = Statevector(qc.remove_final_measurements(inplace=False))
    probs = sv.probabilities(qargs=[2, 0])
    assert max_diff(q, {i: float(p) for i, p in enumerate(probs) if p}) < 1e-9


def test_unmeasured_circuit_is_refused_as_qiskit_refused_it() -> None:
    """On 8cc329b a circuit that measures nothing (a forgotten ``measure_all()``) read
    ``{0: 1.0}`` whatever its state; Qiskit's and Aer's V1 Samplers refuse it."""
    qc = QuantumCircuit(2, name="bell")
    qc.h(0)
    with pytest.raises(
        UserError, match=r"circuit 0 \('bell'\) has no classical bits: .*measure_all"
    ):
        Sampler().run(qc)
    measured = qc.copy()
    measured.measure_all()
    unmeasured = QuantumCircuit(2, 2, name="no_measure")
    unmeasured.h(0)
    with pytest.raises(UserError, match=r"circuit 1 \('no_measure'\) measures no qubit"):
        Sampler(options={"shots": 10}).run([measured, unmeasured])
    assert Sampler().run(measured).result().quasi_dists[0] == pytest.approx({0: 0.5, 1: 0.5})


def test_mid_circuit_measurement_falls_back_to_sampling() -> None:
    qc = QuantumCircuit(1, 1)
    qc.h(0)
    qc.measure(0, 0)
    qc.h(0)
    qc.measure(0, 0)
    result = Sampler().run(qc, seed=5).result()
    assert result.metadata[0]["shots"] == 8192
    assert "measures a qubit before the end" in result.metadata[0]["note"]
    assert result.quasi_dists[0] == pytest.approx({0: 0.5, 1: 0.5}, abs=0.03)


def test_circuit_wider_than_the_simulator_is_a_user_error() -> None:
    wide = QuantumCircuit(48, name="wide")
    wide.h(range(48))
    wide.measure_all()
    with pytest.raises(UserError, match=r"circuit 'wide' has 48 qubits: more than the \d+ that"):
        Sampler().run(wide)
    with pytest.raises(UserError, match="method='matrix_product_state'"):
        Sampler(options={"shots": 10}).run(wide)
    # the same circuit fits the stabilizer method (it is Clifford)
    dist = Sampler(options={"method": "stabilizer", "shots": 100, "seed": 1}).run(wide)
    assert sum(dist.result().quasi_dists[0].values()) == pytest.approx(1.0)


def test_v1_sampler_splits_only_in_a_task_holding_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A split the V1 Sampler would need outside a ``ranks=k`` task is refused, naming why."""
    qc = QuantumCircuit(3, name="three")
    qc.h(0)
    qc.measure_all()
    monkeypatch.setenv("QSHPC_DISTRIBUTE", "always")
    with pytest.raises(UserError) as info:
        Sampler().run(qc)
    text = str(info.value)
    # (1 qubit: qubits 1 and 2 are only measured, they read 0; session 22 sizes by the rest)
    assert "QSHPC_DISTRIBUTE=always asks to split circuit 'three' (1 qubits) over 2 ranks" in text
    assert "only inside a task that holds ranks" in text, text
    with pytest.raises(UserError, match="no extra Aer options"):
        Sampler(options={"shots": 10, "noise_model": None}).run(qc)
    monkeypatch.setenv("QSHPC_DISTRIBUTE", "4")  # under the threshold: as always
    assert Sampler().run(qc).result().quasi_dists[0] == pytest.approx({0: 0.5, 1: 0.5})


def chi_square(counts: dict[int, int], probs: dict[int, float], shots: int) -> tuple[float, int]:
    """Pearson statistic over outcomes with expected count >= 5 (others pooled)."""
    keys = set(counts) | set(probs)
    big = [k for k in keys if probs.get(k, 0.0) * shots >= 5]
    small = [k for k in keys if k not in big]
    obs = [counts.get(k, 0) for k in big] + [sum(counts.get(k, 0) for k in small)]
    exp = [probs[k] * shots for k in big] + [sum(probs.get(k, 0.0) for k in small) * shots]
    if exp[-1] < 1e-12:
        obs, exp = obs[:-1], exp[:-1]
    stat = float(sum((o - e) ** 2 / e for o, e in zip(obs, exp, strict=True)))
    return stat, len(obs) - 1


# chi-square 99.9% quantiles for 1..15 degrees of freedom
CHI2_999 = [10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59,
            31.26, 32.91, 34.53, 36.12, 37.70]  # fmt: skip


def chi2_critical(dof: int) -> float:
    if dof <= len(CHI2_999):
        return CHI2_999[dof - 1]
    # Wilson-Hilferty approximation, z = 3.09 for 99.9%
    z = 3.090
    return float(dof * (1 - 2 / (9 * dof) + z * np.sqrt(2 / (9 * dof))) ** 3)


def test_shots_pass_chi_square() -> None:
    circuits = seed_circuits(4, 4, 4)
    shots = 20000
    result = Sampler(options={"shots": shots, "seed": 11}).run(circuits).result()
    for c, q in zip(circuits, result.quasi_dists, strict=True):
        counts = {k: round(v * shots) for k, v in q.items()}
        assert sum(counts.values()) == shots
        stat, dof = chi_square(counts, reference(c), shots)
        assert stat < chi2_critical(max(dof, 1)), (stat, dof)
    assert result.metadata == [{"shots": shots}] * 4


def test_seeded_shots_reproducible_and_seed_sensitive() -> None:
    circuits = seed_circuits(3, 5, 5)
    a = Sampler().run(circuits, shots=512, seed=7).result().quasi_dists
    qshpc.aer.reset_caches()
    b = Sampler(options={"shots": 512, "seed": 7}).run(circuits).result().quasi_dists
    c = Sampler().run(circuits, shots=512, seed=8).result().quasi_dists
    assert a == b
    assert a != c


def test_parameter_values_one_batch() -> None:
    theta = Parameter("t")
    phi = Parameter("p")
    qc = QuantumCircuit(2)
    qc.ry(theta, 0)
    qc.cx(0, 1)
    qc.rz(phi, 1)
    qc.ry(phi, 1)
    qc.measure_all()
    grid = [[0.1 * i, 0.2 * i] for i in range(8)]
    dists = Sampler().run(qc, parameter_values=grid).result().quasi_dists
    assert len(dists) == len(grid)
    for values, q in zip(grid, dists, strict=True):
        assert max_diff(q, reference(qc.assign_parameters(values))) < 1e-9
    # V1 shape: one row per circuit
    v1 = Sampler().run([qc, qc], [[0.3, 0.4], [0.5, 0.6]]).result().quasi_dists
    assert max_diff(v1[1], reference(qc.assign_parameters([0.5, 0.6]))) < 1e-9
    assert run_sweep(qc, grid)[3] == pytest.approx(dists[3])


def test_parameter_mismatch_is_user_error() -> None:
    theta = Parameter("t")
    qc = QuantumCircuit(1)
    qc.ry(theta, 0)
    qc.measure_all()
    with pytest.raises(UserError, match="1 parameters"):
        Sampler().run(qc, parameter_values=[0.1, 0.2])
    with pytest.raises(UserError, match="2 circuits but 1"):
        Sampler().run([qc, qc], [[0.1]])


def test_sweep_expectation_values_and_estimator() -> None:
    theta = Parameter("t")
    qc = QuantumCircuit(2)
    qc.ry(theta, 0)
    qc.cx(0, 1)
    grid = np.linspace(0, np.pi, 5).reshape(-1, 1)
    values: Any = run_sweep(qc, grid, observables=["ZZ", "IZ", "XX"])
    assert values.shape == (5, 3)
    assert values[:, 0] == pytest.approx(np.ones(5))
    assert values[:, 1] == pytest.approx(np.cos(grid[:, 0]))
    assert values[:, 2] == pytest.approx(np.sin(grid[:, 0]))
    est = qshpc.aer.Estimator().run([qc, qc], ["IZ", "XX"], [[0.3], [0.3]]).result()
    assert est.values == pytest.approx([np.cos(0.3), np.sin(0.3)])
    with pytest.raises(UserError, match="exact"):
        run_sweep(qc, grid, shots=100, observables=["ZZ"])


def test_isa_circuits_run_as_they_are_and_others_are_transpiled() -> None:
    """A circuit of gates Aer runs is not transpiled (as Qiskit's V2 primitives take ISA
    circuits; the pass manager cost more than a small simulation); one with a gate Aer
    rejects is, once a rank. Both give the reference distribution."""
    from qshpc.aer import simulator

    isa = QuantumCircuit(3)
    isa.h(0)
    isa.cx(0, 1)
    isa.ry(0.4, 2)
    other = isa.copy()
    other.iswap(1, 2)  # not in Aer's basis
    other.csdg(0, 2)
    isa.measure_all()
    other.measure_all()
    for circuit, transpiled in ((isa, 0), (other, 1)):
        simulator.reset_caches()
        dist = Sampler().run(circuit).result().quasi_dists[0]
        assert max_diff(dist, reference(circuit)) < 1e-12
        assert len(simulator._transpiled) == transpiled
    theta = Parameter("t")
    ansatz = QuantumCircuit(2)
    ansatz.ry(theta, 0)
    ansatz.cx(0, 1)
    simulator.reset_caches()
    est = qshpc.aer.Estimator().run([ansatz], ["XX"], [[0.3]]).result()
    assert est.values == pytest.approx([np.sin(0.3)])
    assert len(simulator._transpiled) == 0


def test_a_routed_isa_circuit_is_read_as_it_is() -> None:
    """A circuit the user transpiled onto a device (ISA for Aer, with a layout) runs as it is:
    its clbits say what was measured, whatever ``circuit.layout`` holds."""
    from qiskit import transpile
    from qiskit.transpiler import CouplingMap

    qc = QuantumCircuit(4, 4)
    qc.x([0, 3])
    qc.h(2)
    qc.cx(2, 1)
    qc.measure(range(4), range(4))
    routed = transpile(qc, coupling_map=CouplingMap.from_line(5), basis_gates=["cx", "rz", "sx", "x"],
                       initial_layout=[4, 2, 0, 1], seed_transpiler=3, optimization_level=1)  # fmt: skip
    assert routed.layout is not None
    dist = Sampler().run(routed).result().quasi_dists[0]
    assert max_diff(dist, reference(qc)) < 1e-12, (dist, reference(qc))


def test_gates_aer_rejects_inside_control_flow_are_transpiled() -> None:
    """Only the top level of a circuit used to be read: ``if_else`` is a gate Aer runs, but
    the ``dcx`` in its body is not, and Aer refused the circuit ('unknown instruction')."""
    from qshpc.aer.isa import is_isa
    from qshpc.aer.simulator import sim_spec
    from qshpc.primitives import SamplerV2

    qc = QuantumCircuit(2, 2)
    qc.x(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.dcx(0, 1)  # |q1 q0> = |01> -> |10>
    qc.measure(1, 1)
    assert not is_isa(qc, sim_spec())
    assert Sampler(options={"shots": 50, "seed": 1}).run(qc).result().quasi_dists[0] == {3: 1.0}
    counts = SamplerV2(seed=1).run([qc], shots=50).result()[0].data.c.get_counts()
    assert counts == {"11": 50}


@pytest.mark.parametrize("level", [7, -1, True, "1", None])
def test_a_bad_optimization_level_is_refused_whatever_the_circuits(level: Any) -> None:
    """ISA circuits skip the pass manager; a bad level is still refused (it was accepted
    for them once the pass manager, which checked it, was no longer built)."""
    isa = QuantumCircuit(1)
    isa.h(0)
    isa.measure_all()
    with pytest.raises(UserError, match="optimization_level must be 0, 1, 2 or 3"):
        Sampler(options={"optimization_level": level}).run(isa).result()
    with pytest.raises(UserError, match="optimization_level must be 0, 1, 2 or 3"):
        qshpc.aer.Estimator(options={"optimization_level": level}).run(
            [isa.remove_final_measurements(inplace=False)], ["Z"]
        ).result()


@pytest.mark.parametrize(("method", "shots"), [("stabilizer", None), ("stabilizer", 64), ("unitary", None), ("extended_stabilizer", None)])  # fmt: skip
def test_a_method_that_cannot_run_the_circuit_is_a_user_error(method: str, shots: Any) -> None:
    """A T gate under the stabilizer method, or a distribution asked of the 'unitary' method,
    was a bare RuntimeError ('Aer failed: ... invalid parameters'): it names the method and
    the fix now."""
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.t(0)
    qc.cx(0, 1)
    qc.measure_all()
    with pytest.raises(UserError, match=f"Aer's '{method}' method cannot run this circuit"):
        Sampler(options={"method": method, "shots": shots}).run(qc).result()
    clifford = QuantumCircuit(2)
    clifford.h(0)
    clifford.cx(0, 1)
    clifford.measure_all()
    dist = Sampler(options={"method": "stabilizer"}).run(clifford).result().quasi_dists[0]
    assert dist == pytest.approx({0: 0.5, 3: 0.5})
