"""Leftovers of session 19, mended in session 20 (mend20).

Rows of docs/bad-input.md marked ``mend20::NAME``. Each failed on af9879d.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from qshpc.cli import jobs as cli_jobs
from qshpc.client import logread as client_logread
from qshpc.client.job import Job, open_job
from tests.conftest import run_cli
from tests.faults.test_bad_input import finished_job
from tests.faults.test_mend19 import _Growing, _one_line_exit_2, _slurm_job

#: A sparse log (no disk, no memory) far bigger than any read whole in CPU_S seconds.
HUGE = 64 << 30
AS_LIMIT = 1000 << 20
CPU_S = 8


def _old_parts(job: Job, rank: int | None) -> list[tuple[Path, str]]:
    """Each log's text as ``Job.logs`` of af9879d showed it (each read whole)."""
    files = job._log_files(rank)
    texts = [(f, f.read_bytes().decode("utf-8", errors="backslashreplace")) for f in files]
    seen: dict[str, Counter[str]] = {}
    for f, text in texts:
        if f.name.startswith("rank-"):
            seen.setdefault(f.stem.partition("-")[2], Counter()).update(text.splitlines())
    parts = []
    for f, text in texts:
        if f.name.startswith("slurm-") and (held := seen.get(f.stem.rpartition("_")[2])):
            kept = []
            for line in text.splitlines(keepends=True):
                key = line.rstrip("\r\n")
                if held[key] > 0:
                    held[key] -= 1
                else:
                    kept.append(line)
            text = "".join(kept)
        parts.append((f, text))
    return parts


def _joined(parts: list[tuple[Path, str]], rank: int | None) -> str:
    """The texts as ``Job.logs`` joins them."""
    return "\n".join(t if rank is not None else f"==> {f.name} <==\n{t}" for f, t in parts)


def _old_logs(job: Job, rank: int | None) -> str:
    """``Job.logs`` as af9879d wrote it: what the stream must equal."""
    return _joined(_old_parts(job, rank), rank)


def _tail(text: str, n: int) -> str:
    """The last ``n`` lines of ``text`` as ``tail -n`` gives them (lines end at ``\\n``)."""
    lines = text.split("\n")
    if text.endswith("\n"):
        return "".join(line + "\n" for line in lines[:-1][-n:]) if n else ""
    return "\n".join(lines[-n:]) if n else ""


@pytest.mark.parametrize("rank", [None, 0, 1])
@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_job_logs_is_the_stream_joined(
    tmp_path: Path, qshpc_home: Path, monkeypatch: pytest.MonkeyPatch, rank: int | None, chunk: int
) -> None:
    job = open_job(str(_slurm_job(tmp_path, qshpc_home)))
    monkeypatch.setattr(client_logread, "LOG_CHUNK", chunk)
    want = _old_logs(job, rank)
    assert job.logs(rank) == want
    chunks = list(job.iter_logs(rank))
    assert "".join(chunks) == want
    assert chunk > 3 or len(chunks) > 6  # read a chunk at a time, not whole


@pytest.mark.parametrize("rank", [None, 0, 1])
@pytest.mark.parametrize("n", [0, 1, 2, 5, 1000])
def test_tail_is_the_last_lines_of_each_log_shown(
    tmp_path: Path, qshpc_home: Path, rank: int | None, n: int
) -> None:
    job = open_job(str(_slurm_job(tmp_path, qshpc_home)))
    want = _joined([(f, _tail(t, n)) for f, t in _old_parts(job, rank)], rank)
    assert job.logs(rank, tail=n) == want
    assert "".join(job.iter_logs(rank, tail=n)) == want


def test_tail_of_a_rank_log_is_what_tail_n_prints(tmp_path: Path, qshpc_home: Path) -> None:
    job = _slurm_job(tmp_path, qshpc_home)
    for slurm in (job / "logs").glob("slurm-*"):
        slurm.unlink()  # the rank's log alone: as `tail` shows it
    log = job / "logs" / "rank-0.out"
    for n in (0, 1, 2, 3, 7, 100):
        want = subprocess.run(["tail", "-n", str(n), str(log)], capture_output=True).stdout
        cmd = [
            sys.executable,
            "-m",
            "qshpc",
            "logs",
            str(job),
            "-r",
            "0",
            "--tail",
            str(n),
            "--raw",
        ]
        out = subprocess.run(cmd, capture_output=True, timeout=60)
        assert out.returncode == 0, out.stderr
        want_text = want.decode("utf-8", errors="backslashreplace").encode()
        assert out.stdout == want_text + b"\n", (n, out.stdout, want)


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "", "+3", "\u00b2", "1e3", " 2"])
def test_a_tail_that_is_not_a_count_of_lines_is_one_line(
    tmp_path: Path, qshpc_home: Path, bad: str
) -> None:
    job = finished_job(tmp_path, qshpc_home)
    out = run_cli("logs", str(job), "--tail", bad)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "--tail" in lines[0] and "whole number of lines" in lines[0], lines
    assert out.stdout == ""


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None.__class__])
def test_iter_logs_refuses_a_tail_that_is_not_a_count(
    tmp_path: Path, qshpc_home: Path, bad: object
) -> None:
    from qshpc.errors import UserError

    job = open_job(str(finished_job(tmp_path, qshpc_home)))
    with pytest.raises(UserError, match="tail must be a whole number of lines"):
        job.iter_logs(tail=bad)  # type: ignore[arg-type]  # refused at the call, not later
    with pytest.raises(UserError, match="tail must be a whole number of lines"):
        job.logs(tail=bad)  # type: ignore[arg-type]


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_S, CPU_S))


