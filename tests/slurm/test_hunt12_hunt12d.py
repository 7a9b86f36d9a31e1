"""``qshpc run`` in a user's own sbatch script, started the ways docs/sbatch.md warns of: hunt12d.

On a4e8063, ``srun -n 2 python -m qshpc run`` (no ``--mpi=pmi2``) started one job
per task, each with its own ``mpiexec``, whose hydra proxy waited in a nested
``srun`` for CPUs the step already held: the Slurm job stayed RUNNING, with no
output, until its time limit. ``python -m qshpc run`` in the batch script without
``srun`` hung the same way (hydra's launcher under Slurm is ``srun``). Now the
first is refused in one line naming ``--mpi=pmi2``, and ``qshpc run``'s own
``mpiexec`` starts its ranks on the node it runs on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.slurm.sbatch_util import batch_script, sbatch, wait_terminal

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]

PROGRAM = """\
from qshpc import distribute_task, get, save_result


@distribute_task()
def f(i):
    return i * i


save_result(get([f(i) for i in range(4)]))
"""


def _sbatch(tmp_path: Path, ntasks: int, body: str, out: Path) -> str:
    """Submit a batch script of ``ntasks`` tasks running ``body`` in ``tmp_path``; its Slurm id."""
    env = dict(os.environ, PYTHONPATH=str(REPO), QSHPC_MPI_START_TIMEOUT_S="60")
    script = batch_script(tmp_path, ntasks, body, "hunt12d-test")
    return sbatch("-o", str(out), "-D", str(tmp_path), str(script), env=env)


def _submit(tmp_path: Path, ntasks: int, line: str) -> tuple[str, str]:
    """Run ``line`` as the batch script's body; (sacct state, the job's output)."""
    (tmp_path / "prog.py").write_text(PROGRAM)
    out = tmp_path / "slurm.out"
    state = wait_terminal(_sbatch(tmp_path, ntasks, line, out), timeout=150)
    return state, out.read_text() if out.exists() else ""


def _result(job_dir: Path) -> object:
    from tests.conftest import run_cli

    out = run_cli("result", str(job_dir), "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_srun_without_mpi_plugin_is_refused_naming_it(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    state, log = _submit(tmp_path, 2, f"srun python -m qshpc run prog.py --job-dir {tmp_path}/job")
    assert state == "FAILED", log
    errors = [ln for ln in log.splitlines() if ln.startswith("qshpc: error:")]
    assert len(errors) == 2, log  # one per task, and nothing else started
    assert "srun started 2 tasks but no MPI: add --mpi=pmi2 to srun" in errors[0], log
    assert "Traceback" not in log
    assert "exit code 2" in log


def test_qshpc_run_in_the_batch_script_without_srun_runs_here(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    state, log = _submit(
        tmp_path, 2, f"python -m qshpc run prog.py --workers 1 --job-dir {tmp_path}/job"
    )
    assert state == "COMPLETED", log
    assert "SUCCEEDED" in log
    assert _result(tmp_path / "job") == [0, 1, 4, 9]


def test_srun_one_task_without_mpi_plugin_runs_its_own_ranks(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    state, log = _submit(
        tmp_path, 1, f"srun python -m qshpc run prog.py --workers 1 --job-dir {tmp_path}/job"
    )
    assert state == "COMPLETED", log
    assert _result(tmp_path / "job") == [0, 1, 4, 9]


SLOW = """\
import time
from qshpc import distribute_task, get, save_result


@distribute_task()
def f(i):
    time.sleep(2.0)
    return i * i


save_result(get([f(i) for i in range(60)]))
"""


def _wait_running(job_dir: Path, timeout: float = 90) -> None:
    import time

    from tests.conftest import run_cli

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = run_cli("status", str(job_dir))
        if out.stdout.startswith("RUNNING") and " 0 done" not in out.stdout:
            return
        time.sleep(1)
    pytest.fail(f"{job_dir} not RUNNING with a task done after {timeout}s")


def _own_job(tmp_path: Path, body: str) -> str:
    (tmp_path / "slow.py").write_text(SLOW)
    return _sbatch(tmp_path, 2, body, tmp_path / f"slurm-{len(list(tmp_path.glob('slurm-*')))}.out")


def test_cancel_of_a_job_run_in_an_own_sbatch_script_cancels_its_slurm_job(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    from tests.conftest import run_cli

    job_dir = tmp_path / "job"
    slurm_id = _own_job(
        tmp_path, f"srun --mpi=pmi2 python -m qshpc run slow.py --job-dir {job_dir}"
    )
    _wait_running(job_dir)
    out = run_cli("cancel", str(job_dir))
    assert out.returncode == 0, out.stderr
    # on a4e8063: the store said CANCELED ('cancelled before it started') at once and
    # the Slurm job ran on to its end
    assert wait_terminal(slurm_id, timeout=60) == "CANCELLED"
    run_cli("wait", str(job_dir), "--timeout", "30")  # rank 0 stores the cancel meanwhile
    status = run_cli("status", str(job_dir))
    assert status.stdout.startswith("CANCELED"), status.stdout
    assert "before it started" not in status.stdout


def test_a_submitted_job_resumed_under_a_new_slurm_job_names_it_and_cancels_it(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    from tests.conftest import run_cli

    (tmp_path / "slow.py").write_text(SLOW)
    out = run_cli(
        "submit", str(tmp_path / "slow.py"), "--name", "hunt12d-test", "-t", "3",
        "--ntasks-per-node", "2", "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    sub = json.loads(out.stdout)
    job_dir, first = Path(sub["job_dir"]), sub["slurm_job_id"]
    _wait_running(job_dir)
    assert run_cli("cancel", str(job_dir)).returncode == 0
    assert wait_terminal(first, timeout=60) == "CANCELLED"
    run_cli("wait", str(job_dir), "--timeout", "30")
    assert run_cli("status", str(job_dir)).stdout.startswith("CANCELED (slurm: CANCELLED)")
    staged = job_dir / "program" / "slow.py"
    second = _own_job(tmp_path, f"srun --mpi=pmi2 python -m qshpc run {staged} --resume {job_dir}")
    _wait_running(job_dir)
    status = run_cli("status", str(job_dir)).stdout
    # on a4e8063: 'RUNNING (slurm: CANCELLED)', slurm <first>; a cancel scancelled <first>
    assert status.startswith("RUNNING (slurm: RUNNING)"), status
    assert f"slurm    {second}" in status, status
    out = run_cli("cancel", str(job_dir))
    assert out.returncode == 0, out.stderr
    assert wait_terminal(second, timeout=60) == "CANCELLED"
    run_cli("wait", str(job_dir), "--timeout", "30")
    status = run_cli("status", str(job_dir)).stdout
    assert status.startswith("CANCELED (slurm: CANCELLED)"), status
