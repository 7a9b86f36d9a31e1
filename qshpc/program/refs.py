"""References to task results and to objects placed with :func:`qshpc.put`.

A :class:`TaskRef` behaves like a :class:`concurrent.futures.Future`
(``done``, ``result``, ``exception``, ``cancel``, ``add_done_callback``) but is
lighter: the runtime resolves whole batches of them under one lock, which is
what lets rank 0 keep up with 100k tiny tasks per second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_PENDING, _RUNNING, _DONE, _FAILED, _CANCELLED = range(5)

# One condition for every reference of this process: waiters sleep on it (no
# spinning) and the dispatcher notifies it once per batch, not once per task.
_cond = threading.Condition()


class TaskRef(Generic[T]):
    """A reference to the result of one distributed task call.

    Attributes:
        task_id: The stable task id (call index on rank 0, ``"17.2"`` when nested).
        function: Qualified name of the task function.
    """

    __slots__ = ("__weakref__", "_callbacks", "_error", "_state", "_value", "function", "task_id")

    def __init__(self, task_id: str, function: str) -> None:
        self.task_id = task_id
        self.function = function
        self._state = _PENDING
        self._value: Any = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[TaskRef[T]], None]] | None = None

    def __repr__(self) -> str:
        names = ("pending", "running", "done", "failed", "cancelled")
        return f"<TaskRef {self.task_id} {self.function} {names[self._state]}>"

    # -- future-like API -------------------------------------------------
    def done(self) -> bool:
        """Return True when the task finished, failed or was cancelled."""
        return self._state >= _DONE

    def running(self) -> bool:
        """Return True while the task is dispatched and not finished."""
        return self._state == _RUNNING

    def cancelled(self) -> bool:
        """Return True when the task was cancelled before it ran."""
        return self._state == _CANCELLED

    def cancel(self) -> bool:
        """Cancel the task if it has not been dispatched yet.

        Returns:
            True when it was cancelled, False when it already runs or ended.
        """
        with _cond:
            if self._state != _PENDING:
                return self._state == _CANCELLED
            self._state = _CANCELLED
            self._error = CancelledError(f"task {self.task_id} ({self.function}) was cancelled")
            _cond.notify_all()
        self._run_callbacks()
        return True

    def result(self, timeout: float | None = None) -> T:
        """Wait for the task and return its result.

        Args:
            timeout: Seconds to wait; None waits forever.

        Raises:
            TaskError: The task raised on its worker.
            TimeoutError: Not done within ``timeout``.
        """
        if self._state < _DONE:
            wait_all([self], timeout)
        if self._error is not None:
            raise self._error
        value: T = self._value
        return value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the task and return its exception (None when it succeeded)."""
        if self._state < _DONE:
            wait_all([self], timeout)
        return self._error

    def add_done_callback(self, fn: Callable[[TaskRef[T]], None]) -> None:
        """Call ``fn(ref)`` when the task ends (at once if it already has)."""
        with _cond:
            if self._state < _DONE:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        fn(self)

    # -- runtime side ----------------------------------------------------
    def _run_callbacks(self) -> None:
        cbs, self._callbacks = self._callbacks, None
        for cb in cbs or ():
            cb(self)


class CancelledError(Exception):
    """The task was cancelled before it ran."""


def resolve_many(items: Iterable[tuple[TaskRef[Any], bool, Any]]) -> None:
    """Resolve references in one go: ``(ref, ok, value_or_exception)``.

    Takes the lock once and wakes waiters once, whatever the number of refs.
    """
    with_callbacks: list[TaskRef[Any]] = []
    with _cond:
        for ref, ok, value in items:
            if ref._state >= _DONE:
                continue
            if ok:
                ref._value = value
                ref._state = _DONE
            else:
                ref._error = value
                ref._state = _FAILED
            if ref._callbacks:
                with_callbacks.append(ref)
        _cond.notify_all()
    for ref in with_callbacks:
        ref._run_callbacks()


