"""Shared helpers: run qshpc as users do (a subprocess, with a deadlock guard)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import early_jobs

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = Path(__file__).resolve().parent / "programs"


def mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else "mpiexec"


@pytest.fixture(autouse=True)
def qshpc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own QSHPC_HOME."""
    home = tmp_path / "qshpc-home"
    monkeypatch.setenv("QSHPC_HOME", str(home))
    yield home


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        early_jobs.start_launches(session.items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    early_jobs.close_all()


@pytest.fixture
def early_job(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[early_jobs.Early]:
    """This test's ``@pytest.mark.early(launch=f)``: ``.outcome()`` (tests/early_jobs.py)."""
    yield from early_jobs.job_of(request, monkeypatch)


@pytest.fixture
def no_early_jobs() -> None:
    """Every early launch of the session has ended (for a test that kills a node)."""
    early_jobs.wait_all()


def run_cli(
    *args: str,
    ranks: int | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``qshpc ARGS`` (under ``mpiexec -n RANKS`` when given); never hangs past ``timeout``."""
    cmd = [sys.executable, "-m", "qshpc", *args]
    if ranks is not None:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def job_dir_of(home: Path) -> Path:
    """The one job directory under ``home`` (tests run one job each unless told)."""
    jobs = sorted((home / "jobs").iterdir(), key=lambda d: (d.stat().st_ctime_ns, d.name))
    assert jobs, "no job directory was created"
    return jobs[-1]


def job_status(job: Path) -> dict[str, Any]:
    """``qshpc status JOB --json``, which must succeed."""
    out = run_cli("status", str(job), "--json")
    assert out.returncode == 0, out.stderr
    status: dict[str, Any] = json.loads(out.stdout)
    return status
