"""A task that ends its worker's process (``os._exit``) fails the job naming that rank,
its exit code and the task, never another rank's SIGKILL (review36 F1, review38 F6).

mpiexec ends the other ranks with SIGKILL once one has exited; the rank that
exited 0 was dropped as "ended cleanly" and the next rank reaped was blamed, with
out-of-memory advice, in most runs: a loop of runs catches that race.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.mpi

PROGRAM = """\
import os, sys
from qshpc import distribute_task, get

@distribute_task()
def square(x):
    return x * x

@distribute_task()
def hard_exit(code):
    os._exit(code)

print("before", get([square(i) for i in range(4)]), flush=True)
print(get(hard_exit(int(sys.argv[1]))))
"""


def _failed_line(program: Path, job: Path, code: int) -> str:
    """``qshpc run PROGRAM --workers 2 -- CODE``: its ``qshpc: job ... FAILED`` line (exit 1)."""
    out = run_cli(
        "run", str(program), "--workers", "2", "--job-dir", str(job), "--", str(code),
        env={"QSHPC_PROGRESS_S": "0"},
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    return next(s for s in out.stderr.splitlines() if s.startswith("qshpc: job "))


def test_a_task_calling_os_exit_is_named_every_time_never_a_sigkill(tmp_path: Path) -> None:
    program = tmp_path / "hard.py"
    program.write_text(PROGRAM)
    for i in range(10):
        code = (0, 3)[i % 2]
        job = tmp_path / f"job{i}"
        line = _failed_line(program, job, code)
        assert " FAILED: rank " in line, line
        died = line.split(" FAILED: ", 1)[1]
        rank = died.split()[1]
        assert rank in ("1", "2"), line
        assert f"exited (code {code}) while running task 4 (hard_exit)" in died, line
        assert f"os._exit({code})" in died, line
        assert "SIGKILL" not in line and "out-of-memory" not in line, line
        assert f"see logs/rank-{rank}.out" in line, line


def test_under_the_users_own_mpiexec_status_names_the_rank_that_held_the_task(
    tmp_path: Path,
) -> None:
    """Nothing in the store says whether the busy worker or rank 0 ended first (mpiexec's
    output is the user's): both are named, with their pids, as equal candidates. Naming
    the worker "most likely first" blamed it for a kill -9 (or the OOM killer) of rank 0,
    which holds the results (review40 F2)."""
    import json

    program = tmp_path / "hard.py"
    program.write_text(PROGRAM)
    job = tmp_path / "job"
    out = run_cli("run", str(program), "--job-dir", str(job), "--", "3", ranks=3)
    assert out.returncode != 0
    meta = json.loads(run_cli("status", str(job), "--json").stdout)
    assert meta["state"] == "FAILED", meta
    text, pids = meta["error"], {r["rank"]: r["pid"] for r in meta["ranks"]}
    assert "most likely first" not in text, text
    worker = text.split()[1]
    assert worker in ("1", "2"), text
    assert f"(pid {pids[int(worker)]}) was running task 4 (hard_exit) when" in text, text
    assert f"(pid {pids[0]}), which holds the results" in text, text
    assert "which process ended first is not recorded" in text and "os._exit" in text, text
    assert f"logs/rank-0.out, logs/rank-{worker}.out" in text, text


def test_a_code_0_in_mpiexecs_list_is_trusted_only_for_the_first_rank_to_end() -> None:
    """mpiexec lists 0 for a rank it ended last as often as not (``9,9,0`` after a kill -9
    of rank 1, with rank 2 holding a task, seen on this VM): that rank is not blamed."""
    from qshpc.jobs.postmortem import _dead_first

    held = {1: ["4"], 2: ["5"]}
    assert _dead_first([(1, 11), (0, 10), (2, 12)], [-9, -9, 0], held)[0] == (1, 11)
    assert _dead_first([(1, 11), (2, 12), (0, 10)], [0, 0, -9], held)[0] == (1, 11)
    assert _dead_first([(2, 12), (1, 11), (0, 10)], [0, 3, -9], held)[0] == (1, 11)
    assert _dead_first([(1, 11), (2, 12), (0, 10)], [0, 0, -9], {})[0] == (2, 12)


def test_workers_0_whose_program_calls_os_exit_exits_with_its_code_and_status_says_why(
    tmp_path: Path,
) -> None:
    """review38 F18: with ``--workers 0`` the job is the ``qshpc run`` process itself: a
    program's ``os._exit(4)`` ends it with 4 and no summary (docs/cli.md says so); the
    next ``qshpc status`` records it FAILED naming that one process (was: "the job's
    processes ended without finalizing the store")."""
    program = tmp_path / "topos.py"
    program.write_text("import os\nprint('before', flush=True)\nos._exit(4)\n")
    job = tmp_path / "job"
    out = run_cli("run", str(program), "--workers", "0", "--job-dir", str(job))
    assert out.returncode == 4, out.stderr
    status = run_cli("status", str(job))
    assert status.stdout.startswith("FAILED"), status.stdout
    assert "its one process (rank 0 on host" in status.stdout, status.stdout
    assert "os._exit" in status.stdout and "logs/rank-0.out" in status.stdout, status.stdout


def test_a_worker_that_failed_itself_is_not_said_to_have_called_os_exit(tmp_path: Path) -> None:
    """A rank that exited with a code while holding a task because qshpc's own worker
    failed (it writes why to its log, then exits 1) is named with what its log says."""
    from qshpc.jobs.postmortem import describe

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "dispatch.log").write_text("1 0 f\n2 1 f\n1 2 g\n")
    (tmp_path / "logs" / "rank-1.out").write_text(
        "qshpc: rank 1 on host vm failed:\nTraceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\nRuntimeError: boom\n'
    )
    meta = {"ranks": [{"rank": r, "host": "vm", "pid": 100 + r} for r in range(3)]}
    launcher = "[mpiexec@vm] Exit codes: [vm] 9,256,9\n"
    why = describe(tmp_path, meta, {"1"}, launcher, [(1, 101), (0, 100), (2, 102)])
    assert why.startswith("rank 1 on host vm (pid 101) exited (code 1) while running tasks 0, 2")
    assert "(f, g): its log says: qshpc: rank 1 on host vm failed: RuntimeError: boom" in why
    assert "os._exit" not in why and "SIGKILL" not in why
    (tmp_path / "logs" / "rank-1.out").write_text("a task's own output\n")
    why = describe(tmp_path, meta, {"1"}, launcher, [(1, 101), (0, 100), (2, 102)])
    assert "(f, g): a task called os._exit(1) (or exit(1) in C code)" in why


@pytest.mark.parametrize("code", [137, 200])
def test_a_task_exiting_with_a_code_above_128_is_never_read_as_a_signal(
    tmp_path: Path, code: int
) -> None:
    """review40 F3: ``os._exit(137)`` was reported as ``SIGKILL (killed: out of memory, ...)``
    with out-of-memory advice, ``os._exit(200)`` as ``signal 72``: any code above 128 was
    read as 128 + a signal. mpiexec's list holds wait statuses, which tell them apart."""
    program = tmp_path / "hard.py"
    program.write_text(PROGRAM)
    line = _failed_line(program, tmp_path / "job", code)
    assert f"exited (code {code}) while running task 4 (hard_exit)" in line, line
    assert f"os._exit({code})" in line, line
    assert "SIGKILL" not in line and "out-of-memory" not in line and "signal" not in line, line


def test_mpiexecs_codes_keep_an_exit_apart_from_a_signal(tmp_path: Path) -> None:
    """An exit code and a signal never read as one another, and no signal above 64 is named:
    Hydra's list holds wait statuses (35072: exit 137; 9: SIGKILL), its banner (printed only
    for a process that did not exit by itself) the raw status (139: SIGSEGV with a core)."""
    from qshpc.jobs.postmortem import describe, exit_codes

    assert exit_codes("] Exit codes: [vm] 35072,9,51200,65280,139\n") == [137, -9, 200, 255, -11]
    meta = {"ranks": [{"rank": r, "host": "vm", "pid": 100 + r} for r in range(2)]}
    why = describe(tmp_path, meta, set(), "] Exit codes: [vm] 35072,0\n", [(0, 100)])
    assert why.startswith("rank 0 on host vm (pid 100) died: exit code 137 (an exit(137)"), why
    assert "or a SIGKILL passed on as 128 + 9" in why and "out-of-memory" not in why, why
    why = describe(tmp_path, meta, set(), "] Exit codes: [vm] 9,0\n", [(0, 100)])
    assert "died: SIGKILL (killed: out of memory, or kill -9)" in why and "out-of-memory" in why
    for status, how in ((11, "SIGSEGV"), (139, "SIGSEGV"), (9, "SIGKILL")):
        banner = f"=   PID 101 RUNNING AT vm\n=   EXIT CODE: {status}\n"
        why = describe(tmp_path, meta, set(), banner)
        assert why.startswith(f"rank 1 on host vm (pid 101) died: {how}"), why
    for status in (51200, 65280):  # os._exit(200), os._exit(-1)
        why = describe(tmp_path, meta, set(), f"] Exit codes: [vm] {status},0\n", [(0, 100)])
        assert "died: exit code " in why and "signal" not in why, why
