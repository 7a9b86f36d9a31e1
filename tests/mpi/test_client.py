"""The seed notebook's flow through the Python client: Program, LocalClient, Job, open_job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import qshpc
from qshpc import LocalClient, Program, open_job
from tests.conftest import PROGRAMS, job_dir_of, run_cli

pytestmark = pytest.mark.mpi


def test_local_client_flow(qshpc_home: Path) -> None:
    program = Program(title="squares", entrypoint="squares.py", working_dir=str(PROGRAMS))
    job = LocalClient(workers=2).run(program, arguments={"n": 6})
    assert job.status() in ("QUEUED", "RUNNING", "SUCCEEDED")
    result = job.result(timeout=120)
    assert result["squares"] == [0, 1, 4, 9, 16, 25]
    assert job.status() == "SUCCEEDED"
    again = open_job(job.job_id)
    assert again.result() == result
    assert open_job(str(job.job_dir)).status() == "SUCCEEDED"
    assert any(t["state"] == "SUCCEEDED" for t in job.tasks())
    listing = run_cli("list")
    assert job.job_id in listing.stdout and "squares" in listing.stdout


def test_save_arguments_file_is_accepted(qshpc_home: Path, tmp_path: Path) -> None:
    args = tmp_path / "args.h5"
    qshpc.save_arguments(args, {"n": 4})
    out = run_cli("run", str(PROGRAMS / "squares.py"), "--arguments", str(args), ranks=2)
    assert out.returncode == 0, out.stderr
    res = json.loads(run_cli("result", str(job_dir_of(qshpc_home)), "--json").stdout)
    assert res["squares"] == [0, 1, 4, 9]


def test_failed_job_result_raises(qshpc_home: Path) -> None:
    program = Program(title="fails", entrypoint="task_fails.py", working_dir=str(PROGRAMS))
    job = LocalClient(workers=1).run(program)
    with pytest.raises(qshpc.JobFailedError, match="bad input 3"):
        job.result(timeout=120)
    assert job.status() == "FAILED"
    assert "ValueError" in (job.error_message() or "")


def test_bad_program_refused_at_run(tmp_path: Path) -> None:
    with pytest.raises(qshpc.UserError, match="not found"):
        LocalClient().run(Program(title="x", entrypoint="nope.py", working_dir=str(tmp_path)))


def test_arguments_that_cannot_be_stored_stop_the_ranks_started_meanwhile(
    qshpc_home: Path,
) -> None:
    """run() starts the ranks, then writes the job (issue 19): a failed write leaves nothing."""
    import os
    import threading
    import time

    program = Program(title="squares", entrypoint="squares.py", working_dir=str(PROGRAMS))
    with pytest.raises(qshpc.SerializationError):
        LocalClient(workers=1).run(program, arguments={"n": 2, "lock": threading.Lock()})
    jobs = qshpc_home / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir())

    def ours() -> list[str]:  # processes still running for a job of this home
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = (Path("/proc") / pid / "cmdline").read_bytes()
            except OSError:
                continue
            if str(jobs).encode() in cmd:
                found.append(pid)
        return found

    deadline = time.monotonic() + 30
    while ours() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not ours()
    assert not jobs.exists() or not any(jobs.iterdir())  # and nothing was written after
