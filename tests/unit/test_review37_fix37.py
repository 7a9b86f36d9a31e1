"""review37 (fix37): the V2 primitives' options, methods, errors and metadata."""

from __future__ import annotations

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
