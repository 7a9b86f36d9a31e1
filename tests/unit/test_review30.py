"""review30's findings on numbers and times, through the real CLI and API: an absurd
``--workers`` (F2), a non-finite or negative timeout (F6), a damaged time in a job's
``status.json`` (F5), a negative ``list --limit`` (F9)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from qshpc import Configuration, LocalClient, QiskitPattern
from qshpc.errors import UserError
from qshpc.launch import workers
from tests.conftest import run_cli

OK = """
from qshpc import distribute_task, get, save_result

@distribute_task()
def double(x):
    return 2 * x

save_result({"v": get([double(i) for i in range(2)])})
"""


def _program(tmp_path: Path) -> Path:
    path = tmp_path / "ok.py"
    path.write_text(OK)
    return path


def _refused(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit 2, one line naming each of ``needles``, no traceback."""
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
    for needle in needles:
        assert needle in out.stderr, out.stderr


def _no_job(home: Path) -> None:
    jobs = home / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir()), "a refused run must leave no job"


# -- F2: --workers far past the machine --------------------------------------------------


@pytest.mark.parametrize("asked", ["99999999999999999", "100000", "LIMIT+1"])
def test_run_refuses_more_workers_than_the_machine_should_start(
    tmp_path: Path, qshpc_home: Path, asked: str
) -> None:
    """``--workers 99999999999999999`` was accepted: mpiexec grew to 9 GB allocating."""
    n = str(workers.limit() + 1) if asked == "LIMIT+1" else asked
    out = run_cli("run", str(_program(tmp_path)), "--workers", n, timeout=60)
    fix = "QSHPC_MAX_WORKERS" if int(n) <= 1 << 22 else "more processes than Linux can run"
    _refused(out, f"--workers {n}", f"--workers {workers.cores()} (one per core)", fix)
    _no_job(qshpc_home)


def test_qshpc_max_workers_is_the_consent_to_more(tmp_path: Path, qshpc_home: Path) -> None:
    program = str(_program(tmp_path))
    out = run_cli("run", program, "--workers", "2", env={"QSHPC_MAX_WORKERS": "1"})
    _refused(out, "--workers 2", "at most 1: QSHPC_MAX_WORKERS=1", "QSHPC_MAX_WORKERS=2")
    _no_job(qshpc_home)
    out = run_cli("run", program, "--workers", "2", env={"QSHPC_MAX_WORKERS": "nan"})
    _refused(out, "QSHPC_MAX_WORKERS='nan'", "a whole number from 1 to 4194304")
    out = run_cli("run", program, "--workers", "2", env={"QSHPC_MAX_WORKERS": "2"})
    assert out.returncode == 0, out.stderr


def test_local_client_refuses_too_many_workers(tmp_path: Path, qshpc_home: Path) -> None:
    n = workers.limit() + 1
    with pytest.raises(UserError, match=rf"LocalClient\(workers={n}\).*QSHPC_MAX_WORKERS={n}"):
        LocalClient(workers=n)
    program = QiskitPattern(title="ok", entrypoint="ok.py", working_dir=str(tmp_path))
    _program(tmp_path)
    with pytest.raises(UserError, match=rf"Configuration\(workers={n}\)"):
        LocalClient(workers=1).run(program, config=Configuration(workers=n))
    _no_job(qshpc_home)


# -- F6: a timeout that never runs out -------------------------------------------------


