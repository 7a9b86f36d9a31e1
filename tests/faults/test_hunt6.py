"""Session 6's fault hunt (hunt6): programs and neighbours that broke qshpc on main ac4d79c.

Each test says what happened on ac4d79c. None asserts a speed: a bound is there
only to prove that nothing hangs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, job_dir_of, kill_recorded, run_cli
from tests.conftest import job_status as _status

pytestmark = [pytest.mark.timeout(240)]


def test_exit_statuses_of_the_launcher_are_read_as_exit_codes(tmp_path: Path) -> None:
    """mpiexec's ``-print-all-exitcodes`` lists wait statuses: 256 is exit code 1."""
    from qshpc.jobs.postmortem import describe, exit_codes

    assert exit_codes("[mpiexec@vm] Exit codes: [vm] 9,256,0,35072,15\n") == [-9, 1, 0, 137, -15]
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


@pytest.mark.mpi
@pytest.mark.parametrize("how", ["replace", "close"])
def test_a_program_and_tasks_that_replace_or_close_their_streams(
    qshpc_home: Path, how: str
) -> None:
    """On ac4d79c, with ``sys.stderr = None``: the job was recorded as 'rank 0 died:
    signal 128', the program's ValueError nowhere; a worker whose task set it exited 1
    (the tee's flush); with a closed sys.stderr the terminal showed nothing at all."""
    out = run_cli("run", str(PROGRAMS / "hunt6_streams.py"), how, "--workers", "2", timeout=90)
    assert out.returncode == 1, out.stderr
    assert f"ValueError: the program's own error after it {how}d its streams" in out.stderr
    assert "died" not in out.stderr, out.stderr
    assert "a task of quiet left sys.stdout, sys.stderr set" in out.stderr, out.stderr
    job = job_dir_of(qshpc_home)
    status = _status(job)
    assert status["state"] == "FAILED" and "program's own error" in str(status["error"])
    assert json.loads(run_cli("result", str(job), "--json").stdout) == {"r": list(range(6))}


@pytest.mark.mpi
def test_an_alarm_a_task_or_the_program_left_armed(qshpc_home: Path) -> None:
    """On ac4d79c: each worker's alarm fired in its own loop (TimeoutError), the worker
    stopped serving, and the job FAILED 30 s later ('stopped responding: killed,
    crashed or out of memory?'); rank 0's timer killed it in its exit (exit 14,
    mpiexec's 'BAD TERMINATION ... Alarm clock') after the store was final."""
    out = run_cli("run", str(PROGRAMS / "hunt6_alarm.py"), "--workers", "2", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "BAD TERMINATION" not in out.stdout + out.stderr
    assert "a task of f left an alarm timer" in out.stderr, out.stderr
    job = job_dir_of(qshpc_home)
    assert _status(job)["state"] == "SUCCEEDED"
    assert json.loads(run_cli("result", str(job), "--json").stdout) == {"r": [0, 1, 2, 3] * 2}


def test_tidy_puts_back_streams_handlers_and_disarms_the_alarm() -> None:
    import signal
    import sys

    from qshpc.runtime.tidy import Tidy

    out, err = sys.stdout, sys.stderr
    old = signal.getsignal(signal.SIGALRM)
    kept = signal.setitimer(signal.ITIMER_REAL, 0.0)  # pytest-timeout's, if it is armed
    tidy = Tidy()
    assert not tidy.changed()
    try:
        sys.stdout = None  # type: ignore[assignment]
        signal.signal(signal.SIGALRM, lambda s, f: None)
        signal.setitimer(signal.ITIMER_REAL, 60.0)
        assert tidy.changed()
        changed = tidy.restore()
        after = tidy.changed()
    finally:
        sys.stdout, sys.stderr = out, err
        signal.signal(signal.SIGALRM, old)
        signal.setitimer(signal.ITIMER_REAL, *kept)
    assert changed == [
        "an alarm timer (signal.alarm or setitimer)",
        "the SIGALRM handler",
        "sys.stdout",
    ]
    assert not after
    assert not Tidy().changed()  # a timer armed already (pytest-timeout's) is not a change


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 3])
def test_children_forked_without_exec_do_not_hold_the_command(
    qshpc_home: Path, tmp_path: Path, ranks: int
) -> None:
    """On ac4d79c the command waited as long as a forked child lived (32 s for a 30 s
    helper): the child held the launcher's output pipes (the rank's copies of them,
    MPICH's, and those hydra's proxy leaks to its ranks); a multiprocessing.Process
    was named 'thread(s) none'."""
    import time

    pids = tmp_path / "pids"
    pids.mkdir()
    try:
        t0 = time.monotonic()
        out = run_cli(
            "run", str(PROGRAMS / "hunt6_forks.py"), str(pids), "60", ranks=ranks, timeout=120,
            env={"QSHPC_EXIT_GRACE_S": "1.5"},
        )  # fmt: skip
        elapsed = time.monotonic() - t0
        assert out.returncode == 0, out.stderr
        assert _status(job_dir_of(qshpc_home))["state"] == "SUCCEEDED"
        assert elapsed < 40, elapsed  # not held until the children end (60 s)
        assert "process(es) 'task-helper' (pid" in out.stderr, out.stderr
        assert len(list(pids.iterdir())) == 3  # every child ran
    finally:
        kill_recorded(pids)


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 3])
def test_with_a_multiprocessing_pool_in_a_task_and_the_program(
    qshpc_home: Path, ranks: int
) -> None:
    """On ac4d79c the pool's workers, forked with the rank's SIGTERM handler, outlived
    ``pool.terminate()``: each task's ``with`` took 30 s (a worker's grace clock), the
    program's hung forever (rank 0's handler only remembers the signal)."""
    out = run_cli("run", str(PROGRAMS / "hunt6_pool.py"), ranks=ranks, timeout=100)
    assert out.returncode == 0, out.stderr
    job = job_dir_of(qshpc_home)
    assert json.loads(run_cli("result", str(job), "--json").stdout) == {
        "r": [4, 10, 34, 154],
        "mine": [1, 1, 2, 6],
    }


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 3])
def test_pools_ended_as_soon_as_started_never_hang(qshpc_home: Path, ranks: int) -> None:
    """``with Pool(2): pass``, 30 times in the program and in each of 4 tasks: the pool's
    exit SIGTERMs workers still in their fork. On 724bf2f the signal went to the rank's
    handler the child inherited, or CPython dropped it at the child's start, and
    ``terminate`` waited for a worker that never got it: 4 runs of 4 hung (and
    ``hunt6_pool.py`` above once in 20, seen in CI)."""
    out = run_cli("run", str(PROGRAMS / "pool_churn.py"), "30", ranks=ranks, timeout=100)
    assert out.returncode == 0, out.stderr
    assert "Exception ignored" not in out.stderr, out.stderr
    job = job_dir_of(qshpc_home)
    result = json.loads(run_cli("result", str(job), "--json").stdout)
    assert result == {"r": [30] * 4, "mine": 30}
