"""Session 12, review12b: the hunt branches' fixes, reviewed with real calls."""

from __future__ import annotations

import asyncio

import pytest

from qshpc import distribute_task, get
from qshpc.task import context


@distribute_task()
def _inner(x: int) -> tuple[int, str | None]:
    t = context.current_task()
    return x, None if t is None else t.task_id


@distribute_task()
async def _outer(x: int) -> tuple[str | None, int | None, tuple[int, str | None]]:
    await asyncio.sleep(0)
    t = context.current_task()
    return (None if t is None else t.task_id, None if t is None else t.seed, get(_inner(x)))


def test_an_async_task_under_a_running_loop_is_still_its_task(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An `async def` task called where an event loop runs (a notebook, a program's
    `asyncio.run(main())` under plain python or `mpiexec -n 1`) ran in a helper thread that
    knew no task (on a4e8063): `current_task()` None, no seed, and its nested calls took
    top-level ids ('1', '3' for '0.0', '1.0'), so other seeds than under `-n 2`."""
    monkeypatch.setattr(context, "_job_seed", 3)

    async def main() -> list[tuple[str | None, int | None, tuple[int, str | None]]]:
        return get([_outer(i) for i in range(2)])

    out = asyncio.run(main())
    for i, (task_id, seed, (x, inner_id)) in enumerate(out):
        assert task_id is not None and seed is not None
        assert (x, inner_id) == (i, f"{task_id}.0")
    assert context.current_task() is None  # nothing left behind in this thread
