"""fix31 (review31 F3): a function shipped by ``distribute_qiskit_function`` without
``working_dir`` imports the modules beside its caller under LocalClient, as on Slurm
(tests/slurm/test_fix31_slurm.py; docs/bad-input.md, "Session 24, fix31")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, ROOT

pytestmark = pytest.mark.mpi

CALLER = PROGRAMS / "fix31" / "caller.py"


def run_caller(
    mode: str, cwd: Path, timeout: float, script: Path = CALLER
) -> subprocess.CompletedProcess[str]:
    """``python SCRIPT MODE`` (tests/programs/fix31/caller.py) from ``cwd`` (not the
    caller's folder), with this checkout's qshpc."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, str(script), mode],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
    )


def test_a_function_imports_the_modules_beside_its_caller_under_local_client(
    tmp_path: Path,
) -> None:
    # On b6f478f: FAILED, `ModuleNotFoundError: No module named 'helper_fix31'` in
    # job.result() (the job ran in $QSHPC_HOME/patterns/...); SlurmClient succeeded.
    out = run_caller("local", tmp_path, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "RESULT {'main': 9, 'tasks': [0, 3, 6]} SUCCEEDED" in out.stdout, out.stdout


def test_a_module_the_job_cannot_see_is_named_with_the_fix(tmp_path: Path) -> None:
    # A folder the caller appended to sys.path itself is not the caller's folder: on
    # b6f478f the job failed with a bare `No module named 'far_mod'`.
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "far_mod.py").write_text("def g():\n    return 1\n")
    script = tmp_path / "caller.py"
    script.write_text(
        "import sys\n"
        f"sys.path.append({str(tmp_path / 'lib')!r})\n"
        "from far_mod import g\n"
        "from qshpc import LocalClient, distribute_qiskit_function\n\n"
        "@distribute_qiskit_function(LocalClient(workers=0))\n"
        "def uses_far_mod():\n"
        "    return g()\n\n"
        "job = uses_far_mod()\n"
        "try:\n"
        "    job.result()\n"
        "except Exception as exc:\n"
        "    print('ERROR', exc)\n"
    )
    out = run_caller("local", tmp_path, timeout=120, script=script)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (
        "ModuleNotFoundError: No module named 'far_mod': uses_far_mod needs it, and this job "
        "does not see the folder that holds it; pass distribute_qiskit_function(working_dir=...)"
        " that folder, or put it on PYTHONPATH" in out.stdout
    ), out.stdout
