"""A worker stores a result only under a key that describes what it computed (review43 H2).

Rank 0 keys a dispatched call with the digest of the task function as rank 0
sees it (:func:`qshpc.cache.keys.function_digest`). A worker runs the function
as shipped, with the user's modules imported afresh: a module attribute the
program set (``helpers.FACTOR = 10``) or a function it patched into a module
(``helpers.f = g``) is rank 0's alone, and the worker computes with the file's.
The entry would then be stored under a key that says what the worker did not
compute, and any run that computes in the program's process (``--workers 0``,
plain ``python``, a notebook) would get the worker's value back, or the reverse.

So a worker that is to store a call's result first digests the function it
runs, once per function, and compares it with rank 0's digest (sent with the
batch's cache column). Where they differ, the result is returned as usual but
not stored, and the worker says so once for that function.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

#: The runners :class:`qshpc.program.api.Task` wraps its function in (by name: the cache
#: sits below qshpc.task): the function is ``.func``; a TargetedCall's variables ``.env``.
_WRAPPER = {"qshpc.task.execute.TargetedCall": 1, "qshpc.task.execute.AwaitedCall": 1}


def _task_function(runner: Any) -> tuple[Any, Any]:
    """The user's function inside a shipped runner (a ``TargetedCall`` or ``AwaitedCall``
    around it), and a stand-in task whose ``target.env_vars`` are the runner's."""
    env = None
    func = runner
    while _WRAPPER.get(f"{type(func).__module__}.{type(func).__qualname__}") is not None:
        if getattr(func, "env", None):  # a TargetedCall's (the cache sits below qshpc.task)
            env = func.env
        func = func.func
    return func, SimpleNamespace(target=SimpleNamespace(env_vars=env))


class ShippedDigests:
    """Per worker: whether each shipped function's digest here equals rank 0's."""

    def __init__(self) -> None:
        self._agrees: dict[int, bool] = {}

    def agrees(
        self, fn_id: int, runner: Any, name: str, theirs: bytes | None, env: bytes | None
    ) -> bool:
        """Whether this worker's digest of ``runner`` (function ``fn_id``) is ``theirs``
        (rank 0's); decided once per function, and said once where it is not.

        ``env``: rank 0's :func:`~qshpc.cache.keys.environment_digest`, hashed in in
        place of this worker's (reading versions here costs ~50 ms a worker; a
        function is compared, not the environment)."""
        known = self._agrees.get(fn_id)
        if known is not None:
            return known
        from qshpc.cache.keys import UncacheableError, function_digest, task_digest

        func, task = _task_function(runner)
        try:
            mine: bytes | None = (
                task_digest(function_digest(func, env=env), task) if env is not None else None
            )
        except UncacheableError:
            mine = None
        except Exception:  # an odd value only this worker holds: not stored, as above
            mine = None
        ok = self._agrees[fn_id] = theirs is not None and mine == theirs
        if not ok:
            print(
                f"qshpc: cache: results of {name} computed on this worker are not cached: "
                "the function differs here from the program's (a module attribute or "
                "function the program set, e.g. `helpers.FACTOR = 10`, is not seen by the "
                "workers, which import the module from its file); the results are returned "
                "as computed. To cache them, define the value in the module's file, or pass "
                "it to the task as an argument",
                file=sys.stderr,
                flush=True,
            )
        return ok

    def keys(
        self, keys: list[Any], fn_ids: Any, funcs: dict[int, Any], info: dict[str, Any]
    ) -> Any:
        """A batch's cache keys, with None for each call whose function differs here
        (None for all: none is stored). ``funcs``: fn_id -> (runner, name, ...);
        ``info``: the batch's cache settings, with rank 0's ``digests`` and ``env``."""
        theirs: dict[int, bytes] = info.get("digests") or {}
        env = info.get("env")
        if type(fn_ids) is int:
            f = funcs[fn_ids]
            return keys if self.agrees(fn_ids, f[0], f[1], theirs.get(fn_ids), env) else None
        bad = {
            i
            for i in set(fn_ids)
            if not self.agrees(i, funcs[i][0], funcs[i][1], theirs.get(i), env)
        }
        if not bad:
            return keys
        return [None if i in bad else k for k, i in zip(keys, fn_ids, strict=True)]
