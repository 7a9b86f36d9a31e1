"""A circuit transpiled for a device, then ``measure_all()``-ed: sized and run by the qubits
gates act on (session 22).

``transpile(bell, backend)`` then ``measure_all()`` measures the backend's 115 qubits and
acts on 3. A qubit nothing else has touched is ``|0>``: measured, it reads 0; reset, it
stays. On e5f893c qshpc refused such a circuit as a 115-qubit statevector (V1 Sampler,
SamplerV2) where plain Aer runs it with the stabilizer method when it is Clifford (a
non-Clifford one plain Aer refuses too: 'Insufficient memory').
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("qiskit_aer")

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister


def _on_device(rx: float | None = None) -> tuple[Any, list[int]]:
    """A 3-qubit GHZ (after ``rx`` on its first qubit) transpiled onto 115 qubits, then
    measure_all()-ed; and the physical qubits of its 3 logical ones."""
    from qiskit import transpile
    from qiskit.transpiler import CouplingMap

    qc = QuantumCircuit(3)
    if rx is None:
        qc.h(0)
    else:
        qc.rx(rx, 0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    isa = transpile(
        qc, coupling_map=CouplingMap.from_heavy_hex(7),
        basis_gates=["rz", "sx", "x", "ecr"], optimization_level=1, seed_transpiler=1,
    )  # fmt: skip
    isa.measure_all()
    return isa, list(isa.layout.final_index_layout())


def test_a_qubit_only_measured_or_reset_is_not_active() -> None:
    from qshpc.aer.sizing import active_qubits, active_width, estimate_for_circuits

    isa, phys = _on_device()
    assert isa.num_qubits == 115
    activity = active_qubits(isa)
    assert sorted(activity.qubits) == sorted(phys) and len(activity.idle_reads) == 112
    assert active_width(isa) == 3 and estimate_for_circuits(isa).num_qubits == 3
    assert active_width(isa, reads_zero=False) == 115  # a noise model: they stay
    qc = QuantumCircuit(4, 4)
    qc.reset(3)
    qc.h(0)
    qc.barrier()
    qc.measure(1, 1)  # mid-circuit measurement of an idle qubit, then a gate: acted on
    qc.x(1)
    qc.measure([0, 2, 3], [0, 2, 3])
    assert sorted(active_qubits(qc).qubits) == [0, 1]
    written = QuantumCircuit(3, 1)
    written.x(0)
    written.measure(0, 0)
    written.measure(2, 0)  # into a clbit written before: the qubit stays (it writes the 0)
    assert sorted(active_qubits(written).qubits) == [0, 2] and not active_qubits(written).idle_reads


def _counts(circuit: Any, shots: int = 50) -> dict[str, int]:
    from qiskit_aer import AerSimulator

    return dict(AerSimulator().run(circuit, shots=shots, seed_simulator=5).result().get_counts())


def test_dropping_idle_reads_keeps_every_clbit_and_what_reads_it() -> None:
    """Deterministic circuits: counts equal to plain Aer's on the circuit as written, with
    registers of several widths, a conditional on a bit an idle measurement wrote, a reset."""
    from qiskit.circuit.classical import expr

    from qshpc.aer.circuits import without_idle_reads

    qr, a, b = QuantumRegister(5, "q"), ClassicalRegister(2, "a"), ClassicalRegister(3, "b")
    qc = QuantumCircuit(qr, a, b)
    qc.x(0)
    qc.reset(4)
    qc.measure(3, b[0])  # idle: 0
    with qc.if_test((b[0], 0)):
        qc.x(1)  # runs: the idle measurement read 0
    qc.barrier()
    qc.measure([0, 1], a)
    qc.measure([2, 4], [b[1], b[2]])  # idle: 0
    stripped = without_idle_reads(qc)
    assert stripped.num_qubits == 5 and stripped.cregs == qc.cregs
    assert [i.operation.name for i in stripped.data].count("measure") == 2
    assert _counts(stripped) == _counts(qc) == {"000 11": 50}
    written = QuantumCircuit(3, 1)
    written.x(0)
    written.measure(0, 0)
    written.measure(2, 0)  # overwrites the 1 with 0: not dropped
    assert without_idle_reads(written) is written and _counts(written) == {"0": 50}
    stored = QuantumCircuit(2, 1)
    stored.x(0)
    stored.store(stored.clbits[0], expr.lift(True))  # (a Store lists no clbits)
    stored.measure(1, 0)  # overwrites the stored 1 with 0: not dropped
    assert without_idle_reads(stored) is stored and _counts(stored) == {"0": 50}
    flow = QuantumCircuit(2, 2)
    flow.x(0)
    flow.measure(0, 0)
    with flow.if_test((flow.clbits[0], 1)):
        flow.store(flow.clbits[1], expr.lift(True))
    flow.measure(1, 1)  # overwrites the 1 stored in the block: not dropped
    assert without_idle_reads(flow) is flow and _counts(flow) == {"01": 50}


def test_the_samplers_run_a_circuit_measure_all_ed_after_transpiling() -> None:
    """V1 Sampler and SamplerV2, Clifford (plain Aer runs it: stabilizer) or not (plain Aer
    refuses it): the distribution of the 3-qubit circuit, every other bit 0, counts of
    the register's 115 bits."""
    import math

    from qiskit_aer.primitives import SamplerV2 as AerSamplerV2

    from qshpc.aer import Sampler, SamplerV2

    for rx in (None, 0.7):
        isa, phys = _on_device(rx)
        p0 = 0.5 if rx is None else math.cos(rx / 2) ** 2
        ones = sum(1 << q for q in phys)
        exact = Sampler().run(isa).result().quasi_dists[0]
        assert {k for k, v in exact.items() if v > 1e-12} == {0, ones}
        assert abs(exact[0] - p0) < 1e-12 and abs(exact[ones] - (1 - p0)) < 1e-12
        shots = Sampler().run(isa, shots=400, seed=2).result().quasi_dists[0]
        assert set(shots) <= {0, ones} and abs(shots.get(0, 0) - p0) < 0.1
        bits = SamplerV2(seed=3).run([isa], shots=400).result()[0].data.meas
        assert bits.num_bits == 115
        counts = bits.get_counts()
        keys = {format(0, "0115b"), format(ones, "0115b")}
        assert set(counts) <= keys and sum(counts.values()) == 400
        assert abs(counts.get(format(0, "0115b"), 0) / 400 - p0) < 0.1
        if rx is None:  # plain Aer runs this one (stabilizer): the same outcomes
            aer = AerSamplerV2(seed=3).run([isa], shots=400).result()[0].data.meas
            assert aer.num_bits == 115 and set(aer.get_counts()) <= keys


