"""review37 (fix37): the V2 primitives' options, methods, errors and metadata."""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from qshpc.program.refs import CancelledError, TaskRef, cancel_all, mark_running


def test_cancel_all_cancels_every_queued_ref_or_none() -> None:
    """F2: one started reference keeps every other one (all or nothing, as Future.cancel())."""
    refs = [TaskRef(str(i), "f") for i in range(3)]
    mark_running(refs[1:2])
    assert not cancel_all(refs)
    assert not any(r.cancelled() for r in refs)
    queued = [TaskRef(str(i), "f") for i in range(3)]
    queued[0].cancel()
    assert cancel_all(queued) and all(r.cancelled() for r in queued)
    with pytest.raises(CancelledError):
        queued[2].result()
    assert not mark_running(queued)  # a cancelled block is never dispatched


def test_estimator_with_a_noise_model_and_no_method_uses_the_density_matrix() -> None:
    """F3: refused where Aer's EstimatorV2 runs it; from_backend already chose density_matrix."""
    from qiskit import QuantumCircuit
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    from qshpc.aer import EstimatorV2

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.1, 2), ["cx"])
    result = EstimatorV2(options={"backend_options": {"noise_model": noise}}).run(
        [(qc, ["ZZ", "XX"])]
    )
    pub = result.result()[0]
    assert pub.data.evs == pytest.approx([0.9, 0.9], abs=1e-12)  # Aer's EstimatorV2's values
    assert pub.metadata["simulator_metadata"]["method"] == "density_matrix"


def test_an_unknown_backend_option_is_refused_with_the_nearest_names() -> None:
    """F4: a misspelled backend option ran as if unset; Aer raises 'Invalid option'."""
    from qiskit import QuantumCircuit

    from qshpc.aer import EstimatorV2, SamplerV2
    from qshpc.aer.v2.pubs import PubError

    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    options = {"backend_options": {"method": "matrix_product_state", "mps_truncation_threshold": 1}}
    with pytest.raises(
        PubError, match=r"'mps_truncation_threshold' \(did you mean 'matrix_product_state_trunc"
    ):
        SamplerV2(options=options)
    with pytest.raises(ValueError, match=r"unknown backend option.*'bogus'"):
        EstimatorV2(options={"backend_options": {"bogus": 1}})
    sampler = SamplerV2(seed=1)
    sampler.options.backend_options["fusion_enabled"] = False  # set later: refused at run
    with pytest.raises(PubError, match=r"'fusion_enabled' \(did you mean 'fusion_enable'"):
        sampler.run([bell])
    sampler.options.backend_options = {"fusion_enable": False}  # a valid one runs
    assert sampler.run([bell]).result()[0].data.meas.num_shots == 1024


def test_every_register_that_cannot_be_a_field_is_named() -> None:
    """F7: only the first was named, so the user renamed one, ran again, renamed the next."""
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister

    from qshpc.aer import SamplerV2
    from qshpc.aer.v2.pubs import PubError

    regs = [ClassicalRegister(1, n) for n in ("items", "fine", "keys", "shape")]
    qc = QuantumCircuit(QuantumRegister(1), *regs)
    qc.measure(0, regs[0][0])
    with pytest.raises(PubError, match=r"PUB 0: the classical registers 'items', 'keys', 'shape'"):
        SamplerV2().run([qc])


def test_simulator_metadata_records_the_device_used_after_a_cpu_fallback() -> None:
    """F6: device='GPU' with no usable GPU warns and runs on the CPU; the metadata said GPU."""
    from qiskit import QuantumCircuit

    from qshpc.aer import EstimatorV2, SamplerV2
    from qshpc.aer.device import aer_devices, gpus_hidden

    if "GPU" in aer_devices() and not gpus_hidden():
        pytest.skip("a GPU is usable here: no fallback to see")
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    options = {"backend_options": {"device": "GPU"}}
    with warnings.catch_warnings():  # the warning is once a process: maybe given already
        warnings.simplefilter("ignore", RuntimeWarning)
        estimate = EstimatorV2(options=options).run([(qc, "ZZ")]).result()[0]
        qc.measure_all()
        sample = SamplerV2(options=options, seed=1).run([qc]).result()[0]
    assert estimate.metadata["simulator_metadata"]["device"] == "CPU"
    assert sample.metadata["simulator_metadata"]["device"] == "CPU"


