"""review47 F6, review48 LOW (session 27, fixK): a task's exception travels with its slots
and its ``__cause__``/``__context__`` chain; what cannot travel stands in by name."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

from qshpc.errors import (
    MAX_CHAIN,
    StandInError,
    TaskError,
    dump_cause,
    load_cause,
    task_error,
)
from qshpc.program.refs import raised_copy
from tests.unit.test_fixI import _caught


class Strict(Exception):
    def __new__(cls, code: int) -> Strict:
        return super().__new__(cls, code)

    def __init__(self, code: int) -> None:
        super().__init__(code, "strict")


class Slotted(Exception):
    __slots__ = ("__private", "level")

    def __init__(self, level: int) -> None:
        super().__init__("slotted")
        self.level = level
        self.__private = -level

    def private(self) -> int:
        return self.__private


class NoPickle(Exception):
    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("no")


def _from(outer: BaseException, inner: BaseException) -> BaseException:
    def go() -> None:
        try:
            raise inner
        except BaseException as e:
            raise outer from e

    return _caught(go)


def test_the_chain_travels_and_links_again() -> None:
    """On main b8dd831 ``load_cause(dump_cause(e))`` had ``__cause__`` None."""
    exc = _from(Strict(4), _from(KeyError("k"), OSError(2, "gone", "/f")))
    back = load_cause(dump_cause(exc))
    assert type(back) is Strict and back.args == (4, "strict")
    assert type(back.__cause__) is KeyError and back.__suppress_context__
    assert type(back.__cause__.__cause__) is FileNotFoundError
    assert back.__cause__.__cause__.filename == "/f"
    err = task_error("3", "f", 1, "h", "tb\nStrict: 4\n", "Strict", 1, back)
    assert isinstance(err, Strict) and isinstance(err, TaskError)
    assert type(err.__cause__) is KeyError
    again = raised_copy(pickle.loads(pickle.dumps(err)))
    assert isinstance(again, Strict) and type(again.__cause__) is KeyError


def test_slots_travel_private_ones_too() -> None:
    back = load_cause(dump_cause(Slotted(5)))
    assert isinstance(back, Slotted) and back.level == 5 and back.private() == -5
    err = task_error("1", "f", 1, "h", "tb", "Slotted", 1, back)
    assert isinstance(err, Slotted) and err.level == 5


def test_what_cannot_travel_stands_in_and_the_head_falls_back_to_the_traceback() -> None:
    exc = _from(ValueError("outer"), NoPickle("inner"))
    back = load_cause(dump_cause(exc))
    assert type(back) is ValueError
    assert isinstance(back.__cause__, StandInError)
    assert back.__cause__.type_name.endswith("NoPickle") and "inner" in str(back.__cause__)
    assert dump_cause(NoPickle("x")) is None  # the TaskError keeps its traceback text
    locked = ValueError("v")
    locked.lock = threading.Lock()  # type: ignore[attr-defined]
    assert type(load_cause(dump_cause(locked))) is ValueError


def test_a_long_or_cyclic_chain_is_cut_and_old_blobs_still_load() -> None:
    exc: BaseException = ValueError(0)
    for i in range(1, 3 * MAX_CHAIN):
        exc = _from(ValueError(i), exc)
    back = load_cause(dump_cause(exc))
    depth = 0
    while back is not None:
        depth, back = depth + 1, back.__cause__
    assert depth == MAX_CHAIN
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert load_cause(dump_cause(a)).__context__.__context__.args == ("a",)  # type: ignore[union-attr]
    assert type(load_cause(pickle.dumps(KeyError("old")))) is KeyError  # a store of before


def test_a_stop_iteration_comes_back_as_a_runtime_error_naming_it() -> None:
    """On main b8dd831 it was a StopIteration: ``list(map(get, refs))`` ended at it, silently."""
    for stop in (StopIteration(5), StopAsyncIteration("s")):
        err = task_error("2", "f", 1, "h", "tb\nStopIteration: 5\n", "StopIteration", 1, stop)
        assert isinstance(err, RuntimeError) and isinstance(err, TaskError)
        assert not isinstance(err, (StopIteration, StopAsyncIteration))
        assert f"raised {type(stop).__name__}" in str(err).splitlines()[0]
        assert err.cause is stop
    assert task_error("2", "f", 1, "h", "tb", "StopIteration", 1, StopIteration(5)).value == 5  # type: ignore[attr-defined]


def test_a_fortran_ordered_array_keeps_its_order_through_blob_h5_and_get(tmp_path: Path) -> None:
    """review48: on main b8dd831 it came back C-ordered (values equal) from every path."""
    import h5py
    import numpy as np

    from qshpc.program.refs import fresh
    from qshpc.store.encoding_blob import decode_blob, encode_blob
    from qshpc.store.encoding_h5 import read_native, write_native

    arr = np.asfortranarray(np.arange(24.0).reshape(2, 3, 4))
    plain = np.arange(6).reshape(2, 3)
    for value in [arr, arr[:, :, ::2], np.ones((1, 5)), plain]:
        back = decode_blob(encode_blob(value), False, "t")
        nested = decode_blob(encode_blob({"a": value}), False, "t")["a"]
        with h5py.File(tmp_path / "v.h5", "w") as f:
            write_native(f, "v", value)
            stored = read_native(f["v"], False, "t")
        for got in (back, nested, stored, fresh(value)):
            np.testing.assert_array_equal(got, value)
            if value.flags.f_contiguous or value.flags.c_contiguous:  # a strided view: either
                assert got.flags.f_contiguous == value.flags.f_contiguous
                assert got.flags.c_contiguous == value.flags.c_contiguous
            assert got.flags.writeable


def test_a_leaving_rank_says_whether_it_sent_the_calls_result() -> None:
    """review48: on b8dd831 a rank whose call ended as rank 0's LEAVE came said "this rank
    stops without it" just after rank 0 said the call's result "came after all ... and is
    stored". Each line is printed by a real process that then exits 0."""
    import subprocess
    import sys

    why = "the program ended (the job SUCCEEDED) while task 1 (f) still ran here"
    lines = {}
    for sent in (False, True):
        code = (
            "from qshpc.runtime.midcall import leave_mid_call\n"
            f"leave_mid_call(2, 'h', {why!r}, None, {sent})\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        lines[sent] = out.stderr.strip()
    assert lines[False].endswith("this rank stops without it (`qshpc status` records that call "
                                 "as TaskAbandoned)")  # fmt: skip
    assert lines[True].endswith(
        "still ran here; that call ended as the word came, and this rank sent its result to "
        "rank 0 before it stops"
    )
    assert "without it" not in lines[True]


def test_a_resumed_jobs_line_gives_the_resumes_own_rate_and_time() -> None:
    """review44 F11c: on b8dd831 a job run 8 s, paused, resumed for 10 s showed its rate over
    all its tasks (the reused ones too) and the time from its first start."""
    from qshpc.jobs.progress import average_rate, format_line, snapshot

    meta = {
        "id": "j", "state": "SUCCEEDED", "task_counts": {"SUCCEEDED": 16, "FAILED": 0},
        "started": 1000.0, "last_started": 1100.0, "finished": 1110.0, "runs": 2,
        "tasks_this_run": 10,
    }  # fmt: skip
    s = snapshot(meta, now=2000.0)
    assert s.resumed and s.elapsed == 110.0 and s.run_elapsed == 10.0
    assert average_rate(s) == 1.0  # 10 tasks in 10 s, not 16 in 110 s
    line = format_line(s)
    assert "16 tasks done | 1.0 tasks/s | elapsed 10s since the resume (run 2: 10 tasks" in line
    once = snapshot({**meta, "runs": 1, "tasks_this_run": None}, now=2000.0)
    assert not once.resumed and "resume" not in format_line(once)
    assert average_rate(once) == 16 / 110.0


def test_the_sender_knows_the_calls_it_sent_lately() -> None:
    """What the leaving rank asks (worker.Heartbeat.leave_now): a few messages back, bounded
    (a long job's every id kept would grow without end)."""
    from qshpc.runtime.loopback import Loopback, LoopbackWiring
    from qshpc.runtime.results import Results
    from qshpc.runtime.sender import Sender

    sender = Sender(LoopbackWiring(Loopback(2), 1).comm)
    for i in range(40):
        results = Results(1, "h")
        results.add(str(i), "", "f", True, i, None, "", {}, None, 0.0, 1.0)
        sender.send(results, 1, i, list(range(40)), None, i == 39)
    assert sender.sent("39") and sender.sent("35") and not sender.sent("0")
    assert not sender.sent("40")
