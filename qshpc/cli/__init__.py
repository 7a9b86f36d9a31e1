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


def _closed_streams_to_null() -> None:
    """A stdout or stderr the command was started without (``qshpc run ... >&-``) is /dev/null.

    Python sets ``sys.stdout`` to None then, and the file descriptor's number is
    free: the next file opened (a rank's log) would take it and get the output
    meant for the terminal. On c590a0b ``qshpc run`` failed with a traceback
    ('NoneType' object has no attribute ...) and ``--workers 0`` left its job QUEUED.
    """
    import os

    for fd, name in ((1, "stdout"), (2, "stderr")):
        if getattr(sys, name) is not None:
            continue
        try:
            os.fstat(fd)
            continue  # taken by something already: not ours to replace
        except OSError:
            pass
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, "w", closefd=False))
        except OSError:
            pass


def main() -> None:
    """Entry point of the ``qshpc`` console script (and of ``python -m qshpc``).

    A rank of a job (``qshpc run`` under mpiexec or srun) remembers a SIGINT or
    SIGTERM from its first line on, instead of dying of it during its imports
    or inside MPI's start: one rank leaving then would leave the others waiting
    in MPI_Init or in their first exchange (until the start watchdog ends them,
    5 minutes by default). Rank 0 then cancels the job as the program would
    start, and the workers wait for its stop, as for a signal that comes later.
    A SIGINT to the ``qshpc run`` command before it has set its own handling
    ends it with exit code 130 and one line, not a traceback.
    """
    warnings.showwarning = _show_warning
    if sys.stdout is None or sys.stderr is None:
        _closed_streams_to_null()
    from qshpc.runtime.stopsig import defer_if_rank

    defer_if_rank(sys.argv)  # done already under ``python -m qshpc``: see qshpc.__main__
    try:
        from qshpc.cli.runargv import run_fast

        code = run_fast(sys.argv[1:])
        if code is not None:
            from qshpc.runtime.leave import exit_now

            exit_now(code)  # no teardown of qiskit's modules on the command's tail
            sys.exit(code)
        _typer_main()
    except KeyboardInterrupt:
        print("\nqshpc: interrupted (SIGINT)", file=sys.stderr)
        sys.exit(130)


def _typer_main() -> None:
    """Every command but the fast ``run``: one line and exit code 1 when stdout has no
    room left (review30 F4: a traceback from every read command), and a stderr with no
    room is /dev/null (the exit code stays the command's: a bad job id's 2)."""
    from qshpc.cli.boundary import no_room, output_lost, quiet_stderr

    if no_room(2):
        quiet_stderr()
    try:
        from qshpc.cli.app import main as typer_main

        try:
            typer_main()
        except SystemExit:
            _flush_stdout()
            raise
        _flush_stdout()
    except OSError as exc:
        code = output_lost(exc)
        if code is None:
            if no_room(2, exc):  # a progress line on stderr when the disk filled
                sys.exit(1)
            raise
        sys.exit(code)


def _flush_stdout() -> None:
    """What stdout still holds, written here (its error caught above), not in Python's
    exit (which prints ``Exception ignored`` and exits 120)."""
    if sys.stdout is not None:
        sys.stdout.flush()
