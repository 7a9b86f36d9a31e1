"""review30 F4: a command whose output has no room left says so in one line, without a traceback.

On 6e1dc61 every read command (``result``, ``status``, ``list``, ``logs``, ``wait``,
``cache ls``, ``cache stats``) with stdout on a full disk ended in a Python traceback
(``OSError: [Errno 28]``), and ``qshpc status nosuchjob 2>/dev/full`` exited 1, not the
2 of bad input. /dev/full is only ever a redirect target here (opened to append, as
``>>`` does); the full file system is a tmpfs of the test's own, mounted when the test
runs as root.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import tmpfs

DEV_FULL = Path("/dev/full")


def _dev_full_ok() -> bool:
    try:
        st = DEV_FULL.stat()
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 7)


needs_dev_full = pytest.mark.skipif(not _dev_full_ok(), reason="no /dev/full here")


def _stored_job() -> str:
    from qshpc.jobs.paths import jobs_root
    from qshpc.store import JobWriter, create_job

    job = jobs_root() / "20260101-000000-abcdef"
    create_job(job, {"id": job.name, "title": "t", "created": 1.0}, {})
    w = JobWriter.open(job, {"mpi_size": 1, "ranks": [], "started": 2.0})
    w.save_result({"counts": {"00": 3, "11": 5}})
    w.finalize("SUCCEEDED")
    return job.name


def _qshpc(*args: str, stdout: object = None, stderr: object = None) -> tuple[int, str]:
    """Run ``qshpc ARGS``; its exit code and what it wrote on stderr (when captured)."""
    res = subprocess.run(
        [sys.executable, "-m", "qshpc", *args],
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=stderr if stderr is not None else subprocess.PIPE,
        timeout=120,
    )
    return res.returncode, (res.stderr or b"").decode()


def _commands(job: str) -> list[list[str]]:
    return [
        ["result", job],
        ["result", job, "--json"],
        ["status", job, "--json"],
        ["list"],
        ["logs", job],
        ["wait", job],
        ["cache", "ls"],
        ["cache", "stats"],
    ]


def _one_clear_line(rc: int, err: str, where: str) -> None:
    assert rc == 1, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("qshpc: error:")]
    assert len(lines) == 1, err
    assert f"cannot write the output (stdout, {where}): No space left on device" in lines[0]
    assert "send the output elsewhere" in lines[0]


@needs_dev_full
def test_every_read_command_on_a_full_stdout_says_so_in_one_line(qshpc_home: Path) -> None:
    job = _stored_job()
    with DEV_FULL.open("ab") as full:
        for args in _commands(job):
            rc, err = _qshpc(*args, stdout=full)
            _one_clear_line(rc, err, str(DEV_FULL))


@needs_dev_full
def test_a_full_stderr_keeps_each_command_s_exit_code(qshpc_home: Path) -> None:
    job = _stored_job()
    with DEV_FULL.open("ab") as full:
        for args in _commands(job):  # a progress line of wait's, too
            assert _qshpc(*args, stderr=full)[0] == 0, args
        for args in (["status", "nosuchjob"], ["wait", "nosuchjob"], ["result", "nosuchjob"]):
            assert _qshpc(*args, stderr=full)[0] == 2, args  # bad input, said or not


@pytest.fixture
def full_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs of the test's own, filled to its last block."""
    with tmpfs(tmp_path / "mnt", "size=64k") as mnt:
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"x" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        yield mnt


def test_output_into_a_file_on_a_full_file_system(qshpc_home: Path, full_tmpfs: Path) -> None:
    """The realistic case: ``qshpc result J --json > res.json`` in a batch script."""
    job = _stored_job()
    out = full_tmpfs / "res.json"
    with out.open("wb") as fh:
        rc, err = _qshpc("result", job, "--json", stdout=fh)
    _one_clear_line(rc, err, str(out))
