"""Session 23's unpk23 (review28 F3, F6): a value that cannot be unpickled fails one call, not the job.

Each test failed on db7f14c (/tmp/baseMain; what it did there is said in the test).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import job_dir_of, run_cli


def unloadable(name: str, error: str, text: str) -> str:
    """A program's class ``name`` whose instances pickle where they are made and raise
    ``error(text)`` wherever they are unpickled (a handle, a device array)."""
    return (
        f"class {name}:\n"
        "    def __init__(self, v):\n"
        "        self.v = v\n"
        "    def __setstate__(self, st):\n"
        f"        raise {error}({text!r})\n"
    )


# Call 13's value cannot be rebuilt off the worker; calls 20-23 return arrays too large to
# travel encoded (the store's copy is made on rank 0, from the value itself).
BOOMBATCH = (
    """
import json
import numpy as np
from qshpc import distribute_task, get, save_result

"""
    + unloadable("Boom", "RuntimeError", "cannot rebuild Boom here")
    + """
@distribute_task()
def work(i):
    if i == 13:
        return Boom(i)
    return np.full(20_000, float(i)) if 20 <= i < 24 else i * i

refs = [work(i) for i in range(40)]
out, errors = [], []
for i, r in enumerate(refs):
    try:
        v = get(r)
        out.append(float(v.sum()) if hasattr(v, "sum") else v)
    except Exception as e:
        out.append(None)
        errors.append(f"{type(e).__name__}|{e}")
out.append(get(work(5)))  # the dispatcher serves on
print("ERRORS", json.dumps(errors))
save_result({"out": out})
"""
)

RESULTIMPORT = """
import os, sys
from qshpc import distribute_task, get, save_result
LIB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wlib")

@distribute_task()
def make(v):
    sys.path.insert(0, LIB)  # the task finds its own helper library: rank 0 does not
    import wmod
    return [v, wmod.Thing(v)]

@distribute_task()
def plain(v):
    return v + 1

try:
    get(make(3))
    said = "no error"
except Exception as e:
    said = str(e)
print("SAID", said.splitlines()[0])
save_result({"after": get([plain(i) for i in range(5)])})
"""

FNBOOM = (
    """
from qshpc import distribute_task, get, save_result

"""
    + unloadable("Handle", "OSError", "handle cannot be reopened here")
    + """
DEVICE = Handle(7)  # a global the task reads

@distribute_task()
def use(i):
    return DEVICE.v + i

@distribute_task()
def fine(i):
    return i

out = []
for f in (fine, use, fine, use, fine):
    try:
        out.append(get([f(i) for i in range(4)]))
    except Exception as e:
        out.append(str(e).splitlines()[0])
save_result({"out": out})
"""
)

SYSPATH = """
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "plib"))
from helper import triple  # found through the program's own sys.path change
from qshpc import distribute_task, get, save_result

@distribute_task()
def point(i):
    return triple(i)

@distribute_task()
def other(i):
    return -i

try:
    got = get(point(2))
except Exception as e:
    got = str(e).splitlines()[0]
save_result({"point": got, "other": get([other(i) for i in range(3)])})
"""

# A task that breaks the worker's loop (time.sleep, which it calls between batches).
BREAKS = """
import time
from qshpc import distribute_task, get, save_result

@distribute_task()
def spoil(i):
    time.sleep = None
    return i

