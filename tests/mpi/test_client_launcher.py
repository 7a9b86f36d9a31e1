"""The launcher a ``LocalClient`` starts: Python without ``site``, the ranks' mpiexec first.

``LocalClient.run`` writes the ranks' command itself and its launcher starts it
before importing the rest of qshpc (``qshpc.cli.nosite``, ``qshpc.launch.early``);
the launcher then follows it as ``qshpc run`` does. What users rely on stays: the
end recorded, a refusal stopping the ranks, ``site`` completed when the launcher
needs more than qshpc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import qshpc
from qshpc import LocalClient, Program, settings
from qshpc.cli import nosite
from qshpc.client import local as client_local
from qshpc.launch import early

pytestmark = pytest.mark.mpi

ROOT = str(Path(qshpc.__file__).resolve().parents[1])


def _boot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-S", "-c", nosite.BOOT, ROOT, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_the_client_and_the_launcher_agree_on_the_boot() -> None:
    assert client_local.NOSITE_BOOT == nosite.BOOT
    assert early.WATCH_VAR == settings.LAUNCH_WATCH.name


def test_the_launcher_starts_the_ranks_before_reading_its_command_line(
    qshpc_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QSHPC_TIMELINE", "1")
    program = Program(title="seed", entrypoint="program_4.py", working_dir=f"{ROOT}/examples")
    from qiskit.circuit.random import random_circuit

    circuits = [random_circuit(2, 2, seed=i, measure=True) for i in range(4)]
    job = LocalClient(workers=2).run(program, arguments={"circuits": circuits})
    assert len(job.result(timeout=120)["results"]) == 4
    assert job.wait(timeout=60) == "SUCCEEDED"
    timeline = json.loads((job.job_dir / "logs" / "timeline-launcher.json").read_text())
    steps = [name for name, _, _ in timeline["marks"]]
    assert steps.index("mpiexec started") < steps.index("command line read")
    meta = job.info()
    assert meta["mpi_size"] == 3 and meta.get("launch")  # this run's token, from the client


def test_a_refused_job_stops_the_ranks_started_first(tmp_path: Path) -> None:
    """A bad setting refused after the ranks started: they are stopped, exit 2, one line."""
    env = {**os.environ, "QSHPC_PROGRESS_S": "often"}
    program = tmp_path / "p.py"
    program.write_text("print('ran')\n")
    t0 = time.monotonic()
    proc = _boot(
        "--ranks", "2", "sleep", "60",
        "run", str(program), "--job-dir", str(tmp_path / "job"), "--workers", "1",
        env=env,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "QSHPC_PROGRESS_S" in proc.stderr and "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < 50  # the 'ranks' (sleep 60) were ended, not waited for


def test_site_is_completed_when_the_launcher_needs_more_than_qshpc() -> None:
    """A command line the fast reader leaves to typer (a third-party package) still works."""
    proc = _boot("run", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--workers" in proc.stdout
    probe = _boot("--version")
    assert probe.returncode == 0, probe.stderr
    assert qshpc.__version__ in probe.stdout


def test_signals_caught_before_the_launcher_handled_them_are_held_for_rank_0() -> None:
    """A stop signal between the ranks' start and the launcher's own handling is kept."""
    code = (
        "import signal\n"
        "from qshpc.launch.local import _Signals\n"
        "s = _Signals()\n"
        "s.absorb([signal.SIGTERM])\n"
        "assert s.received == [signal.SIGTERM] and s.held == [signal.SIGTERM], s.held\n"
        "print('held')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "held"
