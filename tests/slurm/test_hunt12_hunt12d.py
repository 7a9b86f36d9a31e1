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

from tests.slurm.test_cluster import sbatch, wait_terminal

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


def _submit(tmp_path: Path, ntasks: int, line: str) -> tuple[str, str]:
    """Run ``line`` as the batch script's body; (sacct state, the job's output)."""
    (tmp_path / "prog.py").write_text(PROGRAM)
    env = dict(os.environ, PYTHONPATH=str(REPO), QSHPC_MPI_START_TIMEOUT_S="60")
    out = tmp_path / "slurm.out"
    job = sbatch("-o", str(out), "-D", str(tmp_path), str(_script(tmp_path, ntasks, line)), env=env)
    state = wait_terminal(job, timeout=150)
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
