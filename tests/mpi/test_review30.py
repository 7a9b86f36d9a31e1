"""review30 F1 on a real job: rank 0's pid, reused by an unrelated process after the job's
processes were all killed (a node's OOM killer, a ``kill -9`` of the tree), made the dead job
look RUNNING for good, and ``qshpc cancel`` (``rm --force``, ``Job.stop()``,
``kill_if_stuck``) signalled that process. The reuse is forced (root's ``ns_last_pid``)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import job_dir_of, job_status, run_cli, start_cli
from tests.mpi.test_hunt20 import _force_pid

pytestmark = pytest.mark.mpi

SLOW = """
import time
from qshpc import distribute_task, get, save_result, update_status

@distribute_task()
def nap(x):
    time.sleep(x)
    return x

update_status("napping")
save_result(get([nap(300)]))
"""


def _tree(root: int) -> list[int]:
    """``root`` and every process below it (from ``/proc``'s parent links)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def test_a_pid_reused_after_the_job_was_killed_is_not_the_job(
    qshpc_home: Path, tmp_path: Path
) -> None:
    if os.getuid() != 0 or not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK):
        pytest.skip("needs root to choose the next pid")
    program = tmp_path / "slow.py"
    program.write_text(SLOW)
    proc = start_cli([sys.executable, "-m", "qshpc", "run", str(program), "--workers", "1"])
    try:
        deadline = time.monotonic() + 60
        while True:  # running, rank 0 recorded
            assert time.monotonic() < deadline and proc.poll() is None
            try:
                status = job_status(job_dir_of(qshpc_home))
            except (AssertionError, OSError):  # not made yet
                status = {}
            if status.get("state") == "RUNNING" and status.get("ranks"):
                break
            time.sleep(0.2)
        job = job_dir_of(qshpc_home)
        rank0 = status["ranks"][0]
        assert isinstance(rank0.get("start_ticks"), int), rank0
        for pid in _tree(proc.pid):  # every process of the run at once, as an OOM kill
            os.kill(pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{rank0['pid']}"):  # gone, and reaped
        assert time.monotonic() < deadline
        time.sleep(0.05)
    decoy = _force_pid(rank0["pid"])
    if decoy is None:
        pytest.skip("could not give rank 0's pid to another process")
    try:
        status = job_status(job)
        assert status["state"] == "FAILED", status  # not RUNNING for good
        wait = run_cli("wait", str(job), "--timeout", "30", "--quiet", timeout=60)
        assert wait.returncode == 1, wait.stdout + wait.stderr  # FAILED, not still running
        cancel = run_cli("cancel", str(job), timeout=60)
        assert "already ended FAILED" in cancel.stdout + cancel.stderr, cancel
        from qshpc import open_job

        handle = open_job(job)
        assert handle.kill_if_stuck(0.1) is None
        assert handle.stop(wait=0) is False
        time.sleep(0.3)
        assert decoy.poll() is None, "a qshpc command signalled the process that took the pid"
        removed = run_cli("rm", str(job), "--force", timeout=60)
        assert removed.returncode == 0, removed.stderr
        assert decoy.poll() is None
    finally:
        decoy.kill()
        decoy.wait()
    assert not job.exists()
