"""Bugs found by hunt19 outside the cache, fixed in session 19 (mend19).

Rows of docs/bad-input.md marked ``mend19::NAME``. Each failed on 793198c.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qshpc.cli import jobs as cli_jobs
from qshpc.client.job import open_job
from qshpc.text import shown_lines
from tests.faults.test_bad_input import finished_job

LIMIT = 1000 << 20  # address space of the `qshpc logs` child: the log is bigger


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


def test_logs_of_a_log_bigger_than_memory_stream(tmp_path: Path, qshpc_home: Path) -> None:
    job = finished_job(tmp_path, qshpc_home)
    log = job / "logs" / "rank-0.out"
    log.write_bytes(b"first line\n")
    with open(log, "r+b") as fh:  # sparse: no disk, no memory
        fh.truncate(LIMIT + (200 << 20))
    with open(log, "ab") as fh:
        fh.write(b"last line\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qshpc", "logs", str(job), "--raw"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_limit,
    )
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(64)
    size, tail = len(head), b""
    while data := proc.stdout.read(1 << 20):
        size, tail = size + len(data), (tail + data)[-64:]
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err[-2000:]
    assert head.startswith(b"==> rank-0.out <==\nfirst line\n\x00")
    assert (
        tail.endswith(b"\x00last line\n\n")
        and size == len(b"==> rank-0.out <==\n") + log.stat().st_size + 1
    )


def _slurm_job(tmp_path: Path, home: Path) -> Path:
    job = finished_job(tmp_path, home)
    logs = job / "logs"
    rank0 = "out \xe9\u2603 line\nsame\nsame\r\nform\x0cfeed\n" * 3 + "no end"
    (logs / "rank-0.out").write_bytes(rank0.encode() + b" bad \xff\xfe\xe2\x98")
    (logs / "rank-1.out").write_text("one\n" * 5)
    (logs / "slurm-77_0.out").write_text(
        "submitit INFO - Starting\n" + rank0 + "\nsame\nqshpc: end\n"
    )
    (logs / "slurm-88_0.out").write_text("same\nsame\nsubmitit again\n")
    (logs / "slurm-77_1.out").write_text("one\n" * 7 + "one")
    return job


@pytest.mark.parametrize("rank", [None, 0, 1])
@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_logs_streamed_show_what_job_logs_shows(
    tmp_path: Path,
    qshpc_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    rank: int | None,
    chunk: int,
) -> None:
    job = open_job(str(_slurm_job(tmp_path, qshpc_home)))
    monkeypatch.setattr(cli_jobs, "_CHUNK", chunk)
    for show in (str, shown_lines):
        cli_jobs._print_logs(job, rank, show)
        assert capsys.readouterr().out == show(job.logs(rank)) + "\n"


class _Growing:
    """A job whose rank log grows between looks, RUNNING for ``looks`` looks."""

    def __init__(self, job: Any, looks: int) -> None:
        self.job, self.looks = job, looks
        self.log = Path(job.job_dir) / "logs" / "rank-0.out"

    def status(self) -> str:
        self.looks -= 1
        if self.looks >= 0:
            with open(self.log, "ab") as fh:
                line = f"look {self.looks} \u2603\n".encode()
                fh.write(line[:-3] if self.looks in (0, 2) else line)  # cut inside the ☃
        return "RUNNING" if self.looks > 0 else "SUCCEEDED"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.job, name)


@pytest.mark.parametrize("rank", [None, 0])
def test_follow_reads_each_log_from_where_it_stopped(
    tmp_path: Path,
    qshpc_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    rank: int | None,
) -> None:
    job = open_job(str(_slurm_job(tmp_path, qshpc_home)))
    starts: list[tuple[str, int]] = []
    chunks = cli_jobs._chunks

    def counted(path: Path, start: int = 0) -> Iterator[bytes]:
        starts.append((path.name, start))
        return chunks(path, start)

    monkeypatch.setattr(cli_jobs, "_chunks", counted)
    monkeypatch.setattr(cli_jobs.time, "sleep", lambda s: None)
    cli_jobs._follow_logs(_Growing(job, 4), rank, str)
    # what `qshpc logs` shows once the job ended (the Slurm files, held back to the end,
    # without their rank's lines; the log's last bytes that are not whole UTF-8 too)
    out = capsys.readouterr().out
    assert out.count("look ") == 4 and "look 0 \\xe2" in out
    assert out.count("submitit again") == 1 and out.count("out \xe9\u2603 line") == 3
    if rank is None:  # rank-0.out grew after rank-1.out was shown: as `tail -f` shows it
        assert out.count("\n==> rank-0.out <==\n") == 1 and out.count("==> rank-1.out") == 1, out
    else:
        assert out == job.logs(rank)
    looks = [s for n, s in starts if n == "rank-0.out"][:-1]  # the last: counting its lines
    assert looks == sorted(set(looks)) and len(looks) == 4, looks  # never from 0 again


NOSUCH = "~nosuchuser19/x"


def _one_line_exit_2(out: subprocess.CompletedProcess[str]) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr and "RuntimeError" not in out.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["submit", f"{NOSUCH}/ok.py", "--dry-run"],
        ["submit", "ok.py", "--working-dir", NOSUCH, "--dry-run"],
        ["submit", "ok.py", "--cache-dir", NOSUCH, "--dry-run"],
        ["submit", "ok.py", "--cache", "--cache-dir", NOSUCH, "--dry-run"],
    ],
)
def test_a_path_in_an_unknown_users_home_is_one_line_for_submit(
    tmp_path: Path, qshpc_home: Path, args: list[str]
) -> None:
    from tests.conftest import run_cli

    (tmp_path / "ok.py").write_text("print(1)\n")
    line = _one_line_exit_2(run_cli(*args, cwd=tmp_path))
    assert "~nosuchuser19" in line and "a user that does not exist here" in line, line
    assert "write the folder out in full" in line, line


@pytest.mark.parametrize("where", ["working_dir", "cache_dir"])
def test_a_program_in_an_unknown_users_home_is_a_user_error(
    tmp_path: Path, qshpc_home: Path, where: str
) -> None:
    from qshpc import Program
    from qshpc.errors import UserError
    from qshpc.jobs.prepare import RunSpec

    (tmp_path / "ok.py").write_text("print(1)\n")
    kw = {"working_dir": str(tmp_path), where: NOSUCH}
    prog = Program(title="t", entrypoint="ok.py", **kw)
    with pytest.raises(UserError, match=r"nosuchuser19.*a user that does not exist here"):
        prog.cache_meta() if where == "cache_dir" else prog.path()
    with pytest.raises(UserError, match=r"nosuchuser19.*a user that does not exist here"):
        RunSpec(program=tmp_path / "ok.py", cache_dir=Path(NOSUCH)).cache_meta()


def test_resume_beside_a_folder_named_with_a_superscript_digit_is_one_line(
    tmp_path: Path, qshpc_home: Path
) -> None:
    import shutil

    from tests.conftest import run_cli

    job = finished_job(tmp_path, qshpc_home)
    shutil.copytree(job, job.parent / "arr19-1")
    for name in ("arr19-²", "arr19-①", "arr19-٣"):  # isdigit() is true of each
        (job.parent / name).mkdir()
    line = _one_line_exit_2(run_cli("submit", "--resume", "arr19", "--dry-run"))
    assert "is a job array of 1 element(s) (arr19-1)" in line, line


def test_slurm_files_too_big_to_sift_are_shown_whole_with_a_note(
    tmp_path: Path,
    qshpc_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = open_job(str(_slurm_job(tmp_path, qshpc_home)))
    monkeypatch.setattr(cli_jobs, "_DEDUP_MAX", 60)  # rank 0's Slurm files: 200 bytes
    cli_jobs._print_logs(job, None, str)
    got = capsys.readouterr()
    assert got.out.count("out \xe9\u2603 line") == 6 and got.out.count("\none\n") >= 5
    assert got.err == (
        "qshpc: slurm-77_0.out, slurm-88_0.out shown whole (over 0 MiB): "
        "lines rank-0.out holds too are not left out\n"
    )
