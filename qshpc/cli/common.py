"""The one error boundary shared by every command."""

from __future__ import annotations

import functools
from collections.abc import Callable
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
