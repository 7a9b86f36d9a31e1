"""Requeue and preemption on the dev Slurm cluster (``qshpc submit --requeue``).

(a) ``scontrol requeue`` while the job runs: rank 0 sees Slurm's restart count
go up on the SIGTERM, flushes the store and leaves it unfinalized; the
requeued run resumes (finished tasks are not executed again) and ends
SUCCEEDED with the exact result.

(b) the time limit: with ``--requeue --time-min 1`` Slurm warns the job
(``--signal=USR2@30``); rank 0 flushes the store and requeues the job itself,
so a program that needs ~90 s of work finishes over several 1-minute
allocations.

Slurm holds a requeued job for ``cred_expire`` (120 s) before it may start
again (``Reason=BeginTime``); the tests release it 2 s after they first see
the hold, with ``scontrol update jobid=ID StartTime=now``, so that they stay
short (at once, in the requeue's own second, slurmd refuses the new credential).

Both jobs mostly wait (for Slurm's time limit, for the hold): they are submitted
at the session's start and run while other tests do (``@pytest.mark.early``,
tests/early_jobs.py); each test checks its job's outcome.

Cancelling a Slurm job (what finished stays) is tested in
``tests/slurm/test_submit.py::test_cancel_ends_canceled_within_seconds``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.early_jobs import Context, Early, slurm_plumbing

pytestmark = pytest.mark.slurm

_plumbing = slurm_plumbing()

PROGRAM = """
import os
import time

from qshpc import distribute_task, get, get_arguments, save_result, update_status

args = get_arguments()
LOG = args["log"]
N = args["n"]


@distribute_task()
def step(i):
    with open(LOG, "a") as f:
        f.write(f"{os.environ.get('SLURM_RESTART_COUNT', '0')} {i}\\n")
    time.sleep(0.3)
    return i * i


results = []
for i in range(N):  # one at a time: N * 0.3 s of work on any number of ranks
    results.append(get(step(i)))
    update_status(f"{len(results)} of {N}")
