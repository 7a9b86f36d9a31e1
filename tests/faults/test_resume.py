"""Kill a job half-way, resume it: finished tasks are not executed again, the result is exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, job_dir_of, run_cli

pytestmark = pytest.mark.mpi


def _executions(log: Path) -> list[int]:
    return [int(x) for x in log.read_text().split()] if log.exists() else []


def test_resume_skips_finished_tasks(qshpc_home: Path, tmp_path: Path) -> None:
    log = tmp_path / "exec.log"
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"log": str(log)}))
    cmd = [
        sys.executable,
        "-m",
        "qshpc",
        "run",
        str(PROGRAMS / "resumable.py"),
        "--arguments",
        str(args),
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "done up to 16" in line:
            break
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job, rank 0 included, at once
    proc.wait(timeout=30)
    job = job_dir_of(qshpc_home)
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        done_before = {t["task_id"] for t in r.tasks() if t["state"] == "SUCCEEDED"}
    assert {str(i) for i in range(16)} <= done_before
    first = _executions(log)
    log.unlink()

    out = run_cli(
        "run", str(PROGRAMS / "resumable.py"), "--resume", str(job), "--workers", "2", timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    rerun = _executions(log)
    assert not (set(rerun) & {int(t) for t in done_before}), "finished tasks ran again"
    assert set(rerun) | {int(t) for t in done_before} == set(range(40))
    assert "reused from the store" in out.stdout
    res = json.loads(run_cli("result", str(job), "--json").stdout)
    assert res["results"] == [i * i for i in range(40)]
    assert len(first) >= 16


@pytest.mark.parametrize("workers", ["0", "1"])
def test_resume_finds_tasks_on_circuits_with_new_parameters(
    qshpc_home: Path, tmp_path: Path, workers: str
) -> None:
    """A Parameter's UUID is new in every run: tasks are still found by value on resume."""
    log, marker = tmp_path / "exec.log", tmp_path / "fail-once"
    marker.touch()
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"log": str(log), "fail_once": str(marker)}))
    prog = str(PROGRAMS / "param_resume.py")
    first = run_cli("run", prog, "--arguments", str(args), "--workers", workers, timeout=120)
    assert first.returncode != 0 and "failing once" in first.stdout + first.stderr
    assert len(log.read_text().split()) == 3
    job = job_dir_of(qshpc_home)
    out = run_cli("run", prog, "--resume", str(job), "--workers", workers, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(log.read_text().split()) == 3, "tasks on the rebuilt parameterized circuit ran again"
    res = json.loads(run_cli("result", str(job), "--json").stdout)
    assert res["angles"] == [0.5, 1.5, 2.5]
