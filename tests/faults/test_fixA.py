"""Session 25, fixA: a resume's program sees the first run's ``sys.argv`` on every rank
(review39 F0, review40 F8). Real runs of ``qshpc run`` under mpiexec and the local
launcher, real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import job_dir_of, run_cli
from tests.faults.test_fix35a import _result, _setup

pytestmark = pytest.mark.mpi

#: fix35a's program, its helper returning the ``sys.argv`` each task saw.
ARGV_HELPER = "import sys\n\ndef f(x):\n    return sys.argv\n"


@pytest.mark.parametrize(
    "launch, named",
    [(("mpiexec", "3"), True), (("workers", "2"), False)],
    ids=["mpiexec-3", "workers-2-no-program"],
)
def test_every_rank_of_a_resume_sees_the_first_runs_argv(
    qshpc_home: Path, tmp_path: Path, launch: tuple[str, str], named: bool
) -> None:
    """review39 F0: under mpiexec (and srun) a plain `--resume` gave the recorded arguments
    to rank 0 only: the task run again saw `[prog]`, the job SUCCEEDED with mixed results.
    review40 F8: a resume without PROGRAM gave the new tasks and rank 0 the absolute path,
    the reused ones `prog.py`."""
    _setup(tmp_path, ARGV_HELPER)
    (tmp_path / "fail").touch()
    how, n = launch
    ranks = int(n) if how == "mpiexec" else None
    extra = ["--workers", n] if how == "workers" else []
    first = run_cli(
        "run", "prog.py", *extra, "--", "a", "b c", ranks=ranks, cwd=tmp_path, timeout=180
    )
    assert first.returncode == 1, first.stderr
    job = job_dir_of(qshpc_home)
    (tmp_path / "fail").unlink()
    program = ["prog.py"] if named else []
    out = run_cli(
        "run", *program, "--resume", str(job), *extra, ranks=ranks, cwd=tmp_path, timeout=180
    )
    assert out.returncode == 0, out.stderr
    assert "(1 tasks run, 4 reused from the store)" in out.stdout + out.stderr
    argv = ["prog.py", "a", "b c"]
    assert _result(job) == {"argv": argv[1:], "values": [argv] * 5}


#: Five calls of a task that reads a global placed with ``put`` (its value from the file
#: ``value`` beside the program); the call of 3 fails while a file ``fail`` is there.
PUT_GLOBAL = """
from pathlib import Path
import numpy as np
from qshpc import distribute_task, get, put, save_result

HERE = Path(__file__).parent
R = put(np.full(1000, float((HERE / "value").read_text())))

@distribute_task()
def t(x):
    if x == 3 and (HERE / "fail").exists():
        raise RuntimeError("task 3 fails")
    return float(get(R)[0]) + x

save_result(get([t(i) for i in range(5)]))
"""


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_global_put_reference_counts_by_its_objects_value_on_resume(
    qshpc_home: Path, tmp_path: Path, workers: str
) -> None:
    """review39 F4: a task reading a global `R = put(x)` ran again on every resume, with a
    note blaming "an ObjectRef nested in the arguments". Now the same object's calls are
    reused, and another object's run again."""
    (tmp_path / "prog.py").write_text(PUT_GLOBAL)
    (tmp_path / "value").write_text("10")
    (tmp_path / "fail").touch()
    first = run_cli("run", "prog.py", "--workers", workers, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    job = job_dir_of(qshpc_home)
    same = run_cli("run", "prog.py", "--resume", str(job), "--workers", workers, cwd=tmp_path)
    assert same.returncode == 1, same.stderr  # (task 3 fails again)
    assert "ObjectRef" not in same.stdout + same.stderr
    assert "(0 tasks run, 4 reused from the store" in same.stdout + same.stderr
    (tmp_path / "fail").unlink()
    (tmp_path / "value").write_text("100")
    other = run_cli("run", "prog.py", "--resume", str(job), "--workers", workers, cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert "(5 tasks run" in other.stdout + other.stderr
    assert _result(job) == [100.0, 101.0, 102.0, 103.0, 104.0]
