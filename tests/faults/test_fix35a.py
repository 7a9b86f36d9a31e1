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


@pytest.mark.parametrize("workers", ["0", "1"])
@pytest.mark.parametrize(
    "old, new",
    [
        ("def f(x):\n    return x + 1\n", "def f(x):\n    return x * 1000\n"),
        (
            "OFFSET = 1\ndef f(x):\n    return x + OFFSET\n",
            "OFFSET = 1000\ndef f(x):\n    return x + OFFSET\n",
        ),
    ],
    ids=["helper", "constant"],
)
def test_a_resume_runs_again_the_calls_whose_helper_changed(
    qshpc_home: Path, tmp_path: Path, workers: str, old: str, new: str
) -> None:
    """review35 F1: a task's resume identity was its own source text alone: after a change
    of the helper module it calls (or a constant there), a resume reused the four results
    of the old code beside one of the new ([1, 2, 3, 3000, 5])."""
    prog = _setup(tmp_path, old)
    (tmp_path / "fail").touch()
    assert run_cli("run", str(prog), "--workers", workers, cwd=tmp_path).returncode == 1
    job = job_dir_of(qshpc_home)
    (tmp_path / "helpers.py").write_text(new)
    (tmp_path / "fail").unlink()
    out = run_cli("run", str(prog), "--resume", str(job), "--workers", workers, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "SUCCEEDED (5 tasks run)\n" in out.stdout + out.stderr
    values = _result(job)["values"]  # type: ignore[index]
    assert values == [0, 1000, 2000, 3000, 4000] or values == [1000, 1001, 1002, 1003, 1004]


LIVE = """
import os, sys
from pathlib import Path
from qshpc import distribute_task, get, save_result

SCALE = 0

@distribute_task()
def t(x):
    if SCALE == 3 and (Path(__file__).parent / "fail").exists():
        raise RuntimeError("fails")
    return x * SCALE

out = []
for s in os.environ["SCALES"].split(","):
    SCALE = int(s)
    out.append(get(t(10)))
save_result(out)
"""


def test_a_resume_of_calls_run_here_sees_the_globals_they_read_then(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review35 F1, a global the function reads, rebound between calls run in the program's
    own process (--workers 0): each call's identity has the value it ran with."""
    prog = tmp_path / "live.py"
    prog.write_text(LIVE)
    (tmp_path / "fail").touch()
    first = run_cli("run", str(prog), "--workers", "0", env={"SCALES": "1,2,3"}, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    job = job_dir_of(qshpc_home)
    (tmp_path / "fail").unlink()
    out = run_cli(
        "run", str(prog), "--resume", str(job), "--workers", "0", env={"SCALES": "1,5,3"},
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "(2 tasks run, 1 reused" in out.stdout + out.stderr
    assert _result(job) == [10, 50, 30]


EDITED = """
import time
from pathlib import Path
from qshpc import distribute_task, get, save_result

HERE = Path(__file__).parent
(HERE / "setting-up").touch()
while not (HERE / "go").exists():  # set-up: transpiling, loading data...
    time.sleep(0.05)

@distribute_task()
def t(x):
    if x == 3 and (HERE / "fail").exists():
        raise RuntimeError("task 3 fails")
    return x + 1

save_result(get([t(i) for i in range(5)]))
"""


def test_a_program_edited_while_its_job_sets_up_keeps_the_identity_of_the_code_that_ran(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review35 F2: the identity came from the file on disk when the first call was keyed
    (inspect.getsource): edited during the job's set-up, the old code's results were stored
    under the new code's identity, and a resume with the new code reused them."""
    import subprocess
    import sys
    import time

    prog = tmp_path / "edited.py"
    prog.write_text(EDITED)
    (tmp_path / "fail").touch()
    cmd = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (tmp_path / "setting-up").exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the program runs its set-up (its code compiled already)
    prog.write_text(EDITED.replace("return x + 1", "return x * 1000"))
    (tmp_path / "go").touch()
    assert proc.wait(timeout=120) == 1
    job = job_dir_of(qshpc_home)
    (tmp_path / "fail").unlink()
    out = run_cli("run", str(prog), "--resume", str(job), "--workers", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert _result(job) == [0, 1000, 2000, 3000, 4000]  # never [1, 2, 3, 3000, 5]


UNHASHABLE = """
import threading
from pathlib import Path
from qshpc import distribute_task, get, save_result

LOCK = threading.Lock()

@distribute_task()
def t(x):
    with LOCK:
        if x == 1 and (Path(__file__).parent / "fail").exists():
            raise RuntimeError("fails")
        return x + 1

save_result(get([t(i) for i in range(3)]))
"""


def test_an_unhashable_global_makes_its_calls_run_again_on_resume(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """A function that reads a value the walk cannot hash (a lock) gets an identity of its
    own in each run: never a wrong reuse; the resume says why its calls run again. (Run in
    the program's process: a worker could not be sent a function holding a lock.)"""
    workers = "0"
    prog = tmp_path / "locked.py"
    prog.write_text(UNHASHABLE)
    (tmp_path / "fail").touch()
    first = run_cli("run", str(prog), "--workers", workers, cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    assert "run again on resume" not in first.stderr  # said where it matters only
    job = job_dir_of(qshpc_home)
    (tmp_path / "fail").unlink()
    out = run_cli("run", str(prog), "--resume", str(job), "--workers", workers, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "SUCCEEDED (3 tasks run)\n" in out.stdout + out.stderr
    assert out.stderr.count("qshpc: note: calls of t run again on resume: ") == 1, out.stderr
    assert _result(job) == [1, 2, 3]


def test_a_dispatched_functions_identity_that_cannot_be_hashed_never_matches() -> None:
    """The identity taken once for a dispatched function (Task.digest) that reads a lock:
    new at each taking, so that no stored result of another run can match it."""
    import threading

    from qshpc import distribute_task
    from qshpc.program.backend import function_digest

    lock = threading.Lock()

    def f(x: int) -> int:
        with lock:
            return x

    def g(x: int) -> int:
        return x + 1

    task = distribute_task()(f)
    assert function_digest(task) != function_digest(task)
    assert task.digest == task.digest  # once per task object
    assert function_digest(distribute_task()(g)) == function_digest(distribute_task()(g))