def resolve_values(chunks: Iterable[tuple[list[TaskRef[Any]], list[Any]]]) -> None:
    """Resolve successful references in one go: ``(refs, values)`` pairs of equal length."""
    resolve_many(
        (ref, True, value)
        for refs, values in chunks
        for ref, value in zip(refs, values, strict=True)
    )


def mark_running(refs: Iterable[TaskRef[Any]]) -> None:
    """Mark references as dispatched (they can no longer be cancelled)."""
    for ref in refs:
        if ref._state == _PENDING:
            ref._state = _RUNNING


def wait_all(refs: list[TaskRef[Any]], timeout: float | None = None) -> None:
    """Sleep until every reference is done.

    Raises:
        TimeoutError: When ``timeout`` seconds pass first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    i = 0
    with _cond:
        while i < len(refs):
            if refs[i]._state >= _DONE:
                i += 1
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                n = sum(1 for r in refs if r._state < _DONE)
                raise TimeoutError(f"{n} of {len(refs)} tasks not done after {timeout} s")
            _cond.wait(remaining if remaining is not None else 1.0)


def wait_some(
    refs: list[TaskRef[Any]], num_returns: int, timeout: float | None
) -> tuple[list[TaskRef[Any]], list[TaskRef[Any]]]:
    """Wait until ``num_returns`` references are done (or the timeout passes)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    with _cond:
        while True:
            done = [r for r in refs if r._state >= _DONE]
            if len(done) >= num_returns:
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            _cond.wait(remaining if remaining is not None else 1.0)
    done_ids = {id(r) for r in done}
    return done, [r for r in refs if id(r) not in done_ids]


class ObjectRef:
    """A reference to an object placed with :func:`qshpc.put`.

    Pass it as a task argument: the object travels to each worker once and is
    substituted for the reference there.
    """

    __slots__ = ("obj_id",)

    def __init__(self, obj_id: int) -> None:
        self.obj_id = obj_id

    def __repr__(self) -> str:
        return f"<ObjectRef {self.obj_id}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ObjectRef, (self.obj_id,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.obj_id == self.obj_id

    def __hash__(self) -> int:
        return hash(("ObjectRef", self.obj_id))


_PLAIN = (int, float, str, bytes, bool, complex, type(None))


def find_refs(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[list[int], list[TaskRef[Any]]]:
    """Find ObjectRefs and TaskRefs among arguments (top level and one container deep)."""
    objs: list[int] = []
    tasks: list[TaskRef[Any]] = []
    for v in (*args, *kwargs.values()) if kwargs else args:
        if isinstance(v, _PLAIN):
            continue
        _visit(v, 0, objs, tasks)
    return objs, tasks


def _visit(v: Any, depth: int, objs: list[int], tasks: list[TaskRef[Any]]) -> None:
    if isinstance(v, ObjectRef):
        objs.append(v.obj_id)
    elif isinstance(v, TaskRef):
        tasks.append(v)
    elif depth < 1 and isinstance(v, (list, tuple)):
        for x in v:
            if not isinstance(x, _PLAIN):
                _visit(x, depth + 1, objs, tasks)
    elif depth < 1 and isinstance(v, dict):
        for x in v.values():
            if not isinstance(x, _PLAIN):
                _visit(x, depth + 1, objs, tasks)


def substitute(value: Any, lookup: Callable[[Any], Any], depth: int = 0) -> Any:
    """Replace ObjectRefs/TaskRefs in ``value`` (as :func:`find_refs` scans) by ``lookup(ref)``."""
    if isinstance(value, (ObjectRef, TaskRef)):
        return lookup(value)
    if depth < 2 and isinstance(value, list):
        return [substitute(x, lookup, depth + 1) for x in value]
    if depth < 2 and isinstance(value, tuple):
        return tuple(substitute(x, lookup, depth + 1) for x in value)
    if depth < 2 and isinstance(value, dict):
        return {k: substitute(x, lookup, depth + 1) for k, x in value.items()}
    return value
