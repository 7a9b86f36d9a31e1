"""Session 9: task results of a class defined in the program file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, job_dir_of, run_cli


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 3])
def test_a_task_returns_an_instance_of_a_class_of_the_program(qshpc_home: Path, ranks: int) -> None:
    """Ray sends a ``@dataclass`` of the driver's file by value. On 724bf2f the task failed
    on a worker ('attribute lookup Point on __main__ failed'); now rank 0 gets instances of
    the program's own class, and the stored result loads without the program."""
    out = run_cli("run", str(PROGRAMS / "main_class_result.py"), ranks=ranks, timeout=120)
    assert out.returncode == 0, out.stderr
    job = job_dir_of(qshpc_home)
    shown = run_cli("result", str(job), "--allow-pickle")
    assert shown.returncode == 0, shown.stderr
    assert "Point(x=0, y=0)" in shown.stdout and "9" in shown.stdout, shown.stdout
    refused = run_cli("result", str(job), "--json")
    assert refused.returncode == 2 and "--allow-pickle" in refused.stderr, refused.stderr
    status = json.loads(run_cli("status", str(job), "--json").stdout)
    assert status["state"] == "SUCCEEDED", status
