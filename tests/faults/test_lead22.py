"""Session 22, lead: an array's id given where one job is expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, run_cli

pytestmark = pytest.mark.mpi


def test_an_array_id_names_its_elements(qshpc_home: Path) -> None:
    """review26: `qshpc list` prints an array's id, and `qshpc status`/`report` of it said
    only `no job '<id>'` and to run `qshpc list`."""
    from qshpc import LocalClient, Program

    program = Program(title="sq", entrypoint="squares.py", working_dir=str(PROGRAMS))
    jobs = LocalClient(workers=0).map(program, [{"n": 2}, {"n": 3}])
    for job in jobs:
        job.wait(timeout=120)
    array_id = jobs[0].job_id.rsplit("-", 1)[0]
    for command in ("status", "report", "result"):
        out = run_cli(command, array_id)
        assert out.returncode == 2, out.stdout + out.stderr
        assert f"{array_id} is a job array, not one job: its 2 elements" in out.stderr
        assert f"qshpc list --array {array_id}" in out.stderr and "Traceback" not in out.stderr
