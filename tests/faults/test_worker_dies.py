"""A worker rank killed with SIGKILL: the job ends FAILED quickly, naming the rank, host and
tasks it held, and every result finished before the kill stays in the store."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROGRAMS, job_dir_of, run_cli, start_cli

pytestmark = pytest.mark.mpi


def test_worker_sigkill_under_qshpc_run(qshpc_home: Path) -> None:
    t0 = time.monotonic()
    out = run_cli("run", str(PROGRAMS / "worker_dies.py"), "--workers", "2", timeout=60)
    elapsed = time.monotonic() - t0
    assert out.returncode == 1  # the documented code of a FAILED job, never mpiexec's (9)
    assert elapsed < 30
    assert "on host" in out.stderr and "SIGKILL" in out.stderr
    assert "rank 1 on" in out.stderr  # the rank that held the unfinished tasks
    assert "unfinished task(s)" in out.stderr
    job = job_dir_of(qshpc_home)
    meta = json.loads(run_cli("status", str(job), "--json").stdout)
    assert meta["state"] == "FAILED"
    assert "rank 1" in meta["error"] and "held" in meta["error"]
    assert meta["task_counts"]["SUCCEEDED"] >= 6  # the first get() finished before the kill
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        done = {t["task_id"] for t in r.tasks() if t["state"] == "SUCCEEDED"}
        assert {"0", "1", "2", "3", "4", "5"} <= done
        assert r.task_result("3") == 3


def test_worker_sigkill_under_plain_mpiexec(qshpc_home: Path) -> None:
    out = run_cli("run", str(PROGRAMS / "worker_dies.py"), ranks=3, timeout=60)
    assert out.returncode != 0
    job = job_dir_of(qshpc_home)
    status = run_cli("status", str(job))
    assert status.stdout.startswith("FAILED")
    assert "unfinished task(s)" in status.stdout


def test_checkpoints_keep_job_h5_current_and_recover_folds(qshpc_home: Path) -> None:
    """With checkpoints every second, job.h5 alone (read with plain h5py) holds the
    results; after the crash the journal is folded in by the launcher."""
    import h5py

    out = run_cli(
        "run",
        str(PROGRAMS / "worker_dies.py"),
        "--workers",
        "2",
        timeout=60,
        env={"QSHPC_CHECKPOINT_S": "0"},
    )
    assert out.returncode != 0
    job = job_dir_of(qshpc_home)
    assert not (job / "job.journal").exists()  # folded by the launcher's post-mortem
    with h5py.File(job / "job.h5", "r") as f:
        assert len(f["log/records"]) >= 6


def test_rank0_failing_to_prepare_leaves_no_worker_waiting(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """An unexpected error while rank 0 prepares the job (injected: the known ones are
    user errors) reaches the workers, which exit instead of waiting in MPI forever."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(
        "import os\n"
        "if os.environ.get('PMI_RANK') == '0':\n"
        "    import qshpc.jobs.prepare as p\n"
        "    def boom(spec):\n"
        "        raise RuntimeError('disk on fire')\n"
        "    p.prepare_job = boom\n"
    )
    (tmp_path / "ok.py").write_text("from qshpc import save_result\nsave_result(1)\n")
    import os

    path = os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")])
    start = time.monotonic()
    out = run_cli("run", str(tmp_path / "ok.py"), ranks=3, timeout=60, env={"PYTHONPATH": path})
    assert out.returncode != 0
    assert "disk on fire" in out.stderr
    assert time.monotonic() - start < 30


