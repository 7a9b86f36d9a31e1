"""The one error boundary shared by every command."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer

from qshpc.cli.boundary import exit_code

P = ParamSpec("P")
R = TypeVar("R")


def errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn qshpc's user errors into a message on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            code = exit_code(exc)
            if code is None:
                raise
            raise typer.Exit(code) from None

    return wrapper


def echo(obj: Any) -> None:
    """Print to stdout."""
    typer.echo(obj)


def cache_dir_option(text: str | None) -> Path | None:
    """The ``--cache-dir`` option as a path (None: not given).

    Raises:
        UserError: An empty value (``--cache-dir "$DIR"`` with ``DIR`` unset), which
            would otherwise mean the current folder.
    """
    if text is None:
        return None
    if not text.strip():
        from qshpc.errors import UserError

        raise UserError(
            "--cache-dir is empty (an unset shell variable?): give a folder, or leave the "
            "option out to use $QSHPC_CACHE_DIR or $QSHPC_HOME/cache"
        )
    return Path(text)
