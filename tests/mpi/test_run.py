"""Programs under real `mpiexec -n 1/2/3`, `qshpc run --workers N`, and plain python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, job_dir_of, run_cli

pytestmark = pytest.mark.mpi


def _result(home: Path) -> dict:
    out = run_cli("result", str(job_dir_of(home)), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_mpiexec_runs_program(ranks: int, qshpc_home: Path) -> None:
    args = qshpc_home.parent / "args.json"
    args.write_text(json.dumps({"n": 12}))
    out = run_cli("run", str(PROGRAMS / "squares.py"), "--arguments", str(args), ranks=ranks)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "qshpc: 12/12 tasks done" in out.stderr  # get(..., progress=True), plain lines off a TTY
    res = _result(qshpc_home)
    assert res["squares"] == [i * i for i in range(12)]
    assert res["nested"] == sum(i * i for i in range(5))
    assert res["picked"] == [0, 10, 20]
    assert res["lam"] == 42
    expected_ranks = [0] if ranks == 1 else list(range(1, ranks))
    assert set(res["ranks"]) <= set(expected_ranks)
    if ranks == 3:
        assert res["ranks"] == [1, 2]  # both workers got work
    status = run_cli("status", str(job_dir_of(qshpc_home)), "--json")
    meta = json.loads(status.stdout)
    assert meta["state"] == "SUCCEEDED"
    assert meta["mpi_size"] == ranks
    assert len(meta["ranks"]) == ranks


def test_workers_option_starts_ranks_itself(qshpc_home: Path) -> None:
    out = run_cli("run", str(PROGRAMS / "squares.py"), "--workers", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    res = _result(qshpc_home)
    assert res["squares"] == [i * i for i in range(20)]
    assert res["ranks"] == [1, 2]


def test_plain_python_runs_program(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(PROGRAMS / "squares.py")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "result saved in memory only" in out.stdout


def test_logs_per_rank_and_status(qshpc_home: Path) -> None:
    prog = qshpc_home.parent / "talk.py"
    prog.write_text(
        "from qshpc import distribute_task, get, save_result\n"
        "@distribute_task()\n"
        "def hello(i):\n"
        "    print('hello from task', i, flush=True)\n"
        "    return i\n"
        "print('program starts')\n"
        "save_result(get([hello(i) for i in range(4)]))\n"
    )
    out = run_cli("run", str(prog), ranks=2)
    assert out.returncode == 0, out.stderr
    assert "program starts" in out.stdout
    job = job_dir_of(qshpc_home)
    assert "program starts" in (job / "logs" / "rank-0.out").read_text()
    assert "hello from task 3" in (job / "logs" / "rank-1.out").read_text()
    logs = run_cli("logs", str(job), "--rank", "1")
    assert "hello from task" in logs.stdout


def test_run_shows_live_progress_lines(qshpc_home: Path) -> None:
    out = run_cli(
        "run", str(PROGRAMS / "sleepy.py"), "--workers", "2", env={"QSHPC_PROGRESS_S": "0.3"}
    )
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if "RUNNING" in ln and "tasks done" in ln]
    assert lines, out.stderr
