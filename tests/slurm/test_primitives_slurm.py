"""SamplerV2/EstimatorV2 with mode=SlurmClient on the dev cluster: the same counts as in-process."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slurm


def test_primitives_with_slurm_client_mode(slurm_env: dict[str, str], qshpc_home: Path) -> None:
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector
    from qiskit.primitives import PrimitiveResult
    from qiskit.providers import JobStatus

    import qshpc
    from qshpc import SlurmClient
    from qshpc.aer import EstimatorV2, SamplerV2

    theta = ParameterVector("t", 4)
    qc = QuantumCircuit(4)
    for q in range(4):
        qc.ry(theta[q], q)
    for q in range(3):
        qc.cx(q, q + 1)
    unitary = qc.copy()
    qc.measure_all()
    values = np.random.default_rng(2).uniform(0, np.pi, (30, 4))
    pubs = [(qc, values), (qc, values[:3], 100)]
    client = SlurmClient(nodes=1, ntasks_per_node=2, time_min=5)

    job = SamplerV2(seed=21, mode=client).run(pubs)
    ejob = EstimatorV2(seed=21, mode=client).run(
        [(unitary, ["ZZII", "IIXX"], values[:, None], 0.01)]
    )
    assert job.status() in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE)
    result = job.result(timeout=300)
    assert isinstance(result, PrimitiveResult) and job.done()
    here = SamplerV2(seed=21).run(pubs).result()
    for a, b in zip(here, result, strict=True):
        assert np.array_equal(a.data.meas.array, b.data.meas.array)
    assert qshpc.open_job(job.job_id()).job_dir.joinpath("slurm_job_id").is_file()
    again = qshpc.open_job(job.job_id()).result()
    assert np.array_equal(again[0].data.meas.array, result[0].data.meas.array)
    evs = ejob.result(timeout=300)[0].data
    want = EstimatorV2(seed=21).run([(unitary, ["ZZII", "IIXX"], values[:, None], 0.01)])
    assert np.array_equal(evs.evs, want.result()[0].data.evs) and np.all(evs.stds == 0.01)
    status = run_cli("status", job.job_id(), timeout=60)
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout, status.stdout
