"""Session 8's hunt on the start and the end of small local jobs (hunt8e).

Each test says what happened on main c590a0b. None asserts a speed: a bound is
there only to prove that nothing hangs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import job_dir_of, run_cli

pytestmark = [pytest.mark.timeout(240)]

CHATTY = """\
import sys
from qshpc import save_result
for i in range(60000):
    print("line", i, "x" * 50)
    print("err", i, file=sys.stderr)
save_result(7)
"""


def _status(job: Path) -> dict[str, object]:
    out = run_cli("status", str(job), "--json")
    assert out.returncode == 0, out.stderr
    status: dict[str, object] = json.loads(out.stdout)
    return status


def _run(cmd: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "QSHPC_PROGRESS_S": "0"}
    proc: subprocess.Popen[bytes] = subprocess.Popen(cmd, env=env, start_new_session=True, **kwargs)
    return proc


def _ended(proc: subprocess.Popen[bytes], timeout: float = 90) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        raise AssertionError(f"qshpc run still running {timeout} s on") from None


@pytest.mark.mpi
@pytest.mark.parametrize("workers", ["0", "1"])
@pytest.mark.parametrize("both", [False, True], ids=["stdout", "stdout-and-stderr"])
def test_output_read_by_a_reader_that_left(
    tmp_path: Path, qshpc_home: Path, both: bool, workers: str
) -> None:
    """``qshpc run chatty.py | head -1`` (and ``2>&1 | head -1``).

    On c590a0b the launcher's output thread died of EPIPE (a traceback), nobody
    read mpiexec's pipe any more, rank 0 stopped in its next print, and the
    command hung for good (a SIGTERM then stored CANCELED and hung still). With
    ``--workers 0`` the job SUCCEEDED but the command ended with a traceback
    (BrokenPipeError in rank 0's summary) and exit code 1.
    """
    prog = tmp_path / "chatty.py"
    prog.write_text(CHATTY)
    cmd = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", workers]
    with open(tmp_path / "err", "wb") as err:
        proc = _run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT if both else err)
    assert proc.stdout is not None
    assert proc.stdout.readline()  # its first line ("line 0" or "err 0")
    proc.stdout.close()  # the reader leaves (head -1)
    assert _ended(proc) == 0
    assert "Traceback" not in (tmp_path / "err").read_text()
    job = job_dir_of(qshpc_home)
    assert _status(job)["state"] == "SUCCEEDED"
    log = (job / "logs" / "rank-0.out").read_text()
    assert log.count(" 59999") == 2  # both last lines, kept in the job's logs (the tee may cut
    # a line where one stream's 64 KiB read ends: "lineerr 59999")


@pytest.mark.mpi
@pytest.mark.parametrize("workers", ["0", "1"])
def test_run_with_stdout_closed(tmp_path: Path, qshpc_home: Path, workers: str) -> None:
    """``qshpc run tiny.py >&-``: on c590a0b an AttributeError traceback
    ('NoneType' object has no attribute 'buffer') after mpiexec started, the job
    never ran (exit 1); with ``--workers 0`` ('... no attribute 'flush'' in the
    log tee) the job stayed QUEUED for good."""
    prog = tmp_path / "tiny.py"
    prog.write_text("from qshpc import save_result\nprint('hello')\nsave_result(3)\n")
    cmd = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", workers]
    with open(tmp_path / "err", "wb") as f:
        proc = _run(cmd, stderr=f, preexec_fn=lambda: os.close(1))
    code = _ended(proc)
    err = (tmp_path / "err").read_text()
    assert code == 0, err
    assert "Traceback" not in err, err
    job = job_dir_of(qshpc_home)
    assert _status(job)["state"] == "SUCCEEDED"
    assert "hello" in (job / "logs" / "rank-0.out").read_text()
