"""How the local launcher ends when rank 0 was to create the job (issue 19) and how it
notices mpiexec's exit (no ranks started here: plain processes stand in for them)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from qshpc.launch.local import _cancel_before_start, _Deaths, _not_created, _Signals


def test_a_wait_ends_when_the_watched_mpiexec_exits() -> None:
    proc = subprocess.Popen(["sleep", "0.2"])
    deaths = _Deaths()
    try:
        deaths.watch_end(proc.pid)
        start = time.monotonic()
        deaths.wait(60)  # returns at the exit, not after 60 s
        assert time.monotonic() - start < 30
        assert proc.wait(timeout=10) == 0
        deaths.wait(0)
        assert deaths.order == []  # mpiexec is not a rank: nobody is blamed for it
    finally:
        deaths.close()


def test_a_job_rank0_never_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "jobs" / "j1"
    assert _not_created(job, "j1", 2, "qshpc: error: cannot load arguments", None) == 2
    assert capsys.readouterr().err == ""  # rank 0 said why
    assert _not_created(job, "j1", 1, "", signal.SIGINT) == 130
    assert "j1 cancelled (SIGINT) before it was created" in capsys.readouterr().err
    assert _not_created(job, "j1", 9, "Traceback ...", None) == 1
    err = capsys.readouterr().err
    assert "j1 FAILED" in err and "code 9" in err and str(job) in err
    assert not job.exists()


def test_a_cancel_before_mpiexec_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        signals = _Signals()
        signals.received.append(signal.SIGTERM)
        job = tmp_path / "jobs" / "j2"
        assert _cancel_before_start(job, "j2", signals) == 143
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    assert "j2 cancelled (SIGTERM) before it was created" in capsys.readouterr().err
    assert not job.exists()
