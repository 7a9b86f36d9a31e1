"""Rank 0 keeps a large task result only in the job's store and reads it back at each get
(session 26, fix42a; review38 F4: rank 0 held every result until the program took it, and
a job whose results exceeded its memory failed in ``get`` though all were stored)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import job_dir_of, run_cli

pytestmark = [pytest.mark.mpi]

# 16 results of 8 MiB (just over QSHPC_RESULT_MEMORY_MAX's 8 MiB once encoded): the program
# waits for all of them, then gets each and drops it. Rank 0 held all 128 MiB before.
STREAM = """
import json, resource, sys
import numpy as np
from qshpc import distribute_task, get, save_result, wait

N, MB = 16, 8

@distribute_task()
def make(i):
    return np.arange(MB * 1024 * 1024 // 8, dtype=np.float64) + i

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

base = peak()
refs = [make(i) for i in range(N)]
wait(refs, num_returns=N)
ok = True
while refs:
    r = refs.pop(0)
    a = get(r)
    i = int(a[0])
    want = np.arange(MB * 1024 * 1024 // 8, dtype=np.float64) + i
    ok &= a.dtype == want.dtype and a.shape == want.shape and bool(np.array_equal(a, want))
    ok &= a.flags.writeable and a.flags.c_contiguous and a.flags.aligned
    del a, want, r
grown = peak() - base
save_result({"ok": bool(ok), "grown": grown, "total": N * MB << 20})
print("RESULT", json.dumps({"ok": bool(ok), "grown": grown}), flush=True)
"""


@pytest.mark.parametrize(
    "how", ["workers1", "workers0", "mpiexec3"], ids=["workers1", "workers0", "mpiexec3"]
)
def test_rank0_memory_stays_bounded_by_what_the_program_keeps(
    qshpc_home: Path, tmp_path: Path, how: str
) -> None:
    prog = tmp_path / "stream.py"
    prog.write_text(STREAM)
    if how == "mpiexec3":
        out = run_cli("run", str(prog), ranks=3, timeout=300)
    else:
        out = run_cli("run", str(prog), "--workers", how[-1], timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    res = json.loads(out.stdout.split("RESULT ", 1)[1].splitlines()[0])
    assert res["ok"], res
    # what rank 0 held at most beyond its start: a result or two (the one the program
    # holds, the one on its way), never the 128 MiB of them all
    assert res["grown"] < 64 << 20, res


def _run(prog: Path, source: str, workers: str, env: dict[str, str]) -> Any:
    """``qshpc run PROG --workers W`` of ``source`` with a 64 KiB threshold (and ``env``)."""
    prog.write_text(source)
    env = {"QSHPC_RESULT_MEMORY_MAX": "65536", **env}
    return run_cli("run", str(prog), "--workers", workers, timeout=300, env=env)


# Values of many kinds, each over a 64 KiB threshold, read back exactly.
KINDS = """
import collections, json
import numpy as np
from qshpc import distribute_task, get, save_result

class Box:
    def __init__(self, a):
        self.a = a
    def __eq__(self, other):
        return type(other) is Box and np.array_equal(self.a, other.a)

def values():
    rng = np.random.default_rng(7)
    return {
        "f64": rng.random(20000),
        "c128": (rng.random(9000) + 1j * rng.random(9000)).reshape(90, 100),
        "i8": rng.integers(-128, 127, 100000, dtype=np.int8),
        "big_endian": rng.random(20000).astype(">f4"),
        "record": np.zeros(10000, dtype=[("x", "<i4"), ("y", "<f8")]),
        "fortran": np.asfortranarray(rng.random((300, 100))),
        "dict": {"counts": {format(i, "016b"): i for i in range(6000)}, "arr": rng.random(10000)},
        "list": [rng.random(5000), rng.random(5000), "tail"],
        "bytes": bytes(range(256)) * 400,
        "masked": np.ma.MaskedArray(rng.random(20000), mask=rng.random(20000) > 0.5),
        "defaultdict": collections.defaultdict(int, {i: float(i) for i in range(9000)}),
        "box": Box(rng.random(20000)),
    }

@distribute_task()
def make(name):
    return values()[name]

@distribute_task()
def total(x):
    return float(np.sum(x))

def same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ma.MaskedArray):
        return (a.dtype == b.dtype and np.array_equal(a.data, b.data)
                and np.array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b)))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b

want = values()
refs = {k: make(k) for k in want}
report = {}
for k, r in refs.items():
    one, two = get(r), get(r)
    ok = same(one, want[k]) and same(two, want[k]) and one is not two
    if isinstance(one, np.ndarray):
        ok &= bool(one.flags.writeable)
        one[...] = 0  # a change to what one get gave never reaches the next
        ok &= same(get(r), want[k])
    ok &= r.result() is r.result() and same(r.result(), want[k])  # the future's: one object
    report[k] = bool(ok)
# a finished reference as a task's argument: its value travels
report["argument"] = get(total(refs["f64"])) == float(np.sum(want["f64"]))
save_result(report)
print("RESULT", json.dumps(report), flush=True)
"""


@pytest.mark.parametrize("workers", ["1", "0"])
def test_results_read_back_from_the_store_are_exact(
    qshpc_home: Path, tmp_path: Path, workers: str
) -> None:
    out = _run(tmp_path / "kinds.py", KINDS, workers, {})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = json.loads(out.stdout.split("RESULT ", 1)[1].splitlines()[0])
    assert report and all(report.values()), report


# The program damages its job's journal, where a large result waits, then gets it.
DAMAGE = """
import os, sys
from pathlib import Path
import numpy as np
from qshpc import distribute_task, get, save_result, wait

@distribute_task()
def make():
    return np.ones(1 << 20)

ref = make()
wait([ref])
job = sorted(Path(os.environ["QSHPC_HOME"], "jobs").iterdir())[-1]
journal = job / "job.journal"
os.truncate(journal, journal.stat().st_size - 4096)
try:
    get(ref)
except Exception as exc:
    print("ERROR", type(exc).__name__, exc, flush=True)
"""


def test_a_result_that_cannot_be_read_back_names_task_and_job(
    qshpc_home: Path, tmp_path: Path
) -> None:
    out = _run(tmp_path / "damage.py", DAMAGE, "1", {"QSHPC_CHECKPOINT_S": "3600"})
    job = job_dir_of(qshpc_home).name
    line = out.stdout.split("ERROR ", 1)[1].splitlines()[0]
    assert line.startswith("StoreError"), line
    assert "cannot read back the result of task 0 (make)" in line, line
    assert f"of job {job}" in line and "QSHPC_RESULT_MEMORY_MAX" in line, line
    assert "Traceback" not in out.stdout, out.stdout


@pytest.mark.parametrize(
    ("name", "value"), [("QSHPC_RESULT_MEMORY_MAX", "1000"), ("QSHPC_RESULT_MEMORY_TOTAL", "-1")]
)
def test_a_bad_threshold_is_refused_before_the_job_starts(
    tmp_path: Path, name: str, value: str
) -> None:
    """(and session 27, fixJ: the total)"""
    prog = tmp_path / "ok.py"
    prog.write_text("print('ran')\n")
    out = run_cli("run", str(prog), "--workers", "1", env={name: value})
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"{name}='{value}' is not valid" in out.stderr, out.stderr
    assert "ran" not in out.stdout and "Traceback" not in out.stderr
