"""SamplerV2/EstimatorV2 in programs under mpiexec -n 1/2/3, and mode=LocalClient from a notebook's
point of view: same counts for any rank count and any cut, typed results read back anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import PROGRAMS, job_dir_of, run_cli

pytestmark = pytest.mark.mpi


def _run(ranks: int, *extra: str, arguments: dict[str, Any] | None = None) -> tuple[Any, Path]:
    from qshpc.store import JobReader

    args: list[str] = []
    if arguments is not None:
        path = Path(os.environ["QSHPC_HOME"]).parent / f"args-{ranks}-{len(extra)}.json"
        path.write_text(json.dumps(arguments))
        args = ["--arguments", str(path)]
    out = run_cli(
        "run", str(PROGRAMS / "primitives_v2.py"), *args, *extra, ranks=ranks, timeout=240
    )
    assert out.returncode == 0, out.stderr
    job = job_dir_of(Path(os.environ["QSHPC_HOME"]))
    with JobReader.open(job) as r:
        return r.result(), job


def _arrays(result: Any) -> list[np.ndarray]:
    out = []
    for key in ("sampler", "estimator"):
        for pub in result[key]:
            for name in pub.data:
                item = pub.data[name]
                out.append(item.array if hasattr(item, "array") else np.asarray(item))
    return out


@pytest.fixture(scope="module")
def seed_4(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """One 2-rank run with ``--seed 4`` (result, job dir), in a home of its own: the other
    seed of test_bit_identical_for_any_rank_count_and_cut and the job that
    test_cli_result_summary_json_and_plot reads (each ran its own: one job less)."""
    home = tmp_path_factory.mktemp("seed-4") / "qshpc-home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QSHPC_HOME", str(home))
        yield _run(2, "--seed", "4")


def test_bit_identical_for_any_rank_count_and_cut(seed_4: tuple[Any, Path]) -> None:
    one, _ = _run(1, "--seed", "3")
    two, _ = _run(2, "--seed", "3")
    three, job = _run(3, "--seed", "3")
    cut, _ = _run(3, "--seed", "3", arguments={"rows_per_task": 3})
    for other in (two, three, cut):
        for a, b in zip(_arrays(one), _arrays(other), strict=True):
            assert np.array_equal(a, b)
    assert type(three["sampler"]).__name__ == "PrimitiveResult"
    assert three["sampler"].metadata["seed"] == one["sampler"].metadata["seed"]
    assert three["job_id"].startswith(job.name + "/sampler-")
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        names = [t["function"] for t in r.tasks()]
    # 4 sampler PUBs, the large one cut into blocks; 2 estimator PUBs likewise
    assert names.count("qshpc.SamplerV2") > 4 and names.count("qshpc.EstimatorV2") > 2
    other_seed, _ = seed_4
    assert not np.array_equal(_arrays(one)[0], _arrays(other_seed)[0])


def test_cli_result_summary_json_and_plot(tmp_path: Path, seed_4: tuple[Any, Path]) -> None:
    _, job = seed_4
    out = run_cli("result", str(job))
    assert out.returncode == 0, out.stderr
    assert "PUB 0: SamplerPubResult, shape (40,)" in out.stdout
    assert "alpha: BitArray of 3 bits x 300 shots" in out.stdout
    assert "evs: float64 (3, 2, 2)" in out.stdout
    data = json.loads(run_cli("result", str(job), "--json").stdout)
    pub0 = data["sampler"]["pubs"][0]["data"]
    assert pub0["alpha"]["shape"] == [40] and len(pub0["alpha"]["counts"]) == 40
    assert sum(pub0["alpha"]["counts"][0].values()) == 300
    png = tmp_path / "p.png"
    plot = run_cli("plot", str(job), "--out", str(png))
    assert plot.returncode == 0, plot.stderr
    assert png.stat().st_size > 10_000


def test_local_client_mode(tmp_path: Path) -> None:
    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector
    from qiskit.primitives import PrimitiveResult
    from qiskit.providers import JobStatus

    import qshpc
    from qshpc import LocalClient
    from qshpc.aer import EstimatorV2, SamplerV2

    theta = ParameterVector("t", 3)
    qc = QuantumCircuit(3)
    for q in range(3):
        qc.ry(theta[q], q)
    qc.cx(0, 1)
    qc.cx(1, 2)
    unitary = qc.copy()
    qc.measure_all()
    values = np.random.default_rng(0).uniform(0, np.pi, (17, 3))
    pubs = [(qc, values), (qc, values[:2], 64)]
    here = SamplerV2(seed=9).run(pubs).result()
    job = SamplerV2(seed=9, mode=LocalClient(workers=2)).run(pubs)
    assert job.status() in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE)
    result = job.result(timeout=180)
    assert isinstance(result, PrimitiveResult) and job.done() and job.in_final_state()
    assert job.status() == JobStatus.DONE
    for a, b in zip(here, result, strict=True):
        assert np.array_equal(a.data.meas.array, b.data.meas.array)
    # the qshpc job id works everywhere: CLI, open_job, another process
    assert qshpc.open_job(job.job_id()).status() == "SUCCEEDED"
    assert run_cli("status", job.job_id()).returncode == 0
    code = (
        "import sys, numpy as np, qshpc; r = qshpc.open_job(sys.argv[1]).result(); "
        "print(type(r).__name__, r[0].data.meas.shape, int(r[0].data.meas.array.sum()))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, job.job_id()], capture_output=True, text=True, timeout=120
    )
    assert other.stdout.split() == [
        "PrimitiveResult",
        "(17,)",
        str(int(result[0].data.meas.array.sum())),
    ], other.stderr
    # the PUBs are stored typed: circuits as QPY, values as a dataset, no pickles
    from qshpc.store import JobReader

    with JobReader.open(job.job.job_dir) as r:
        args = r.arguments()
    assert args["primitive"] == "SamplerV2" and args["values"].shape == (17 * 3 + 2 * 3,)
    obs = [["ZZI", "IXX"], [{"ZII": 0.5, "IIY": 2.0}, "XXX"]]
    ejob = EstimatorV2(mode=LocalClient(workers=2)).run([(unitary, obs, values[:4, None, None])])
    got = ejob.result(timeout=180)[0].data.evs
    want = EstimatorV2().run([(unitary, obs, values[:4, None, None])]).result()[0].data.evs
    assert got.shape == (4, 2, 2) and np.max(np.abs(got - want)) < 1e-12


def test_local_client_mode_bad_input_fails_before_a_job_exists(qshpc_home: Path) -> None:
    from qiskit import QuantumCircuit

    from qshpc import LocalClient
    from qshpc.aer import SamplerV2
    from qshpc.aer.v2.pubs import PubError

    qc = QuantumCircuit(2, 2)
    qc.h(0)
    with pytest.raises(PubError, match="inconsistent with last dimension"):
        SamplerV2(mode=LocalClient(workers=1)).run([(qc, [0.5])])
    wide = QuantumCircuit(40, 1)
    wide.h(range(40))  # sized by the qubits it acts on: measuring one is a 1-qubit circuit
    wide.measure(0, 0)
    with pytest.raises(PubError, match="40 qubits"):
        SamplerV2(mode=LocalClient(workers=1)).run([wide])
    assert not (qshpc_home / "jobs").exists() or not list((qshpc_home / "jobs").iterdir())


def test_local_client_mode_cancel(qshpc_home: Path) -> None:
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter
    from qiskit.providers import JobStatus

    from qshpc import LocalClient
    from qshpc.aer import SamplerV2

    t = Parameter("t")
    qc = QuantumCircuit(16)  # about 20000 x 5 ms of work: far longer than the test waits
    qc.h(range(16))
    for _ in range(4):
        for q in range(15):
            qc.crz(t, q, q + 1)
    qc.measure_all()
    job = SamplerV2(mode=LocalClient(workers=1)).run([(qc, np.linspace(0, 1, 20000))])
    import time

    deadline = time.monotonic() + 120
    while job.status() != JobStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.running()
    # once rank 0 runs the program (a stop while ranks start up is not this test's): it has
    # recorded tasks submitted (was a fixed 5 s sleep)
    while not job.job.info().get("tasks_submitted") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.job.info().get("tasks_submitted"), job.job.info()
    assert job.cancel(), job.job.info()
    with pytest.raises(Exception, match="CANCELED"):
        job.result(timeout=120)
    assert job.status() == JobStatus.CANCELLED and job.cancelled()
