"""Session 29, fixU: review53 K4 and K5 under mpiexec (at workers 0 and 1:
tests/unit/test_fixU.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import job_dir_of, run_cli
from tests.unit.test_fixU import FORTRAN, ODD, check_odd

pytestmark = pytest.mark.mpi


def test_an_unreadable_exception_and_fortran_order_under_mpiexec(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """K4: the worker rank that ran a call raising an exception whose ``__getattr__``
    recurses lives on to run the later calls. K5: Fortran order kept, as at workers 0."""
    from qshpc.client.job import open_job

    results = []
    for name, text in (("odd.py", ODD), ("fortran.py", FORTRAN)):
        (tmp_path / name).write_text(text)
        done = run_cli("run", str(tmp_path / name), ranks=3, timeout=120)
        assert done.returncode == 0 and "lost sys.stderr" not in done.stderr, done
        results.append(open_job(job_dir_of(qshpc_home)).result())
    check_odd(done, results[0], "")  # rank 1 or 2
    assert results[1] == [[True, False, True, [8, 16, 48], True]] * 3
