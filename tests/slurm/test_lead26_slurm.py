"""Session 26, lead: the example batch scripts, restarted after their run SUCCEEDED."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.slurm

SQUARES = """
from qshpc import distribute_task, get, save_result

@distribute_task()
def sq(i: int) -> int:
    return i * i

save_result({"sq": get([sq(i) for i in range(6)])})
"""


def test_an_example_batch_job_restarted_after_it_succeeded_completes_and_keeps_its_result(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    """Session 25's closing note: Slurm restarting slurm/examples/run_cpu.sbatch after its
    run had SUCCEEDED (``scontrol requeue`` of the finished job, or a node lost between
    qshpc's end and Slurm's) ran ``qshpc run --resume``, refused (exit 2: nothing to
    resume), and Slurm recorded the job FAILED. The script now ends it COMPLETED."""
    from tests.slurm.sbatch_util import sbatch, slurm_field, wait_terminal

    work = tmp_path / "work"
    work.mkdir()
    (work / "squares.py").write_text(SQUARES)
    job_dir = tmp_path / "jobdir"
    env = {**os.environ, "PROGRAM": str(work / "squares.py"), "JOB_DIR": str(job_dir)}
    env["PYTHONPATH"] = str(ROOT)
    script = str(ROOT / "slurm/examples/run_cpu.sbatch")
    job = sbatch("--chdir", str(work), "--time", "5", script, env=env)
    try:
        assert wait_terminal(job, 180) == "COMPLETED"
        deadline = time.monotonic() + 60  # sacct says COMPLETED before slurmctld ends COMPLETING
        while time.monotonic() < deadline and slurm_field(job, "JobState") != "COMPLETED":
            time.sleep(0.5)
        # slurmd revokes the ended run's credential; a restart in the same second gets one it
        # takes for revoked ("Killing non-startable batch JobId=N: Job credential revoked",
        # FAILED: the first CI run on be79fa5). A real restart comes later than this.
        time.sleep(2)
        requeue = subprocess.run(
            ["scontrol", "requeue", job], capture_output=True, text=True, timeout=30
        )
        assert requeue.returncode == 0, requeue.stderr
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and slurm_field(job, "Restarts") != "1":
            time.sleep(0.5)
        while time.monotonic() < deadline and slurm_field(job, "JobState") == "PENDING":
            subprocess.run(
                ["scontrol", "update", f"jobid={job}", "StartTime=now"],
                capture_output=True,
                timeout=30,
            )
            time.sleep(1)
        state = wait_terminal(job, 180)
        out = work / f"qshpc-{job}.out"
        log = out.read_text() if out.exists() else "(no output file)"
        assert state == "COMPLETED", log
        assert "had already SUCCEEDED when Slurm restarted" in log, log
        meta = json.loads(run_cli("status", str(job_dir), "--json", timeout=60).stdout)
        assert meta["state"] == "SUCCEEDED" and meta["runs"] == 1, meta
        result = run_cli("result", str(job_dir), "--json", timeout=60)
        assert json.loads(result.stdout) == {"sq": [i * i for i in range(6)]}, result.stdout
    finally:
        subprocess.run(["scancel", job], timeout=30, check=False)
