"""Run one task call and capture what happened, on any rank."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qshpc.errors import TaskError
from qshpc.task import context


class Interrupt(BaseException):
    """The runtime stopping the program (a cancel, a requeue), raised by rank 0's signal handlers.

    It may surface inside a task that rank 0 runs itself (``--workers 0``, or
    while it waits in ``get``): it is never that task's failure and passes
    through every task runner.
    """


#: What a task may raise and still be only a failed task: any exception, a
#: ``sys.exit()``, ``KeyboardInterrupt`` or ``GeneratorExit`` raised by the task's
#: code (the worker keeps serving: ending a rank is not a task's to decide), and
#: a panic of a Rust or C++ extension (pyo3's ``PanicException`` derives from
#: ``BaseException``; a transpiler panic must not take the worker down).
TASK_ERRORS = BaseException
#: What passes through a task runner instead: the runtime's own interruptions.
FATAL = (Interrupt,)


@dataclass
class Outcome:
    """What one attempt of a task produced.

    Attributes:
        task_id: The task's stable id.
        function: The task function's name.
        attempt: 1 for the first try.
        ok: True when the function returned.
        value: The return value (when ok).
        error: The traceback text (when not ok).
        exc_type: Name of the exception class (when not ok).
        started: Unix time the attempt started.
        finished: Unix time it ended.
        provenance: Fields the task recorded with ``record_provenance``.
    """

    task_id: str
    function: str
    attempt: int
    ok: bool
    value: Any = None
    error: str | None = None
    exc_type: str = ""
    started: float = 0.0
    finished: float = 0.0
    provenance: dict[str, Any] = field(default_factory=dict)

    def task_error(self, rank: int, host: str) -> TaskError:
        """The :class:`TaskError` that ``get`` raises for this outcome."""
        return TaskError(
            self.task_id,
            self.function,
            rank,
            host,
            self.error or "",
            self.exc_type,
            self.attempt,
        )


def run_task(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    task_id: str,
    name: str,
    seed: int | None,
    attempt: int,
) -> Outcome:
    """Call ``func`` inside a task context; never raises (but for the runtime's :class:`Interrupt`)."""
    prov = context.push_task(context.TaskContext(task_id, name, seed, attempt))
    started = time.time()
    try:
        value = func(*args, **kwargs)
    except TASK_ERRORS as exc:
        if isinstance(exc, FATAL):
            raise
        finished = time.time()
        return Outcome(
            task_id,
            name,
            attempt,
            False,
            error=traceback.format_exc(),
            exc_type=type(exc).__name__,
            started=started,
            finished=finished,
            provenance=prov,
        )
    finally:
        context.pop_task()
    return Outcome(
        task_id, name, attempt, True, value, started=started, finished=time.time(), provenance=prov
    )
