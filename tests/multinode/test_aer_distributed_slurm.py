"""One statevector over 4 ranks on two nodes, from a task of a job sent with ``qshpc submit``.

``qshpc submit wide_circuit.py --nodes 2 --ntasks-per-node 2``: one task calls
``run_circuits`` for 4 processes on 2 nodes; inside the allocation that is an
``srun --overlap`` job step (:class:`qshpc.submit.slurm.SrunStep`, chosen by the
rank itself), while the job's other calls run on the workers. The test checks
that the step's ranks sat on both nodes, that each held about its share of the
statevector (not the whole: memory and host per rank in the task's provenance),
and that the values are exact. Needs the MPI Aer (``make install-aer-mpi``) and
``make slurm-up NODES=3``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from mn_util import qshpc, read_tasks, record_figure, status_json, wait_slurm

from qshpc.aer.distributed.install import locate, why_missing
from tests.conftest import PROGRAMS

pytestmark = [pytest.mark.multinode, pytest.mark.slurm, pytest.mark.slow]


def test_a_task_of_a_submitted_job_spreads_one_statevector_over_two_nodes(
    multinode_env: dict[str, str], tmp_path: Path
) -> None:
    if locate() is None:
        if os.environ.get("QSHPC_REQUIRE_AER_MPI") == "1":
            pytest.fail(why_missing())
        pytest.skip(why_missing() + " (make install-aer-mpi)")
    n = 22
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"qubits": n, "ranks": 4, "nodes": 2}))
    out = qshpc("submit", "--nodes", "2", "--ntasks-per-node", "2", "--time-min", "10",
                str(PROGRAMS / "wide_circuit.py"), "--arguments", str(args), "--json")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    ids = json.loads(out.stdout)
    job_id, slurm_id = ids["job_id"], str(ids["slurm_job_id"])
    try:
        waited = qshpc("wait", job_id, "--timeout", "300", timeout=330)
        meta = status_json(job_id)
        assert meta["state"] == "SUCCEEDED", (meta.get("error"), waited.stdout, waited.stderr)
        job_dir = Path(meta["job_dir"])
        from qshpc.store import JobReader

        with JobReader.open(job_dir) as r:
            result = r.result(allow_pickle=True)
        tasks = read_tasks(job_dir)
    finally:
        wait_slurm(slurm_id, 60)
    wide = result["wide"]
    assert result["small"] == [i * i for i in range(16)]
    assert wide["ranks"] == 4 and wide["launcher"] == "srun", wide
    assert wide["prob_err"] < 1e-9 and wide["ev_err"] < 1e-9, wide
    hosts = wide["hosts"]
    assert len(set(hosts)) == 2 and all(hosts.count(h) == 2 for h in hosts), wide
    (record,) = [t for t in tasks if t["function"].endswith("wide")]
    (entry,) = record["provenance"]["aer_steps"]
    assert entry["hosts"] == hosts
    record_figure("aer step over 2 nodes from a task", **entry)
    whole = 16 * 2**n  # bytes of the statevector; each rank should hold about a quarter
    for peak, before in zip(entry["peak_rss"], entry["before_rss"], strict=True):
        assert 0 < peak - before < whole / 2, entry


def test_the_primitives_split_one_circuit_over_the_four_ranks_of_two_nodes(
    multinode_env: dict[str, str], tmp_path: Path
) -> None:
    """``qshpc submit split_slurm.py --nodes 2 --ntasks-per-node 2``: a ``ranks=4`` task's
    SamplerV2 and EstimatorV2 each split a 22-qubit PUB over the 4 held ranks, as an ``srun``
    step pinned to their two nodes (``--nodelist``): Aer's own count is 4, two ranks on each
    node, each holding about a quarter of the statevector; the shots are those of one rank,
    the values Qiskit's exact ones within 1e-9."""
    if locate() is None:
        if os.environ.get("QSHPC_REQUIRE_AER_MPI") == "1":
            pytest.fail(why_missing())
        pytest.skip(why_missing() + " (make install-aer-mpi)")
    import numpy as np

    n = 22
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"qubits": n}))
    out = qshpc("submit", "--nodes", "2", "--ntasks-per-node", "2", "--time-min", "10",
                str(PROGRAMS / "split_slurm.py"), "--arguments", str(args), "--json")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    ids = json.loads(out.stdout)
    job_id, slurm_id = ids["job_id"], str(ids["slurm_job_id"])
    try:
        waited = qshpc("wait", job_id, "--timeout", "300", timeout=330)
        meta = status_json(job_id)
        assert meta["state"] == "SUCCEEDED", (meta.get("error"), waited.stdout, waited.stderr)
        job_dir = Path(meta["job_dir"])
        from qshpc.store import JobReader

        with JobReader.open(job_dir) as r:
            result = r.result()
        tasks = read_tasks(job_dir)
    finally:
        wait_slurm(slurm_id, 60)
    (counts, evs), one = result["split"], result["one"]
    assert np.array_equal(counts, one)  # the shots of a run on one rank, same seed
    assert np.abs(evs - result["exact"]).max() < 1e-9
    (record,) = [t for t in tasks if t["function"].endswith("big")]
    steps = record["provenance"]["aer_steps"]
    assert len(steps) == 2  # the estimator's PUB, the sampler's PUB
    whole = 16 * 2**n
    for entry in steps:
        hosts = entry["hosts"]
        assert entry["ranks"] == 4 and entry["split"] == 4 and entry["launcher"] == "srun", entry
        assert len(set(hosts)) == 2 and all(hosts.count(h) == 2 for h in hosts), entry
        assert entry["nodelist"] is not None and set(entry["nodelist"].split(",")) == set(hosts)
        for peak, before in zip(entry["peak_rss"], entry["before_rss"], strict=True):
            assert 0 < peak - before < whole / 2, entry
    record_figure("primitives split over 2 nodes (4 ranks)", **steps[0])