def test_a_noisy_run_keeps_the_measurements_and_sizes_by_them() -> None:
    """A readout error reads 1 off |0> too: with a noise model the measured qubits count,
    and the wide circuit is refused as before (not Aer's 'Insufficient memory')."""
    from qiskit_aer.noise import NoiseModel, ReadoutError

    from qshpc.aer import Sampler, SamplerV2
    from qshpc.aer.v2.pubs import PubError
    from qshpc.errors import UserError

    isa, _ = _on_device(0.7)
    noise = NoiseModel()
    noise.add_all_qubit_readout_error(ReadoutError([[0.9, 0.1], [0.1, 0.9]]))
    with pytest.raises(UserError, match="has 115 qubits"):
        Sampler(options={"noise_model": noise, "shots": 10}).run(isa)
    with pytest.raises(PubError, match="has 115 qubits"):
        SamplerV2(options={"backend_options": {"noise_model": noise}}).run([isa], shots=10)


def test_parameter_rows_and_the_estimator_on_a_circuit_measure_all_ed_after_transpiling() -> None:
    """A parametrized ISA circuit, measure_all()-ed: the V1 Sampler's rows, run_sweep's and
    SamplerV2's bindings give the 3-qubit circuit's values; EstimatorV2 the value of the circuit
    without its measurements, as Aer's EstimatorV2 (which refuses the measured one:
    'a circuit requires more memory than max_memory_mb')."""
    import math

    from qiskit import transpile
    from qiskit.circuit import Parameter
    from qiskit.quantum_info import SparsePauliOp
    from qiskit.transpiler import CouplingMap
    from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

    from qshpc.aer import EstimatorV2, Sampler, SamplerV2, run_sweep

    theta = Parameter("theta")
    qc = QuantumCircuit(3)
    qc.rx(theta, 0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    bare = transpile(qc, coupling_map=CouplingMap.from_heavy_hex(7),
                     basis_gates=["rz", "sx", "x", "ecr"], seed_transpiler=1)  # fmt: skip
    isa = bare.copy()
    isa.measure_all()
    ones = sum(1 << q for q in bare.layout.final_index_layout())
    angles = [0.3, 1.1]
    dists = Sampler().run([isa, isa], [[a] for a in angles]).result().quasi_dists
    for a, dist in zip(angles, dists, strict=True):
        assert abs(dist[0] - math.cos(a / 2) ** 2) < 1e-12
        assert abs(dist[ones] - math.sin(a / 2) ** 2) < 1e-12
    for a, dist in zip(angles, run_sweep(isa, [[a] for a in angles]), strict=True):
        assert abs(dist[0] - math.cos(a / 2) ** 2) < 1e-12  # (Aer's 'Insufficient memory' before)
    counts = SamplerV2(seed=1).run([(isa, [[a] for a in angles], 100)]).result()[0].data.meas
    assert counts.shape == (2,) and counts.num_bits == 115
    assert {int(k, 2) for i in range(2) for k in counts[i].get_counts()} <= {0, ones}
    obs = SparsePauliOp.from_list([("IIZ", 1.0), ("XXX", 0.5)]).apply_layout(bare.layout)
    ours = EstimatorV2().run([(isa, obs, [[a] for a in angles])]).result()[0].data.evs
    aers = AerEstimatorV2().run([(bare, obs, [[a] for a in angles])]).result()[0].data.evs
    assert max(abs(float(x) - float(y)) for x, y in zip(ours, aers, strict=True)) < 1e-12


def test_a_store_beside_only_idle_reads_keeps_one_measurement() -> None:
    """review27: the only measurement read an idle qubit and a `store` wrote another bit:
    with the measurement dropped none was left, and the stored bit read 0 ('00' where
    plain Aer gives '01')."""
    from qiskit import QuantumCircuit
    from qiskit.circuit.classical import expr
    from qiskit_aer.primitives import SamplerV2 as AerSamplerV2

    from qshpc.aer import Sampler, SamplerV2

    qc = QuantumCircuit(2, 2)
    qc.x(0)
    qc.measure(1, 1)  # q1 idle: reads 0
    qc.store(qc.clbits[0], expr.logic_not(qc.clbits[1]))  # c0 = not c1 = 1
    want = AerSamplerV2(seed=1).run([qc], shots=10).result()[0].data.c.get_counts()
    assert want == {"01": 10}
    assert SamplerV2(seed=1).run([qc], shots=10).result()[0].data.c.get_counts() == want
    assert Sampler().run(qc).result().quasi_dists[0] == {1: 1.0}
