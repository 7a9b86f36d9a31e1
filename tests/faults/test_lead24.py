"""Session 24, lead: a signal ``qshpc run`` was started ignoring stays ignored (review28 F15)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qshpc import open_job
from tests.conftest import job_dir_of, run_cli, start_cli, wait_succeeded

pytestmark = pytest.mark.mpi

PROGRAM = """\
import time
from qshpc import distribute_task, get, save_result

@distribute_task()
def slow(i):
    time.sleep(0.4)
    return i

save_result(get([slow(i) for i in range(8)]))
"""


def _ignore_sigint() -> None:
    """A ``preexec_fn``: started as a script's background job is (``qshpc run p.py &``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(("ignored", "workers"), [(True, "2"), (True, "0"), (False, "2")])
def test_sigint_ignored_where_qshpc_run_started_stays_ignored(
    tmp_path: Path, qshpc_home: Path, ignored: bool, workers: str
) -> None:
    """A background job of a script starts with SIGINT ignored: a Ctrl-C meant for the
    script cancelled every job it had started so (review28 F15). Ignored, it runs on;
    not ignored, a SIGINT cancels it as before. (A SIGINT to the whole process group still
    reaches mpiexec, which hands it to the ranks: it cancels, as before.)"""
    prog = tmp_path / "slow.py"
    prog.write_text(PROGRAM)
    proc = start_cli(
        [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", workers],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_ignore_sigint if ignored else None,
    )
    try:
        wait_succeeded(qshpc_home, proc, 1)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    job = open_job(job_dir_of(qshpc_home))
    if ignored:
        assert proc.returncode == 0, err[-2000:]
        assert job.status() == "SUCCEEDED"
        assert job.result() == list(range(8))
    else:
        assert proc.returncode == 130, err[-2000:]
        assert job.status() == "CANCELED"


NAMESPACED = """\
import time
from qshpc import distribute_task, get, save_result

@distribute_task()
def slow(i):
    time.sleep(6)
    return i

save_result(get([slow(i) for i in range(2)]))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root")
def test_status_from_outside_a_pid_namespace_leaves_the_run_alone(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """review33 F2: a run in a pid namespace that keeps the host's name (apptainer
    --containall, unshare --pid) recorded pids of its own namespace under the host's name;
    one `qshpc status` from outside judged rank 0 gone (FAILED) and the run lost its lock."""
    prog = tmp_path / "slow.py"
    prog.write_text(NAMESPACED)
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "qshpc", "run",
         str(prog), "--workers", "1"],
        env={**os.environ, "QSHPC_PROGRESS_S": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_running(qshpc_home, proc)
        job = open_job(job_dir_of(qshpc_home))
        assert job.status() == "RUNNING"
        out = run_cli("status", job.job_id)
        assert "RUNNING" in out.stdout.splitlines()[0], out.stdout + out.stderr
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert job.status() == "SUCCEEDED" and job.result() == [0, 1]


def wait_running(home: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Wait until the job under ``home`` says RUNNING (its ranks recorded)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if open_job(job_dir_of(home)).status() == "RUNNING":
                time.sleep(1.0)  # (its tasks under way)
                return
        except Exception:  # not created yet
            pass
        time.sleep(0.2)


HELPERS = """\
from dataclasses import dataclass

@dataclass
class Point:
    {fields}
"""

SAVES = """\
from helpers import Point
from qshpc import save_result
save_result(Point({args}))
"""

READS = """\
import sys
from qshpc import open_job
for job in sys.argv[1:]:
    value = open_job(job).result(allow_pickle=True)
    print(value)
"""


def test_two_jobs_results_with_their_own_helpers_read_in_one_process(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """review33 F4: the second job's result was built from the first job's `helpers`
    (a StoreError "Can't get attribute 'Point'", or silently the other class)."""
    jobs = []
    for name, fields, args in (("A", "x: int", "1"), ("B", "y: str\n    z: int", "'b', 2")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "helpers.py").write_text(HELPERS.format(fields=fields))
        (folder / "saves.py").write_text(SAVES.format(args=args))
        out = run_cli("run", "saves.py", "--workers", "0", cwd=folder)
        assert out.returncode == 0, out.stderr
        jobs.append(job_dir_of(qshpc_home).name)
    reader = tmp_path / "reads.py"
    reader.write_text(READS)
    out = subprocess.run(
        [sys.executable, str(reader), *jobs], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines == ["Point(x=1)", "Point(y='b', z=2)"], lines
