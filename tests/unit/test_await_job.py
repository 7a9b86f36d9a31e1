"""Rank 0 waits for a job its client writes while the ranks start (LocalClient.run, issue 19)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from qshpc.errors import UserError
from qshpc.jobs.paths import JOB_FILE
from qshpc.jobs.prepare import RunSpec, await_job, plan_job

NAME = "QSHPC_AWAIT_JOB"


def test_without_the_variable_nothing_is_awaited(tmp_path: Path) -> None:
    await_job(tmp_path / "absent")  # returns at once


def test_the_job_is_awaited_until_its_file_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = tmp_path / "job"
    job.mkdir()
    monkeypatch.setenv(NAME, str(os.getpid()))
    (tmp_path / "p.py").write_text("pass\n")
    spec = RunSpec(program=tmp_path / "p.py", job_dir=job)
    assert plan_job(spec) == (job.resolve(), None)  # no job.h5 yet: the client's, not a new one
    timer = threading.Timer(0.2, lambda: (job / JOB_FILE).write_bytes(b"x"))
    timer.start()
    t0 = time.monotonic()
    await_job(job)
    assert time.monotonic() - t0 >= 0.15
    assert NAME not in os.environ  # the program's children are not told to wait


def test_a_folder_removed_or_a_client_gone_ends_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NAME, str(os.getpid()))
    with pytest.raises(UserError, match="did not write it"):
        await_job(tmp_path / "removed")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    job = tmp_path / "job"
    job.mkdir()
    monkeypatch.setenv(NAME, str(gone.pid))
    with pytest.raises(UserError, match=f"pid {gone.pid}"):
        await_job(job)
