"""Session 12, review12b: the hunt branches' fixes, reviewed with real calls."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

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


HOLD = """\
import sys, time
from pathlib import Path
from qshpc.store.lock import JobLock
JobLock(Path(sys.argv[1]), "rank 0", {"SLURM_JOB_ID": "4242"}).acquire()  # an srun step
print("held", flush=True)
time.sleep(600)
"""

WATCH = """\
import sys, time
from pathlib import Path
from qshpc.runtime.orphan import Rank0Watch
from qshpc.store import holders
asked = []
holders.slurm_job_over = lambda job, cluster: asked.append(job) or False
w = Rank0Watch(Path(sys.argv[1]), 1, every=0.2)
assert w.holder is not None
time.sleep(float(sys.argv[2]))
w.stop()
print("stopped", len(asked), flush=True)
"""


def _hold(job: Path, wrap: list[str]) -> subprocess.Popen[bytes]:
    holder = subprocess.Popen([*wrap, sys.executable, "-c", HOLD, str(job)], stdout=subprocess.PIPE)
    assert holder.stdout is not None
    if holder.stdout.readline() != b"held\n":
        holder.kill()
        holder.wait()
        pytest.skip(f"cannot start a holder under {wrap} (needs root: unshare)")
    return holder


def _watch(job: Path, seconds: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WATCH, str(job), str(seconds)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_worker_that_cannot_see_rank_0s_pid_serves_on(tmp_path: Path) -> None:
    """Rank 0 in a PID namespace of its own on the same host (a container per task): its
    pid, as its lock names it, is not this worker's. On a4e8063 every such worker ended
    3 reads after its start ('rank 0 ... is gone'), rank 0 alive and refreshing."""
    job = tmp_path / "job"
    job.mkdir()
    # --kill-child: the holder (unshare's child) ends with it (it slept 600 s after the test)
    holder = _hold(job, ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc"])
    try:
        calm = _watch(job, 1.5)
        assert "is gone" not in calm.stderr, calm.stderr
        assert calm.returncode == 0 and "stopped" in calm.stdout
    finally:
        holder.kill()
        holder.wait()


def test_a_worker_watching_rank_0_on_another_host_asks_slurm_nothing(tmp_path: Path) -> None:
    """Each worker on another host than rank 0 ran the lock's takeover check, `sacct` (and
    `squeue`) included, at every read (10 s): one accounting query per worker and 10 s."""
    job = tmp_path / "job"
    job.mkdir()
    other = ["unshare", "--uts", "--fork", "--kill-child", "sh", "-c",
             'hostname qshpc-other && exec "$@"', "-"]  # fmt: skip
    holder = _hold(job, other)
    try:
        calm = _watch(job, 1.5)
        assert calm.returncode == 0, calm.stderr
        assert calm.stdout.split() == ["stopped", "0"]
    finally:
        holder.kill()
        holder.wait()
