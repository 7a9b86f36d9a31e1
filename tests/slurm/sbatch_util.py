"""Submitting batch scripts to the dev Slurm cluster and waiting on them (tests/slurm).

Shared by the Slurm tests that call ``sbatch`` themselves (test_cluster.py,
test_hunt12_hunt12b.py, test_hunt12_hunt12d.py). Every call has a timeout
(deadlock guard); a wait that runs out cancels the job and fails the test.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

TERMINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
}


def sh(args: list[str], timeout: float = 30, **kw: object) -> subprocess.CompletedProcess[str]:
    """subprocess.run with captured text and a timeout on every call (deadlock guard)."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


def sbatch(*args: str, env: dict[str, str] | None = None) -> str:
    """``sbatch --parsable ARGS``; the Slurm job id."""
    out = sh(["sbatch", "--parsable", *args], env=env)
    assert out.returncode == 0, f"sbatch failed: {out.stderr}"
    return out.stdout.strip().split(";")[0]


def sacct_state(job_id: str) -> str:
    """The allocation's raw state (``COMPLETED``, ``CANCELLED``, ...), '' when unknown yet."""
    out = sh(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"], timeout=15)
    assert out.returncode == 0, f"sacct failed: {out.stderr}"
    lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    return lines[-1].split()[0] if lines else ""


def slurm_field(job_id: str, key: str) -> str:
    """One field of ``scontrol show job`` (``JobState``, ``Restarts``...), '' when absent."""
    for word in sh(["scontrol", "show", "job", job_id]).stdout.split():
        if word.startswith(f"{key}="):
            return word.split("=", 1)[1]
    return ""


def wait_terminal(job_id: str, timeout: float = 60) -> str:
    """Wait until sacct says the job ended; its raw state (scancel + fail on timeout)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = sacct_state(job_id)
        if state in TERMINAL:
            return state
        time.sleep(0.25)
    sh(["scancel", job_id])
    pytest.fail(f"job {job_id} not finished after {timeout}s (last sacct state {state!r})")


def wait_unlisted(job_id: str, timeout: float) -> float:
    """Wait (at most ``timeout`` s) until squeue no longer lists the job; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not sh(["squeue", "-h", "-j", job_id, "-o", "%T"]).stdout.strip():
            break
        time.sleep(1)
    return time.monotonic() - started


def batch_script(folder: Path, ntasks: int, body: str, name: str = "qshpc-test") -> Path:
    """``folder/job.sbatch``: ``ntasks`` tasks, 3 minutes, ``body`` as its last line."""
    script = folder / "job.sbatch"
    script.write_text(
        "#!/bin/bash\n"
        f"#SBATCH --job-name={name}\n"
        f"#SBATCH --ntasks={ntasks}\n"
        "#SBATCH --time=00:03:00\n"
        f"{body}\n"
    )
    return script
