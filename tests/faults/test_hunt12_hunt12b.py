"""Reliability hunt of session 12 (hunt12b): crashes, kills, damaged files, neighbours.

- A task that crashes in compiled code (``ctypes.string_at(0)``: SIGSEGV) on a
  worker or on rank 0: the job FAILED naming the rank and host, but the rank's
  log it pointed at was empty (the crash report, had there been one, went into
  the log tee's pipe and died with the process), so nothing said which task
  crashed. Now every rank writes faulthandler's report straight into its log,
  and the post-mortem names the function, file and line that crashed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import job_dir_of, run_cli

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(240)]

SEGV = """\
import ctypes
from qshpc import distribute_task, get, save_result


@distribute_task()
def crash_here(i):
    if i == 3:
        ctypes.string_at(0)
    return i * i


save_result(get([crash_here(i) for i in range(6)]))
"""


@pytest.mark.parametrize("workers", [0, 2])
def test_a_task_that_segfaults_is_named_with_its_line(
    qshpc_home: Path, tmp_path: Path, workers: int
) -> None:
    prog = tmp_path / "segv.py"
    prog.write_text(SEGV)
    out = run_cli("run", str(prog), "--workers", str(workers), cwd=tmp_path, timeout=120)
    assert out.returncode != 0
    job = job_dir_of(qshpc_home)
    rank = 1 if workers else 0
    log = (job / "logs" / f"rank-{rank}.out").read_text()
    assert "Fatal Python error: Segmentation fault" in log
    assert f'File "{prog}", line 8 in crash_here' in log
    status = run_cli("status", job.name, timeout=60)
    named = f"rank {rank}'s log shows Segmentation fault in crash_here ({prog}, line 8)"
    assert named in status.stdout, status.stdout
    if workers:
        assert named in out.stderr and "died: SIGSEGV" in out.stderr
        assert "held" in out.stderr and ": 3" in out.stderr.split("held")[1]


def test_crash_reports_go_back_when_the_tee_closes(tmp_path: Path) -> None:
    """The report is written to the log's descriptor only while the tee holds it open."""
    import faulthandler

    from qshpc.runtime.logtee import LogTee

    was = faulthandler.is_enabled()
    faulthandler.disable()
    try:
        tee = LogTee(tmp_path / "rank-0.out", echo=False)
        assert faulthandler.is_enabled()
        tee.close()
        assert not faulthandler.is_enabled()
        faulthandler.enable()
        tee = LogTee(tmp_path / "rank-0.out", echo=False)
        tee.close()
        assert faulthandler.is_enabled()  # on before: on again (to stderr)
    finally:
        faulthandler.disable()
        if was:
            faulthandler.enable()
    assert os.path.exists(tmp_path / "rank-0.out")