def _ghz(n: int, measured: bool) -> Any:
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(n)
    qc.h(0)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    if measured:
        qc.measure_all()
    return qc


def test_automatic_runs_a_wide_clifford_circuit_on_the_stabilizer_method() -> None:
    """F1: method='automatic' was taken for the statevector: a 60-qubit GHZ circuit, which
    Aer's primitives run at once (their automatic picks the stabilizer), was refused."""
    from qiskit import QuantumCircuit

    from qshpc.aer import EstimatorV2, SamplerV2

    auto = {"backend_options": {"method": "automatic"}}
    t = QuantumCircuit(3)  # not Clifford: the statevector, bit for bit as method='statevector'
    t.h(range(3))
    t.t(0)
    t.cx(0, 2)
    t.measure_all()
    result = SamplerV2(seed=3, options=auto).run([_ghz(60, True), t], shots=200).result()
    counts = result[0].data.meas.get_counts()
    assert set(counts) == {"0" * 60, "1" * 60} and sum(counts.values()) == 200
    assert [p.metadata["simulator_metadata"]["method"] for p in result] == [
        "stabilizer",
        "statevector",
    ]
    plain = SamplerV2(seed=3, options={"backend_options": {"method": "statevector"}})
    with pytest.raises(ValueError, match=r"PUB 0: .* 60 qubits"):
        plain.run([_ghz(60, True), t], shots=200)
    t_only = plain.run([_ghz(3, True), t], shots=200).result()[1].data.meas.array
    assert (t_only == result[1].data.meas.array).all()
    evs = EstimatorV2(options=auto).run([(_ghz(60, False), ["Z" * 60, "X" * 60])]).result()
    assert evs[0].data.evs.tolist() == [1.0, 1.0]
    assert evs[0].metadata["simulator_metadata"]["method"] == "stabilizer"


def test_a_wide_clifford_circuit_on_the_statevector_gets_no_billion_node_advice() -> None:
    """F1: the refusal (the default method) suggested `--nodes 1073741824`; it names
    method='automatic' for a Clifford circuit instead."""
    from qshpc.aer import SamplerV2
    from qshpc.aer.v2.pubs import PubError

    with pytest.raises(PubError) as caught:
        SamplerV2().run([_ghz(60, True)])
    text = str(caught.value)
    assert "1,073,741,824" not in text and "--nodes" not in text, text
    assert "it is a Clifford circuit: options={'backend_options': {'method': 'automatic'}}" in text


def test_an_error_while_a_pub_runs_names_the_pub_the_gate_and_the_default() -> None:
    """F5: no PUB, 'automatic (the default)' where the default is statevector, and only Aer's
    'invalid parameters' (the transpile had made the T gate an rz)."""
    from qiskit import QuantumCircuit

    from qshpc.aer import EstimatorV2, SamplerV2
    from qshpc.aer.v2.pubs import PubError

    t = QuantumCircuit(2)
    t.h(0)
    t.t(0)
    t.cx(0, 1)
    ok = _ghz(2, False)
    stabilizer = {"backend_options": {"method": "stabilizer"}}
    job = EstimatorV2(options=stabilizer).run([(ok, "ZZ"), (t, "ZZ")])
    with pytest.raises(PubError) as caught:
        job.result()
    text = str(caught.value)
    assert text.startswith("PUB 1: Aer's 'stabilizer' method cannot run this circuit"), text
    assert "not Clifford, as this rank runs it: rz(0.7854)" in text
    assert "method='statevector' (the default) or 'automatic'" in text
    t.measure_all()
    job = SamplerV2(options=stabilizer).run([_ghz(2, True), t])
    with pytest.raises(PubError, match=r"^PUB 1: Aer's 'stabilizer' method cannot run"):
        job.result()
