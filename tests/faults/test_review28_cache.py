"""review28: a cache hit is what the task returned, or there is no hit.

F1: a result holding an instance of a class of the program file (which pickle
cannot write by name on a worker) was cached as the blob encoding's closest copy:
the warm run's masked array had lost its mask (a mean of 333333373 instead of
60) and its matrix was an ndarray. F18: a result the job store refused (the
call failed, nested too deep) was cached all the same: the warm run succeeded
where the cold run had failed.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import run_cli

FIT = """\
import dataclasses
from collections import Counter
import numpy as np
from qshpc import distribute_task, get


@dataclasses.dataclass
class Calib:
    qubit: int
    t1_us: float


@distribute_task()
def calibrate(q):
    t1 = np.ma.masked_greater(np.array([50.0, 1e9, 70.0]), 1e6)  # 1e9: a failed fit
    return {"calib": Calib(q, float(t1.mean())), "t1": t1, "rot": np.matrix([[0, 1], [1, 0]])}


@distribute_task()
def histogram(q):
    return {"calib": Calib(q, 1.0), "hist": Counter("aab")}


r = get(calibrate(0))
h = get(histogram(1))
print("OUT", {"mean": float(r["t1"].mean()), "masked": type(r["t1"]).__name__,
              "rot": type(r["rot"]).__name__, "calib": type(r["calib"]).__name__,
              "t1_us": r["calib"].t1_us, "hist": type(h["hist"]).__name__,
              "most": h["hist"].most_common(1)})
"""

DEEP = """\
from qshpc import distribute_task, get, TaskError


@distribute_task()
def deep(n):
    x = 0
    for _ in range(n):
        x = [x]
    return x


try:
    get(deep(600))
    print("OUT", repr("ok"))
except TaskError as exc:
    print("OUT", repr("TaskError"))
"""


def _out(text: str) -> object:
    lines = [ln for ln in text.splitlines() if ln.startswith("OUT ")]
    assert lines, text[-3000:]
    return ast.literal_eval(lines[-1][4:])


def _twice(tmp_path: Path, source: str) -> tuple[object, object, str]:
    prog = tmp_path / "prog.py"
    prog.write_text(source)
    cache = str(tmp_path / "cache")
    outs = []
    for _ in range(2):
        r = run_cli("run", "--workers", "1", "--cache", "--cache-dir", cache, str(prog))
        outs.append(r)
    return _out(outs[0].stdout), _out(outs[1].stdout), outs[1].stdout + outs[1].stderr


def test_a_result_holding_a_program_class_is_not_cached_as_a_lossy_copy(tmp_path: Path) -> None:
    cold, warm, text = _twice(tmp_path, FIT)
    assert cold == {
        "mean": 60.0, "masked": "MaskedArray", "rot": "matrix", "calib": "Calib", "t1_us": 60.0,
        "hist": "Counter", "most": [("a", 2)],
    }  # fmt: skip
    assert warm == cold, text[-3000:]
    # The first is cached (the dataclass by value, review29 F2), the second is not (the
    # store keeps a Counter as a dict): it runs again.
    assert "1 tasks run, 1 from the cache" in text or "1 task run, 1 from the cache" in text, text


def test_a_result_the_store_refused_is_not_cached(tmp_path: Path) -> None:
    cold, warm, text = _twice(tmp_path, DEEP)
    assert cold == "TaskError"
    assert warm == "TaskError", text[-3000:]
