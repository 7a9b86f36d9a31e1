"""Session 25, fix35a: what a ``--resume`` reuses and what it refuses (review35 F1, F2, F5;
review38 F1). Real runs of ``qshpc run``, real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import job_dir_of, run_cli

pytestmark = pytest.mark.mpi

#: Five calls of a task that calls a helper module beside the program; the call of 3 fails
#: while a file ``fail`` is beside it. The result holds the program's ``sys.argv[1:]``.
PROGRAM = """
import sys
from pathlib import Path
from qshpc import distribute_task, get, save_result
import helpers

HERE = Path(__file__).parent

@distribute_task()
def t(x):
    if x == 3 and (HERE / "fail").exists():
        raise RuntimeError("task 3 fails")
    return helpers.f(x)

save_result({"argv": sys.argv[1:], "values": get([t(i) for i in range(5)])})
"""


def _setup(tmp_path: Path, helper: str = "def f(x):\n    return x + 1\n") -> Path:
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    (tmp_path / "helpers.py").write_text(helper)
    return prog


def _result(job: Path) -> object:
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        return r.result()


def _runs(job: Path) -> int:
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        return int(r.meta().get("runs") or 0)


def test_a_resume_of_a_succeeded_job_is_refused_and_its_result_kept(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review38 F1: it ran the job again (without its arguments) and a failure of that run
    destroyed the saved result; now refused, exit 2, as `qshpc submit --resume` refuses."""
    prog = _setup(tmp_path)
    first = run_cli("run", str(prog), "--workers", "1", "--", "a", "b", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    job = job_dir_of(qshpc_home)
    assert _result(job) == {"argv": ["a", "b"], "values": [1, 2, 3, 4, 5]}
    runs = _runs(job)
    out = run_cli("run", str(prog), "--resume", str(job), "--workers", "1", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "already SUCCEEDED: nothing to resume (`qshpc result" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert _runs(job) == runs and _result(job) == {"argv": ["a", "b"], "values": [1, 2, 3, 4, 5]}


def test_a_resume_takes_the_recorded_program_arguments(qshpc_home: Path, tmp_path: Path) -> None:
    """review38 F1: a resume ran the program with an empty `sys.argv[1:]`; other arguments
    than the recorded ones are refused (the stored results were made with those)."""
    prog = _setup(tmp_path)
    (tmp_path / "fail").touch()
    first = run_cli("run", str(prog), "--workers", "1", "--", "a", "b", cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    job = job_dir_of(qshpc_home)
    other = run_cli(
        "run", str(prog), "--resume", str(job), "--workers", "1", "--", "c", cwd=tmp_path
    )
    assert other.returncode == 2, other.stderr
    assert "leave out the program's arguments after -- (job " in other.stderr
    assert "'s: a b; to run with other ones, start a new job)" in other.stderr
    assert "Traceback" not in other.stderr
    (tmp_path / "fail").unlink()
    out = run_cli("run", str(prog), "--resume", str(job), "--workers", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "(1 tasks run, 4 reused from the store)" in out.stdout + out.stderr
    assert _result(job) == {"argv": ["a", "b"], "values": [1, 2, 3, 4, 5]}


def test_a_resume_of_a_moved_program_is_refused_before_a_run(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review35 F5: rank 0 failed with a traceback (FileNotFoundError), recorded as a new
    FAILED run, exit 1. Now one line naming the recorded path, exit 2, no run recorded."""
    prog = _setup(tmp_path)
    (tmp_path / "fail").touch()
    assert run_cli("run", str(prog), "--workers", "1", cwd=tmp_path).returncode == 1
    job = job_dir_of(qshpc_home)
    runs = _runs(job)
    moved = tmp_path / "moved.py"
    os.rename(prog, moved)
    out = run_cli("run", str(moved), "--resume", str(job), "--workers", "1", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert f"was made for {prog}, which no longer exists: move or copy it back there" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert _runs(job) == runs

