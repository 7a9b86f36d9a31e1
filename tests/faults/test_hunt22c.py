"""Session 22's fault hunt (hunt22c): hunt21b's leftovers (FIFOs among the files qshpc
reads or writes in a store, a job folder made read-only while the job runs).

Each test failed on e5f893c (what it did there is said in the test); see
docs/bad-input.md, "Session 22, hunt22c".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setuid)")

#: Another user (nobody) who may read any file (the interpreter's are root's alone,
#: under /root) but whose writes are checked: a chmod a-w then holds for it.
AS_NOBODY = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=+dac_read_search",
    "--ambient-caps=+dac_read_search",
]


def _env(home: Path, **more: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "QSHPC_HOME": str(home), **more}


def _cli(
    *args: str, env: dict[str, str], user: list[str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*(user or []), sys.executable, "-m", "qshpc", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder another user can reach (pytest's own are root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="qshpc-hunt22c-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        for sub in path.rglob("*"):  # what the test made read-only
            if sub.is_dir() and not sub.is_symlink():
                os.chmod(sub, 0o755)
        shutil.rmtree(path, ignore_errors=True)


@needs_root
def test_a_job_folder_made_read_only_while_the_job_runs_ends_with_a_line_and_exit_1(
    open_dir: Path,
) -> None:
    # On e5f893c the run ended "qshpc: error: cannot finalize .../job.h5: Permission
    # denied. Free space on its file system ... or make it writable", without its
    # SUCCEEDED line, and exit 0 (the state and result were in the journal).
    home = open_dir / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    prog = open_dir / "p.py"
    prog.write_text(
        "import os\nfrom pathlib import Path\n"
        "from qshpc import distribute_task, get, save_result\n"
        "@distribute_task()\ndef f(x):\n    return 2 * x\n"
        "save_result({'v': sum(get([f(i) for i in range(4)]))})\n"
        "(job,) = Path(os.environ['QSHPC_HOME'], 'jobs').iterdir()\n"
        "os.chmod(job, 0o500)  # the owner's own chmod a-w, while the job runs\n"
    )
    env = _env(home)
    out = _cli("run", str(prog), "--workers", "1", env=env, user=AS_NOBODY)
    (job,) = (home / "jobs").iterdir()
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr[-3000:])
    assert f"qshpc: job {job.name} SUCCEEDED (4 tasks run)" in out.stdout
    assert out.stderr.strip().splitlines()[-1] == (
        f"qshpc: error: job {job.name}'s store {job}/job.h5 could not be completed "
        f"(Permission denied): its final state and result are kept whole in "
        f"{job}/job.journal, which qshpc reads (`qshpc status {job.name}`, `qshpc result "
        f"{job.name}` work); give yourself back write permission there (chmod -R u+rw "
        f"{job}), then `qshpc status {job.name}` completes job.h5"
    )
    got = _cli("result", job.name, env=env, user=AS_NOBODY)
    assert (got.returncode, got.stdout.strip()) == (0, "{'v': 12}"), got.stderr
    os.chmod(job, 0o700)
    status = _cli("status", job.name, env=env, user=AS_NOBODY)
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("SUCCEEDED")
    assert not (job / "job.journal").exists()  # folded into job.h5 by that status
