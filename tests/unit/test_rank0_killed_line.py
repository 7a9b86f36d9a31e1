"""fixP: the line ``qshpc run`` says when rank 0 died by a signal after the store was final."""

from __future__ import annotations

from qshpc.jobs.postmortem import killed_after_end


def test_rank0_killed_after_the_end_is_said_with_its_signal() -> None:
    line = killed_after_end(
        "[mpiexec@vm] Exit codes: [vm] 9,0\n", [(1, 11), (0, 10)], "SUCCEEDED", "J"
    )
    assert line is not None
    assert line.startswith(
        "qshpc: rank 0 (pid 10) died: SIGKILL (killed: out of memory, or kill -9)"
    )
    assert "final (SUCCEEDED): every result is kept" in line and "qshpc status J" in line


def test_a_rank0_that_ended_by_itself_or_after_a_worker_died_is_not_said() -> None:
    clean = "[mpiexec@vm] Exit codes: [vm] 0,0\n"
    assert killed_after_end(clean, [(1, 11), (0, 10)], "SUCCEEDED", "J") is None
    exited = "[mpiexec@vm] Exit codes: [vm] 256,0\n"  # exit code 1
    assert killed_after_end(exited, [(0, 10)], "FAILED", "J") is None
    # A worker's os._exit(7) first, then mpiexec killed rank 0: the job's error names rank 1.
    worker_first = "[mpiexec@vm] Exit codes: [vm] 9,1792\n"
    assert killed_after_end(worker_first, [(1, 11), (0, 10)], "FAILED", "J") is None
    assert killed_after_end("", [(0, 10)], "SUCCEEDED", "J") is None  # mpiexec said nothing
