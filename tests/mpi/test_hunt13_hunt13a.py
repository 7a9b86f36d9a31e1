"""Hunt 13a under mpiexec: an estimator PUB of a measured circuit, a sampler PUB without
classical registers and the PUB results' simulator_metadata, on 1 and 3 ranks, stored typed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_program

pytestmark = pytest.mark.mpi

PROGRAM = """\
import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qshpc import save_result
from qshpc.aer import EstimatorV2, SamplerV2

t = Parameter("t")
qc = QuantumCircuit(2)
qc.ry(t, 0)
qc.cx(0, 1)
qc.measure_all()
rows = np.linspace(0, 3, 6)[:, None]
est = EstimatorV2().run([(qc, ["XX", "ZZ", "ZI"], rows[:, None, :])], precision=0.0)
bare = QuantumCircuit(1)
bare.h(0)
smp = SamplerV2().run([(bare, None, 4), (qc, rows, 16)])
save_result({"estimator": est.result(), "sampler": smp.result()})
"""


@pytest.mark.parametrize("ranks", [1, 3])
def test_measured_estimator_and_unmeasured_sampler_on_the_ranks(
    qshpc_home: Path, tmp_path: Path, ranks: int
) -> None:
    job = run_program(qshpc_home, tmp_path / "v2.py", PROGRAM, "--seed", "4", ranks=ranks)
    result = job.result()
    est = result["estimator"][0]
    t = np.linspace(0, 3, 6)
    want = np.stack([np.zeros(6), np.ones(6), np.cos(t)], axis=1)  # XX collapsed to 0
    assert est.data.evs.shape == (6, 3) and np.allclose(est.data.evs, want, atol=1e-12)
    assert est.metadata["simulator_metadata"]["method"] == "statevector"
    empty, measured = result["sampler"][0], result["sampler"][1]
    assert empty.data.shape == () and list(empty.data) == [] and empty.metadata["shots"] == 4
    assert measured.data.meas.shape == (6,) and measured.data.meas.num_shots == 16
    assert measured.metadata["simulator_metadata"]["blocks"] >= 1


def test_mode_local_client_stores_the_observables_as_given(qshpc_home: Path) -> None:
    # <XX> of a measured pair is the zero observable once collapsed: the job stored it so, and
    # failed to read its own arguments ("Empty observable was detected")
    import warnings

    from qiskit import QuantumCircuit

    from qshpc import LocalClient
    from qshpc.aer import EstimatorV2, SamplerV2

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    measured = qc.measure_all(inplace=False)
    est = EstimatorV2(mode=LocalClient(workers=1)).run([(measured, ["XX", "ZZ"])])
    assert np.allclose(est.result(timeout=180)[0].data.evs, [0.0, 1.0], atol=1e-12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        job = SamplerV2(seed=7, mode=LocalClient(workers=1)).run([(qc, None, 5), measured])
    assert any("no output classical registers" in str(w.message) for w in caught)
    result = job.result(timeout=180)
    assert list(result[0].data) == [] and result[0].metadata["shots"] == 5
    assert set(result[1].data.meas.get_counts()) == {"00", "11"}
