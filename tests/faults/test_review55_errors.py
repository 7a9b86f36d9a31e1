"""review55 (session 29, lead): an error's head is the error's own line, not a traceback
quoted in its message (E1), cut when huge (E3), the first line of text of a message that
begins with a line break (E4); a task or program error naming a non-UTF-8 file name (a
lone surrogate from ``os.fsdecode``) is that error, not a dead worker or a
UnicodeEncodeError (E2)."""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import pytest

from qshpc.errors import HEAD_MAX, error_head
from tests.conftest import job_dir_of, run_cli


def _text(exc: BaseException) -> str:
    try:
        raise exc
    except BaseException as e:
        return "".join(traceback.format_exception(e))


QUOTED = (
    'Traceback (most recent call last):\n  File "x", line 1\nZeroDivisionError: division by zero'
)
CHAINED_QUOTE = (
    QUOTED + "\n\nDuring handling of the above exception, another exception occurred:\n\n" + QUOTED
)


@pytest.mark.parametrize("quoted", [QUOTED, CHAINED_QUOTE.replace("\n\n", "\n")])
def test_a_traceback_quoted_in_the_message_is_not_the_head(quoted: str) -> None:
    text = _text(RuntimeError("the solver subprocess failed:\n" + QUOTED))
    assert error_head(text) == "RuntimeError: the solver subprocess failed:"
    assert error_head("msg\n" + text) == "RuntimeError: the solver subprocess failed:"


def test_a_chain_still_names_its_last_error() -> None:
    try:
        try:
            raise KeyError("k")
        except KeyError as e:
            raise ValueError("v\nsecond line") from e
    except ValueError as e:
        text = "".join(traceback.format_exception(e))
    assert error_head(text) == "ValueError: v"
    assert error_head(text + "qshpc: hint: do this\n") == "ValueError: v"


def test_a_huge_or_blank_first_line_head() -> None:
    head = error_head(_text(ValueError("x" * 3_000_000)))
    assert len(head) < HEAD_MAX + 60 and head.startswith("ValueError: xxx")
    assert "characters left out) ... xxx" in head  # (its end kept too: review56 L3)
    assert error_head(_text(ValueError("\nreal message"))) == "ValueError: real message"


PROG = """\
import os
from qshpc import distribute_task, get, TaskError
@distribute_task()
def t(i):
    if i == 5:
        name = os.fsdecode(b"data-\\xff.csv")
        raise ValueError(f"cannot parse {name}")
    return i * 10
out = []
for r in [t(i) for i in range(12)]:
    try:
        out.append(r.result())
    except TaskError as e:
        out.append(str(e).splitlines()[0])
print("OUT", out)
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_task_error_naming_a_non_utf8_file_is_that_error(
    qshpc_home: Path, tmp_path: Path, workers: str
) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    out = run_cli("run", str(prog), "--workers", workers, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("OUT ")]
    assert "ValueError: cannot parse data-\\\\udcff.csv" in line, line
    assert "[0, 10, 20, 30, 40, " in line and ", 60, 70, 80, 90, 100, 110]" in line, line
    job = job_dir_of(qshpc_home)
    status = run_cli("status", job.name, "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["state"] == "SUCCEEDED"


def test_a_program_error_naming_a_non_utf8_file_is_stored(qshpc_home: Path, tmp_path: Path) -> None:
    prog = tmp_path / "top.py"
    prog.write_text('import os\nraise ValueError("bad " + os.fsdecode(b"f\\xff"))\n')
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 1, out.stderr[-3000:]
    assert "qshpc: ValueError: bad f\\udcff" in out.stderr, out.stderr[-3000:]
    assert "cannot encode" not in out.stderr
    job = job_dir_of(qshpc_home)
    status = run_cli("status", job.name)
    assert status.returncode == 0 and status.stdout.startswith("FAILED"), status.stdout
    assert "ValueError: bad f\\udcff" in status.stdout, status.stdout


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--title", "t\udcff"], "the job's title (--title), b't\\xff', is not valid UTF-8"),
        (["--", "x", "arg\udcff"], "the program's argument sys.argv[2], b'arg\\xff', is not valid"),
    ],
)
def test_a_non_utf8_title_or_argument_is_refused_plainly(
    qshpc_home: Path, tmp_path: Path, extra: list[str], words: str
) -> None:
    """review55 E6: h5py's UnicodeEncodeError with a traceback, exit 1."""
    prog = tmp_path / "ok.py"
    prog.write_text("print('ran')\n")
    out = run_cli("run", str(prog), "--workers", "0", *extra)
    assert out.returncode == 2, out.stderr
    assert words in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert "give it in UTF-8 (rename a file whose name it is)" in out.stderr
    assert not (qshpc_home / "jobs").exists() or not list((qshpc_home / "jobs").iterdir())


