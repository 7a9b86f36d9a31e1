"""What the benchmarks that time qshpc trees against each other share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def precompile(*trees: Path) -> None:
    """Byte-compile each tree's qshpc, as ``pip install`` and ``make install`` do.

    With PYTHONDONTWRITEBYTECODE set (as on this machine) an editable checkout is
    otherwise compiled again in every process (~0.08 s of CPU per rank), while
    the plain process's qiskit comes compiled from its wheel.
    """
    for tree in trees:
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(tree / "qshpc")],
            check=False,
            stdout=subprocess.DEVNULL,
        )
