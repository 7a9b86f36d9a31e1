"""The architecture holds: import-linter's contracts (pyproject.toml) are kept.

The layers (cli, clients, submit, launch, runtime, program, aer, task, jobs,
store, base), no cycle inside any package, and one package per external system.
``TYPE_CHECKING`` and function-level imports count. CI runs ``make test``, so
this test is what holds the line there; ``make lint`` runs ``lint-imports`` too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports() -> list[str]:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.fail("lint-imports is not installed: pip install -e '.[dev]' (import-linter)")
    return [exe]


def test_import_contracts_are_kept() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [*_lint_imports(), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_a_worker_loads_neither_h5py_nor_mpi_at_import() -> None:
    """A worker rank's modules (the loop, record encoding) load no h5py; nothing loads mpi4py
    until MPI starts."""
    code = (
        "import sys\n"
        "import qshpc.runtime.start, qshpc.runtime.worker, qshpc.store.chunk, qshpc.store.batch\n"
        "print(sorted(m for m in ('h5py', 'mpi4py', 'submitit') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
