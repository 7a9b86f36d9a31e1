"""fix31 (review31 F3) on the dev Slurm cluster: a function shipped by
``distribute_qiskit_function`` without ``working_dir`` imports the modules beside its
caller when submitted from another folder too, and a Program's ``env_vars`` PYTHONPATH
reaches the ranks' own imports, as under LocalClient."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mpi.test_fix31 import run_caller

pytestmark = pytest.mark.slurm


def test_a_function_imports_the_modules_beside_its_caller_on_slurm(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    # On b6f478f: only from the caller's own folder (submitit's `python -m` put the
    # submission folder first on the ranks' sys.path); from another: ModuleNotFoundError.
    out = run_caller("slurm", tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "RESULT {'main': 9, 'tasks': [0, 3, 6]} SUCCEEDED" in out.stdout, out.stdout


def test_env_vars_pythonpath_reaches_the_ranks_imports(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    # On b6f478f: `ModuleNotFoundError: No module named 'modx'` (the env_vars reached
    # os.environ after Python had started); LocalClient's ranks imported it.
    from qshpc import Program, SlurmClient

    extra = tmp_path / "extra"
    prog = tmp_path / "prog"
    extra.mkdir()
    prog.mkdir()
    (extra / "modx.py").write_text("def f(x):\n    return ('modx', x)\n")
    (prog / "p.py").write_text(
        "import modx\n"
        "from qshpc import distribute_task, get, save_result\n\n"
        "@distribute_task()\n"
        "def t(x):\n"
        "    return modx.f(x)\n\n"
        "save_result({'main': modx.f(0), 'tasks': get([t(i) for i in range(2)])})\n"
    )
    client = SlurmClient(nodes=1, ntasks_per_node=2, time_min=5)
    job = client.run(
        Program(
            title="p", entrypoint="p.py", working_dir=str(prog), env_vars={"PYTHONPATH": str(extra)}
        )
    )
    assert job.result() == {"main": ("modx", 0), "tasks": [("modx", 0), ("modx", 1)]}
