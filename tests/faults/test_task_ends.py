"""How a task or the program ends, as users hit it through the CLI and LocalClient.

- ``sys.exit``, ``KeyboardInterrupt`` or ``GeneratorExit`` raised inside a task
  fail that task (TaskError with the remote traceback); the worker keeps
  serving. On main 7c42603/ae3c8a1 the worker died (hung in MPI_Finalize), rank
  0 waited 30 s for its heartbeat, and the job FAILED with WorkerLostError; with
  one rank, ``sys.exit(0)`` inside a task ended the whole program SUCCEEDED.
- ``save_result`` called inside a task fails that task, naming the fix; on main
  it printed "saved in memory only" on the worker and the job SUCCEEDED with
  no result (with one rank it silently saved).
- A program that gave up on a stuck task ends at once, SUCCEEDED, and the stuck
  call's record says it was abandoned; on main it took 60 s more (the drain).
- A program or task that leaves a process running (a server, ``cmd &``) does not
  hold its rank at the end: on 1edae97 each such rank waited 5 s per output pipe
  the process inherited (10 s of job, 20 s of command for rank 0 and one worker).
- A program or task that leaves a (non-daemon) thread running does not hang its
  rank: after ``QSHPC_EXIT_GRACE_S`` the rank says which threads it left and
  exits with the job's code; on 1edae97 the command never returned (Python
  waits for such threads at exit), the job SUCCEEDED long before.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from qshpc import LocalClient, Program
from tests.conftest import PROGRAMS, job_dir_of, run_cli

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(240)]


def _records(job: Path) -> list[dict[str, object]]:
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        return r.tasks()


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_exits_and_save_result_in_a_task_fail_only_that_task(
    qshpc_home: Path, workers: int
) -> None:
    t0 = time.monotonic()
    out = run_cli("run", str(PROGRAMS / "task_exits.py"), "--workers", str(workers), timeout=90)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - t0 < 45  # no worker lost (its timeout is 30 s)
    assert "stopped responding" not in out.stdout + out.stderr
    job = job_dir_of(qshpc_home)
    result = json.loads(run_cli("result", str(job), "--json").stdout)
    save = result["caught"].pop("save")
    assert result["caught"] == {
        "exit": ["SystemExit", "SystemExit: 3"],
        "interrupt": ["KeyboardInterrupt", "KeyboardInterrupt"],
        "generator": ["GeneratorExit", "GeneratorExit"],
    }
    # save_result inside a task: that task fails, naming the fix; the program's result stands
    assert save[0] == "UserError"
    assert save[1].startswith("qshpc.errors.UserError: save_result was called inside task 3 ")
    assert "only the program saves the job's result" in save[1]
    assert "save_result(get(refs))" in save[1]
    assert "saved in memory only" not in out.stdout + out.stderr
    ranks = {r for r, _ in result["after"]}
    assert ranks <= set(range(1, workers + 1)) if workers else ranks == {0}
    failed = [t for t in _records(job) if t["state"] == "FAILED"]
    assert sorted(str(t["task_id"]) for t in failed) == ["0", "1", "2", "3"]
    assert all("Traceback" in str(t["error"]) for t in failed)  # the remote traceback


def test_the_same_worker_serves_on_after_a_task_exits(qshpc_home: Path) -> None:
    """One worker: the calls after the three exits run on that same process."""
    job = LocalClient(workers=1).run(
        Program(title="exits", entrypoint="task_exits.py", working_dir=str(PROGRAMS))
    )
    result = job.result(timeout=90)
    pids = {p for _, p in result["after"]}
    assert len(pids) == 1
    info = job.info()
    assert info["state"] == "SUCCEEDED"
    assert info["ranks"][1]["pid"] in pids  # the worker that ran the exits


def test_exit_in_a_grouped_call_or_its_shared_step_fails_only_that_call(qshpc_home: Path) -> None:
    """The cooperative-group path (qshpc.task.coop): a call that exits, and a shared step
    that exits (each of its calls fails alone), fail only their calls."""
    job = LocalClient(workers=1).run(
        Program(title="grouped", entrypoint="grouped_exit.py", working_dir=str(PROGRAMS))
    )
    assert job.result(timeout=90) == [20, 22, "SystemExit", "SystemExit", 28, 30]
    assert job.status() == "SUCCEEDED"


def test_save_result_inside_a_task_under_plain_python(tmp_path: Path) -> None:
    """The same program under plain python (tasks inline) fails the same way."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(PROGRAMS / "save_in_task.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "save_result was called inside task 1 (work) on rank 0" in out.stdout


@pytest.mark.parametrize("workers", [1, 2])
def test_a_program_that_gave_up_on_a_stuck_task_ends_at_once(
    qshpc_home: Path, workers: int
) -> None:
    """(With one rank a task runs at its call: get's timeout cannot apply.)"""
    t0 = time.monotonic()
    out = run_cli("run", str(PROGRAMS / "gives_up.py"), "--workers", str(workers), timeout=120)
    elapsed = time.monotonic() - t0
    job = job_dir_of(qshpc_home)
    status = json.loads(run_cli("status", str(job), "--json").stdout)
    assert status["state"] == "SUCCEEDED", out.stderr
    assert json.loads(run_cli("result", str(job), "--json").stdout) == {"gave_up": True}
    ended = float(status["finished"]) - float(status["started"])
    assert ended < 15, ended  # 2 s of get timeout, 2 s of grace; on main 62 s and more
    assert elapsed < 45, elapsed
    stuck = [t for t in _records(job) if t["task_id"] == "0"]
    assert len(stuck) == 1 and stuck[0]["state"] == "FAILED"
    error = str(stuck[0]["error"])
    assert error.startswith("TaskAbandoned: the program ended (the job SUCCEEDED)")
    assert "rank 1" in error
    assert "BAD TERMINATION" not in out.stdout + out.stderr  # mpiexec's, about the stuck rank
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("ranks", [1, 3])
def test_a_process_left_running_does_not_hold_the_ranks(qshpc_home: Path, ranks: int) -> None:
    import subprocess

    linger = f"{40 + ranks}.25"  # a name of its own, to end it after
    try:
        t0 = time.monotonic()
        out = run_cli("run", str(PROGRAMS / "leaves_a_child.py"), linger, ranks=ranks, timeout=120)
        elapsed = time.monotonic() - t0
        assert out.returncode == 0, out.stderr
        job = job_dir_of(qshpc_home)
        status = json.loads(run_cli("status", str(job), "--json").stdout)
        assert status["state"] == "SUCCEEDED"
        assert float(status["finished"]) - float(status["started"]) < 4.5, status
        assert elapsed < 9, elapsed
        assert "the program's own line" in (job / "logs" / "rank-0.out").read_text()
    finally:
        subprocess.run(["pkill", "-f", f"sleep {linger}"], check=False)


@pytest.mark.parametrize("ranks", [1, 3])
def test_a_thread_left_running_does_not_hang_the_ranks(qshpc_home: Path, ranks: int) -> None:
    out = run_cli(
        "run", str(PROGRAMS / "leaves_a_thread.py"), ranks=ranks, timeout=60,
        env={"QSHPC_EXIT_GRACE_S": "1.5"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    job = job_dir_of(qshpc_home)
    assert json.loads(run_cli("status", str(job), "--json").stdout)["state"] == "SUCCEEDED"
    assert "the late thread ended" in out.stdout  # a thread that ends in the grace is waited for
    assert "the program's atexit handler ran" in out.stdout
    assert "left thread(s) 'program-watcher'" in out.stderr, out.stderr
    if ranks > 1:
        assert "'task-watcher'" in out.stderr, out.stderr  # the worker's
