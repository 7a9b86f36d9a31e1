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


def reads_store(func: Callable[P, R]) -> Callable[P, R]:
    """A command that only reads the store: a team's store the group can write without
    the sticky bit is read with a warning while it runs, not refused (review23 F4; see
    :func:`qshpc.store.perms.reading_only`). Not with ``--allow-pickle``: pickles load
    only from folders no other user could swap. Reset when it ends (typer's app may be
    run in-process: a ``run`` after it refuses such a store again)."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from qshpc.store.perms import reading_only

        reading_only(not kwargs.get("allow_pickle"))
        try:
            return func(*args, **kwargs)
        finally:
            reading_only(False)

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
