"""Rank 0 working calls itself (QSHPC_ROOT_WORKS=1) runs them as the workers do.

Found by review (issue 18): rank 0 ran the program's function object, whose
globals the program may have rebound since its first call, while the workers
ran the function as shipped at that call: a result depended on the rank that
ran it, and the cache stored it under the key of the shipped function.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.mpi

PROGRAM = """\
import time
from qshpc import distribute_task, get, save_result

SCALE = 1

@distribute_task(cache=True)
def f(x):
    time.sleep(0.01)
    return x * SCALE

get(f(0))          # the function travels now, with SCALE = 1
SCALE = 1000
save_result(get([f(i) for i in range(1, 60)]))
"""


def test_rank0_runs_the_shipped_function(qshpc_home: Path, tmp_path: Path) -> None:
    prog = tmp_path / "rebind.py"
    prog.write_text(PROGRAM)
    for run in range(2):  # the second run takes every result from the cache
        out = run_cli("run", str(prog), "--workers", "1",
                      env={"QSHPC_ROOT_WORKS": "1"}, timeout=300)  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        job = [ln.split()[2] for ln in out.stdout.splitlines() if ln.startswith("qshpc: job ")][-1]
        res = run_cli("result", job, "--json")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout) == list(range(1, 60)), f"run {run}"
