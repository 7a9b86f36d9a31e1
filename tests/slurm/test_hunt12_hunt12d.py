"""``qshpc run`` in a user's own sbatch script, started the ways docs/sbatch.md warns of: hunt12d.

On a4e8063, ``srun -n 2 python -m qshpc run`` (no ``--mpi=pmi2``) started one job
per task, each with its own ``mpiexec``, whose hydra proxy waited in a nested
``srun`` for CPUs the step already held: the Slurm job stayed RUNNING, with no
output, until its time limit. ``python -m qshpc run`` in the batch script without
``srun`` hung the same way (hydra's launcher under Slurm is ``srun``). Now the
first is refused in one line naming ``--mpi=pmi2``, and ``qshpc run``'s own
``mpiexec`` starts its ranks on the node it runs on.

Each test's Slurm work (sbatch, the waits for its start and end, the cancels) runs as
an early launch (tests/early_jobs.py) from the session's start, overlapping the rest of
the suite: the launch returns what it saw, the test checks it (the same assertions).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.early_jobs import Context, Early
from tests.slurm.sbatch_util import TERMINAL

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]

PROGRAM = """\
from qshpc import distribute_task, get, save_result


@distribute_task()
def f(i):
    return i * i


save_result(get([f(i) for i in range(4)]))
"""


def _script(tmp_path: Path, ntasks: int, line: str) -> Path:
    script = tmp_path / "job.sbatch"
    script.write_text(
        "#!/bin/bash\n"
        "#SBATCH --job-name=hunt12d-test\n"
        f"#SBATCH --ntasks={ntasks}\n"
        "#SBATCH --time=00:03:00\n"
        f"{line}\n"
    )
    return script


def _sbatch(ctx: Context, script: Path, out: Path) -> str:
    """``sbatch`` ``script`` from ``ctx.work``, with this repository first on PYTHONPATH."""
    env = dict(ctx.env, PYTHONPATH=str(REPO), QSHPC_MPI_START_TIMEOUT_S="60")
    args = ["sbatch", "--parsable", "-o", str(out), "-D", str(ctx.work), str(script)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30, env=env, check=False)
    assert done.returncode == 0, f"sbatch failed: {done.stderr}"
    slurm_id = done.stdout.strip().split(";")[0]
    ctx.slurm_job(slurm_id)
    return slurm_id


def _wait_terminal(ctx: Context, job_id: str, timeout: float) -> str:
    """tests/slurm/test_cluster.py's wait_terminal in the launch (sacct every 0.5 s)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        out = ctx.run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"], timeout=15)
        assert out.returncode == 0, f"sacct failed: {out.stderr}"
        lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
        state = lines[-1].split()[0] if lines else ""
        if state in TERMINAL:
            return state
        ctx.sleep(0.5)
    ctx.run(["scancel", job_id])
    pytest.fail(f"job {job_id} not finished after {timeout}s (last sacct state {state!r})")


def _launch_script(ntasks: int, line: str) -> Callable[[Context], dict[str, Any]]:
    """A launch: ``line`` (``{work}``: its folder) as a batch script's body, run to its end;
    it returns the sacct state, the job's output and its folder."""

    def launch(ctx: Context) -> dict[str, Any]:
        (ctx.work / "prog.py").write_text(PROGRAM)
        out = ctx.work / "slurm.out"
        script = _script(ctx.work, ntasks, line.format(work=ctx.work))
        state = _wait_terminal(ctx, _sbatch(ctx, script, out), timeout=150)
        log = out.read_text() if out.exists() else ""
        return {"state": state, "log": log, "work": ctx.work}

    return launch


