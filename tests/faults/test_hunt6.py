"""Session 6's fault hunt (hunt6): programs and neighbours that broke qshpc on main ac4d79c.

Each test says what happened on ac4d79c. None asserts a speed: a bound is there
only to prove that nothing hangs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, job_dir_of, run_cli

pytestmark = [pytest.mark.timeout(240)]


def _status(job: Path) -> dict[str, object]:
    out = run_cli("status", str(job), "--json")
    assert out.returncode == 0, out.stderr
    status: dict[str, object] = json.loads(out.stdout)
    return status


def test_exit_statuses_of_the_launcher_are_read_as_exit_codes(tmp_path: Path) -> None:
    """mpiexec's ``-print-all-exitcodes`` lists wait statuses: 256 is exit code 1."""
    from qshpc.jobs.postmortem import describe, exit_codes

    assert exit_codes("[mpiexec@vm] Exit codes: [vm] 9,256,0,35072,15\n") == [137, 1, 0, 137, 143]
    ranks = [{"rank": r, "host": "vm", "pid": 100 + r} for r in range(2)]
    text = describe(
        tmp_path, {"id": "j", "ranks": ranks}, set(), "] Exit codes: [vm] 768,0\n", [(0, 100)]
    )
    assert "rank 0 on host vm (pid 100) died: exit code 3" in text, text


@pytest.mark.mpi
def test_rank0_ending_its_process_is_named_with_its_exit_code(qshpc_home: Path) -> None:
    """On ac4d79c: 'rank 0 ... died: signal 640' for a program that called os._exit(3)."""
    out = run_cli("run", str(PROGRAMS / "hunt6_os_exit.py"), "--workers", "1", timeout=90)
    assert out.returncode == 1
    assert "rank 0 on host" in out.stderr and "died: exit code 3" in out.stderr, out.stderr
    assert "signal" not in out.stderr, out.stderr
    assert _status(job_dir_of(qshpc_home))["state"] == "FAILED"
