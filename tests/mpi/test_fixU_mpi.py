"""Session 29, fixU: review53 K4 under mpiexec (the test for workers 0 and 1:
tests/unit/test_fixU.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import job_dir_of, run_cli
from tests.unit.test_fixU import FORTRAN, ODD, check_odd

pytestmark = pytest.mark.mpi


def test_an_exception_whose_getattr_recurses_fails_its_call_under_mpiexec(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """Under ``mpiexec -n 3`` the worker rank that ran it lived on to run the later calls."""
    from qshpc.client.job import open_job

    prog = tmp_path / "odd.py"
    prog.write_text(ODD)
    done = run_cli("run", str(prog), ranks=3, timeout=120)
    assert done.returncode == 0, done
    assert "lost sys.stderr" not in done.stderr + done.stdout, done
    result = open_job(job_dir_of(qshpc_home)).result()
    check_odd(done, result, "")  # rank 1 or 2


def test_fortran_order_is_kept_under_mpiexec(tmp_path: Path, qshpc_home: Path) -> None:
    """review53 K5 under ``mpiexec -n 3``: as at workers 0."""
    from qshpc.client.job import open_job

    prog = tmp_path / "fortran.py"
    prog.write_text(FORTRAN)
    done = run_cli("run", str(prog), ranks=3, timeout=120)
    assert done.returncode == 0, done
    assert open_job(job_dir_of(qshpc_home)).result() == [[True, False, True, [8, 16, 48], True]] * 3