FIELDS = """\
import sys
from qshpc import distribute_task, get, TaskError
class F(Exception):
    def __new__(cls, code):
        self = super().__new__(cls, code)
        self.code = code
        return self
class MyEG(ExceptionGroup):
    def __new__(cls, code, excs):
        self = super().__new__(cls, f"code {code}", excs)
        self.code = code
        return self
    def derive(self, excs):
        return MyEG(self.code, excs)
@distribute_task()
def t(kind):
    if kind == "plain":
        raise F(7)
    raise MyEG(7, [ValueError("v7")])
try:
    get(t("plain"))
except F as e:
    print("PLAIN", repr(e.code), isinstance(e, TaskError))
try:
    get(t("group"))
except TaskError as e:
    print("GROUP", repr(e.code), repr(e.message), isinstance(e, MyEG))
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_an_exceptions_own_fields_set_by_its_new_come_back(
    qshpc_home: Path, tmp_path: Path, workers: str
) -> None:
    """review55 E5: `e.code` was the remote traceback's text (a class whose `__new__` sets
    it), and a group subclass's `code` `'code 7'`, its message `'code code 7'`."""
    prog = tmp_path / "fields.py"
    prog.write_text(FIELDS)
    out = run_cli("run", str(prog), "--workers", workers, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "PLAIN 7 True" in out.stdout, out.stdout
    assert "GROUP 7 'code 7' True" in out.stdout, out.stdout


def test_status_of_a_job_whose_error_is_huge_cuts_its_lines(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review55 E3: `qshpc status J` printed 2 MB for a task's 1 MiB message."""
    prog = tmp_path / "big.py"
    prog.write_text(
        "from qshpc import distribute_task, get\n@distribute_task()\ndef t():\n"
        "    raise ValueError('x' * (1 << 20) + ' END')\nget(t())\n"
    )
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 1
    job = job_dir_of(qshpc_home)
    status = run_cli("status", job.name)
    assert status.stdout.startswith("FAILED") and len(status.stdout) < 20_000, len(status.stdout)
    assert "characters more: qshpc logs)" in status.stdout


def test_a_quoted_chained_traceback_does_not_name_a_task_errors_head() -> None:
    """review55 E1, the rest: a chain separator quoted in the message (a subprocess's chained
    traceback) read as the chain's; where the class is known (a TaskError's first line)
    the head is the last exception line of that class."""
    from qshpc.errors import task_error

    def chained() -> None:
        try:
            raise ZeroDivisionError("inner")
        except ZeroDivisionError as z:
            raise KeyError("inner wrap") from z

    text = _text(RuntimeError("the solver subprocess failed:\n" + _text_of(chained)))
    assert error_head(text, "RuntimeError") == "RuntimeError: the solver subprocess failed:"
    err = task_error("7", "f", 1, "h", text, "RuntimeError")
    assert str(err).splitlines()[0].endswith("RuntimeError: the solver subprocess failed:")


def _text_of(fn: object) -> str:
    try:
        fn()  # type: ignore[operator]
    except BaseException as e:
        return "".join(traceback.format_exception(e))
    raise AssertionError("no error")
