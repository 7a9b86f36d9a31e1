"""Session 24, lead: a signal ``qshpc run`` was started ignoring stays ignored (review28 F15)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from qshpc import open_job
from tests.conftest import job_dir_of, start_cli, wait_succeeded

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
