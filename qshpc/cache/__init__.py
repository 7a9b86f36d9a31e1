"""A result cache across jobs: a call whose key was seen before returns the stored result.

The key (:mod:`qshpc.cache.keys`) covers the task function by value, the
arguments by value, the task's seed and the versions and options of qiskit,
Aer and qshpc. Entries are files in a folder shared by every node and, when
asked, a project group (:mod:`qshpc.cache.folder`, :mod:`qshpc.cache.store`).
See ``docs/cache.md``.

From Python::

    import qshpc.cache
    hit = qshpc.cache.lookup(sample, (circuit,))      # a Hit, or None
    hit.value, hit.header.job, hit.header.task
    qshpc.cache.table()                                # a DataFrame of what it holds

``import qshpc.cache`` imports nothing heavy; the pieces load on first use.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qshpc._lazy import lazy_exports

if TYPE_CHECKING:
    from qshpc.cache.keys import UncacheableError, call_key, function_digest
    from qshpc.cache.maint import gc, remove, rows, stats, table
    from qshpc.cache.store import CacheDir, CacheWriteError, Hit

_LAZY = {
    "CacheDir": "qshpc.cache.store",
    "CacheWriteError": "qshpc.cache.store",
    "Hit": "qshpc.cache.store",
    "UncacheableError": "qshpc.cache.keys",
    "call_key": "qshpc.cache.keys",
    "function_digest": "qshpc.cache.keys",
    "gc": "qshpc.cache.maint",
    "remove": "qshpc.cache.maint",
    "rows": "qshpc.cache.maint",
    "stats": "qshpc.cache.maint",
    "table": "qshpc.cache.maint",
}

__getattr__, __dir__ = lazy_exports("qshpc.cache", _LAZY, globals())


def _func(task: Any) -> Any:
    """What a key walks for ``task``: a ``@distribute_task`` task's function, else ``task``.

    review23 F6: ``.func`` was taken from any object, so the key of a raw
    ``functools.partial(f, 1)`` was ``f``'s, its arguments dropped (``partial(f, 2)``
    had the same key), and differed from the key a job takes of a task made from it.
    """
    import sys

    api = sys.modules.get("qshpc.program.api")  # (no task exists before it is imported)
    if api is not None and isinstance(task, api.DistributedTask):
        return task.func
    return task


def key(
    task: Any,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    seed: int | None = None,
) -> str:
    """The cache key of calling ``task(*args, **kwargs)`` (64 hex digits).

    Args:
        task: The ``@distribute_task()`` function (or the plain function).
        args: Positional arguments, as a tuple.
        kwargs: Keyword arguments.
        seed: The task's seed: the one the job derived for that call
            (``qshpc.current_task().seed`` inside it), None when the job had none.

    Raises:
        UncacheableError: A value cannot be hashed the same way in every process.
        UserError: ``args``, ``kwargs`` or ``seed`` of the wrong kind (``lookup(f, 7)``).
    """
    from qshpc.cache.keys import call_key, function_digest, task_digest

    _check_call(task, args, kwargs, seed)
    seed = None if seed is None else int(seed)
    return call_key(task_digest(function_digest(_func(task)), task), tuple(args), kwargs, seed)


def _check_call(task: Any, args: Any, kwargs: Any, seed: Any) -> None:
    """Refuse a call described wrongly (``lookup(f, 7)``), rather than key something else.

    Raises:
        UserError: Naming the argument and what to give instead.
    """
    from qshpc.errors import UserError

    if not callable(_func(task)):
        raise UserError(
            f"the task to look up is {type(task).__name__}, not a function: give the "
            "@distribute_task function (or the plain function) the job called"
        )
    if not isinstance(args, (tuple, list)):
        raise UserError(
            f"args must be a tuple of the call's positional arguments, got {type(args).__name__} "
            f"{args!r:.60}: write ({args!r:.40},) for one argument"
        )
    if kwargs is not None and not (
        isinstance(kwargs, dict) and all(isinstance(k, str) for k in kwargs)
    ):
        raise UserError(
            f"kwargs must be a dict of the call's keyword arguments by name, got "
            f"{type(kwargs).__name__} {kwargs!r:.60}"
        )
    import numbers

    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise UserError(
            f"seed must be the task's seed, an int (qshpc.current_task().seed in the task), "
            f"or None for a job without --seed; got {type(seed).__name__} {seed!r:.40}"
        )


def lookup(
    task: Any,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    seed: int | None = None,
    cache_dir: str | Path | None = None,
) -> Hit | None:
    """The stored result of ``task(*args, **kwargs)``, or None when the cache has none.

    Reads the cache without a job: the result of a call made by any earlier job
    (one that ran with the cache on), even after that job's files are gone.

    Args:
        task: The ``@distribute_task()`` function (or the plain function).
        args: Positional arguments, as a tuple.
        kwargs: Keyword arguments.
        seed: The task's seed in the job that stored it (None: no job seed).
        cache_dir: The cache folder (default ``$QSHPC_CACHE_DIR`` or ``$QSHPC_HOME/cache``).

    Returns:
        A :class:`~qshpc.cache.store.Hit`: ``value``, and ``header`` with the
        function, source ``job`` and ``task`` and when it was stored; or None.

    Raises:
        UserError: The cache folder is unsafe to read (see ``docs/cache.md``) or is
            not a folder, or ``args``, ``kwargs`` or ``seed`` of the wrong kind.
    """
    from qshpc.cache.keys import UncacheableError
    from qshpc.cache.store import CacheDir

    try:
        k = key(task, args, kwargs, seed=seed)
    except UncacheableError:
        return None
    hit = CacheDir(cache_dir, create=False).get(k) if _exists(cache_dir) else None
    if hit is not None:
        from qshpc.cache.rebind import rebind_hit

        hit.value = rebind_hit(hit, tuple(args), kwargs)  # as a job's hit: see rebind
    return hit


def get_entry(key: str, cache_dir: str | Path | None = None) -> Hit | None:
    """The entry stored under ``key``, or None.

    ``key``: the whole key, or 4 or more of its first hex digits (``qshpc cache
    ls`` shows 16) when they name one entry.

    Raises:
        UserError: ``key`` is not hex digits, or names several entries.
    """
    from qshpc.cache.keys import KEY_HEX, is_key
    from qshpc.cache.store import CacheDir
    from qshpc.errors import UserError

    text = key.strip().lower() if isinstance(key, str) else ""
    if not 4 <= len(text) <= KEY_HEX or not is_key(text.ljust(KEY_HEX, "0")):
        raise UserError(
            f"{key!r} is not a cache key: give 4 or more of its hex digits, as "
            "`qshpc cache ls` shows them (`--json` prints them whole)"
        )
    if not _exists(cache_dir):
        return None
    cache = CacheDir(cache_dir, create=False)
    if len(text) < KEY_HEX:
        found = sorted(
            {
                e.name
                for _, base in cache.folders(all_users=True)
                for e in _scan(base / text[:2])
                if e.name.startswith(text) and is_key(e.name)
            }
        )
        if len(found) > 1:
            raise UserError(
                f"{len(found)} entries have keys starting {text}: give more of its digits"
            )
        if not found:
            return None
        text = found[0]
    return cache.get(text)


def _scan(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return list(it)
    except OSError:
        return []


def _exists(cache_dir: str | Path | None) -> bool:
    from qshpc.cache.folder import default_dir, expand, present

    root = expand(cache_dir) if cache_dir is not None else default_dir()
    if not present(root):
        return False
    if not root.is_dir():  # a file (``cache_dir="/etc/passwd"``): said, as the CLI does
        from qshpc.cache.store import CacheDir

        CacheDir(root, create=False)  # raises UserError: "... is not a folder"
    return True


__all__ = [
    "CacheDir",
    "CacheWriteError",
    "Hit",
    "UncacheableError",
    "call_key",
    "function_digest",
    "gc",
    "get_entry",
    "key",
    "lookup",
    "remove",
    "rows",
    "stats",
    "table",
]
