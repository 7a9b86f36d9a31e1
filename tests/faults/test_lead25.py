"""Session 25, lead: a step lock held from another pid namespace is not taken over."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qshpc.errors import UserError
from qshpc.store import lock

HOLDS = """
import sys, time
from pathlib import Path
from qshpc.store.lock import step_lock
with step_lock(Path(sys.argv[1]), "qshpc submit --resume"):
    print("held", flush=True)
    time.sleep(60)
"""


def _dead_pid() -> int:
    """A pid no process has here, near the top of the range (none is likely to take it)."""
    top = int(Path("/proc/sys/kernel/pid_max").read_text())
    return next(p for p in range(top - 50, top) if not Path(f"/proc/{p}").exists())


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root")
def test_a_step_lock_held_in_another_pid_namespace_is_not_taken_over(tmp_path: Path) -> None:
    """The step lock's claim named host and pid only: a `qshpc submit --resume` in a
    container keeping the host's name (apptainer --containall, unshare --pid) held it as a
    pid of its own namespace, which names no process outside; a second resume outside took
    the lock over at once as a dead holder's, and both sbatched (the left item of review33
    F2). The claim now names the pid namespace, and only a lapse frees it."""
    pid = _dead_pid()
    script = tmp_path / "holds.py"
    script.write_text(HOLDS)
    inner = (
        f"echo {pid - 1} > /proc/sys/kernel/ns_last_pid; {sys.executable} {script} {tmp_path}; true"
    )
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", inner],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        claim = lock._claim(tmp_path / lock.RESUME_FILE)
        assert claim is not None and claim[1] == pid  # (a pid dead out here)
        with pytest.raises(UserError, match=f"being resumed by another process .* pid {pid}"):
            with lock.step_lock(tmp_path, "qshpc submit --resume"):
                pass
        began = time.monotonic()
        lock.wait_step(tmp_path, timeout=1.0)
        assert time.monotonic() - began >= 0.9  # it waited: the holder lives
    finally:
        proc.kill()
        subprocess.run(["pkill", "-f", str(script)], check=False)
        proc.wait(10)


def test_a_step_lock_of_this_namespace_names_it_and_a_dead_holder_is_taken_over(
    tmp_path: Path,
) -> None:
    """The claim's host is `host@pidns` (what the refusal shows is the host alone), and a
    holder of this namespace that died is taken over at once, as before."""
    path = tmp_path / lock.RESUME_FILE
    with lock.step_lock(tmp_path, "qshpc submit --resume"):
        claim = lock._claim(path)
        assert claim is not None and claim[1] == os.getpid()
        if lock.PIDNS is not None:
            assert claim[0] == f"{os.uname().nodename}@{lock.PIDNS}"
        assert lock._claim_host(claim) == os.uname().nodename
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDS, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    proc.kill()
    proc.wait(10)
    with lock.step_lock(tmp_path, "qshpc submit --resume"):
        claim = lock._claim(path)
        assert claim is not None and claim[1] == os.getpid()


REUSED = """
import os, signal, subprocess, time
from qshpc.launch.local import _Signals

signals = _Signals()
first = subprocess.Popen(["sleep", "60"])  # rank 0, as found
signals.rank0.append(first.pid)
signals.pin_rank0()
first.kill()
first.wait()  # ended and reaped (by mpiexec's proxy, in a run)
with open("/proc/sys/kernel/ns_last_pid", "w") as fh:
    fh.write(str(first.pid - 1))
other = subprocess.Popen(["sleep", "60"])  # another process takes its pid
assert other.pid == first.pid, (other.pid, first.pid)
signals._kill(first.pid, signal.SIGTERM)  # a cancel for rank 0
time.sleep(0.2)
print("other", "alive" if other.poll() is None else f"killed {other.returncode}", flush=True)
other.kill()
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root")
def test_a_signal_for_an_ended_rank_0_never_reaches_the_process_that_took_its_pid(
    tmp_path: Path,
) -> None:
    """`qshpc run` passed a cancel on to rank 0 by its bare pid: rank 0 is mpiexec's
    proxy's child, so once it ended and was reaped its pid could be another process's (a
    busy node), which was killed instead. Rank 0 is pinned by a pidfd when found; the
    signal reaches it or nothing. (A pid namespace makes the pid's reuse certain.)"""
    script = tmp_path / "reused.py"
    script.write_text(REUSED)
    out = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "other alive", out.stdout + out.stderr


BIG_ARGUMENT = """\
import numpy as np
from qshpc import distribute_task, get, put, save_result

@distribute_task()
def total(a):
    return float(a.sum())

a = np.ones(3 << 20)  # 24 MiB
small = np.ones(10)
refs = [total(small) for _ in range(3)]
refs += [total(a) for _ in range(3)] if "{how}" == "again" else [total(put(a))]
save_result(get(refs))
"""


@pytest.mark.mpi
@pytest.mark.parametrize("how", ["again", "put"])
def test_a_large_array_sent_to_a_second_call_names_put_once(tmp_path: Path, how: str) -> None:
    """review38 F8: one 200 MB array passed to 16 calls took 26 s and 3 GB on rank 0 (each
    call pickles and sends its copy), against 1.2 s and 664 MB with `put`; nothing said so."""
    from tests.conftest import run_cli

    prog = tmp_path / "big.py"
    prog.write_text(BIG_ARGUMENT.replace("{how}", how))
    out = run_cli("run", str(prog), "--workers", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    hints = [line for line in out.stderr.splitlines() if "qshpc: hint: one 24 MiB" in line]
    if how == "again":
        assert len(hints) == 1, out.stderr
        assert "second call of total" in hints[0] and "`ref = put(value)`" in hints[0]
    else:
        assert hints == [], out.stderr


RESTARTED = """
import sys
from qshpc.submit.task import run_task
sys.exit(run_task(sys.argv[1], sys.argv[2], sys.argv[3]))
"""


def test_a_slurm_restart_of_a_job_that_succeeded_runs_nothing_and_exits_0(tmp_path: Path) -> None:
    """A node lost between the store's end (SUCCEEDED) and Slurm's: Slurm requeues the job
    and its task runs again. A resume of a SUCCEEDED job is refused (exit 2, review38 F1),
    so Slurm recorded FAILED a job whose result was there; the restarted task now says
    it had succeeded and exits 0, the store untouched."""
    from qshpc import open_job
    from tests.conftest import run_cli

    prog = tmp_path / "ok.py"
    prog.write_text("from qshpc import save_result\nsave_result(7)\n")
    job_dir = tmp_path / "job"
    out = run_cli("run", str(prog), "--workers", "0", "--job-dir", str(job_dir), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    before = (job_dir / "job.h5").stat()
    env = {**os.environ, "SLURM_JOB_ID": "99", "SLURM_PROCID": "0", "SLURM_NTASKS": "1",
           "SLURM_RESTART_COUNT": "1"}  # fmt: skip
    env.pop("SUBMITIT_FOLDER", None)
    done = subprocess.run(
        [sys.executable, "-c", RESTARTED, str(job_dir), str(prog), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "had already SUCCEEDED when Slurm restarted it: nothing to run" in done.stderr
    after = (job_dir / "job.h5").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    job = open_job(job_dir)
    assert job.status() == "SUCCEEDED" and job.result() == 7