def _start_run(program: str, *args: str, env: dict[str, str] | None = None) -> Any:
    import subprocess
    import sys

    return start_cli(
        [sys.executable, "-m", "qshpc", "run", str(PROGRAMS / program), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _ranks_once_going(home: Path, at_least: int) -> tuple[Path, list[dict[str, Any]]]:
    from qshpc.store import JobReader

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            job = job_dir_of(home)
            with JobReader.open(job) as r:
                meta = r.meta()
            if (meta.get("task_counts") or {}).get("SUCCEEDED", 0) >= at_least:
                return job, meta["ranks"]
        except Exception:  # not there yet
            pass
        time.sleep(0.1)
    raise AssertionError("the job never got going")


@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_killed_from_outside_is_the_rank_blamed_and_run_exits_1(
    qshpc_home: Path, workers: int
) -> None:
    """kill -9 of rank 1 from outside (as the OOM killer does). mpiexec then kills the other
    ranks and its banner names whichever it reaped first: on main ae3c8a1 the post-mortem
    often blamed rank 0 ('died: SIGKILL') and qshpc run exited 9. Two tries each."""
    import os
    import signal

    for attempt in range(2):
        home = qshpc_home / str(attempt)
        os.environ["QSHPC_HOME"] = str(home)  # the fixture's monkeypatch restores it
        proc = _start_run("slow.py", "--workers", str(workers))
        job, ranks = _ranks_once_going(home, 4)
        os.kill(int(ranks[1]["pid"]), signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, err
        meta = json.loads(run_cli("status", str(job), "--json").stdout)
        assert meta["state"] == "FAILED"
        error = meta["error"]
        assert f"rank 1 on host {ranks[1]['host']} (pid {ranks[1]['pid']}) died: SIGKILL" in error
        assert "rank 0 on host" not in error and "rank 0 on host" not in err, err
        assert "rank 1 on" in error and "unfinished task(s)" in error  # what it held
        assert "out-of-memory killer" in error and f"slow.py --resume {job.name}`" in error
        assert "BAD TERMINATION" not in out + err  # mpiexec's banner (it named rank 0)
        assert "died: SIGKILL" in err


def test_resume_with_workers_after_a_worker_was_killed(qshpc_home: Path, tmp_path: Path) -> None:
    """`qshpc run --resume JOB --workers 2` after a worker was killed: the launcher takes this
    run's rank 0 (not the previous run's dead one), the resumed run is not SIGTERMed ~5 s in,
    `qshpc status` does not show the previous run's FAILED while it runs, and it SUCCEEDS."""
    env = {"DIES_MARK": str(tmp_path / "mark")}
    first = run_cli("run", str(PROGRAMS / "dies_once.py"), "--workers", "2", env=env, timeout=90)
    assert first.returncode == 1, first.stderr
    job = job_dir_of(qshpc_home)
    assert "FAILED" in run_cli("status", str(job)).stdout
    proc = _start_run("dies_once.py", "--resume", str(job), "--workers", "2", env=env)
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        seen.append(run_cli("status", str(job)).stdout.split()[0])
        time.sleep(0.3)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "RUNNING" in seen, seen
    since = seen[seen.index("RUNNING") :]
    assert "FAILED" not in since, seen  # once it runs, the previous run's end is not its state
    assert "reused from the store" in out
    assert json.loads(run_cli("result", str(job), "--json").stdout) == sum(range(6, 60))


def test_forwarding_never_signals_the_previous_runs_rank0(tmp_path: Path) -> None:
    """While a resumed run's rank 0 has not recorded itself, the store lists the previous
    run's ranks: their pids are dead, or reused by another process by now. The launcher
    neither watches that pid nor forwards a SIGTERM to it: the signal goes to this run's
    mpiexec (which passes it to the ranks) once no rank 0 of this run took it for a while."""
    import os
    import signal
    import socket
    import subprocess
    import threading

    from qshpc.launch.deaths import Deaths
    from qshpc.launch.local import _Signals, _watch
    from qshpc.store import JobWriter, create_job

    decoy = subprocess.Popen(["sleep", "120"])  # holds the pid the previous run's rank 0 had
    mpiexec = subprocess.Popen(["sleep", "120"])  # stands for this run's mpiexec
    job = tmp_path / "job"
    create_job(job, {"id": "j", "title": "t", "created": 1.0}, {})
    ranks = [{"rank": 0, "host": socket.gethostname(), "pid": decoy.pid}]
    w = JobWriter.open(job, {"mpi_size": 3, "ranks": ranks, "started": time.time() - 60})
    w.finalize("FAILED", "a worker died")
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    rank0: list[int] = []
    try:
        signals = _Signals()
        signals.HOLD_S = 0.5  # held this long for a rank 0 that never shows, then to mpiexec
        signals.forward_to(mpiexec, rank0)
        threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
        code = _watch(mpiexec, job, rank0, time.time(), Deaths(), 3, signals)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        mpiexec.kill()
    try:
        assert code == -signal.SIGTERM  # this run's mpiexec got it
        assert rank0 == []
        assert decoy.poll() is None  # the old pid was never signalled
    finally:
        decoy.kill()
        decoy.wait()
