"""perf19: a burst's hits are recorded one after the other and resolved together. Rank 0
killed (SIGKILL) in the middle of a burst's records: the store keeps what was committed,
``qshpc status`` reads the job, and ``--resume`` ends it with every result right."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import job_dir_of, run_cli

pytestmark = pytest.mark.mpi

PROGRAM = """\
import os, signal
from qiskit import QuantumCircuit
from qshpc import distribute_task, get, save_result

@distribute_task(cache=True)
def ops(circuit, tag):
    return {"tag": tag, "h": dict(circuit.count_ops()).get("h", 0)}

if os.environ.get("KILL_AT"):  # rank 0 killed right after this hit's record
    from qshpc.program import session as _s

    real = _s.Session.record_hit

    def record_hit(self, task_id, *rest):
        real(self, task_id, *rest)
        if task_id == os.environ["KILL_AT"]:
            os.kill(os.getpid(), signal.SIGKILL)

    _s.Session.record_hit = record_hit
circuits = []
for i in range(200):
    qc = QuantumCircuit(1)
    for _ in range(i + 1):
        qc.h(0)
    circuits.append(qc)
refs = [ops(c, i) for i, c in enumerate(circuits)]
save_result({"out": get(refs)})
"""


def test_rank_0_killed_mid_burst_then_status_and_resume(qshpc_home: Path, tmp_path: Path) -> None:
    prog = tmp_path / "kill.py"
    prog.write_text(PROGRAM)
    cache = ["--cache", "--cache-dir", str(tmp_path / "cache")]
    first = run_cli("run", str(prog), "--workers", "2", *cache, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    killed = run_cli("run", str(prog), "--workers", "2", *cache, env={"KILL_AT": "150"},
                     timeout=300)  # fmt: skip
    assert killed.returncode != 0, killed.stdout + killed.stderr
    job = job_dir_of(qshpc_home).name
    status = run_cli("status", job)
    assert "Traceback" not in status.stdout + status.stderr, status.stdout + status.stderr
    assert "FAILED" in status.stdout, status.stdout
    found = re.search(r"(\d+) done", status.stdout)
    # What the store kept: committed records only (at most those before the kill).
    assert found is not None and int(found.group(1)) <= 151, status.stdout
    resumed = run_cli("run", str(prog), "--resume", job, "--workers", "2", *cache, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    out = json.loads(run_cli("result", job, "--json").stdout)["out"]
    assert out == [{"tag": i, "h": i + 1} for i in range(200)]
    final = run_cli("status", job).stdout
    assert "200 done" in final and "Traceback" not in final, final