print(get(spoil(1)))
save_result({"ok": True})
"""


def _result(home: Path) -> dict[str, object]:
    out = run_cli("result", str(job_dir_of(home)), "--json")
    assert out.returncode == 0, out.stderr
    loaded: dict[str, object] = json.loads(out.stdout)
    return loaded


def _status(home: Path) -> str:
    return run_cli("status", str(job_dir_of(home))).stdout


def test_a_value_rank0_cannot_rebuild_fails_its_call_alone(
    tmp_path: Path, qshpc_home: Path
) -> None:
    # On db7f14c every get raised "cannot rebuild Boom here", the job ended FAILED
    # (16 tasks run) with "the dispatcher failed", and the saved result was empty.
    prog = tmp_path / "boombatch.py"
    prog.write_text(BOOMBATCH)
    out = run_cli("run", str(prog), ranks=3)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    errors = json.loads(out.stdout.split("ERRORS ", 1)[1].splitlines()[0])
    assert len(errors) == 1, errors
    kind, text = errors[0].split("|", 1)
    assert kind == "TaskError(SerializationError)"
    first = text.splitlines()[0]
    assert first.startswith("task 13 (work) failed on rank "), first
    assert "cannot be loaded on rank 0" in first and "cannot rebuild Boom here" in first, first
    assert "return plain data" in first, first
    want: list[object] = [i * i for i in range(40)]
    for i in range(20, 24):
        want[i] = 20_000.0 * i
    want[13] = None
    assert _result(qshpc_home)["out"] == [*want, 25]
    status = _status(qshpc_home)
    assert "SUCCEEDED" in status and "40 done, 1 failed" in status, status


def test_a_class_only_the_worker_imports_says_so(tmp_path: Path, qshpc_home: Path) -> None:
    # On db7f14c: "the dispatcher failed: No module named 'wmod'", and the next call got
    # "RuntimeError: the qshpc dispatcher stopped"; the job FAILED.
    (tmp_path / "wlib").mkdir()
    (tmp_path / "wlib" / "wmod.py").write_text(
        "class Thing:\n    def __init__(self, v):\n        self.v = v\n"
    )
    prog = tmp_path / "resultimport.py"
    prog.write_text(RESULTIMPORT)
    out = run_cli("run", str(prog), "--workers", "1")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    said = out.stdout.split("SAID ", 1)[1].splitlines()[0]
    assert said.startswith("task 0 (make) failed on rank 1, host "), said
    assert "No module named 'wmod'" in said and "sys.path" in said, said
    assert _result(qshpc_home) == {"after": [1, 2, 3, 4, 5]}
    # the store says the same as the program: that call failed, with why
    from qshpc.store import JobReader

    with JobReader.open(job_dir_of(qshpc_home)) as r:
        tasks = {t["task_id"]: t for t in r.tasks()}
    assert tasks["0"]["state"] == "FAILED" and "No module named 'wmod'" in tasks["0"]["error"]
    assert [tasks[str(i)]["state"] for i in range(1, 6)] == ["SUCCEEDED"] * 5


def test_a_function_whose_global_fails_to_unpickle_fails_its_calls_only(
    tmp_path: Path, qshpc_home: Path
) -> None:
    # On db7f14c the worker rank died at the function's unpickling: under mpiexec -n 3
    # "rank N on vm held ... unfinished task(s)"; with one worker each call waited 30 s
    # for a heartbeat, then WorkerLostError.
    prog = tmp_path / "fnboom.py"
    prog.write_text(FNBOOM)
    out = run_cli("run", str(prog), ranks=3, timeout=60)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    got = _result(qshpc_home)["out"]
    assert isinstance(got, list)
    assert got[0] == got[2] == got[4] == [0, 1, 2, 3], got
    for said in (got[1], got[3]):
        assert isinstance(said, str) and "(use) failed on rank " in said, said
        assert "the task function use cannot be unpickled on rank" in said, said
        assert "handle cannot be reopened here" in said and "make it inside" in said, said


def test_a_module_found_through_the_programs_sys_path_is_named(
    tmp_path: Path, qshpc_home: Path
) -> None:
    # On db7f14c (review28's p17_env): the worker died with ModuleNotFoundError outside any
    # task, the job FAILED with "the MPI ranks exited with code 9", 0 tasks run.
    (tmp_path / "plib").mkdir()
    (tmp_path / "plib" / "helper.py").write_text("def triple(i):\n    return 3 * i\n")
    prog = tmp_path / "syspath.py"
    prog.write_text(SYSPATH)
    out = run_cli("run", str(prog), "--workers", "1", timeout=60)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    got = _result(qshpc_home)
    assert got["other"] == [0, -1, -2], got
    said = got["point"]
    assert isinstance(said, str) and "No module named 'helper'" in said, said
    assert "PYTHONPATH" in said and "sys.path" in said, said


def test_a_workers_internal_error_is_in_its_log(tmp_path: Path, qshpc_home: Path) -> None:
    # On db7f14c the worker's traceback reached the terminal only: logs/rank-1.out was
    # empty, so `qshpc logs` never showed why the rank died.
    prog = tmp_path / "breaks.py"
    prog.write_text(BREAKS)
    run_cli("run", str(prog), "--workers", "1", timeout=60)
    log = (job_dir_of(qshpc_home) / "logs" / "rank-1.out").read_text()
    assert "rank 1 on host" in log and "Traceback" in log, log
    assert "'NoneType' object is not callable" in log, log
