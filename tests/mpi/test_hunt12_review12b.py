"""Session 12, review12b: what rank 0 runs itself names its nested calls as a worker does."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_program

pytestmark = pytest.mark.mpi

NESTED = """
from qshpc import distribute_task, get, save_result
from qshpc.task.context import current_task, rank_info


@distribute_task()
def inner(x):
    return current_task().task_id


@distribute_task()
def outer(x):
    return current_task().task_id, get(inner(x)), rank_info().rank


@distribute_task()
def last():
    return current_task().task_id


pairs = get([outer(i) for i in range(8)])
save_result({"pairs": pairs, "last": get(last())})
"""


def test_calls_rank_0_runs_itself_name_their_nested_calls_as_a_worker(
    qshpc_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under `QSHPC_ROOT_WORKS=1` a call rank 0 ran itself gave its nested call the next
    top-level id (2 for 1.0, on a4e8063): which calls rank 0 takes depends on timing, so
    the ids, and seeds (`--seed`), of every later call did too, and differed from `-n 2`."""
    monkeypatch.setenv("QSHPC_ROOT_WORKS", "1")
    job = run_program(qshpc_home, tmp_path / "nested.py", NESTED, "--seed", "3", ranks=2)
    out = job.result()
    assert [(t, n) for t, n, _ in out["pairs"]] == [(str(i), f"{i}.0") for i in range(8)]
    assert out["last"] == "8"