def test_tail_of_a_huge_log_reads_from_its_end(tmp_path: Path, qshpc_home: Path) -> None:
    job = finished_job(tmp_path, qshpc_home)
    log = job / "logs" / "rank-0.out"
    log.write_bytes(b"first line\n")
    with open(log, "r+b") as fh:  # sparse: no disk, no memory; read whole: minutes of CPU
        fh.truncate(HUGE)
    with open(log, "ab") as fh:
        fh.write(b"\nnext to last\nlast line\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qshpc", "logs", str(job), "--tail", "2", "--raw"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_limits,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read(1 << 20)  # never more: a reader printing the log whole is stopped
    if len(out) == 1 << 20:
        proc.kill()
    err = proc.stderr.read(1 << 20).decode(errors="replace")
    assert proc.wait(timeout=120) == 0, err[-2000:]
    assert out == b"==> rank-0.out <==\nnext to last\nlast line\n\n"


def test_follow_with_tail_starts_at_the_last_lines(
    tmp_path: Path,
    qshpc_home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = open_job(str(_slurm_job(tmp_path, qshpc_home)))
    monkeypatch.setattr(cli_jobs.time, "sleep", lambda s: None)
    cli_jobs._follow_logs(_Growing(job, 4), 0, str, tail=1)
    out = capsys.readouterr().out
    assert out.count("look ") == 4 and "look 0 \\xe2" in out, out
    assert "out \xe9\u2603 line" not in out and out.startswith("no end bad \\xff\\xfe"), out
    # the Slurm files at the end: the last line of each
    assert out.endswith("look 0 \\xe2\nqshpc: end\n\nsubmitit again\n"), out


NOSUCH = "~nosuchuser20/x"


@pytest.mark.parametrize("workers", [["--workers", "0"], ["-w0"]])  # -w0: typer reads it
def test_a_job_dir_in_the_home_folder_is_expanded(
    tmp_path: Path, qshpc_home: Path, workers: list[str]
) -> None:
    (tmp_path / "ok.py").write_text("print('hello')\n")
    home = tmp_path / "home"
    home.mkdir()
    out = run_cli(
        "run", "ok.py", *workers, "--job-dir", "~/j20", cwd=tmp_path, env={"HOME": str(home)}
    )
    assert out.returncode == 0, out.stderr
    assert (home / "j20" / "job.h5").is_file(), out.stderr
    assert not (tmp_path / "~").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["run", "ok.py", "--workers", "0", "--job-dir", NOSUCH],
        ["run", "ok.py", "-w0", "--job-dir", NOSUCH],
        ["run", "ok.py", "--workers", "0", "--resume", NOSUCH],
        ["logs", NOSUCH],
        ["status", NOSUCH],
    ],
)
def test_a_job_dir_in_an_unknown_users_home_is_one_line(
    tmp_path: Path, qshpc_home: Path, args: list[str]
) -> None:
    (tmp_path / "ok.py").write_text("print(1)\n")
    line = _one_line_exit_2(run_cli(*args, cwd=tmp_path))
    assert "~nosuchuser20" in line and "a user that does not exist here" in line, line
    assert not (tmp_path / "~nosuchuser20").exists()


@pytest.mark.parametrize("rank", [0, 1])
def test_iter_logs_follow_of_an_ended_job_is_its_logs(
    tmp_path: Path, qshpc_home: Path, rank: int
) -> None:
    job = open_job(str(_slurm_job(tmp_path, qshpc_home)))
    assert "".join(job.iter_logs(rank, follow=True)) == _old_logs(job, rank)
    want = _joined([(f, _tail(t, 1)) for f, t in _old_parts(job, rank)], rank)
    assert "".join(job.iter_logs(rank, follow=True, tail=1)) == want


def test_a_client_s_job_dir_and_working_dir_in_the_home_folder_are_expanded(
    tmp_path: Path, qshpc_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``LocalClient.run(job_dir='~/x')`` made ``./~/x``; ``Program(working_dir='~/p')``
    failed with a FileNotFoundError traceback (the launcher's cwd was not expanded)."""
    from qshpc import LocalClient, Program

    home = tmp_path / "home"
    (home / "p").mkdir(parents=True)
    (home / "p" / "ok.py").write_text("from qshpc import save_result\nsave_result({'ok': 1})\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    program = Program(title="ok", entrypoint="ok.py", working_dir="~/p")
    job = LocalClient(workers=0).run(program, job_dir="~/j20")
    assert job.result() == {"ok": 1}
    assert (home / "j20" / "job.h5").is_file()
    assert not (tmp_path / "~").exists()


@pytest.mark.parametrize("where", ["job_dir", "working_dir"])
def test_a_client_s_folder_in_an_unknown_users_home_is_a_user_error(
    tmp_path: Path, qshpc_home: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    from qshpc import LocalClient, Program
    from qshpc.errors import UserError

    (tmp_path / "ok.py").write_text("print(1)\n")
    monkeypatch.chdir(tmp_path)
    wd = NOSUCH if where == "working_dir" else str(tmp_path)
    program = Program(title="ok", entrypoint="ok.py", working_dir=wd)
    job_dir = NOSUCH if where == "job_dir" else None
    with pytest.raises(UserError, match="a user that does not exist here"):
        LocalClient(workers=0).run(program, job_dir=job_dir)
    assert not (tmp_path / "~nosuchuser20").exists()
