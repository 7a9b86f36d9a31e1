"""The typer application behind the ``qshpc`` command line (every command, ``--help``).

User errors (bad input, unknown job) print one message on stderr and exit
with code 2, without a traceback (:mod:`qshpc.cli.common`).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

app = typer.Typer(
    name="qshpc",
    help="Run Qiskit programs on MPI ranks and Slurm clusters, with an HDF5 job store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from qshpc._version import __version__

        typer.echo(f"qshpc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print qshpc's version and exit.",
        ),
    ] = False,
) -> None:
    """Run Qiskit programs on MPI ranks and Slurm clusters, with an HDF5 job store."""


def _register() -> None:
    from qshpc.cli import cache, jobs, report, run, ux

    run.register(app)
    jobs.register(app)
    ux.register(app)
    report.register(app)
    cache.register(app)
    try:
        from qshpc.cli import slurm
    except ImportError:  # pragma: no cover
        return
    slurm.register(app)


def main() -> None:
    """Run the typer application on ``sys.argv``."""
    _register()
    from qshpc.errors import UserError

    try:
        app()
    except UserError as exc:  # raised outside a command's own boundary
        print(f"qshpc: error: {exc}", file=sys.stderr)
        sys.exit(2)
