"""review13: ``qshpc submit --resume`` of a job whose resumed run fails again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.slurm.test_submit import status_json, submit, wait_state, write_program
from tests.unit.test_hunt13_review13 import FAILS

pytestmark = pytest.mark.slurm


def test_a_resumed_run_that_fails_again_ends_failed(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    prog = write_program(tmp_path / "prog", "fails.py", FAILS)
    ids = submit(str(prog))
    wait_state(ids["job_id"], {"FAILED"}, 120)
    out = run_cli("submit", "--resume", ids["job_id"], "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    # Was QUEUED (slurm: FAILED) for good on af3d119 once Slurm's answer was kept:
    # `qshpc wait` never returned; `qshpc rm` and another --resume refused the job.
    wait = run_cli("wait", ids["job_id"], "--timeout", "120", timeout=180)
    assert wait.returncode == 1 and "FAILED" in wait.stdout, wait.stdout + wait.stderr
    for _ in range(2):  # the second look reads Slurm's kept answer
        meta = status_json(ids["job_id"])
        assert meta["state"] == "FAILED", meta
    again = run_cli("submit", "--resume", ids["job_id"], timeout=60)  # not refused as QUEUED
    assert again.returncode == 0, again.stderr
    assert run_cli("cancel", ids["job_id"], timeout=60).returncode == 0
    wait_state(ids["job_id"], {"FAILED", "CANCELED"}, 60)
