"""The child process of :mod:`qshpc.store.isolate`: reads one file, answers on stdout.

Run as ``python -m qshpc.store.isolated_child (job|arguments) PATH``; nothing
imports this module.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

from qshpc.errors import QshpcError, StoreError
from qshpc.store.isolate import _LEN, ARGUMENTS
from qshpc.store.reader import JobReader

_METHODS = frozenset(
    {
        "meta",
        "arguments",
        "tasks",
        "task_result",
        "done_records",
        "result",
        "recoverable",
        "schema",
        "runs",
        "spans",
        "task_table",
    }
)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it pickles (and is ours or plain), else a StoreError with its text."""
    if isinstance(exc, QshpcError | OSError | ValueError | KeyError | TypeError):
        try:
            pickle.loads(pickle.dumps(exc))
            return exc
        except Exception:
            pass
    return StoreError(f"{type(exc).__name__}: {exc}")


def _serve(target: str, path: Path) -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints must not corrupt the answers
    inp = sys.stdin.buffer
    reader: JobReader | None = None
    while True:
        head = inp.read(_LEN.size)
        if len(head) < _LEN.size:
            return
        method, args, kwargs = pickle.loads(inp.read(_LEN.unpack(head)[0]))
        try:
            if target == "arguments" and method == ARGUMENTS:
                from qshpc.store.jobfile import load_arguments as load

                answer: tuple[str, Any] = ("ok", load(path, bool(args[0]), plain=True))
            elif target == "job" and method in _METHODS:
                if reader is None:
                    reader = JobReader.open_plain(path)
                if method == "schema":
                    answer = ("ok", True)
                else:
                    answer = ("ok", getattr(reader, method)(*args, **kwargs))
            else:
                answer = ("err", StoreError(f"unknown call {method!r}"))
        except BaseException as exc:  # everything goes back to the parent
            answer = ("err", _portable(exc))
        try:
            data = pickle.dumps(answer, protocol=5)
        except Exception as exc:
            data = pickle.dumps(("err", StoreError(f"the value read cannot travel: {exc}")))
        out.write(_LEN.pack(len(data)) + data)
        out.flush()


if __name__ == "__main__":
    _serve(sys.argv[1], Path(sys.argv[2]))
