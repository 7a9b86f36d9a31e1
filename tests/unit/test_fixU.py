"""Session 29, fixU: key gaps left from session 28 (closing28), and worker robustness.

1. A task reading a value of the user's by a name it computes (``globals()[name]``,
   ``sys.modules[name].X``, ``importlib.import_module(name).X``, ``eval``,
   ``f.__globals__[name]``, a module's PEP 562 ``__getattr__``) kept its key when that
   value was edited: a wrong cache hit, and a wrong ``--resume`` reuse.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import FAIL, FAIL_AT_END, job_dir_of, run_cli

_HELPERS = """\
K = {k}
_TABLE = {k}


def __getattr__(name):
    if name == "LAZY":
        return _TABLE * 10
    raise AttributeError(name)
"""

_OWN = """\
import json, os
from qshpc import distribute_task, get, save_result
import help29u
SCALE = {k}


@distribute_task()
def by_globals(x):
    return globals()["SCALE"] * x


@distribute_task()
def by_lazy(x):
    return help29u.LAZY * x


out = [get(by_globals(2)), get(by_lazy(2))]
save_result(out)
with open(os.environ["OUT"], "w") as f:
    json.dump(out, f)
"""

_UNKNOWN = """\
import json, os, sys, importlib
from qshpc import distribute_task, get, save_result
import help29u


@distribute_task()
def by_sys_modules(x):
    return sys.modules["help29u"].K * x


@distribute_task()
def by_import_module(x):
    return importlib.import_module("help29u").K * x


@distribute_task()
def by_eval(x):
    return eval("help29u.K") * x


def helper():
    return 0


@distribute_task()
def by_dunder_globals(x):
    return helper.__globals__["help29u"].K * x


out = [get(t(2)) for t in (by_sys_modules, by_import_module, by_eval, by_dunder_globals)]
save_result(out)
with open(os.environ["OUT"], "w") as f:
    json.dump(out, f)
"""


def _write(tmp_path: Path, program: str, k: int) -> Path:
    (tmp_path / "help29u.py").write_text(_HELPERS.format(k=k))
    prog = tmp_path / "prog.py"
    prog.write_text(program.format(k=k))
    return prog


def _run(tmp_path: Path, prog: Path, *args: str, fail: bool = False) -> tuple[list[int], str]:
    out = tmp_path / "out.json"
    env = {"OUT": str(out), **(FAIL if fail else {})}
    done = (
        run_cli("run", *args, env=env)
        if args[:1] == ("--resume",)
        else run_cli("run", str(prog), *args, env=env)
    )
    assert done.returncode == (1 if fail else 0), done
    return json.loads(out.read_text()), done.stderr + done.stdout


def test_a_module_read_by_globals_or_pep562_getattr_is_keyed(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """``globals()["SCALE"]`` keys the task's own module whole, ``help29u.LAZY`` (made by the
    module's ``__getattr__``) that function and what it reads: an edit of ``SCALE`` or of
    ``_TABLE`` between two runs gave the first run's results from the cache."""
    cache = ("--cache", "--cache-dir", str(tmp_path / "c"), "--workers", "0")
    prog = _write(tmp_path, _OWN, 1)
    assert _run(tmp_path, prog, *cache)[0] == [2, 20]
    again, said = _run(tmp_path, prog, *cache)
    assert again == [2, 20] and "2 from the cache" in said, said  # keyed, not uncached
    prog = _write(tmp_path, _OWN, 3)
    edited, said = _run(tmp_path, prog, *cache)
    assert edited == [6, 60], said
    assert _run(tmp_path, prog, "--no-cache", "--workers", "0")[0] == edited


