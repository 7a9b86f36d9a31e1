"""review13: ``qshpc submit --resume`` of a job whose resumed run fails again.

The job's runs and their waits (~10 s, mostly Slurm's) are an early launch
(tests/early_jobs.py), overlapping the rest of the session; the test checks what it saw.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.early_jobs import Context, Early
from tests.slurm.test_submit import status_json, submit, wait_state, write_program
from tests.unit.test_hunt13_review13 import FAILS

pytestmark = pytest.mark.slurm


def _launch_fails_again(ctx: Context) -> dict[str, Any]:
    """Submit FAILS, resume it once it failed, wait for the resumed run's end, resume it
    again and cancel that run; what each step answered."""
    prog = write_program(ctx.work / "prog", "fails.py", FAILS)
    ids = submit(str(prog), cli=ctx.qshpc)
    ctx.slurm_job(ids["slurm_job_id"])
    wait_state(ids["job_id"], {"FAILED"}, 120, ctx.qshpc, ctx.sleep, every=2)
    seen: dict[str, Any] = {}
    seen["resume"] = out = ctx.qshpc("submit", "--resume", ids["job_id"], "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    ctx.slurm_job(json.loads(out.stdout)["slurm_job_id"])
    seen["wait"] = ctx.qshpc("wait", ids["job_id"], "--timeout", "120", timeout=180)
    # the second look reads Slurm's kept answer
    seen["looks"] = [status_json(ids["job_id"], ctx.qshpc) for _ in range(2)]
    seen["again"] = again = ctx.qshpc("submit", "--resume", ids["job_id"], "--json", timeout=60)
    if again.returncode == 0:
        ctx.slurm_job(json.loads(again.stdout)["slurm_job_id"])
    seen["cancel"] = ctx.qshpc("cancel", ids["job_id"], timeout=60)
    seen["ended"] = wait_state(
        ids["job_id"], {"FAILED", "CANCELED"}, 60, ctx.qshpc, ctx.sleep, every=2
    )
    return seen


@pytest.mark.early(launch=_launch_fails_again)
def test_a_resumed_run_that_fails_again_ends_failed(
    slurm_env: dict[str, str], early_job: Early
) -> None:
    seen = early_job.outcome()
    assert seen["resume"].returncode == 0, seen["resume"].stderr
    # Was QUEUED (slurm: FAILED) for good on af3d119 once Slurm's answer was kept:
    # `qshpc wait` never returned; `qshpc rm` and another --resume refused the job.
    wait = seen["wait"]
    assert wait.returncode == 1 and "FAILED" in wait.stdout, wait.stdout + wait.stderr
    for meta in seen["looks"]:
        assert meta["state"] == "FAILED", meta
    again = seen["again"]  # not refused as QUEUED
    assert again.returncode == 0, again.stderr
    assert seen["cancel"].returncode == 0
    assert seen["ended"]["state"] in ("FAILED", "CANCELED"), seen["ended"]
