"""review47 F6, review48 LOWs, review44 F9/F11c (session 27, fixK): what a task's error,
a stored array and the run's lines lose or say twice.

A task's exception crosses to rank 0 pickled. On main b8dd831 a class with a ``__new__`` of
its own came back as a plain TaskError (``except Strict`` missed it), ``__slots__``
attributes were lost and ``__cause__``/``__context__`` were None (a ``raise X from e`` only
in the traceback text); a StopIteration came back as one, which a generator turns into a
RuntimeError and ``map(get, refs)`` takes for its end: the error and the rest lost.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import job_dir_of, run_cli, run_program

pytestmark = [pytest.mark.mpi, pytest.mark.timeout(300)]

CHAIN = """
import threading
from qshpc import TaskError, distribute_task, get, save_result

class Strict(Exception):
    def __new__(cls, code):
        return super().__new__(cls, code)
    def __init__(self, code):
        super().__init__(code, "strict")

class Slotted(Exception):
    __slots__ = ("level", "extra")
    def __init__(self, level):
        super().__init__("slotted")
        self.level = level
        self.extra = level * 2

class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("no pickling")

@distribute_task()
def f(kind):
    try:
        {}["missing"]
    except KeyError as k:
        if kind == "strict":
            raise Strict(9) from k
        if kind == "slot":
            raise Slotted(3) from k
        if kind == "context":
            raise ValueError("during")
        if kind == "standin":
            try:
                raise Unpicklable("deep")
            except Unpicklable as u:
                raise LookupError("outer") from u
    if kind == "stop":
        raise StopIteration(5)
    return kind

seen = {}
try:
    get(f("strict"))
except Strict as e:
    seen["strict"] = [list(e.args), type(e.__cause__).__name__, e.__cause__.args[0]]
try:
    get(f("slot"))
except Slotted as e:
    seen["slot"] = [e.level, e.extra, e.cause.extra, type(e.__cause__).__name__]
try:
    get(f("context"))
except ValueError as e:
    seen["context"] = [e.__cause__ is None, type(e.__context__).__name__]
try:
    get(f("standin"))
except LookupError as e:
    seen["standin"] = [type(e.__cause__).__name__, str(e.__cause__),
                       type(e.__cause__.__context__).__name__]

def gen():
    yield get(f("stop"))

try:
    list(gen())
except RuntimeError as e:
    seen["stop_gen"] = [isinstance(e, TaskError), "raised StopIteration" in str(e), e.value]
try:
    seen["stop_map"] = list(map(get, [f("a"), f("stop"), f("b")]))
except TaskError as e:
    seen["stop_map"] = str(e).splitlines()[0]
save_result(seen)
"""


def test_a_tasks_exception_keeps_its_class_slots_and_chain_and_a_stop_iteration_is_not_lost(
    qshpc_home: Path, tmp_path: Path
) -> None:
    job = run_program(qshpc_home, tmp_path / "chain.py", CHAIN, "--workers", "1")
    seen = job.result()
    assert seen["strict"] == [[9, "strict"], "KeyError", "missing"]
    assert seen["slot"] == [3, 6, 6, "KeyError"]
    assert seen["context"] == [True, "KeyError"]
    # the class that cannot travel stands in by name and message, its own context kept
    assert seen["standin"] == ["StandInError", "__main__.Unpicklable: deep", "KeyError"]
    assert seen["stop_gen"] == [True, True, 5]
    assert seen["stop_map"].startswith("task ") and "raised StopIteration" in seen["stop_map"]


FORDER = """
import numpy as np
from qshpc import distribute_task, get, save_result

@distribute_task()
def make(n):
    return np.asfortranarray(np.arange(n * 3, dtype=np.float64).reshape(3, n))

