"""MPI that never starts: each rank says where and why within QSHPC_MPI_START_TIMEOUT_S, and ends.

The fault is real: the rank's PMI server is a socket that accepts and never
answers, so ``MPI_Init`` waits forever, as it does when a launcher's wiring or
the network between nodes fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import PROGRAMS, run_cli


def _silent_pmi() -> tuple[socket.socket, dict[str, str]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    env = {"PMI_PORT": f"127.0.0.1:{port}", "PMI_RANK": "0", "PMI_SIZE": "2", "PMI_ID": "0"}
    return server, env


def test_a_rank_whose_mpi_never_starts_says_so_and_ends(tmp_path: Path) -> None:
    server, env = _silent_pmi()
    with server:
        t0 = time.monotonic()
        out = run_cli("run", str(PROGRAMS / "squares.py"), timeout=60,
                      env={**env, "QSHPC_MPI_START_TIMEOUT_S": "2"})  # fmt: skip
        took = time.monotonic() - t0
    assert out.returncode != 0
    err = out.stderr
    assert "MPI did not start within 2 s for MPI rank 0 on host" in err, err
    assert "--mpi=pmi2" in err and "QSHPC_MPI_START_TIMEOUT_S" in err
    assert "Traceback" not in err
    assert took < 50, took


def test_the_watchdog_marks_a_submitted_job_failed_and_leaves_when_mpi_starts(
    tmp_path: Path,
) -> None:
    job = tmp_path / "job"
    job.mkdir()
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from qshpc.runtime.startwatch import watch\n"
        "w = watch(float(sys.argv[1]), Path(sys.argv[2]))\n"
        "time.sleep(float(sys.argv[3]))  # 'MPI_Init'\n"
        "w.started()\n"
        "print('started', flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    stuck = subprocess.run([sys.executable, "-c", code, "0.5", str(job), "30"],
                           capture_output=True, text=True, timeout=30, env=env)  # fmt: skip
    assert stuck.returncode == -9 and "started" not in stuck.stdout
    assert "MPI did not start within 0.5 s" in stuck.stderr
    override = json.loads((job / "status.json").read_text())
    assert override["state"] == "FAILED" and "MPI did not start" in override["error"]
    (job / "status.json").unlink()
    fine = subprocess.run([sys.executable, "-c", code, "5", str(job), "0.1"],
                          capture_output=True, text=True, timeout=30, env=env)  # fmt: skip
    assert fine.returncode == 0 and "started" in fine.stdout and not fine.stderr
    assert not (job / "status.json").exists()


def test_a_bad_start_timeout_is_a_clear_error(tmp_path: Path) -> None:
    out = run_cli("run", str(PROGRAMS / "squares.py"), env={"QSHPC_MPI_START_TIMEOUT_S": "soon"})
    assert out.returncode == 2 and "QSHPC_MPI_START_TIMEOUT_S='soon'" in out.stderr
    assert "Traceback" not in out.stderr


def test_the_watchdog_leaves_a_job_another_live_run_holds(tmp_path: Path) -> None:
    """A second run of a job that runs (its lock held by a live process) whose MPI does not
    start must not mark that job FAILED: ``qshpc status``/``wait`` said FAILED while it ran."""
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from qshpc.runtime.startwatch import watch\n"
        "w = watch(0.5, Path(sys.argv[1]))\n"
        "time.sleep(30)  # 'MPI_Init'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    host = socket.gethostname()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    now = time.time()
    cases = [  # (host, pid, the lock's mtime: its holder keeps it ahead, marked)
        (host, os.getpid(), now + 60, False),
        (host, gone.pid, now + 60, True),
        ("another-node", 4242, now + 60, False),  # fresh: its holder runs there
        ("another-node", 4243, now - 600, True),  # lapsed: that run is gone
    ]
    for on, holder, mtime, marked in cases:
        job = tmp_path / f"job-{holder}"
        job.mkdir()
        (job / "job.lock").write_text(f"{job / 'job.lock'}|{on}|{holder}|12345\n")
        os.utime(job / "job.lock", (mtime, mtime))
        stuck = subprocess.run([sys.executable, "-c", code, str(job)],
                               capture_output=True, text=True, timeout=30, env=env)  # fmt: skip
        assert stuck.returncode == -9 and "MPI did not start within 0.5 s" in stuck.stderr
        assert (job / "status.json").exists() == marked, holder


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _rank_under_a_launcher(
    argv: list[str], env: dict[str, str]
) -> tuple[subprocess.Popen[str], int]:
    """``argv`` started by a shell that stands for its launcher (hydra's proxy): the shell
    dies of a SIGTERM to the group, leaving the rank without it. Returns (shell, rank pid)."""
    shell = subprocess.Popen(
        ["sh", "-c", '"$@" 2>"$ERRFILE" & echo $!; wait', "sh", *argv],
        env=env, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert shell.stdout is not None
    return shell, int(shell.stdout.readline())


def _end(shell: subprocess.Popen[str]) -> None:
    try:
        os.killpg(shell.pid, 9)
    except ProcessLookupError:
        pass
    shell.wait(10)


def _hanging_rank(tmp_path: Path) -> tuple[socket.socket, Path, dict[str, str], list[str]]:
    """A silent PMI server, the rank's stderr file, its environment and command line: a
    ``qshpc run`` whose MPI_Init hangs (the watchdog's limit 300 s, out of the way)."""
    server, env = _silent_pmi()
    err = tmp_path / "err"
    full = {**os.environ, **env, "QSHPC_MPI_START_TIMEOUT_S": "300", "QSHPC_HOME": str(tmp_path)}
    full["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    full["ERRFILE"] = str(err)
    return server, err, full, [sys.executable, "-m", "qshpc", "run", str(PROGRAMS / "squares.py")]


def test_a_rank_asked_to_stop_while_mpi_hangs_ends_with_its_launcher(tmp_path: Path) -> None:
    """SIGTERM to a rank's process group while its MPI_Init hangs: the watchdog (in that
    group too) died of it, and the rank, whose own handler never runs inside MPI_Init,
    waited forever once its launcher ended. Now the watchdog ends it once the launcher is
    gone; while the launcher lives, MPI may still start and the rank acts on the signal."""
    server, err, full, argv = _hanging_rank(tmp_path)
    with server:
        shell, rank = _rank_under_a_launcher(argv, full)
        try:
            time.sleep(3)  # in MPI_Init by now
            os.kill(rank, 15)  # the rank alone: its launcher lives, MPI may still start
            time.sleep(2)
            assert _alive(rank)
            t0 = time.monotonic()
            os.killpg(shell.pid, 15)  # the launcher ends too
            while _alive(rank) and time.monotonic() - t0 < 30:
                time.sleep(0.1)
            took = time.monotonic() - t0
        finally:
            _end(shell)
            if _alive(rank):
                os.kill(rank, 9)
    text = err.read_text()
    assert took < 10, (took, text)
    assert "was asked to stop (SIGTERM) while MPI was starting, and its launcher ended" in text
    assert "Traceback" not in text


def test_a_submitted_job_stopped_while_mpi_hangs_is_marked_canceled(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    code = (
        "import signal, sys, time\n"
        "from pathlib import Path\n"
        "from qshpc.runtime.startwatch import watch\n"
        "signal.signal(signal.SIGTERM, lambda *a: None)  # deferred, as a rank's in MPI_Init\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN)  # (nohup): the watchdog leaves it too\n"
        "w = watch(300.0, Path(sys.argv[1]))\n"
        "print('armed', file=sys.stderr, flush=True)\n"
        "time.sleep(60)\n"
    )
    err = tmp_path / "err"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "ERRFILE": str(err),
    }
    shell, rank = _rank_under_a_launcher([sys.executable, "-c", code, str(job)], env)
    try:
        t0 = time.monotonic()
        while (
            "armed" not in (err.read_text() if err.exists() else "") and time.monotonic() - t0 < 30
        ):
            time.sleep(0.05)
        os.killpg(shell.pid, signal.SIGHUP)  # ignored by the rank: nothing happens
        time.sleep(1.5)
        assert _alive(rank) and not (job / "status.json").exists()
        os.killpg(shell.pid, 15)
        t0 = time.monotonic()
        while _alive(rank) and time.monotonic() - t0 < 30:
            time.sleep(0.1)
        assert not _alive(rank), err.read_text()
    finally:
        _end(shell)
        if _alive(rank):
            os.kill(rank, 9)
    assert "(SIGTERM)" in err.read_text()
    override = json.loads((job / "status.json").read_text())
    assert override["state"] == "CANCELED" and "asked to stop" in override["error"]


def test_the_watchdog_s_clock_slop_is_the_lock_s() -> None:
    from qshpc.runtime import startwatch
    from qshpc.store import lock

    assert startwatch._CLOCK_SLOP_S == lock.CLOCK_SLOP_S


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def test_a_burst_of_stop_signals_leaves_the_watchdog_watching(tmp_path: Path) -> None:
    """Thousands of SIGTERM/SIGINT/SIGHUP at the watchdog while the rank's MPI_Init hangs: its
    handler only records them (one that raised could escape the wait and end the watchdog,
    review21 F3), and once the launcher is gone the rank is still ended, with its message."""
    server, err, full, argv = _hanging_rank(tmp_path)
    with server:
        shell, rank = _rank_under_a_launcher(argv, full)
        try:
            time.sleep(3)  # in MPI_Init by now; the watchdog is the rank's child
            dogs = [c for c in _children(rank) if _alive(c)]
            assert dogs, "no watchdog found"
            for i in range(3000):
                for dog in dogs:
                    os.kill(dog, (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)[i % 3])
            time.sleep(1)
            assert all(_alive(d) for d in dogs)
            assert _alive(rank)
            t0 = time.monotonic()
            os.killpg(shell.pid, 15)  # the launcher ends
            while _alive(rank) and time.monotonic() - t0 < 30:
                time.sleep(0.1)
            took = time.monotonic() - t0
        finally:
            _end(shell)
            if _alive(rank):
                os.kill(rank, 9)
    text = err.read_text()
    assert took < 10, (took, text)
    assert "while MPI was starting, and its launcher ended" in text, text
    assert any(f"was asked to stop ({n})" in text for n in ("SIGTERM", "SIGINT", "SIGHUP"))
    assert "Traceback" not in text


def test_a_programs_own_signal_handler_never_runs_in_the_watchdog(tmp_path: Path) -> None:
    """review22 F5: a rank's Python handler for SIGUSR1 (a checkpoint; ``scancel
    --signal=USR1`` signals every process of the step) ran in the forked watchdog too,
    and one that raised ended it, leaving the rank's MPI start unwatched."""
    marks = tmp_path / "marks"
    code = (
        "import os, signal, sys, time\n"
        "from qshpc.runtime.startwatch import watch\n"
        "def checkpoint(signum, frame):\n"
        "    with open(sys.argv[1], 'a') as f:\n"
        "        f.write(f'{os.getpid()}\\n')\n"
        "    raise RuntimeError('checkpoint handler')\n"
        "signal.signal(signal.SIGUSR1, checkpoint)\n"
        "w = watch(300.0, None)\n"
        "print(w.child, flush=True)\n"
        "try:\n"
        "    time.sleep(60)\n"
        "except RuntimeError:\n"
        "    print('rank handled it', flush=True)\n"
        "    time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(marks)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        watchdog = int(proc.stdout.readline())
        os.kill(watchdog, signal.SIGUSR1)
        time.sleep(1.0)
        assert _alive(watchdog), "the watchdog ended on the program's SIGUSR1 handler"
        assert not marks.exists(), marks.read_text()
        os.kill(proc.pid, signal.SIGUSR1)  # the rank's own handler still runs in the rank
        assert proc.stdout.readline().strip() == "rank handled it"
        assert marks.read_text().split() == [str(proc.pid)]
    finally:
        proc.kill()
        proc.wait()