def _result(job_dir: Path) -> object:
    out = run_cli("result", str(job_dir), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.early(
    launch=_launch_script(2, "srun python -m qshpc run prog.py --job-dir {work}/job")
)
def test_srun_without_mpi_plugin_is_refused_naming_it(
    slurm_env: dict[str, str], early_job: Early
) -> None:
    seen = early_job.outcome()
    state, log = seen["state"], seen["log"]
    assert state == "FAILED", log
    errors = [ln for ln in log.splitlines() if ln.startswith("qshpc: error:")]
    assert len(errors) == 2, log  # one per task, and nothing else started
    assert "srun started 2 tasks but no MPI: add --mpi=pmi2 to srun" in errors[0], log
    assert "Traceback" not in log
    assert "exit code 2" in log


@pytest.mark.early(
    launch=_launch_script(2, "python -m qshpc run prog.py --workers 1 --job-dir {work}/job")
)
def test_qshpc_run_in_the_batch_script_without_srun_runs_here(
    slurm_env: dict[str, str], early_job: Early
) -> None:
    seen = early_job.outcome()
    state, log = seen["state"], seen["log"]
    assert state == "COMPLETED", log
    assert "SUCCEEDED" in log
    assert _result(seen["work"] / "job") == [0, 1, 4, 9]


@pytest.mark.early(
    launch=_launch_script(1, "srun python -m qshpc run prog.py --workers 1 --job-dir {work}/job")
)
def test_srun_one_task_without_mpi_plugin_runs_its_own_ranks(
    slurm_env: dict[str, str], early_job: Early
) -> None:
    seen = early_job.outcome()
    state, log = seen["state"], seen["log"]
    assert state == "COMPLETED", log
    assert _result(seen["work"] / "job") == [0, 1, 4, 9]


SLOW = """\
import time
from qshpc import distribute_task, get, save_result


@distribute_task()
def f(i):
    time.sleep(2.0)
    return i * i


save_result(get([f(i) for i in range(60)]))
"""


def _wait_running(ctx: Context, job_dir: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = ctx.qshpc("status", str(job_dir))
        if out.stdout.startswith("RUNNING") and " 0 done" not in out.stdout:
            return
        ctx.sleep(2)  # a qshpc status costs ~0.6 s of CPU, which the other tests need
    pytest.fail(f"{job_dir} not RUNNING with a task done after {timeout}s")


def _own_job(ctx: Context, body: str) -> str:
    (ctx.work / "slow.py").write_text(SLOW)
    out = ctx.work / f"slurm-{len(list(ctx.work.glob('slurm-*')))}.out"
    return _sbatch(ctx, _script(ctx.work, 2, body), out)


def _launch_cancel_own(ctx: Context) -> dict[str, Any]:
    job_dir = ctx.work / "job"
    slurm_id = _own_job(ctx, f"srun --mpi=pmi2 python -m qshpc run slow.py --job-dir {job_dir}")
    _wait_running(ctx, job_dir)
    cancel = ctx.qshpc("cancel", str(job_dir))
    assert cancel.returncode == 0, cancel.stderr
    state = _wait_terminal(ctx, slurm_id, timeout=60)
    ctx.qshpc("wait", str(job_dir), "--timeout", "30")  # rank 0 stores the cancel meanwhile
    return {"state": state, "status": ctx.qshpc("status", str(job_dir)).stdout}


@pytest.mark.early(launch=_launch_cancel_own)
def test_cancel_of_a_job_run_in_an_own_sbatch_script_cancels_its_slurm_job(
    slurm_env: dict[str, str], early_job: Early
) -> None:
    seen = early_job.outcome()
    # on a4e8063: the store said CANCELED ('cancelled before it started') at once and
    # the Slurm job ran on to its end
    assert seen["state"] == "CANCELLED"
    status = seen["status"]
    assert status.startswith("CANCELED"), status
    assert "before it started" not in status


def _launch_resumed(ctx: Context) -> dict[str, Any]:
    (ctx.work / "slow.py").write_text(SLOW)
    out = ctx.qshpc(
        "submit", str(ctx.work / "slow.py"), "--name", "hunt12d-test", "-t", "3",
        "--ntasks-per-node", "2", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    sub = json.loads(out.stdout)
    ctx.slurm_job(sub["slurm_job_id"])
    job_dir, first = Path(sub["job_dir"]), str(sub["slurm_job_id"])
    seen: dict[str, Any] = {}
    _wait_running(ctx, job_dir)
    assert ctx.qshpc("cancel", str(job_dir)).returncode == 0
    seen["state 1"] = _wait_terminal(ctx, first, timeout=60)
    ctx.qshpc("wait", str(job_dir), "--timeout", "30")
    seen["status 1"] = ctx.qshpc("status", str(job_dir)).stdout
    staged = job_dir / "program" / "slow.py"
    second = _own_job(ctx, f"srun --mpi=pmi2 python -m qshpc run {staged} --resume {job_dir}")
    seen["second"] = second
    _wait_running(ctx, job_dir)
    seen["status 2"] = ctx.qshpc("status", str(job_dir)).stdout
    cancel = ctx.qshpc("cancel", str(job_dir))
    assert cancel.returncode == 0, cancel.stderr
    seen["state 2"] = _wait_terminal(ctx, second, timeout=60)
    ctx.qshpc("wait", str(job_dir), "--timeout", "30")
    seen["status 3"] = ctx.qshpc("status", str(job_dir)).stdout
    return seen


@pytest.mark.early(launch=_launch_resumed)
def test_a_submitted_job_resumed_under_a_new_slurm_job_names_it_and_cancels_it(
    slurm_env: dict[str, str], early_job: Early
) -> None:
    seen = early_job.outcome()
    assert seen["state 1"] == "CANCELLED"
    assert seen["status 1"].startswith("CANCELED (slurm: CANCELLED)")
    status = seen["status 2"]
    # on a4e8063: 'RUNNING (slurm: CANCELLED)', slurm <first>; a cancel scancelled <first>
    assert status.startswith("RUNNING (slurm: RUNNING)"), status
    assert f"slurm    {seen['second']}" in status, status
    assert seen["state 2"] == "CANCELLED"
    status = seen["status 3"]
    assert status.startswith("CANCELED (slurm: CANCELLED)"), status
