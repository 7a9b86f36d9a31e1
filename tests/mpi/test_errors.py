"""Every user error: a clear message on stderr, exit code 2 (or 1 for a FAILED job), no qshpc traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, job_dir_of, run_cli

pytestmark = pytest.mark.mpi


def _no_internal_traceback(text: str) -> None:
    assert "qshpc/cli" not in text and "typer" not in text, text


def test_missing_program(tmp_path: Path) -> None:
    out = run_cli("run", str(tmp_path / "nope.py"), "--workers", "0")
    assert out.returncode == 2
    assert "does not exist" in out.stderr and "nope.py" in out.stderr
    _no_internal_traceback(out.stderr)


def test_missing_program_under_mpiexec(tmp_path: Path) -> None:
    out = run_cli("run", str(tmp_path / "nope.py"), ranks=2, timeout=60)
    assert out.returncode != 0
    assert "does not exist" in out.stderr
    _no_internal_traceback(out.stderr)


def test_syntax_error(tmp_path: Path) -> None:
    prog = tmp_path / "bad.py"
    prog.write_text("x = (1,\n")
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 2
    assert "syntax error at line" in out.stderr


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a dict"),
        (b"\x89HDF\r\n\x1a\ngarbage", ""),
    ],
)
def test_bad_arguments_file(tmp_path: Path, content: bytes, needle: str) -> None:
    args = tmp_path / ("args.h5" if content.startswith(b"\x89HDF") else "args.json")
    args.write_bytes(content)
    out = run_cli("run", str(PROGRAMS / "squares.py"), "--arguments", str(args), "--workers", "0")
    assert out.returncode == 2, out.stderr
    assert str(args.name) in out.stderr
    assert needle in out.stderr
    _no_internal_traceback(out.stderr)


def test_missing_arguments_file(tmp_path: Path) -> None:
    out = run_cli(
        "run",
        str(PROGRAMS / "squares.py"),
        "--arguments",
        str(tmp_path / "x.json"),
        "--workers",
        "0",
    )
    assert out.returncode == 2
    assert "x.json" in out.stderr


def test_unknown_target_key(tmp_path: Path, qshpc_home: Path) -> None:
    prog = tmp_path / "target.py"
    prog.write_text(
        "from qshpc import distribute_task\n"
        "@distribute_task(target={'cpus': 2})\n"
        "def f(x):\n    return x\n"
    )
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 1
    assert "unknown resource 'cpus'" in out.stderr and "Valid keys: cpu" in out.stderr


@pytest.mark.parametrize("ranks", [1, 3])
def test_task_raises(ranks: int, qshpc_home: Path) -> None:
    out = run_cli("run", str(PROGRAMS / "task_fails.py"), ranks=ranks)
    assert out.returncode == 1
    assert "task 3 (work) failed on rank" in out.stderr
    assert "ValueError: bad input 3" in out.stderr
    # The remote traceback names the program's file and shows the line (on 1edae97 a
    # worker's frames said File "<dynamic-code>", cloudpickle's name, and no source).
    program = str(PROGRAMS / "task_fails.py")
    assert f'File "{program}", line 9, in work' in out.stderr, out.stderr
    assert 'raise ValueError(f"bad input {i}")' in out.stderr
    assert "<dynamic-code>" not in out.stderr
    assert "batchrun.py" not in out.stderr and "execute.py" not in out.stderr  # qshpc's line
    job = job_dir_of(qshpc_home)
    status = run_cli("status", str(job))
    assert status.stdout.startswith("FAILED")
    assert "ValueError: bad input 3" in status.stdout
    meta = json.loads(run_cli("status", str(job), "--json").stdout)
    assert meta["task_counts"]["SUCCEEDED"] == 7  # the finished tasks are kept
    assert meta["task_counts"]["FAILED"] == 1


def test_unserializable_return(qshpc_home: Path) -> None:
    out = run_cli("run", str(PROGRAMS / "unpicklable.py"), ranks=2)
    assert out.returncode == 1
    assert "cannot be serialized" in out.stderr
    assert "task 0 (lock)" in out.stderr


def test_status_of_unknown_job() -> None:
    for cmd in ("status", "result", "logs", "cancel", "wait"):
        out = run_cli(cmd, "no-such-job")
        assert out.returncode == 2, (cmd, out.stderr)
        assert "no job 'no-such-job'" in out.stderr
        _no_internal_traceback(out.stderr)


def test_program_raises(tmp_path: Path, qshpc_home: Path) -> None:
    prog = tmp_path / "boom.py"
    prog.write_text("def f():\n    raise RuntimeError('boom')\nf()\n")
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 1
    assert "RuntimeError: boom" in out.stderr
    assert "qshpc/runtime" not in out.stderr  # only the program's frames
    res = run_cli("result", str(job_dir_of(qshpc_home)))
    assert res.returncode == 1 and "FAILED" in res.stderr
