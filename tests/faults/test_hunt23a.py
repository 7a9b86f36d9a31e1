"""Session 23's hunt23a: a cancel reaches the MPI workers (rank 0's CUT is seen between calls).

On db7f14c (/tmp/baseMain) a worker's one ``improbe`` per check missed a CUT that had come
during its call (MPICH moves its progress engine only after it looked), so each busy
worker started its next queued call after ``job.stop()`` and the job's end waited for it
(here: the 3rd calls, tasks 2 and 7, started 0.73 s after the stop; end 1.76 s after it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from qshpc import LocalClient, Program, open_job
from qshpc.runtime.rank0 import END_GRACE_S
from tests.conftest import job_dir_of, mpiexec, run_cli

pytestmark = pytest.mark.mpi

#: 20 calls of 1 s on 2 workers: the batches each worker holds have several calls.
NAPS = (
    "import time\n"
    "from qshpc import distribute_task, get, save_result\n"
    "@distribute_task()\n"
    "def nap(i):\n"
    "    time.sleep(1.0)\n"
    "    return i\n"
    "save_result({'r': get([nap(i) for i in range(20)])})\n"
)


def _first_calls_done(job_dir: Path) -> None:
    """Wait until both workers finished a call (their second runs now), then 0.2 s more."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            done = [t for t in open_job(job_dir).tasks() if t["state"] == "SUCCEEDED"]
        except Exception:  # the store is being made
            done = []
        if {t["rank"] for t in done} >= {1, 2}:
            time.sleep(0.2)
            return
        time.sleep(0.05)
    raise AssertionError("no worker finished a call within 60 s")


def _check_end(job_dir: Path, stopped: float) -> None:
    """No call started after the CUT could arrive; the job ended once the calls running did."""
    job = open_job(job_dir)
    assert job.wait(timeout=60) == "CANCELED"
    late = [
        (t["task_id"], round(t["started"] - stopped, 2))
        for t in job.tasks()
        if t["started"] and t["started"] > stopped + 0.3
    ]
    assert not late, f"calls started after the stop (task, s after): {late}"
    abandoned = [
        t["task_id"] for t in job.tasks() if (t["error"] or "").startswith("TaskAbandoned")
    ]
    assert not abandoned, abandoned
    # The calls running at the stop end within 1 s of it; the grace is END_GRACE_S.
    ended = job.info()["finished"] - stopped
    assert ended < END_GRACE_S - 0.4, f"the job ended {ended:.2f} s after the stop"


def test_a_stopped_local_job_starts_no_further_call(qshpc_home: Path, tmp_path: Path) -> None:
    (tmp_path / "naps.py").write_text(NAPS)
    job = LocalClient(workers=2).run(
        Program(title="naps", entrypoint="naps.py", working_dir=str(tmp_path))
    )
    _first_calls_done(job.job_dir)
    stopped = time.time()
    assert job.stop()
    _check_end(job.job_dir, stopped)


def test_a_sigterm_to_mpiexec_starts_no_further_call(qshpc_home: Path, tmp_path: Path) -> None:
    prog = tmp_path / "naps.py"
    prog.write_text(NAPS)
    cmd = [mpiexec(), "-n", "3", sys.executable, "-m", "qshpc", "run", str(prog)]
    # (cwd: ``python -m`` puts it first on sys.path; the checkout's qshpc must not shadow
    # the one PYTHONPATH names.)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env=dict(os.environ),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (qshpc_home / "jobs").exists() or not any((qshpc_home / "jobs").iterdir()):
            assert time.monotonic() < deadline and proc.poll() is None, "no job was made"
            time.sleep(0.05)
        job_dir = job_dir_of(qshpc_home)
        _first_calls_done(job_dir)
        stopped = time.time()
        proc.send_signal(signal.SIGTERM)  # mpiexec forwards it to every rank
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _check_end(job_dir, stopped)


#: 4 quick calls, then 2 calls of 60 s: a cancel then stops 2 calls that still run.
LONG_AT_THE_END = (
    "import time\n"
    "from qshpc import distribute_task, get, save_result, update_status\n"
    "@distribute_task()\n"
    "def nap(s):\n"
    "    time.sleep(s)\n"
    "    return s\n"
    "get([nap(0.01) for _ in range(4)])\n"
    "update_status('long calls')\n"
    "save_result(get([nap(60) for _ in range(2)]))\n"
)


def cancelled_with_stopped_calls(folder: Path) -> Any:
    """A local job cancelled while 2 calls of 60 s run: 4 done, 2 stopped (of 6 submitted)."""
    (folder / "long.py").write_text(LONG_AT_THE_END)
    job = LocalClient(workers=2).run(
        Program(title="long", entrypoint="long.py", working_dir=str(folder))
    )
    deadline = time.monotonic() + 60
    while job.info().get("sub_status") != "long calls":
        assert time.monotonic() < deadline and job.status() in ("QUEUED", "RUNNING")
        time.sleep(0.05)
    time.sleep(0.5)  # both workers are in their 60 s call
    assert job.stop()
    assert job.wait(timeout=60) == "CANCELED"
    return job


def test_status_and_list_count_stopped_tasks_apart(qshpc_home: Path, tmp_path: Path) -> None:
    # On db7f14c: "tasks    4 done, 2 failed" and "4 done, 2 failed" in the list.
    job = cancelled_with_stopped_calls(tmp_path)
    out = run_cli("status", job.job_id)
    assert "tasks    4 done, 2 stopped\n" in out.stdout, out.stdout + out.stderr
    meta = json.loads(run_cli("status", job.job_id, "--json").stdout)
    assert meta["task_counts"] == {"SUCCEEDED": 4, "FAILED": 2}  # kept: stopped are FAILED there
    assert meta["tasks_stopped"] == 2 and meta["tasks_submitted"] == 6
    listed = run_cli("list").stdout
    assert "4 done, 2 stopped" in listed and "failed" not in listed, listed
    assert json.loads(run_cli("list", "--json").stdout)[0]["tasks_stopped"] == 2
