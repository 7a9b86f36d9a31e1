"""Shared helpers: run qshpc as users do (a subprocess, with a deadlock guard)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests import early_jobs

if TYPE_CHECKING:
    from qshpc.client.job import Job

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = Path(__file__).resolve().parent / "programs"


def mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else "mpiexec"


@pytest.fixture(autouse=True)
def qshpc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own QSHPC_HOME."""
    home = tmp_path / "qshpc-home"
    monkeypatch.setenv("QSHPC_HOME", str(home))
    yield home


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        early_jobs.start_launches(session.items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    early_jobs.close_all()


@pytest.fixture
def early_job(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[early_jobs.Early]:
    """This test's ``@pytest.mark.early(launch=f)``: ``.outcome()`` (tests/early_jobs.py)."""
    yield from early_jobs.job_of(request, monkeypatch)


@pytest.fixture
def no_early_jobs() -> None:
    """Every early launch of the session has ended (for a test that kills a node)."""
    early_jobs.wait_all()


def run_cli(
    *args: str,
    ranks: int | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``qshpc ARGS`` (under ``mpiexec -n RANKS`` when given); never hangs past ``timeout``."""
    cmd = [sys.executable, "-m", "qshpc", *args]
    if ranks is not None:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


#: The end of a test program whose run must FAIL (after all it did, its result saved) when
#: its environment has ``FAIL_AT_END``: a job to resume (a resume of a SUCCEEDED job is
#: refused since session 25, fix35a).
FAIL_AT_END = (
    '\nimport os as _os\nif _os.environ.get("FAIL_AT_END"):\n'
    '    raise SystemExit("this run fails at its end, as asked")\n'
)
FAIL = {"FAIL_AT_END": "1"}


def job_dir_of(home: Path) -> Path:
    """The one job directory under ``home`` (tests run one job each unless told)."""
    jobs = sorted((home / "jobs").iterdir(), key=lambda d: (d.stat().st_ctime_ns, d.name))
    assert jobs, "no job directory was created"
    return jobs[-1]


def run_program(
    home: Path,
    program: Path,
    source: str,
    *args: str,
    ranks: int | None = None,
    timeout: float = 100,
) -> Job:
    """Write ``source`` to ``program``, ``qshpc run`` it (with ``args``; under ``mpiexec -n
    RANKS`` when given), which must succeed, and open the job it made under ``home``."""
    from qshpc import open_job

    program.write_text(source)
    out = run_cli("run", str(program), *args, ranks=ranks, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return open_job(job_dir_of(home))


def one_task_fails(
    home: Path, folder: Path, name: str, task: str, ranks: int | None = None
) -> tuple[Job, str]:
    """Run a program whose task ``name`` (``task``: its source, imports and
    ``@distribute_task()`` included) fails alone beside three others: their results
    must be there; the job, and the first line of the TaskError ``get`` raised for it."""
    source = f"""\
from qshpc import distribute_task, get, save_result, TaskError

{task}

@distribute_task()
def fine(i):
    return i

ref = {name}()
out = [get(fine(i)) for i in range(3)]
try:
    get(ref)
except TaskError as exc:
    out.append(str(exc).splitlines()[0])
save_result(out)
"""
    job = run_program(home, folder / f"{name}_fails.py", source, ranks=ranks)
    res = job.result()
    assert res[:3] == [0, 1, 2], res
    return job, str(res[3])


def start_cli(
    cmd: list[str], env: dict[str, str] | None = None, **kwargs: Any
) -> subprocess.Popen[Any]:
    """Start ``cmd`` (``qshpc run`` ...) as a terminal's job: a process group of its own (a
    test signals the group as a terminal does), no progress lines, ``env`` over this
    process's environment; ``kwargs`` go to Popen (pipes, text). The caller waits with a
    timeout (deadlock guard)."""
    full = {**os.environ, "QSHPC_PROGRESS_S": "0", **(env or {})}
    return subprocess.Popen(cmd, env=full, start_new_session=True, **kwargs)


def ignore_sighup() -> None:
    """A ``preexec_fn``: the command starts as under ``nohup`` (SIGHUP ignored)."""
    import signal

    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def wait_succeeded(
    home: Path, proc: subprocess.Popen[Any], tasks: int, timeout: float = 90
) -> None:
    """Wait until the job under ``home`` has ``tasks`` SUCCEEDED tasks (``timeout`` s at
    most: then the caller's checks say what is missing), its command ``proc`` still
    running meanwhile."""
    import time

    from qshpc.store import JobReader

    def succeeded() -> int:
        try:
            with JobReader.open(job_dir_of(home)) as r:
                return int((r.meta().get("task_counts") or {}).get("SUCCEEDED", 0))
        except Exception:  # not created or not readable yet
            return 0

    deadline = time.monotonic() + timeout
    while succeeded() < tasks and time.monotonic() < deadline:
        assert proc.poll() is None
        time.sleep(0.1)


def kill_recorded(pids: Path) -> None:
    """SIGKILL each process a test's program recorded as a file named by its pid in ``pids``
    (children it left on purpose); those gone already are passed over."""
    import signal

    for pid in pids.iterdir():
        try:
            os.kill(int(pid.name), signal.SIGKILL)
        except ProcessLookupError:
            pass


def job_status(job: Path) -> dict[str, Any]:
    """``qshpc status JOB --json``, which must succeed."""
    out = run_cli("status", str(job), "--json")
    assert out.returncode == 0, out.stderr
    status: dict[str, Any] = json.loads(out.stdout)
    return status


@contextmanager
def tmpfs(mnt: Path, options: str) -> Iterator[Path]:
    """A small tmpfs mounted at ``mnt`` (made if missing) with ``options`` (``size=2m``,
    ``nr_inodes=64``): a real full disk. The test is skipped where none can be mounted
    (not root, no CAP_SYS_ADMIN); unmounted (lazily) after."""
    mnt.mkdir(parents=True, exist_ok=True)
    try:
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
        )
    except OSError as exc:  # no mount command
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)
