"""A task made of a ``functools.partial``: its name and its identity on resume."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qshpc import distribute_task
from qshpc.program.backend import function_digest

REPO = Path(__file__).resolve().parents[2]

DIGEST = """
import functools, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from partial_energy import energy
from qshpc.program.backend import function_digest
table = np.arange(5000.0)
print(function_digest(functools.partial(energy, table, scale=2)).hex())
"""


def energy(table: np.ndarray, x: float, scale: int = 1) -> float:
    return float(table.sum() * x * scale)


def test_a_partial_task_is_named_by_its_function() -> None:
    """On e5f893c its name was the partial's repr: `functools.partial(<function energy at
    0x...>, array([...]))`, multi-line for a large array, in every record and table."""
    task = distribute_task()(functools.partial(energy, np.zeros((300, 300))))
    assert task.name == "partial(energy)"
    assert distribute_task(name="mine")(functools.partial(energy, 1)).name == "mine"


def test_a_partial_tasks_digest_is_its_function_and_arguments_by_value(tmp_path: Path) -> None:
    """On e5f893c the digest (a task's identity when a job is resumed) was the repr's: the
    function's address made it new in every process (a resumed job ran every partial
    task again), and two arrays that differ only in the middle printed alike."""
    (tmp_path / "partial_energy.py").write_text(
        "def energy(table, x, scale=1):\n    return float(table.sum() * x * scale)\n"
    )
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    runs = {
        subprocess.run(
            [sys.executable, "-c", DIGEST, str(tmp_path)],
            capture_output=True, text=True, check=True, env={**env, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }  # fmt: skip
    assert len(runs) == 1
    table = np.arange(5000.0)
    other = table.copy()
    other[2500] = -1.0  # numpy's repr shows neither
    assert repr(table) == repr(other)
    same = function_digest(functools.partial(energy, table))
    assert same == function_digest(functools.partial(energy, table.copy()))
    assert same != function_digest(functools.partial(energy, other))
    assert same != function_digest(functools.partial(energy, table, scale=3))


PROGRAM = """
import functools, os
import numpy as np
from qshpc import distribute_task, get, save_result

def energy(table, x):
    return float(table.sum() * x)

task = distribute_task()(functools.partial(energy, np.arange(3000.0)))
values = get([task(i) for i in range(4)])
if os.environ.get("FAIL_ONCE") and not os.path.exists(os.environ["FAIL_ONCE"]):
    open(os.environ["FAIL_ONCE"], "w").close()
    raise RuntimeError("after the tasks")
save_result(values)
"""


@pytest.mark.mpi
def test_a_resumed_job_reuses_its_partial_tasks(qshpc_home: Path, tmp_path: Path) -> None:
    """On e5f893c every partial task ran again on --resume (its digest held an address)."""
    from tests.conftest import job_dir_of, run_cli

    prog = tmp_path / "partial_prog.py"
    prog.write_text(PROGRAM)
    env = {"FAIL_ONCE": str(tmp_path / "failed")}
    first = run_cli("run", str(prog), "--workers", "1", env=env, timeout=90)
    assert first.returncode == 1, first.stderr
    job = job_dir_of(qshpc_home)
    again = run_cli("run", str(prog), "--resume", str(job), "--workers", "1", env=env, timeout=90)
    assert again.returncode == 0, again.stderr
    assert "0 tasks run, 4 reused from the store" in again.stdout + again.stderr