a, b = get(make(4)), get(make(40000))  # the second over the 64 KiB kept in memory
save_result({"flags": [a.flags.f_contiguous, b.flags.f_contiguous], "a": a, "b": b})
"""


def test_a_fortran_ordered_result_comes_back_fortran_ordered(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review48: on main b8dd831 ``get`` and the store gave it C-ordered (values equal)."""
    import numpy as np

    from qshpc import open_job
    from qshpc.store import JobReader

    (tmp_path / "forder.py").write_text(FORDER)
    env = {"QSHPC_RESULT_MEMORY_MAX": "65536"}
    out = run_cli("run", str(tmp_path / "forder.py"), "--workers", "1", env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    job = job_dir_of(qshpc_home)
    result = open_job(job).result()
    assert result["flags"] == [True, True]
    assert result["a"].flags.f_contiguous and result["b"].flags.f_contiguous
    with JobReader.open(job) as r:
        stored = r.task_result("1")
    assert stored.flags.f_contiguous
    np.testing.assert_array_equal(stored, np.arange(120000.0).reshape(3, 40000))


def test_a_hint_is_said_once_and_every_summary_line_reads_class_and_message(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review44 F9: on b8dd831 a ``qshpc: hint:`` line came after the traceback and again in
    the summary, and the summary said ``qshpc: ValueError: ...`` for a task's error but
    ``qshpc: qshpc.errors.SerializationError: ...`` for qshpc's own."""
    (tmp_path / "qs.py").write_text("from quantum_serverless import save_result\n")
    out = run_cli("run", str(tmp_path / "qs.py"), "--workers", "0")
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stderr.count("qshpc: hint: ") == 1, out.stderr
    job = job_dir_of(qshpc_home)
    assert "qshpc: hint: " in (job / "logs" / "rank-0.out").read_text()  # in the log too
    assert "qshpc: hint: " in run_cli("status", str(job)).stdout  # and what status shows
    summary = out.stderr.split("FAILED (")[1].splitlines()
    assert "qshpc: ModuleNotFoundError: No module named 'quantum_serverless'" in summary

    (tmp_path / "unp.py").write_text(
        "import threading\nfrom qshpc import distribute_task, get\n"
        "@distribute_task()\ndef f(x):\n    return 1\n"
        "get(f(threading.Lock()))\n"
    )
    out = run_cli("run", str(tmp_path / "unp.py"), "--workers", "1")
    assert out.returncode == 1, out.stdout + out.stderr
    summary = out.stderr.split("FAILED (")[1].splitlines()
    assert any(x.startswith("qshpc: SerializationError: the arguments of task 0") for x in summary)
    assert not any(x.startswith("qshpc: qshpc.errors.") for x in summary), summary


RESUMED = """
import os
from qshpc import distribute_task, get, save_result

@distribute_task()
def f(i):
    return i

save_result(get([f(i) for i in range(int(os.environ["N"]))]))
if os.environ.get("FAIL_AT_END"):
    raise SystemExit("this run fails at its end, as asked")
"""


def test_a_resumes_status_and_progress_count_its_own_run(qshpc_home: Path, tmp_path: Path) -> None:
    """review44 F11c: on b8dd831 status gave one duration from the first start (the pause
    before the resume in it) and the progress line's rate counted the reused tasks."""
    from qshpc import open_job
    from qshpc.jobs.progress import format_line, snapshot

    prog = tmp_path / "res.py"
    prog.write_text(RESUMED)
    first = run_cli("run", str(prog), "--workers", "1", env={"N": "4", "FAIL_AT_END": "1"})
    assert first.returncode == 1, first.stdout + first.stderr
    job = job_dir_of(qshpc_home)
    again = run_cli("run", str(prog), "--resume", str(job), "--workers", "1", env={"N": "6"})
    assert again.returncode == 0, again.stdout + again.stderr
    meta = open_job(job).info()
    assert meta["runs"] == 2 and meta["tasks_this_run"] == 2
    status = run_cli("status", str(job)).stdout
    assert "; run 2, a resume: " in status and ", 2 tasks ended in it)" in status, status
    line = format_line(snapshot(meta))
    assert "6 tasks done" in line and "since the resume (run 2: 2 tasks ended in it)" in line


def test_a_rank_whose_call_still_runs_at_the_end_says_it_stops_without_it(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review48 (the other side): a call far from its end when the program ends is not
    said to be sent."""
    (tmp_path / "ends.py").write_text(
        "import time\nfrom qshpc import distribute_task, save_result, wait\n"
        "@distribute_task()\ndef slow(t):\n    time.sleep(t)\n    return t\n"
        "done, _ = wait([slow(0.01), slow(60)], num_returns=1)\nsave_result(len(done))\n"
    )
    out = run_cli("run", str(tmp_path / "ends.py"), "--workers", "2", timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    said = [x for x in out.stderr.splitlines() if "still ran here" in x]
    assert len(said) == 1 and "; this rank stops without it (" in said[0], out.stderr
    assert "sent its result" not in out.stderr
