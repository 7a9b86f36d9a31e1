"""Session 29, fixT: small items left by session 28 (see each test)."""

from __future__ import annotations

import builtins
import sys
import traceback
from pathlib import Path

import pytest

from qshpc.errors import error_head, error_head_at

needs_311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups: Python 3.11")


def _kept(error: str, tmp_path: Path) -> str:
    from qshpc.program.session import Session
    from qshpc.runtime.rank0 import with_resume

    session = Session(None, None, {})
    session.executed = 3
    job = tmp_path / "jobs" / "20261206-050000-abcdef"
    return with_resume(error, {"entrypoint": "/p/prog.py"}, job, session)


def _group_text() -> str:
    if sys.version_info < (3, 11):
        return ""
    from qshpc.errors import WorkerLostError

    group = builtins.ExceptionGroup("calls", [WorkerLostError("worker rank 2 stopped responding")])
    try:
        raise group
    except Exception as exc:
        return "".join(traceback.format_exception(exc))


@pytest.mark.parametrize(
    "error",
    [
        "Traceback (most recent call last):\n  x\nWorkerLostError: rank 2 lost",
        "Traceback (most recent call last):\n  x\nWorkerLostError: rank 2 lost\nsecond line\n"
        "a note\n\nqshpc: hint: do this\nqshpc: hint: or that",
        "WorkerLostError: rank 2 lost",
    ],
)
def test_the_kept_words_go_on_error_heads_line(error: str, tmp_path: Path) -> None:
    """rank0.with_resume appended them to the last line (but a hint): the summary shows
    errors.error_head's line, the exception's line before its second line and notes."""
    got = _kept(error, tmp_path)
    head = error_head(got)
    assert head.startswith("WorkerLostError: rank 2 lost; 3 finished task results are kept")
    assert head.endswith("runs only the unfinished tasks")
    assert got.replace(head[len("WorkerLostError: rank 2 lost") :], "") == error.rstrip()


@needs_311
def test_the_kept_words_of_an_exception_group_go_on_its_line(tmp_path: Path) -> None:
    error = _group_text()
    got = _kept(error, tmp_path)
    assert error_head(got).startswith("ExceptionGroup: calls (1 sub-exception); 3 finished")
    assert "  | ExceptionGroup: calls (1 sub-exception); 3 finished" in got
    assert got.count("finished task results are kept") == 1


def test_error_head_at_is_error_heads_line() -> None:
    for text in ("", "\n \n", "a\n\nb\nqshpc: hint: h", _group_text()):
        lines = text.rstrip().splitlines()
        at = error_head_at(lines)
        assert error_head(text) == ("" if at is None else lines[at[0]][at[1] :])
