"""The jobs ``run(pubs)`` returns: Qiskit's ``BasePrimitiveJob`` over qshpc's work.

* :class:`TasksJob`: blocks sent as tasks from rank 0; ``result()`` waits for
  them as ``qshpc.get`` does (rank 0 may run queued blocks meanwhile).
* :class:`LocalJob`: blocks run in this process, in a background thread as
  Qiskit's reference primitives do, or at once inside a task.
* :class:`ClientJob`: a whole qshpc job on a client (``mode=``); its
  ``job_id()`` is the qshpc job id.

``status()`` returns ``qiskit.providers.JobStatus`` as Qiskit's and Aer's
primitive jobs do.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from qiskit.primitives.base.base_primitive_job import (  # type: ignore[import-untyped]
    BasePrimitiveJob,
)
from qiskit.providers import JobStatus  # type: ignore[import-untyped]

_ids = itertools.count()


def new_id(kind: str) -> str:
    """An id for a primitive job of this process: ``<where>/<kind>-<n>``.

    ``<where>`` is the qshpc job id on rank 0 of a job, ``task-<id>`` inside a
    task, ``local`` under plain ``python``.
    """
    from qshpc.program import api
    from qshpc.task.context import current_task

    task = current_task()
    session = api._session
    if task is not None:
        where = f"task-{task.task_id}"
    elif session is not None and session.job_dir is not None:
        where = session.job_dir.name
    else:
        where = "local"
    return f"{where}/{kind}-{next(_ids)}"


class StatusChecks:
    """``done()``, ``running()`` and ``cancelled()`` read from ``status()`` (Qiskit's names)."""

    def status(self) -> JobStatus:
        raise NotImplementedError

    def done(self) -> bool:
        """True when the work succeeded."""
        return bool(self.status() == JobStatus.DONE)

    def running(self) -> bool:
        """True while the work runs."""
        return bool(self.status() == JobStatus.RUNNING)

    def cancelled(self) -> bool:
        """True when the work was cancelled."""
        return bool(self.status() == JobStatus.CANCELLED)


class TasksJob(StatusChecks, BasePrimitiveJob):  # type: ignore[misc]
    """Blocks sent as qshpc tasks; the result is assembled when they are all back.

    Attributes:
        refs: The tasks' references (one per block).
    """

    def __init__(
        self,
        job_id: str,
        refs: list[Any],
        finish: Callable[[list[Any]], Any],
        pubs: list[int] | None = None,
    ) -> None:
        super().__init__(job_id)
        self.refs = refs
        self._finish = finish
        self._pubs = pubs
        self._result: Any = None
        self._lock = threading.Lock()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for every block and return the ``PrimitiveResult``.

        Raises:
            TaskError: A block failed (its remote traceback inside; ``PUB i: `` first).
            TimeoutError: Not done within ``timeout`` seconds.
        """
        from qshpc.errors import TaskError

        with self._lock:
            if self._result is None:
                from qshpc.program.api import results_of

                try:
                    outputs = results_of(self.refs, timeout)
                except TaskError as exc:
                    self._name_pub(exc)
                    raise
                self._result = self._finish(outputs)
            return self._result

    def _name_pub(self, exc: BaseException) -> None:
        """Put the PUB of the block that raised ``exc`` before its message."""
        if self._pubs is None:
            return
        # ``get`` raises a copy of the stored error (each its own traceback, fix42e): the
        # block is found by its task id, the error by identity only when it is the same.
        task_id = getattr(exc, "task_id", None)
        for ref, pub in zip(self.refs, self._pubs, strict=True):
            if not ref.done() or ref.cancelled():
                continue
            stored = ref.exception()
            if stored is exc or (stored is not None and task_id == ref.task_id):
                name_pub(exc, pub)
                return

    def status(self) -> JobStatus:
        """DONE, ERROR, CANCELLED, RUNNING or QUEUED, from the blocks' states."""
        refs = self.refs
        if all(r.done() for r in refs):
            if any(r.cancelled() for r in refs):
                return JobStatus.CANCELLED
            if any(r.exception() is not None for r in refs):
                return JobStatus.ERROR
            return JobStatus.DONE
        if any(r.running() or r.done() for r in refs):
            return JobStatus.RUNNING
        return JobStatus.QUEUED

    def in_final_state(self) -> bool:
        """True when nothing is left to run."""
        return all(r.done() for r in self.refs)

    def cancel(self) -> bool:
        """Cancel the job if none of its blocks has started (as Qiskit's ``future.cancel()``).

        All or nothing: True when every block was still queued (now all cancelled:
        ``result()`` raises ``CancelledError``); False when any block runs or ended,
        and then nothing is cancelled, so ``result()`` still returns the whole result.
        """
        from qshpc.program.refs import cancel_all

        return cancel_all(self.refs)


def name_pub(exc: BaseException, pub: int) -> None:
    """Put ``PUB <pub>: `` before a block task's error message (once): a task id is no PUB."""
    from qshpc.errors import TaskError

    prefix = f"PUB {pub}: "
    if isinstance(exc, TaskError) and not exc._message.startswith(prefix):
        exc._message = prefix + exc._message


class LocalJob(StatusChecks, BasePrimitiveJob):  # type: ignore[misc]
    """Blocks run in this process: in a thread, or at once (``run_now=True``, inside tasks)."""

    def __init__(self, job_id: str, compute: Callable[[], Any], run_now: bool) -> None:
        super().__init__(job_id)
        self._compute = compute
        self._result: Any = None
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        if run_now:
            self._run()
        else:
            self._thread = threading.Thread(target=self._run, name="qshpc-primitive", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            if not self._cancelled:
                self._result = self._compute()
        except BaseException as exc:  # handed to result()
            self._error = exc
        finally:
            self._done.set()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the work; return the ``PrimitiveResult`` (or raise what it raised)."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"primitive job {self.job_id()} not done after {timeout} s")
        if self._error is not None:
            from qshpc.program.refs import raised_copy

            raise raised_copy(self._error)  # its own traceback each time (review44 F3)
        if self._cancelled and self._result is None:
            raise RuntimeError(f"primitive job {self.job_id()} was cancelled")
        return self._result

    def status(self) -> JobStatus:
        """DONE, ERROR, CANCELLED or RUNNING."""
        if not self._done.is_set():
            return JobStatus.RUNNING
        if self._error is not None:
            return JobStatus.ERROR
        if self._result is None:
            return JobStatus.CANCELLED
        return JobStatus.DONE

    def in_final_state(self) -> bool:
        """True when the work ended."""
        return self._done.is_set()

    def cancel(self) -> bool:
        """Cancel if it has not started (work in progress runs to its end)."""
        self._cancelled = True
        return self._done.is_set() and self._result is None


__all__ = ["LocalJob", "TasksJob", "name_pub", "new_id"]
