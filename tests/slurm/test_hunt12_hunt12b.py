"""Rank 0 of a Slurm job killed (kill -9, as the OOM killer does): hunt12b, session 12.

``srun`` keeps a step's other tasks running when one dies. On 7186ba2 the worker
waited for rank 0 forever (spinning in its result sends) and the Slurm job stayed
RUNNING until its time limit; then ``qshpc run --resume`` was refused for 70 s
more as "already running ... cancel it" (the dead holder's lock, on another host,
waits for its expiry). Now the worker ends once rank 0's lock is gone, and a
lock whose holder's Slurm job Slurm says is over (not COMPLETING) is taken over
at once.

The kill, the 35-50 s wait for the job's end and the resume run as an early launch
(tests/early_jobs.py), overlapping the rest of the session; the test checks what it saw.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.early_jobs import Context, Early

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]

SLOW = """\
import time
from qshpc import distribute_task, get, save_result


@distribute_task()
def f(i):
    time.sleep(1.0)
    return i * i


save_result(get([f(i) for i in range(12)]))
"""


def _rank0_pid(slurm_id: str) -> int | None:
    """The host's pid of task 0 of step 0 of Slurm job ``slurm_id`` (the dev nodes are pid
    namespaces of this machine)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        want = (f"SLURM_JOB_ID={slurm_id}".encode(), b"SLURM_PROCID=0", b"SLURM_STEP_ID=0")
        if all(w in env for w in want) and b"PMI_RANK=0" in env:
            return int(pid)
    return None


def _launch_rank0_kill(ctx: Context) -> dict[str, Any]:
    """Submit SLOW, kill -9 its rank 0 once it holds the job's lock, wait until the Slurm job
    is gone (35-50 s: three 10 s reads of the lock by the worker), then resume it, from the
    session's start (tests/early_jobs.py); the test checks what this returns."""
    prog = ctx.work / "slow.py"
    prog.write_text(SLOW)
    out = ctx.qshpc("submit", str(prog), "--ntasks-per-node", "2", "-t", "10", "--json", timeout=90)
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    ctx.slurm_job(job["slurm_job_id"])
    job_dir, slurm_id = Path(job["job_dir"]), str(job["slurm_job_id"])
    deadline = time.monotonic() + 120
    pid = None
    while time.monotonic() < deadline:
        if (job_dir / "job.lock.holder").exists():
            pid = _rank0_pid(slurm_id)  # reads /proc/*/environ: every 1 s, not 0.3 s
            if pid is not None:
                break
        ctx.sleep(1)
    assert pid is not None, "rank 0 never started"
    over = [
        sys.executable,
        "-c",
        f"from qshpc.submit.slurm import job_over; print(job_over({slurm_id!r}))",
    ]
    running = ctx.run(over)
    assert running.stdout.strip() == "False", running  # running
    ctx.sleep(2)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    while time.monotonic() - killed < 90:
        if not ctx.run(["squeue", "-h", "-j", slurm_id, "-o", "%T"]).stdout.strip():
            break
        ctx.sleep(1)
    seen = {
        "job": job,
        "gone": time.monotonic() - killed,
        "log": (job_dir / "logs" / "rank-1.out").read_text(),
        "over": ctx.run(over).stdout.strip(),
        "lock": (job_dir / "job.lock").exists(),
    }
    # at once, here: later (when the test's turn comes) the dead holder's lock would have
    # expired anyway, and the resume would pass without the takeover under test
    seen["resumed"] = ctx.qshpc(
        "run", str(prog), "--resume", job["job_id"], "--workers", "1", timeout=120
    )
    return seen


@pytest.mark.early(launch=_launch_rank0_kill)
def test_rank0_killed_ends_the_slurm_job_and_resume_takes_over_at_once(
    slurm_env: dict[str, str], early_job: Early
) -> None:
    from qshpc.submit.slurm import job_over

    seen = early_job.outcome()
    job, gone = seen["job"], seen["gone"]
    assert gone < 75, f"the Slurm job still ran {gone:.0f} s after rank 0 was killed"
    assert "rank 0 (host" in seen["log"]
    assert seen["over"] == "True" and job_over(str(job["slurm_job_id"]))
    assert seen["lock"]  # the dead rank 0's lock, refreshed < 70 s ago
    resumed = seen["resumed"]
    assert resumed.returncode == 0, resumed.stderr
    assert "SUCCEEDED" in resumed.stdout + resumed.stderr
    assert json.loads(run_cli("result", job["job_id"], "--json").stdout) == [
        i * i for i in range(12)
    ]
