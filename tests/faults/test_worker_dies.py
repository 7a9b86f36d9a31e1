"""A worker rank killed with SIGKILL: the job ends FAILED quickly, naming the rank, host and
tasks it held, and every result finished before the kill stays in the store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, job_dir_of, run_cli

pytestmark = pytest.mark.mpi


def test_worker_sigkill_under_qshpc_run(qshpc_home: Path) -> None:
    t0 = time.monotonic()
    out = run_cli("run", str(PROGRAMS / "worker_dies.py"), "--workers", "2", timeout=60)
    elapsed = time.monotonic() - t0
    assert out.returncode != 0
    assert elapsed < 30
    assert "on host" in out.stderr and "SIGKILL" in out.stderr
    assert "rank 1 on" in out.stderr  # the rank that held the unfinished tasks
    assert "unfinished task(s)" in out.stderr
    job = job_dir_of(qshpc_home)
    meta = json.loads(run_cli("status", str(job), "--json").stdout)
    assert meta["state"] == "FAILED"
    assert "rank 1" in meta["error"] and "held" in meta["error"]
    assert meta["task_counts"]["SUCCEEDED"] >= 6  # the first get() finished before the kill
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        done = {t["task_id"] for t in r.tasks() if t["state"] == "SUCCEEDED"}
        assert {"0", "1", "2", "3", "4", "5"} <= done
        assert r.task_result("3") == 3


def test_worker_sigkill_under_plain_mpiexec(qshpc_home: Path) -> None:
    out = run_cli("run", str(PROGRAMS / "worker_dies.py"), ranks=3, timeout=60)
    assert out.returncode != 0
    job = job_dir_of(qshpc_home)
    status = run_cli("status", str(job))
    assert status.stdout.startswith("FAILED")
    assert "unfinished task(s)" in status.stdout


def test_checkpoints_keep_job_h5_current_and_recover_folds(qshpc_home: Path) -> None:
    """With checkpoints every second, job.h5 alone (read with plain h5py) holds the
    results; after the crash the journal is folded in by the launcher."""
    import h5py

    out = run_cli(
        "run",
        str(PROGRAMS / "worker_dies.py"),
        "--workers",
        "2",
        timeout=60,
        env={"QSHPC_CHECKPOINT_S": "0"},
    )
    assert out.returncode != 0
    job = job_dir_of(qshpc_home)
    assert not (job / "job.journal").exists()  # folded by the launcher's post-mortem
    with h5py.File(job / "job.h5", "r") as f:
        assert len(f["log/records"]) >= 6


def test_rank0_failing_to_prepare_leaves_no_worker_waiting(tmp_path: Path, qshpc_home: Path) -> None:
    """An unexpected error while rank 0 prepares the job (injected: the known ones are
    user errors) reaches the workers, which exit instead of waiting in MPI forever."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('PMI_RANK') == '0':\n"
        "    import qshpc.jobs.prepare as p\n"
        "    def boom(spec):\n"
        "        raise RuntimeError('disk on fire')\n"
        "    p.prepare_job = boom\n"
    )
    (tmp_path / "ok.py").write_text("from qshpc import save_result\nsave_result(1)\n")
    import os

    path = os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")])
    start = time.monotonic()
    out = run_cli("run", str(tmp_path / "ok.py"), ranks=3, timeout=60, env={"PYTHONPATH": path})
    assert out.returncode != 0
    assert "disk on fire" in out.stderr
    assert time.monotonic() - start < 30
