"""Session 23's fault hunt (hunt23b): full and read-only disks under a running job.

The faults are real: a small tmpfs (``size=``) for a full disk, and for a file
system that turns read-only under open files, an ext4 image on a loop device
mounted ``errors=remount-ro`` whose ``trigger_fs_error`` (sysfs) makes the kernel
remount it read-only, as it does on a real I/O error (a tmpfs or a bind mount
cannot be remounted read-only while a file on it is open for writing). Both need
root; the tests skip cleanly without it. Each test failed on db7f14c (what it did
there is said in the test); see docs/bad-input.md, "Session 23, hunt23b".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, job_dir_of, run_cli, tmpfs
from tests.faults.test_bad_input import no_internals

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mount)")

#: The program: 20 tasks, then it waits for ``go`` (the test turns the disk read-only
#: meanwhile), then saves its result (380).
WAITS = """
import os, sys, time
from qshpc import distribute_task, get, save_result

@distribute_task()
def f(i):
    return 2 * i

out = get([f(i) for i in range(20)])
ready, go = sys.argv[1], sys.argv[2]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.05)
save_result(sum(out))
"""

BIG_RESULT = """
import numpy as np
from qshpc import distribute_task, get, save_result

@distribute_task()
def f(i):
    return i

out = get([f(i) for i in range(10)])
save_result(np.random.default_rng(1).random(500_000))  # 4 MB: more than the disk has
"""


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A 32 MiB ext4 (loop device, ``errors=remount-ro``) and the call that makes the kernel
    turn it read-only, its open files included; unmounted after."""
    image, mnt = tmp_path / "ext4.img", tmp_path / "ext4"
    mnt.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(32 << 20)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make an ext4 image here: {made.stderr.strip()}")
    mounted = subprocess.run(
        ["mount", "-o", "loop,errors=remount-ro", str(image), str(mnt)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a loop device here: {mounted.stderr.strip()}")
    try:
        device = Path(subprocess.check_output(["findmnt", "-no", "SOURCE", str(mnt)], text=True))
        trigger = Path("/sys/fs/ext4") / device.name.strip() / "trigger_fs_error"
        if not trigger.exists():
            pytest.skip(f"no {trigger} (a kernel without ext4's error trigger)")

        def read_only() -> None:
            trigger.write_text("hunt23b: turn read-only\n")
            probe = mnt / "probe"
            with pytest.raises(OSError):  # it took effect
                probe.write_text("x")

        yield mnt, read_only
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)


def _run_until(
    tmp_path: Path, home: Path, workers: str, fault: Callable[[], None]
) -> subprocess.CompletedProcess[str]:
    """``qshpc run`` the waiting program from ``tmp_path/work``; ``fault`` once its tasks are
    done; the whole session killed past 120 s (never a hang)."""
    prog, work = tmp_path / "waits.py", tmp_path / "work"
    prog.write_text(WAITS)
    work.mkdir()
    ready, go = tmp_path / "ready", tmp_path / "go"
    argv = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", workers]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QSHPC_HOME": str(home), "QSHPC_PROGRESS_S": "0"}
    proc = subprocess.Popen(
        [*argv, "--", str(ready), str(go)], cwd=work, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists(), proc.communicate(timeout=30)
        fault()
        go.touch()
        out, err = proc.communicate(timeout=120)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _rescued(folder: Path, job: str, err: str) -> object:
    """The result kept in ``folder`` for ``job``, which the error names."""
    from qshpc.store import load_arguments

    path = folder / f"qshpc-result-{job}.h5"
    assert path.is_file(), (sorted(p.name for p in folder.iterdir()), err)
    assert f"kept instead in {path}" in err, err
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    return load_arguments(path)["result"]


@pytest.mark.mpi
@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_result_saved_after_the_job_folder_turned_read_only_is_kept_elsewhere(
    tmp_path: Path, ext4: tuple[Path, Callable[[], None]], workers: str
) -> None:
    # On db7f14c the result was lost: save_result raised `cannot write to JOB/job.journal:
    # Read-only file system ...` and nothing kept the value. With --workers 2 the launcher
    # then ended in an OSError traceback (status.json), with no line on the job's end.
    mnt, read_only = ext4
    home = mnt / "home"
    out = _run_until(tmp_path, home, workers, read_only)
    assert out.returncode != 0, out.stderr
    job = job_dir_of(home).name
    assert _rescued(tmp_path / "work", job, out.stderr) == 380
    # the program's own traceback, no frame of qshpc's, and one line on the job's end
    no_internals(out.stderr)
    assert "OSError" not in out.stderr and "[Errno" not in out.stderr, out.stderr
    if workers == "2":
        assert "cannot record the job's end in" in out.stderr, out.stderr
        assert f"qshpc: job {job} FAILED" in out.stderr, out.stderr


@pytest.mark.mpi
@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_result_the_full_disk_cannot_take_is_kept_elsewhere(tmp_path: Path, workers: str) -> None:
    # On db7f14c the 4 MB result was lost: the job ended FAILED (`no space left on device
    # ... (a commit)`) and the value was gone with the program.
    import numpy as np

    prog, work = tmp_path / "big.py", tmp_path / "work"
    prog.write_text(BIG_RESULT)
    work.mkdir()
    with tmpfs(tmp_path / "disk", "size=3m") as disk:
        home = disk / "home"
        env = {"QSHPC_HOME": str(home), "QSHPC_PROGRESS_S": "0", "PYTHONPATH": str(ROOT)}
        out = run_cli("run", str(prog), "--workers", workers, cwd=work, env=env)
        assert out.returncode == 1, out.stderr
        job = job_dir_of(home)
        value = _rescued(work, job.name, out.stderr)
        np.testing.assert_array_equal(value, np.random.default_rng(1).random(500_000))
        # the job's FAILED error says where the result went
        meta = json.loads(run_cli("status", str(job), "--json", env=env).stdout)
        assert meta["state"] == "FAILED"
        assert f"kept instead in {work}" in str(meta["error"]), meta["error"]
