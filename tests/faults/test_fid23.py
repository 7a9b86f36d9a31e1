"""A resumed job hands the program what the tasks returned, not the store's flattened copies
(review28 F2, F4).

The first run stores a masked array and a ``defaultdict`` and fails on a third task;
``--resume`` reuses the masked array (the store keeps its mask since session 23) and
runs the ``defaultdict`` task again (its record says the store keeps it as a dict).
On db7f14c the resumed program got the array unmasked (mean 168.0, not 2.0) and a
dict (``t["new"]`` raised KeyError): the job FAILED.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import job_dir_of, run_cli

pytestmark = pytest.mark.mpi

PROGRAM = """
import collections
import os

import numpy as np

from qshpc import distribute_task, get, get_arguments, save_result

ARGS = get_arguments()


def _ran(name):
    with open(ARGS["log"], "a") as f:
        f.write(name + "\\n")


@distribute_task()
def clean(x):
    _ran("clean")
    return np.ma.masked_greater(np.asarray(x, float), 100)


@distribute_task()
def tally(word):
    _ran("tally")
    return collections.defaultdict(list, {"w": [word]})


@distribute_task()
def flaky(i):
    if os.path.exists(ARGS["fail"]):
        raise RuntimeError("node hiccup")
    return i


a = get(clean([1, 500, 3]))
t = get(tally("x"))
b = get(flaky(1))
t["new"].append(1)  # a KeyError when t came back a dict
save_result({"mean": float(a.mean()), "tally": type(t).__name__, "masked": int(a.mask.sum())})
"""


@pytest.mark.parametrize(("workers", "ranks"), [("0", None), ("1", None), (None, 3)])
def test_resume_gives_back_what_the_tasks_returned(
    qshpc_home: Path, tmp_path: Path, workers: str | None, ranks: int | None
) -> None:
    prog, log, fail = tmp_path / "prog.py", tmp_path / "ran.log", tmp_path / "FAIL"
    prog.write_text(PROGRAM)
    fail.touch()
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"log": str(log), "fail": str(fail)}))
    how = ["--workers", workers] if workers else []  # else under mpiexec -n 3
    first = run_cli("run", str(prog), "--arguments", str(args), *how, ranks=ranks)
    assert first.returncode != 0 and "node hiccup" in first.stdout + first.stderr
    job = job_dir_of(qshpc_home)
    fail.unlink()
    log.unlink()

    out = run_cli("run", str(prog), "--resume", str(job), *how, ranks=ranks)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert log.read_text().split() == ["tally"]  # clean reused, tally run again
    assert "1 reused from the store" in out.stdout
    assert "1 run again: the store did not hold their results exactly" in out.stdout
    res = json.loads(run_cli("result", str(job), "--json").stdout)
    assert res == {"mean": 2.0, "tally": "defaultdict", "masked": 1}
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        said = {(t["function"].rsplit(".", 1)[-1], t["provenance"].get("qshpc.inexact"))
                for t in r.tasks() if t["state"] == "SUCCEEDED"}  # fmt: skip
    assert said == {("clean", None), ("tally", "collections.defaultdict"), ("flaky", None)}
