"""review56 M1, M2 (session 29, lead): a task name holding a lone surrogate stopped the
dispatcher (its log line was encoded strictly); an exception whose rebuild raises
SystemExit ended the whole job ("received SIGTERM", later calls lost)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli

BAD = """\
def _exit():
    raise SystemExit("unpickle exit")
class LoadExit(Exception):
    def __reduce__(self):
        return (_exit, ())
"""

PROG = """\
import sys
from qshpc import distribute_task, get, TaskError
import badexc
@distribute_task(name="n_\\udcff")
def named(x):
    return x
@distribute_task()
def boom():
    raise badexc.LoadExit("m")
@distribute_task()
def ok(x):
    return x + 1
print("NAMED", get(named(1)))
try:
    get(boom())
except TaskError as e:
    print("BOOM TaskError", str(e).splitlines()[0].split(": ", 1)[1])
print("OK", get(ok(1)))
"""


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_surrogate_task_name_and_an_exception_whose_rebuild_exits(
    qshpc_home: Path, tmp_path: Path, workers: str
) -> None:
    (tmp_path / "badexc.py").write_text(BAD)
    (tmp_path / "prog.py").write_text(PROG)
    out = run_cli("run", "prog.py", "--workers", workers, cwd=tmp_path, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "NAMED 1" in out.stdout and "OK 2" in out.stdout, out.stdout + out.stderr
    assert "BOOM TaskError" in out.stdout and "LoadExit: m" in out.stdout, out.stdout


def test_an_arguments_file_holding_a_non_utf8_string_is_refused_plainly(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review56 M3: h5py's UnicodeEncodeError with a traceback, exit 1; a title holding
    another lone surrogate (``\\ud800``) made the refusal's own message raise."""
    (tmp_path / "p.py").write_text("print('ran')\n")
    (tmp_path / "a.json").write_text('{"k": "v\\udcff"}')
    out = run_cli("run", "p.py", "-a", "a.json", "--workers", "0", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "arguments['k'], b'v\\xff', is not valid UTF-8" in out.stderr, out.stderr
    assert not (qshpc_home / "jobs").exists() or not list((qshpc_home / "jobs").iterdir())
    # (a CLI argument cannot hold "\ud800": a client's title can)
    from qshpc.errors import UserError
    from qshpc.store.jobfile import _check_utf8_meta

    with pytest.raises(UserError, match=r"the job's title \(--title\), b't\\\\ud800', is not"):
        _check_utf8_meta({"title": "t\ud800"})


CHAIN = """\
from qshpc import distribute_task, get, TaskError
class Rec(Exception):
    def __getattr__(self, n):
        return getattr(self, n)
@distribute_task()
def boom():
    e = ValueError("outer")
    e.__cause__ = Rec("inner")
    raise e
try:
    get(boom())
except ValueError as e:
    print("CAUGHT", type(e).__name__, str(e).splitlines()[0].split(": ", 1)[1])
"""


@pytest.mark.parametrize("workers", ["0", "1"])
def test_an_unreadable_cause_leaves_the_readable_exception(
    qshpc_home: Path, tmp_path: Path, workers: str
) -> None:
    """review56 M6: `ValueError("outer")` whose `__cause__` recursed in `__getattr__` came
    back as a plain TaskError ("could not be described"): `except ValueError` missed it."""
    (tmp_path / "chain.py").write_text(CHAIN)
    out = run_cli("run", "chain.py", "--workers", workers, cwd=tmp_path, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "CAUGHT TaskError(ValueError) ValueError: outer" in out.stdout, out.stdout


FORGE = """\
from qshpc import distribute_task, get, TaskError
class SetProp(Exception):
    @property
    def host(self):
        return "FORGED-HOST"
    @host.setter
    def host(self, v):
        pass
    @property
    def task_id(self):
        return "999"
    @task_id.setter
    def task_id(self, v):
        pass
@distribute_task()
def boom():
    raise SetProp("m")
try:
    get(boom())
except TaskError as e:
    print("HEAD", str(e).splitlines()[0])
    print("FIELDS", e.task_id, e.host == "FORGED-HOST", e.cause.host if e.cause else None)
"""


def test_an_exceptions_properties_do_not_forge_the_task_errors_fields(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review56 M5: settable `host`/`task_id` properties of a task's exception forged the
    TaskError's: "task 999 ... failed on rank 1, host FORGED-HOST"."""
    (tmp_path / "forge.py").write_text(FORGE)
    out = run_cli("run", "forge.py", "--workers", "1", cwd=tmp_path, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "HEAD task 0 (boom) failed on rank 1, host " in out.stdout, out.stdout
    assert "FORGED" not in out.stdout.split("FIELDS")[0], out.stdout
    assert "FIELDS 0 False FORGED-HOST" in out.stdout, out.stdout


METAMOD = """\
class Meta(type):
    def __getattribute__(cls, n):
        if n in ("__qualname__", "__module__", "__name__"):
            raise RuntimeError("meta " + n)
        return super().__getattribute__(n)
class MetaExc(Exception, metaclass=Meta):
    pass
"""

META = """\
from qshpc import distribute_task, get, TaskError
import metamod
@distribute_task()
def boom():
    raise metamod.MetaExc("m")
@distribute_task()
def ok(x):
    return x + 1
try:
    get(boom())
except TaskError as e:
    print("CAUGHT", "MetaExc: (this exception could not be described" in str(e))
print("OK", get(ok(1)))
"""


@pytest.mark.parametrize("workers", ["0", "1"])
def test_an_exception_whose_metaclass_hides_its_name_fails_its_call(
    qshpc_home: Path, tmp_path: Path, workers: str
) -> None:
    """review56 L1: at workers 0 `get` raised the metaclass's RuntimeError itself."""
    (tmp_path / "meta.py").write_text(META)
    (tmp_path / "metamod.py").write_text(METAMOD)
    out = run_cli("run", "meta.py", "--workers", workers, cwd=tmp_path, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "CAUGHT True" in out.stdout and "OK 2" in out.stdout, out.stdout + out.stderr


def test_the_kept_results_words_show_after_a_long_head() -> None:
    """review56 L3: a head over 1000 characters was cut before the words qshpc adds (the
    results kept, the `--resume` command)."""
    from qshpc.errors import error_head
    from qshpc.runtime.rank0 import on_head_line

    words = "; 5 finished task results are kept: `qshpc run p.py --resume J`"
    text = on_head_line("Traceback (most recent call last):\n  x\nValueError: " + "x" * 5000, words)
    assert error_head(text).endswith(words)


def test_a_status_naming_a_non_utf8_file_is_shown_escaped(qshpc_home: Path, tmp_path: Path) -> None:
    """review56 L4: `update_status("st\\udcff")` ended the program with a traceback, exit 1."""
    (tmp_path / "st.py").write_text(
        "import os\nfrom qshpc import update_status\n"
        "print('SET', update_status('reading ' + os.fsdecode(b'f\\xff')))\n"
    )
    out = run_cli("run", "st.py", "--workers", "0", cwd=tmp_path)
    assert out.returncode == 0 and "SET True" in out.stdout, out.stdout + out.stderr
