"""A full disk ends the job FAILED, within seconds, keeping what was committed (issue 17).

Real full disks: a small tmpfs mounted for each test (root only), unmounted
after. On the main of 2026-12-01, ``--workers 2`` hung forever (rank 0 in
``get``, the workers in MPI_Finalize), ``--workers 0`` exited 2 and left the
job RUNNING, and ``qshpc status`` then printed an ENOSPC traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import job_dir_of, run_cli, tmpfs
from tests.faults.test_bad_input import no_internals

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

FILL = """
import os, sys
import numpy as np
from qshpc import distribute_task, get, save_result

@distribute_task()
def f(i):
    return np.random.default_rng(i).random(20_000)  # 160 kB each, incompressible

n = int(os.environ.get("TASKS", "60"))
out = [get(f(i)) for i in range(8)]          # these are committed one by one
out += get([f(i) for i in range(8, n)])      # these fill the disk
save_result(float(sum(a.sum() for a in out)))
"""

CHATTY = """
import sys
from qshpc import save_result
line = "x" * 1000
for i in range(6000):                       # 6 MB of output into a 3 MB disk
    print(line)
save_result(1)
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs at ``tmp_path/disk``."""
    with tmpfs(tmp_path / "disk", "size=3m") as mnt:
        yield mnt


def grow(mnt: Path, size: str = "40m") -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mnt)], check=True)


def assert_clean_status(job: Path, home: Path) -> dict[str, object]:
    out = run_cli("status", str(job), env={"QSHPC_HOME": str(home)})
    assert out.returncode == 0, out.stderr
    no_internals(out.stdout + out.stderr)  # the program's own frames only, no qshpc crash
    assert "OSError" not in out.stdout + out.stderr
    meta = json.loads(run_cli("status", str(job), "--json", env={"QSHPC_HOME": str(home)}).stdout)
    return meta


@pytest.mark.mpi
@pytest.mark.parametrize("workers", ["0", "1", "2"])
def test_full_disk_ends_the_job_failed(tmp_path: Path, small_disk: Path, workers: str) -> None:
    home = small_disk / "home"
    prog = tmp_path / "fill.py"
    prog.write_text(FILL)
    env = {"QSHPC_HOME": str(home), "QSHPC_PROGRESS_S": "0"}
    t0 = time.monotonic()
    out = run_cli("run", str(prog), "--workers", workers, env=env, timeout=120)
    took = time.monotonic() - t0
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "no space left on device" in out.stderr
    assert took < 90  # seconds here (a loaded 2-core VM), never a hang
    job = job_dir_of(home)
    meta = assert_clean_status(job, home)
    assert meta["state"] == "FAILED" and "no space left on device" in str(meta["error"])
    done = meta["task_counts"]["SUCCEEDED"]  # type: ignore[index]
    assert done >= 8  # the ones committed one by one before the disk filled
    from qshpc.store import JobReader

    with JobReader.open(job) as r:  # what was committed reads back
        import numpy as np

        for t in r.tasks():
            i = int(t["task_id"])
            np.testing.assert_array_equal(
                r.task_result(t["task_id"]), np.random.default_rng(i).random(20_000)
            )
    # room again: resume finishes with the results already stored
    grow(small_disk)
    again = run_cli("run", str(prog), "--resume", job.name, "--workers", workers, env=env)
    assert again.returncode == 0, again.stderr
    assert f"{done} reused from the store" in again.stdout


def test_full_disk_at_job_creation_leaves_nothing(tmp_path: Path, small_disk: Path) -> None:
    home = small_disk / "home"
    (small_disk / "filler").write_bytes(b"\0" * (3 * 2**20 - 8192))  # the disk is full already
    prog = tmp_path / "p.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    out = run_cli("run", str(prog), "--workers", "0", env={"QSHPC_HOME": str(home)})
    assert out.returncode == 2, out.stderr
    assert "no space left on device" in out.stderr and "Traceback" not in out.stderr
    jobs = home / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir())


def test_output_that_fills_the_disk_fails_the_job(tmp_path: Path, small_disk: Path) -> None:
    home = small_disk / "home"
    prog = tmp_path / "chatty.py"
    prog.write_text(CHATTY)
    env = {"QSHPC_HOME": str(home), "QSHPC_PROGRESS_S": "0"}
    out = run_cli("run", str(prog), "--workers", "0", env=env, timeout=120)
    assert out.returncode == 1, out.stderr[-2000:]
    meta = assert_clean_status(job_dir_of(home), home)
    assert meta["state"] == "FAILED" and "rank-0.out" in str(meta["error"])
    assert "no space left on device" in str(meta["error"])


def test_staging_copy_on_a_full_disk(tmp_path: Path, small_disk: Path) -> None:
    """``qshpc submit`` copies the working dir into the job: a full disk refuses it in one line."""
    from qshpc.errors import UserError
    from qshpc.submit.staging import stage

    src = tmp_path / "work"
    src.mkdir()
    (src / "prog.py").write_text("print(1)\n")
    (src / "data.bin").write_bytes(os.urandom(4 * 2**20))
    with pytest.raises(UserError, match="No space left on device"):
        stage(src, small_disk / "program")
