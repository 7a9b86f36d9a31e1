"""Rank 0 of a Slurm job killed (kill -9, as the OOM killer does): hunt12b, session 12.

``srun`` keeps a step's other tasks running when one dies. On 7186ba2 the worker
waited for rank 0 forever (spinning in its result sends) and the Slurm job stayed
RUNNING until its time limit; then ``qshpc run --resume`` was refused for 70 s
more as "already running ... cancel it" (the dead holder's lock, on another host,
waits for its expiry). Now the worker ends once rank 0's lock is gone, and a
lock whose holder's Slurm job Slurm says is over (not COMPLETING) is taken over
at once.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.slurm.sbatch_util import wait_unlisted

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


def test_rank0_killed_ends_the_slurm_job_and_resume_takes_over_at_once(
    slurm_env: dict[str, str], tmp_path: Path, qshpc_home: Path
) -> None:
    from qshpc.submit.slurm import job_over

    prog = tmp_path / "slow.py"
    prog.write_text(SLOW)
    out = run_cli("submit", str(prog), "--ntasks-per-node", "2", "-t", "10", "--json", timeout=90)
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    job_dir, slurm_id = Path(job["job_dir"]), str(job["slurm_job_id"])
    deadline = time.monotonic() + 120
    pid = None
    while time.monotonic() < deadline:
        if (job_dir / "job.lock.holder").exists():
            pid = _rank0_pid(slurm_id)
            if pid is not None:
                break
        time.sleep(0.3)
    assert pid is not None, "rank 0 never started"
    assert not job_over(slurm_id)  # running
    time.sleep(2)
    os.kill(pid, signal.SIGKILL)
    gone = wait_unlisted(slurm_id, timeout=90)
    assert gone < 75, f"the Slurm job still ran {gone:.0f} s after rank 0 was killed"
    assert "rank 0 (host" in (job_dir / "logs" / "rank-1.out").read_text()
    assert job_over(slurm_id)
    assert (job_dir / "job.lock").exists()  # the dead rank 0's lock, refreshed < 70 s ago
    resumed = run_cli("run", str(prog), "--resume", job["job_id"], "--workers", "1", timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "SUCCEEDED" in resumed.stdout + resumed.stderr
    assert json.loads(run_cli("result", job["job_id"], "--json").stdout) == [
        i * i for i in range(12)
    ]
