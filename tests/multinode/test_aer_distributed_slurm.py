"""One statevector over 4 ranks on two nodes: an ``srun --overlap`` step inside a running job.

A 2-node x 2-task allocation runs 4 waiting tasks (the job's own ranks); task 0
starts the distributed Aer step with :class:`qshpc.submit.slurm.SrunStep`. The
test checks that the step's ranks sat on both nodes, that each held about its
share of the statevector (not the whole), and that the values are exact.
Needs the MPI Aer (``make install-aer-mpi``) and ``make slurm-up NODES=3``.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
from mn_util import REPO, record_figure, sbatch, wait_slurm

from qshpc.aer.distributed.install import locate, why_missing

pytestmark = [pytest.mark.multinode, pytest.mark.slurm, pytest.mark.slow]

TASK = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    out = Path(sys.argv[1])
    if os.environ["SLURM_PROCID"] != "0":
        while not (out / "done").exists():  # the job's other ranks wait, as workers would
            time.sleep(0.2)
        sys.exit(0)
    try:
        from qiskit import QuantumCircuit
        from qiskit.quantum_info import SparsePauliOp, Statevector
        from qshpc.aer.distributed.run import run_circuits
        from qshpc.aer.distributed.spec import Save
        from qshpc.submit.slurm import step_launcher
        n = 22
        c = QuantumCircuit(n)
        for q in range(n):
            c.ry(0.1 + 0.05 * q, q)
        for q in range(n - 1):
            c.cx(q, q + 1)
        c.rz(0.3, n - 1)
        c.cx(n - 1, 0)
        terms = [("X" + "Z" * (n - 2) + "Y", 0.5, 0.0), ("Z" * n, 0.25, 0.0)]
        launcher = step_launcher()
        assert launcher is not None, "not in an allocation"
        step = run_circuits([c], 4, launcher=launcher, nodes=2, timeout=300,
                            saves=[[Save("probabilities", [0, n - 1], "p"),
                                    Save("expectation_value", list(range(n)), "ev", terms)]])
        exact = Statevector(c)
        obs = SparsePauliOp([t[0] for t in terms], [t[1] for t in terms])
        report = {
            "hosts": step.hosts(),
            "peak": [r["peak_rss"] for r in step.ranks],
            "before": [r["before_run"]["VmRSS"] for r in step.ranks],
            "ranks": step.result["metadata"]["num_processes_per_experiments"],
            "prob_err": float(abs(step.probabilities(0, "p") - exact.probabilities([0, n - 1])).max()),
            "ev_err": abs(step.value(0, "ev") - float(exact.expectation_value(obs).real)),
            "wall_s": step.wall_s,
        }
        (out / "report.json").write_text(json.dumps(report))
    finally:
        (out / "done").write_text("")
""")


def test_a_step_spans_two_nodes_with_a_share_each(
    multinode_env: dict[str, str], tmp_path: Path
) -> None:
    if locate() is None:
        if os.environ.get("QSHPC_REQUIRE_AER_MPI") == "1":
            pytest.fail(why_missing())
        pytest.skip(why_missing() + " (make install-aer-mpi)")
    (tmp_path / "task.py").write_text(TASK)
    script = tmp_path / "job.sh"
    script.write_text(
        textwrap.dedent(f"""\
        #!/bin/bash
        #SBATCH --nodes=2
        #SBATCH --ntasks-per-node=2
        #SBATCH --time=10
        #SBATCH --output={tmp_path}/job-%j.out
        export PYTHONPATH={REPO}
        export QSHPC_HOME={tmp_path}/home
        srun --mpi=pmi2 {sys.executable} {tmp_path}/task.py {tmp_path}
    """)
    )
    job = sbatch(script)
    state = wait_slurm(job, timeout=400)
    log = "".join(p.read_text() for p in tmp_path.glob("job-*.out"))
    assert state == "COMPLETED", log
    report = json.loads((tmp_path / "report.json").read_text())
    record_figure("aer step over 2 nodes", **report)
    assert report["ranks"] == 4
    hosts = report["hosts"]
    assert len(set(hosts)) == 2 and all(hosts.count(h) == 2 for h in hosts), report
    assert report["prob_err"] < 1e-9 and report["ev_err"] < 1e-9, report
    whole = 16 * 2**22  # bytes of the 22-qubit statevector; each rank should hold about a quarter
    for peak, before in zip(report["peak"], report["before"], strict=True):
        assert peak - before < whole / 2, report
