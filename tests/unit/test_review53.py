"""review53 K1/K2 (session 28, lead): an error's summary line names the error
(``ClassName: first line``), whatever follows it in the traceback; an exception class
whose ``__new__`` hands out one shared instance still comes back as a TaskError."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from qshpc.errors import TaskError, error_head, task_error


class NoteErr(Exception):
    pass


needs_311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="notes and groups: Python 3.11")


def _text(exc: BaseException) -> str:
    try:
        raise exc
    except BaseException as e:
        return "".join(traceback.format_exception(e))


def _noted() -> NoteErr:
    e = NoteErr("with note")
    e.add_note("NOTE-1")
    return e


def _chained() -> str:
    try:
        try:
            raise KeyError("inner")
        except KeyError as e:
            raise ValueError("outer\nsecond") from e
    except ValueError as e:
        return "".join(traceback.format_exception(e))


@needs_311
def test_the_head_is_the_errors_own_line() -> None:
    """On main 5d8b663 these gave ``line two``, ``NOTE-1`` and the group's last frame line."""
    assert error_head(_text(ValueError("line one\nline two"))) == "ValueError: line one"
    assert error_head(_text(_noted())).endswith("NoteErr: with note")
    group = builtins.ExceptionGroup("grp", [ValueError("v1"), KeyError("k1")])
    assert error_head(_text(group)) == "ExceptionGroup: grp (2 sub-exceptions)"
    assert error_head(_chained()) == "ValueError: outer"
    assert error_head(_text(ValueError())) == "ValueError"
    hinted = _text(ModuleNotFoundError("no x")) + "qshpc: hint: install x\n"
    assert error_head(hinted) == "ModuleNotFoundError: no x"
    assert error_head("a plain message\nits last line") == "its last line"
    assert error_head("") == ""


@needs_311
def test_a_task_errors_first_line_names_the_error() -> None:
    err = task_error("3", "f", 1, "h", _text(_noted()), "NoteErr", cause=_noted())
    assert str(err).splitlines()[0] == "task 3 (f) failed on rank 1, host h: " + error_head(
        _text(_noted())
    )
    assert str(err).splitlines()[0].endswith("NoteErr: with note")


class Once(Exception):
    shared: Once | None = None

    def __new__(cls, *args: object) -> Once:
        if Once.shared is None:
            Once.shared = super().__new__(cls, *args)
        return Once.shared


def test_a_shared_instance_from_new_is_left_alone() -> None:
    """On main 5d8b663 ``task_error`` returned the user's shared ``Once`` (no TaskError)
    with its text overwritten."""
    mine = Once("mine")
    err = task_error("0", "f", 1, "h", _text(mine), "Once", cause=mine)
    assert isinstance(err, TaskError)
    assert err is not mine
    assert str(mine) == "mine"
    assert not isinstance(mine, TaskError)


PROG = """\
import sys
from qshpc import distribute_task, get
class NoteErr(Exception):
    pass
@distribute_task()
def f(kind):
    if kind == "note":
        e = NoteErr("with note"); e.add_note("NOTE-1"); raise e
    if kind == "group":
        raise ExceptionGroup("grp", [ValueError("v1"), KeyError("k1")])
    raise ValueError("line one\\nline two")
get(f(sys.argv[1]))
"""


@needs_311
def test_the_runs_summary_names_the_error(tmp_path: Path) -> None:
    prog = tmp_path / "unc.py"
    prog.write_text(PROG)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "QSHPC_HOME": str(tmp_path / "home"), "PYTHONPATH": root}
    want = {
        "multiline": "qshpc: ValueError: line one",
        "note": "qshpc: NoteErr: with note",
        "group": "qshpc: ExceptionGroup: grp (2 sub-exceptions)",
    }
    for kind, line in want.items():
        cmd = [sys.executable, "-m", "qshpc", "run", str(prog), "--workers", "1", "--", kind]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
        assert out.returncode == 1, out.stderr
        # review55 E1: the head of the program's error, a TaskError quoting the task's
        # traceback in its message, is the TaskError's own line, which names the task's
        # error (and where it failed) after its own words
        want_line = "qshpc: TaskError(" + line.removeprefix("qshpc: ").split(":")[0]
        (shown,) = [x for x in out.stderr.splitlines() if x.startswith(want_line)]
        assert shown.endswith(line.removeprefix("qshpc:")), out.stderr
        assert "failed on rank 1, host " in shown, shown


CATCH = """
got = []
try:
    raise err
except* ValueError as eg:
    got.append(("V", [str(e) for e in eg.exceptions]))
except* KeyError as eg:
    got.append(("K", len(eg.exceptions)))
"""


@needs_311
def test_a_tasks_exception_group_is_caught_by_except_star() -> None:
    """review53 K3: on main 5d8b663 the TaskError was no group, so ``except* ValueError``
    missed it and ``except* BaseException`` had it whole."""
    group = builtins.ExceptionGroup("grp", [ValueError("v1"), KeyError("k1")])
    err = task_error("1", "f", 1, "h", _text(group), "ExceptionGroup", cause=group)
    assert isinstance(err, TaskError)
    assert isinstance(err, builtins.ExceptionGroup)
    assert err.cause is group
    assert str(err).splitlines()[0].endswith("ExceptionGroup: grp (2 sub-exceptions)")
    scope: dict[str, object] = {"err": err}
    exec(CATCH, scope)
    assert scope["got"] == [("V", ["v1"]), ("K", 1)]


def _raised(code: str) -> BaseException:
    try:
        exec(code, {})
    except Exception as e:
        return e
    raise AssertionError(code)


def test_the_c_fields_of_built_in_errors_read_through() -> None:
    """review53 K7: on main 5d8b663 a TaskError(UnicodeDecodeError) had start 0, end 0 and
    reason None, a SyntaxError's lineno and an ImportError's name were None."""
    cases = {
        "b'ab\\xff'.decode('utf-8')": {"encoding": "utf-8", "start": 2, "end": 3},
        "compile('x = (', '<prog>', 'exec')": {"filename": "<prog>", "lineno": 1},
        "raise ImportError('no mod', name='zzz', path='/p')": {"name": "zzz", "path": "/p"},
        "open('/nonexistent/x')": {"errno": 2, "filename": "/nonexistent/x"},
    }
    for code, want in cases.items():
        cause = _raised(code)
        err = task_error("0", "f", 1, "h", _text(cause), type(cause).__name__, cause=cause)
        assert isinstance(err, type(cause)), code
        assert {k: getattr(err, k) for k in want} == want, code
        assert err.args == cause.args


def test_a_cause_too_big_to_travel_keeps_its_class() -> None:
    """review53 K6: on main 5d8b663 a task's ValueError over 1 MiB pickled came back as a
    plain TaskError from a worker (``except ValueError`` missed it), a TaskError(ValueError)
    without workers."""
    from qshpc.errors import MAX_CAUSE_BYTES, dump_cause, load_cause

    big = ValueError("x" * (2 * MAX_CAUSE_BYTES))
    blob = dump_cause(big)
    assert blob is not None and len(blob) <= MAX_CAUSE_BYTES
    back = load_cause(blob)
    assert type(back) is ValueError
    assert "[qshpc: cut: the exception pickled to" in str(back)
    err = task_error("0", "f", 1, "h", "ValueError: xxx", "ValueError", cause=back)
    assert isinstance(err, ValueError)