@pytest.fixture
def job(tmp_path: Path, qshpc_home: Path) -> Path:
    """A job that ended (run in one process)."""
    out = run_cli("run", str(_program(tmp_path)), "--workers", "0")
    assert out.returncode == 0, out.stderr
    (folder,) = (qshpc_home / "jobs").iterdir()
    return folder


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "-inf"])
@pytest.mark.parametrize(
    ("command", "option"), [("wait", "--timeout"), ("result", "--wait"), ("cancel", "--grace")]
)
def test_a_timeout_that_never_runs_out_is_refused(
    job: Path, command: str, option: str, value: str
) -> None:
    """``qshpc wait J --timeout nan`` (and ``result --wait nan``) waited for good."""
    out = run_cli(command, str(job), option, value, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and option in out.stderr, out.stderr


def test_a_timeout_of_the_api_that_never_runs_out_is_refused(job: Path) -> None:
    import numpy as np

    from qshpc import open_job

    handle = open_job(job)
    for bad in (float("nan"), float("inf"), -1, "5"):
        with pytest.raises(UserError, match=r"timeout=.* is not a number of seconds"):
            handle.wait(bad)  # type: ignore[arg-type]
        with pytest.raises(UserError, match=r"timeout=.* is not a number of seconds"):
            handle.result(timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"wait=nan is not a number of seconds"):
        handle.result(float("nan"))
    with pytest.raises(UserError, match=r"grace=-1 is not a number of seconds"):
        handle.kill_if_stuck(-1)
    with pytest.raises(UserError, match=r"timeout=nan is not a number of seconds"):
        handle.watch(timeout=float("nan"))
    assert handle.wait(np.float64(0.0)) == handle.wait(0) == "SUCCEEDED"
    assert handle.result(timeout=np.int64(5)) == {"v": [0, 2]}


# -- F5: a damaged time in a job's status.json ------------------------------------------

NAP = """
import time
from qshpc import update_status

update_status("napping")
print("napping", flush=True)
time.sleep(300)
"""


@pytest.fixture
def killed(tmp_path: Path, qshpc_home: Path) -> Path:
    """A job whose process was killed (SIGKILL) while it ran: its state is reconciled, and
    its ``status.json`` (``mark_terminal``'s record) read."""
    import os
    import signal
    import sys

    from tests.conftest import job_dir_of, start_cli

    program = tmp_path / "nap.py"
    program.write_text(NAP)
    proc = start_cli(
        [sys.executable, "-m", "qshpc", "run", str(program), "--workers", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "napping"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return job_dir_of(qshpc_home)


@pytest.mark.parametrize("time_text", ["1e12", "-1e12", "1e17", "1e300", "1e400", '"x"'])
def test_a_damaged_time_in_status_json_is_shown_unknown(killed: Path, time_text: str) -> None:
    """``qshpc status`` ended in a traceback (``year 33658 is out of range``, ``timestamp out
    of range``), ``qshpc wait`` too for 1e400 (JSON's infinity)."""
    (killed / "status.json").write_text(f'{{"state": "CANCELED", "time": {time_text}}}')
    for args in (["status"], ["wait", "--timeout", "10"], ["status", "--json"], ["report"]):
        out = run_cli(*args[:1], str(killed), *args[1:], timeout=60)
        assert "Traceback" not in out.stderr and "Error" not in out.stderr, (args, out.stderr)
        assert out.returncode == (0 if args[0] in ("status", "report") else 1), out.stderr
        if args == ["status"]:
            assert out.stdout.startswith("CANCELED"), out.stdout
            finished = out.stdout.split("finished", 1)[1].split()[0]
            assert finished == ("-" if time_text in ("1e400", '"x"') else "?"), out.stdout
    out = run_cli("list")
    assert out.returncode == 0 and killed.name in out.stdout, out.stderr


def test_a_damaged_time_of_a_lock_holder_is_shown_unknown() -> None:
    """A holder's ``since`` reaches the same views (a job that never started: its end)."""
    from qshpc.store.lock import Holder

    for since in (1e17, float("inf"), float("nan")):
        assert Holder(host="h", pid=1, since=since).describe() == "host h, pid 1, since ?"


# -- F9: a negative list --limit ---------------------------------------------------------


@pytest.mark.parametrize("command", [["list"], ["cache", "ls"]])
def test_a_negative_limit_is_refused_alike(command: list[str]) -> None:
    """``qshpc list --limit -1`` printed an empty table, exit 0; ``cache ls`` refused it."""
    _refused(run_cli(*command, "--limit", "-1"), "--limit -1", "0 or more")
    assert run_cli(*command, "--limit", "0").returncode == 0