save_result({"results": results, "restarts": os.environ.get("SLURM_RESTART_COUNT", "0")})
"""


@pytest.fixture(scope="module")
def slurm_env() -> Iterator[dict[str, str]]:
    with pytest.MonkeyPatch.context() as mp:
        yield _plumbing.require_cluster(mp)


@pytest.fixture
def work() -> Iterator[Path]:
    """A folder under /var/tmp (the Slurm nodes see it; pytest's tmp_path may be pruned)."""
    path = Path(tempfile.mkdtemp(prefix="qshpc-requeue-test-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def qshpc_home(work: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = work / "qshpc-home"
    monkeypatch.setenv("QSHPC_HOME", str(home))
    return home


def _slurm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30)


# How the helpers run qshpc and Slurm's commands: in the test, or in an early launch's environment.
Cli = Callable[..., subprocess.CompletedProcess[str]]


def _in(ctx: Context) -> Cli:
    """``_slurm`` in an early launch's environment."""
    return lambda *args: ctx.run(list(args))


def _submit(work: Path, n: int, *extra: str, cli: Cli = run_cli) -> tuple[dict[str, Any], Path]:
    prog = work / "src" / "steps.py"
    prog.parent.mkdir()
    prog.write_text(PROGRAM)
    log = work / "executions.log"
    args = work / "args.json"
    args.write_text(json.dumps({"log": str(log), "n": n}))
    out = cli(
        "submit", str(prog), "--arguments", str(args), "--requeue", "--ntasks-per-node", "2",
        *extra, "--json", timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    ids: dict[str, Any] = json.loads(out.stdout)
    return ids, log


def _status(job: str, cli: Cli = run_cli) -> dict[str, Any]:
    out = cli("status", job, "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    meta: dict[str, Any] = json.loads(out.stdout)
    return meta


_held_since: dict[str, float] = {}


def _release_if_held(slurm_id: str, slurm: Cli = _slurm) -> bool:
    """Skip the 120 s hold Slurm puts on a requeued job, 2 s after it was first seen.

    The requeue revoked the job's previous credential; a credential made in the same
    second is refused by slurmd ("Job credential revoked") and the job then fails
    instead of starting. Waiting until the hold has been seen for 2 s puts the
    release at least that far after the requeue.
    """
    out = slurm("squeue", "-h", "-j", slurm_id, "-o", "%T %r")
    if out.stdout.split()[:2] != ["PENDING", "BeginTime"]:
        _held_since.pop(slurm_id, None)
        return False
    first = _held_since.setdefault(slurm_id, time.monotonic())
    if time.monotonic() - first < 2.0:
        return False
    slurm("scontrol", "update", f"jobid={slurm_id}", "StartTime=now")
    del _held_since[slurm_id]
    return True


def _executions(log: Path) -> list[tuple[int, int]]:
    """(restart count, task index) for every execution of a task."""
    rows = []
    for line in log.read_text().splitlines():
        restart, i = line.split()
        rows.append((int(restart), int(i)))
    return rows


def _stored_by_run(job_dir: Path) -> dict[int, set[int]]:
    from qshpc.store import JobReader

    with JobReader.open(job_dir) as r:
        tasks = r.tasks()
    found: dict[int, set[int]] = {}
    for t in tasks:
        if t["state"] == "SUCCEEDED":
            found.setdefault(int(t["run"]), set()).add(int(t["task_id"]))
    return found


def _check_resumed(job_dir: Path, log: Path, n: int) -> dict[str, int]:
    """Every task stored by a run was not executed by a later run; the result is exact."""
    out = run_cli("result", str(job_dir), "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["results"] == [i * i for i in range(n)]
    by_run = _stored_by_run(job_dir)
    execs = _executions(log)
    assert {i for _, i in execs} == set(range(n))
    runs = sorted(by_run)
    for run in runs:
        later = {i for restart, i in execs if restart >= run}  # run r has SLURM_RESTART_COUNT r-1
        again = by_run[run] & later
        assert not again, f"tasks stored in run {run} were executed again: {sorted(again)}"
    figures = {
        "runs": len(runs),
        "executions": len(execs),
        "tasks": n,
        "re-executed": len(execs) - n,
        "restarts": int(result["restarts"]),
    }
    print("requeue figures:", figures)
    return figures


SCONTROL_TASKS = 60


def _launch_scontrol_requeue(ctx: Context) -> dict[str, Any]:
    """Submit, ``scontrol requeue`` after 12 tasks, release the hold, wait for the end (~30 s)."""
    n = SCONTROL_TASKS
    ids, log = _submit(ctx.work, n, cli=ctx.qshpc)
    job, slurm_id = ids["job_id"], ids["slurm_job_id"]
    ctx.slurm_job(slurm_id)
    deadline = time.monotonic() + 90
    meta: dict[str, Any] = {}
    while time.monotonic() < deadline:
        meta = _status(job, ctx.qshpc)
        sub = str(meta.get("sub_status") or "")
        if meta.get("state") == "RUNNING" and sub.endswith(f"of {n}") and int(sub.split()[0]) >= 12:
            break
        ctx.sleep(1)
    else:
        pytest.fail(f"the program never got 12 tasks done: {meta}")
    out = ctx.run(["scontrol", "requeue", slurm_id])
    assert out.returncode == 0, out.stderr
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the store is flushed and the job waits to start again
        meta = _status(job, ctx.qshpc)
        if meta.get("state") == "QUEUED" and "requeued" in str(meta.get("sub_status")):
            break
        ctx.sleep(1)
    else:
        pytest.fail(f"not QUEUED and requeued after scontrol requeue: {meta}")
    kept = (meta.get("task_counts") or {}).get("SUCCEEDED", 0)
    deadline = time.monotonic() + 240
    state = ""
    while time.monotonic() < deadline:
        _release_if_held(slurm_id, _in(ctx))
        state = str(_status(job, ctx.qshpc).get("state"))
        if state in ("SUCCEEDED", "FAILED", "CANCELED"):
            break
        ctx.sleep(1)
    final = _status(job, ctx.qshpc)
    return {"ids": ids, "log": log, "kept": kept, "requeued": meta, "state": state, "final": final}


@pytest.mark.early(launch=_launch_scontrol_requeue)
def test_scontrol_requeue_resumes(slurm_env: dict[str, str], early_job: Early) -> None:
    n = SCONTROL_TASKS
    outcome = early_job.outcome()
    ids, log, kept, meta = (outcome[k] for k in ("ids", "log", "kept", "requeued"))
    assert kept >= 12, meta
    state, final = outcome["state"], outcome["final"]
    assert state == "SUCCEEDED", final
    figures = _check_resumed(Path(ids["job_dir"]), log, n)
    assert figures["restarts"] == 1 and figures["runs"] == 2
    assert figures["re-executed"] <= 2  # at most the calls in flight at the requeue


TIME_LIMIT_TASKS = 300  # 90 s of work: cannot finish in one 1-minute allocation


def _launch_time_limit(ctx: Context) -> dict[str, Any]:
    """Submit with ``--requeue --time-min 1``, release the holds, wait for the end (~110 s)."""
    ids, log = _submit(ctx.work, TIME_LIMIT_TASKS, "--time-min", "1", cli=ctx.qshpc)
    job, slurm_id = ids["job_id"], ids["slurm_job_id"]
    ctx.slurm_job(slurm_id)
    script = (Path(ids["job_dir"]) / "slurm" / f"{slurm_id}_submission.sh").read_text()
    assert "#SBATCH --signal=USR2@30" in script and "#SBATCH --requeue" in script
    t0 = time.monotonic()
    seen_requeued = 0
    state = ""
    meta: dict[str, Any] = {}
    polls = 0
    while time.monotonic() - t0 < 330:
        if _release_if_held(slurm_id, _in(ctx)):
            seen_requeued += 1
        if polls % 4 == 0:  # squeue every second (the holds), qshpc status (CPU) every 4th
            meta = _status(job, ctx.qshpc)
            state = str(meta.get("state"))
            if state in ("SUCCEEDED", "FAILED", "CANCELED"):
                break
        polls += 1
        ctx.sleep(1)
    took = time.monotonic() - t0
    return {
        "ids": ids,
        "log": log,
        "state": state,
        "meta": meta,
        "took": took,
        "seen": seen_requeued,
    }


@pytest.mark.slow
@pytest.mark.early(launch=_launch_time_limit)
def test_time_limit_requeues_itself_and_finishes(
    slurm_env: dict[str, str], early_job: Early
) -> None:
    n = TIME_LIMIT_TASKS
    outcome = early_job.outcome()
    ids, log, state, meta = (outcome[k] for k in ("ids", "log", "state", "meta"))
    took, seen_requeued = outcome["took"], outcome["seen"]
    print(f"time-limit requeue: {state} after {took:.0f} s, released {seen_requeued} holds")
    assert state == "SUCCEEDED", meta
    figures = _check_resumed(Path(ids["job_dir"]), log, n)
    assert figures["restarts"] >= 1 and figures["runs"] >= 2
    assert figures["re-executed"] <= figures["runs"]  # at most one call in flight per requeue