def test_a_namespace_read_by_a_computed_name_is_not_cached(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """``sys.modules[...]``, ``importlib.import_module``, ``eval``, ``f.__globals__[...]``
    can reach any module: such a call is not cached, and says why."""
    cache = ("--cache", "--cache-dir", str(tmp_path / "c"), "--workers", "0")
    prog = _write(tmp_path, _UNKNOWN, 1)
    first, said = _run(tmp_path, prog, *cache)
    assert first == [2, 2, 2, 2]
    for how in ("sys.modules", "importlib.import_module", "eval", "a function's __globals__"):
        assert f"reads values by a name it computes, through {how}" in said, said
    assert said.count("are not cached") == 4, said
    prog = _write(tmp_path, _UNKNOWN, 3)
    edited, said = _run(tmp_path, prog, *cache)
    assert edited == [6, 6, 6, 6] == _run(tmp_path, prog, "--no-cache", "--workers", "0")[0]
    assert "from the cache" not in said, said


def test_resume_does_not_reuse_results_of_a_value_read_by_a_computed_name(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """The resume identity of a task is its key's walk: the same gaps reused the results
    of the old values after an edit."""
    prog = _write(tmp_path, _OWN + FAIL_AT_END, 1)
    assert _run(tmp_path, prog, "--workers", "0", fail=True)[0] == [2, 20]
    job = job_dir_of(qshpc_home)
    prog = _write(tmp_path, _OWN + FAIL_AT_END, 3)
    assert _run(tmp_path, prog, "--resume", str(job), "--workers", "0")[0] == [6, 60]
    prog = _write(tmp_path, _UNKNOWN + FAIL_AT_END, 1)
    assert _run(tmp_path, prog, "--workers", "0", fail=True)[0] == [2, 2, 2, 2]
    job = job_dir_of(qshpc_home)
    prog = _write(tmp_path, _UNKNOWN + FAIL_AT_END, 3)
    assert _run(tmp_path, prog, "--resume", str(job), "--workers", "0")[0] == [6, 6, 6, 6]


# -- 2. the "not cached" line once per function and reason ---------------------------------

_PARTIALS = """\
import functools, sys, threading
from qshpc import distribute_task, get
LOCK = threading.Lock()


def f(a, x):
    return {read} a + x


def g(a, x):
    return {read} a * x


print([get(distribute_task()(functools.partial(h, i))(2)) for i in range(3) for h in (f, g)])
"""


def test_not_cached_is_said_once_for_a_partial_task_built_per_call(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """``distribute_task()(partial(f, i))`` in a loop: a new task object at each call, and
    the "not cached" line was said at each one; now once per function and reason."""
    prog = tmp_path / "prog.py"
    # a lock cannot go to a worker: a name read through sys.modules there
    for workers, read in (("0", "LOCK.locked() or"), ("1", 'sys.modules["sys"] and')):
        prog.write_text(_PARTIALS.format(read=read))
        done = run_cli("run", str(prog), "--cache", "--cache-dir", str(tmp_path / "c"),
                       "--workers", workers)  # fmt: skip
        assert done.returncode == 0, done
        assert "[2, 0, 3, 2, 4, 4]" in done.stdout, done
        lines = [ln for ln in done.stderr.splitlines() if "are not cached" in ln]
        assert len(lines) == 2, done.stderr  # one for f, one for g
        assert "calls of partial(f) are not cached" in lines[0], lines
        assert "calls of partial(g) are not cached" in lines[1], lines


# -- 3. review53 K4: an exception that cannot be read ---------------------------------------

ODD = """\
from qshpc import distribute_task, get, save_result
from qshpc.errors import TaskError


class Odd(Exception):
    def __getattr__(self, name):
        return self.missing  # recurses


class Raising(Exception):
    def __getattr__(self, name):
        raise ValueError("no attributes here")


@distribute_task()
def boom(kind):
    raise (Odd if kind == "odd" else Raising)("a message")


@distribute_task()
def ok(x):
    return x + 1


seen = []
for kind in ("odd", "raising"):
    try:
        get(boom(kind))
    except TaskError as e:
        seen.append([type(e).__name__, str(e).splitlines()[0], e.cause is None])
save_result({"seen": seen, "later": [get(ok(i)) for i in range(4)]})
"""


def check_odd(done: object, result: dict[str, object], rank: str) -> None:
    """What :data:`ODD` must give: TaskErrors naming the class, later tasks run."""
    assert result["later"] == [1, 2, 3, 4], done
    seen = result["seen"]
    assert isinstance(seen, list) and len(seen) == 2, done
    for (cls, head, no_cause), name in zip(seen, ("__main__.Odd", "__main__.Raising"), strict=True):
        assert cls == "TaskError" and no_cause, seen
        assert head.startswith("task "), head
        assert f"failed on rank {rank}" in head, head
        assert f"{name}: (this exception could not be described: reading it raised" in head
    assert "RecursionError" in seen[0][1] and "ValueError" in seen[1][1], seen


def test_an_exception_whose_getattr_recurses_fails_its_call_not_the_worker(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """review53 K4: at workers 1 the worker died ("lost sys.stderr"), the run waited 30 s
    for its heartbeat and every later call got WorkerLostError; at workers 0 ``get``
    raised a bare RecursionError."""
    from qshpc.client.job import open_job

    prog = tmp_path / "odd.py"
    prog.write_text(ODD)
    for workers, rank in (("0", "0"), ("1", "1")):
        done = run_cli("run", str(prog), "--workers", workers, timeout=60)
        assert done.returncode == 0, done
        assert "lost sys.stderr" not in done.stderr + done.stdout, done
        check_odd(done, open_job(job_dir_of(qshpc_home)).result(), rank)


# -- 4. review53 K5: Fortran order ---------------------------------------------------------

FORTRAN = """\
import numpy as np
from qshpc import distribute_task, get, put, save_result


@distribute_task()
def echo(a):
    return a


@distribute_task()
def make():
    a = np.asfortranarray(np.arange(24.0).reshape(2, 3, 4))
    a.flags.writeable = False  # read-only, equal to the array put below
    return a


F = np.asfortranarray(np.arange(24.0).reshape(2, 3, 4))
ref = put(F)
out = []
for x in (get(echo(ref)), get(echo(F)), get(make())):
    f = x.flags
    out.append([f.f_contiguous, f.c_contiguous, f.writeable, list(x.strides), bool((x == F).all())])
save_result(out)
"""


def test_fortran_order_is_kept_for_a_put_array_echoed_and_a_read_only_result(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """review53 K5: ``get(echo(put(F)))`` and a read-only F result, in a run holding a
    ``put`` array, came back C-ordered at workers >= 1 (the writeable copy was made in C
    order); as at workers 0 now."""
    from qshpc.client.job import open_job

    prog = tmp_path / "fortran.py"
    prog.write_text(FORTRAN)
    want = [[True, False, True, [8, 16, 48], True]] * 3
    for workers in ("0", "1"):
        done = run_cli("run", str(prog), "--workers", workers)
        assert done.returncode == 0, done
        assert open_job(job_dir_of(qshpc_home)).result() == want, workers


# -- 5. review54: a call queued behind the running one on a lost worker ---------------------

_STOPPED = """\
import os, signal, time
from qshpc import distribute_task, get
from qshpc.errors import TaskError


@distribute_task()
def stop(x):
    if x == 1:
        os.kill(os.getpid(), signal.SIGSTOP)  # its worker stops answering: lost
    return x


first = stop(1)
time.sleep(0.5)  # sent apart: a batch of its own, queued behind the stopped call
second = stop(3)
for r in (first, second):
    try:
        get(r)
    except TaskError:
        pass
"""


def test_a_call_queued_behind_the_running_one_on_a_lost_worker_never_started(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """review54 LOW: the first call of each batch a lost worker held was recorded as
    started when it was sent: two calls drawn running at once on one worker. Only the
    one that ran is now; the call behind it starts and ends at the loss (0 s of work)."""
    from qshpc.client.job import open_job

    prog = tmp_path / "stopped.py"
    prog.write_text(_STOPPED)
    done = run_cli("run", str(prog), "--workers", "1", env={"QSHPC_WORKER_TIMEOUT_S": "3"})
    assert "stopped responding" in done.stdout + done.stderr, done
    tasks = {t["task_id"]: t for t in open_job(job_dir_of(qshpc_home)).tasks()}
    ran, queued = tasks["0"], tasks["1"]
    assert ran["state"] == queued["state"] == "FAILED", tasks
    assert ran["started"] < ran["finished"], ran  # it ran from when it was sent
    assert queued["started"] == queued["finished"] == ran["finished"], queued  # never taken


def test_a_method_named_eval_or_exec_is_no_builtin() -> None:
    """``model.eval()`` (torch) or ``app.exec()`` names no builtin: still keyed; the
    builtins by their bare name or from ``builtins`` are counted, in nested code too."""
    from qshpc.cache.keyreads import computed_reads

    def method(m: Any) -> Any:
        return m.eval(), m.exec()

    def bare(x: Any) -> Any:
        return (lambda: eval("x"))()

    def from_builtins() -> Any:
        import builtins

        return builtins.exec

    def own() -> Any:
        return globals()["K"]

    def by_inspect(f: Any) -> Any:
        import inspect

        return inspect.getmodule(f).K  # type: ignore[union-attr]

    assert computed_reads(method.__code__) == (False, None)
    assert computed_reads(bare.__code__) == (False, "eval")
    assert computed_reads(from_builtins.__code__) == (False, "exec")
    assert computed_reads(own.__code__) == (True, None)
    assert computed_reads(by_inspect.__code__) == (False, "inspect.getmodule")
