"""The one error boundary shared by every command."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer

P = ParamSpec("P")
R = TypeVar("R")


def errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn qshpc's user errors into a message on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from qshpc.errors import JobFailedError, QshpcError, StoreError, UserError

        try:
            return func(*args, **kwargs)
        except (UserError, StoreError) as exc:  # bad input, or a job store that cannot be read
            _err(str(exc))
            raise typer.Exit(2) from None
        except JobFailedError as exc:
            _err(str(exc))
            raise typer.Exit(1) from None
        except TimeoutError as exc:
            _err(str(exc))
            raise typer.Exit(3) from None
        except QshpcError as exc:
            _err(str(exc))
            raise typer.Exit(1) from None

    return wrapper


def _err(text: str) -> None:
    print(f"qshpc: error: {text}", file=sys.stderr)


def echo(obj: Any) -> None:
    """Print to stdout."""
    typer.echo(obj)
