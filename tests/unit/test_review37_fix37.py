"""review37 (fix37): the V2 primitives' options, methods, errors and metadata."""

from __future__ import annotations

import warnings

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
