"""review47 F4 (each ``get``'s exception copy keeps C-level fields) and F5 (the .h5 name
suggested for an ``a.h5.json``), session 26 fixI."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from qshpc.errors import UserError
from qshpc.program.refs import raised_copy
from qshpc.store.jobfile import load_arguments
from tests.conftest import run_cli


def _caught(f: object) -> BaseException:
    try:
        f()  # type: ignore[operator]
    except BaseException as exc:
        return exc
    raise AssertionError("no exception")


def test_each_gets_copy_keeps_the_exceptions_own_fields() -> None:
    """On main 562d51f the copy of a FileNotFoundError had filename None and lost
    ": '/path'" from its str; a UnicodeDecodeError's str was '', a SyntaxError's 'None'."""
    cases = [
        _caught(lambda: open("/nonexistent/data.csv")),
        _caught(lambda: b"\xff".decode("utf-8")),
        _caught(lambda: compile("x = (", "prog.py", "exec")),
        StopIteration(42),
        SystemExit(3),
        KeyError("k"),
    ]
    for error in cases:
        copy = raised_copy(error)
        assert copy is not error and type(copy) is type(error)
        assert str(copy) == str(error) and copy.args == error.args
        assert copy.__traceback__ is None  # its own traceback: that of the get raising it
    missing = raised_copy(cases[0])
    assert isinstance(missing, OSError) and missing.filename == "/nonexistent/data.csv"
    assert isinstance(cases[1], UnicodeDecodeError)
    bad = raised_copy(cases[1])
    assert isinstance(bad, UnicodeDecodeError) and (bad.start, bad.end) == (0, 1)
    syntax = raised_copy(cases[2])
    assert isinstance(syntax, SyntaxError) and syntax.lineno == 1


def test_a_copy_of_an_exception_with_its_own_init_arguments_keeps_them() -> None:
    class Coded(Exception):
        def __init__(self, code: int, detail: str) -> None:
            super().__init__(f"{code}: {detail}")
            self.code = code

    error = Coded(3, "bad")
    copy = raised_copy(error)
    assert type(copy) is Coded and str(copy) == "3: bad" and copy.code == 3  # type: ignore[attr-defined]


def test_the_h5_name_suggested_for_an_h5_json_name_is_not_doubled(tmp_path: Path) -> None:
    """On main 562d51f ``a.h5.json`` got "name it a.h5.h5" (save_arguments) and "rename it
    to a.h5.h5" (--arguments, HDF5 inside)."""
    from qshpc import save_arguments

    with pytest.raises(UserError, match=r"name it \S*/a\.h5 ") as info:
        save_arguments(tmp_path / "a.h5.json", {"x": 1})
    assert "a.h5.h5" not in str(info.value)
    with pytest.raises(UserError, match=r"name it \S*/b\.h5 "):
        save_arguments(tmp_path / "b.json", {"x": 1})
    save_arguments(tmp_path / "c.h5", {"x": 1})
    (tmp_path / "c.h5").rename(tmp_path / "c.h5.json")
    with pytest.raises(UserError, match=r"rename it to c\.h5$"):
        load_arguments(tmp_path / "c.h5.json")
    (tmp_path / "prog.py").write_text("import qshpc\nqshpc.save_result(1)\n")
    out = run_cli("run", str(tmp_path / "prog.py"), "--arguments", str(tmp_path / "c.h5.json"),
                  "--workers", "0", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stdout + out.stderr
    assert "rename it to c.h5" in out.stderr and "c.h5.h5" not in out.stderr


def test_a_result_from_a_leaving_worker_that_cannot_be_received_loses_only_that_result(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """review47 F1, rank 0's side: a receive of a leaving worker's result that fails (MPICH's
    ``process_vm_readv failed``: the worker ended during the transfer; injected here, as
    it cannot be made to happen on demand) killed the dispatcher thread, and the job was
    stored FAILED. Now only that result is lost: the dispatcher ends as usual and rank 0
    does not finalize MPI (``abandoned``)."""
    from qshpc.errors import TaskError
    from qshpc.runtime.protocol import TAG_RESULT
    from tests.unit.test_dispatcher import _stuck, ranks, stuck

    _stuck.clear()
    try:
        with ranks(1) as r:
            ref = r.call(stuck, 0)
            deadline = time.monotonic() + 10
            while not r.batches() and time.monotonic() < deadline:
                time.sleep(0.01)
            tell, receive = r.d._tell_leave, r.d.receive

            def tell_then_send(w: Any, why: str, task_id: str | None = None) -> None:
                # then the worker's result is on its way, and its receive fails
                tell(w, why, task_id)
                r.net.deliver(0, TAG_RESULT, ("R", "result"), source=w.rank)

            def failing(msg: Any) -> Any:
                if r.d._leaving:
                    raise RuntimeError("MPI_Mrecv_c: process_vm_readv failed (errno 3)")
                return receive(msg)

            r.d._tell_leave = tell_then_send  # type: ignore[method-assign]
            r.d.receive = failing
            r.d.shutdown(abort=True, drain_s=0.3, why="the program ended (the job SUCCEEDED)")
            assert r.d.abandoned  # rank 0 leaves without MPI_Finalize
            error = ref.exception(timeout=5)
            assert isinstance(error, TaskError) and error.exc_type == "TaskAbandoned"
            _stuck.set()
    finally:
        _stuck.set()
    err = capsys.readouterr().err
    assert "rank 1 was told to leave; a result it sent meanwhile could not be received" in err
    assert "process_vm_readv failed" in err
