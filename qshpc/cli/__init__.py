"""The ``qshpc`` command line: thin typer commands over the client and the store.

User errors (bad input, unknown job) print one message on stderr and exit
with code 2, without a traceback.

``qshpc run`` is also how every MPI rank of a job starts (``mpiexec -n N
python -m qshpc run ...``), so :func:`main` reads its command line without
typer when it can (:mod:`qshpc.cli.runargv`): building typer's command costs
a process 0.2-0.3 s (it imports pydantic). Every other command, and any
``run`` command line the fast reader is unsure of, goes to typer
(:mod:`qshpc.cli.app`).
"""

from __future__ import annotations

import sys
import warnings
from typing import Any


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """qshpc's own warnings as ``qshpc: warning: ...`` (others as Python prints them)."""
    from qshpc.errors import QshpcWarning

    if issubclass(category, QshpcWarning):
        print(f"qshpc: warning: {message}", file=sys.stderr)
        return
    _python_show(message, category, filename, lineno, file, line)


_python_show = warnings.showwarning


def main() -> None:
    """Entry point of the ``qshpc`` console script (and of ``python -m qshpc``)."""
    warnings.showwarning = _show_warning
    from qshpc.cli.runargv import run_fast

    code = run_fast(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from qshpc.cli.app import main as typer_main

    typer_main()
