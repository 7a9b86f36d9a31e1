"""Cancelling a local job: it ends CANCELED within seconds and keeps what finished."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qshpc import LocalClient, Program
from tests.conftest import PROGRAMS, run_cli

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("how", ["client", "cli"])
def test_cancel_local_job(qshpc_home: Path, how: str) -> None:
    job = LocalClient(workers=2).run(
        Program(title="slow", entrypoint="slow.py", working_dir=str(PROGRAMS))
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = job.info()
        if (info.get("task_counts") or {}).get("SUCCEEDED", 0) >= 8:
            break
        time.sleep(0.2)
    assert job.status() == "RUNNING"
    assert "of 400" in job.status_text()
    t0 = time.monotonic()
    if how == "client":
        assert job.stop()
    else:
        out = run_cli("cancel", job.job_id)
        assert out.returncode == 0, out.stderr
    assert job.wait(timeout=30) == "CANCELED"
    assert time.monotonic() - t0 < 15
    info = job.info()
    assert info["task_counts"]["SUCCEEDED"] >= 8
    assert "cancel" in (job.error_message() or "")
