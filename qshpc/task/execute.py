"""Run one task call and capture what happened, on any rank."""

from __future__ import annotations

import os
import pickle
import threading
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qshpc.errors import TaskError, load_cause, task_error
from qshpc.task import context
from qshpc.text import utf8_safe


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
        cause: The exception itself (when not ok and it ran in this process).
        cause_blob: The exception pickled on the worker (:func:`qshpc.errors.dump_cause`).
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
    cause: BaseException | None = None
    cause_blob: bytes | None = None

    def task_error(self, rank: int, host: str) -> TaskError:
        """The :class:`TaskError` that ``get`` raises: also an instance of the cause's class."""
        cause = self.cause if self.cause is not None else load_cause(self.cause_blob)
        return task_error(
            self.task_id,
            self.function,
            rank,
            host,
            self.error or "",
            self.exc_type,
            self.attempt,
            cause,
        )


#: numpy's errors for a write into a read-only array (``put``'s arrays are, as in Ray).
_READ_ONLY = (
    "assignment destination is read-only",
    "output array is read-only",
    "cannot set WRITEABLE flag to True of this array",
)
_READ_ONLY_FIX = (
    " (a numpy array a task gets from put() is read-only, as in Ray: "
    "change a copy of it, arr = arr.copy())"
)


#: pickle's words (Python 3.11; 3.12 and later) for a function or class of the program's
#: that it looked up on ``__main__`` by name and did not find there.
_ON_MAIN = ("on __main__ failed", "not found as __main__.")
_ON_MAIN_FIX = (
    " (on a worker, __main__ is qshpc's, not the program: the program's own functions and "
    "classes cannot be pickled by name there, as multiprocessing and concurrent.futures do "
    "for a pool in a task; define them in a module beside the program and import them from it)"
)


def _with_fix(text: str, exc: BaseException) -> str:
    """``text`` (a task's traceback), its last line naming the fix when ``exc`` is numpy's
    refusal to write into a read-only array: on 3986114 a task that wrote into an array
    from ``put`` failed with numpy's words alone, which say neither why nor what to do.
    Also when a task's ``multiprocessing.Pool.map(square, ...)`` of the program's own
    ``square`` could not pickle it (session 21: pickle's words alone)."""
    if type(exc) is ValueError and str(exc) in _READ_ONLY:
        return text.rstrip("\n") + _READ_ONLY_FIX + "\n"
    if isinstance(exc, (pickle.PicklingError, AttributeError)) and any(
        m in str(exc) for m in _ON_MAIN
    ):
        return text.rstrip("\n") + _ON_MAIN_FIX + "\n"
    return text


def task_traceback(exc: BaseException) -> str:
    """The traceback of what a task raised, from the task's own frame on.

    The first frame is the runtime's line that called the task function: not
    the user's, and the same in every error, so it is left out.
    """
    text = "".join(traceback.format_exception(type(exc), exc, _own_frames(exc)))
    return utf8_safe(_with_fix(text, exc))


def _own_frames(exc: BaseException) -> types.TracebackType | None:
    """``exc``'s traceback from the task's own frame on (see :func:`task_traceback`)."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    # And the frames that run the task's own code, when it has any below them: an
    # ``async def`` task's error began with 9 frames of qshpc, concurrent.futures and
    # asyncio (hunt14a), a TargetedCall's with one.
    own = tb
    while own is not None and own.tb_frame.f_code.co_filename.endswith(_RUNNERS):
        own = own.tb_next
    return tb if own is None else own


def described(exc: BaseException) -> tuple[str, BaseException | None]:
    """The traceback text of a task's exception and the exception to send as its cause.

    review53 K4: an exception whose ``__getattr__`` recurses (or raises) made the
    traceback's ``getattr(exc, "__notes__", None)`` raise RecursionError here, out of
    :func:`run_task`: the worker died ("lost sys.stderr"), every later task got
    WorkerLostError, and at workers 0 ``get`` raised a bare RecursionError. Such an
    exception is now described by its class and frames alone, and not sent on (its
    attributes cannot be read safely, nor pickled): the call fails with a plain
    :class:`TaskError` saying so.
    """
    try:
        return task_traceback(exc), exc.with_traceback(None)  # (frames are not pinned)
    except Exception as bad:  # RecursionError too
        if exc.__cause__ is not None or exc.__context__ is not None:
            # review56 M6: a member of its chain that cannot be read lost the readable
            # exception itself (its class and message): described and sent without the chain
            try:
                exc.__cause__ = exc.__context__ = None  # (read even with chain=False)
                exc.__suppress_context__ = True
                text = "".join(traceback.format_exception(type(exc), exc, _own_frames(exc)))
                note = "(its cause or context could not be described, as a __getattr__ that "
                note += "recurses or raises cannot: left out)\n"
                return utf8_safe(_with_fix(text, exc)) + note, exc.with_traceback(None)
            except Exception:
                pass
        return undescribed(exc, bad), None


def class_name(cls: type) -> str:
    """``cls.__name__``, or the type's own slot where a metaclass raises for it (review56 L1)."""
    try:
        return str(cls.__name__)
    except Exception:
        return str(type.__dict__["__name__"].__get__(cls))


def undescribed(exc: BaseException, bad: BaseException) -> str:
    """The error text of a task's exception that could not be described (:func:`described`)."""
    cls = type(exc)
    try:
        frames = "".join(traceback.format_tb(_own_frames(exc)))
    except Exception:  # (a frame's source that cannot be read)
        frames = ""
    head = "Traceback (most recent call last):\n" + frames if frames else ""
    try:
        name = f"{cls.__module__}.{cls.__qualname__}"
    except Exception:  # a metaclass whose __qualname__ raises (review56 L1)
        name = f"{type.__dict__['__module__'].__get__(cls)}.{class_name(cls)}"
    return (
        f"{head}{name}: (this exception could not be described: "
        f"reading it raised {type(bad).__name__}, as a __getattr__ that recurses or raises "
        "does; its message and attributes are not kept)\n"
    )


#: The files of the frames that run a task's code (:func:`task_traceback` leaves them out).
_RUNNERS = (
    os.path.join("qshpc", "task", "execute.py"),
    os.path.join("concurrent", "futures", "_base.py"),
    os.path.join("concurrent", "futures", "thread.py"),
    os.path.join("asyncio", "runners.py"),
    os.path.join("asyncio", "base_events.py"),
)


def run_task(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    task_id: str,
    name: str,
    seed: int | None,
    attempt: int,
    step: context.Step | None = None,
) -> Outcome:
    """Call ``func`` inside a task context; never raises (but for the runtime's :class:`Interrupt`)."""
    prov = context.push_task(context.TaskContext(task_id, name, seed, attempt, step))
    started = time.time()
    try:
        value = func(*args, **kwargs)
    except TASK_ERRORS as exc:
        if isinstance(exc, FATAL):
            raise
        finished = time.time()
        error, cause = described(exc)
        return Outcome(
            task_id,
            name,
            attempt,
            False,
            error=error,
            exc_type=class_name(type(exc)),
            started=started,
            finished=finished,
            provenance=prov,
            cause=cause,
        )
    finally:
        context.pop_task()
    return Outcome(
        task_id, name, attempt, True, value, started=started, finished=time.time(), provenance=prov
    )


def unsendable_text(task_id: str, name: str, value: Any, exc: BaseException) -> str:
    """The error of a task whose return value cannot be stored or sent (on any rank)."""
    return (
        f"SerializationError: the return value of task {task_id} ({name}, "
        f"{type(value).__name__}) cannot be serialized: {exc}. Return plain data, numpy "
        "arrays or Qiskit objects.\n"
    )


def unsendable(out: Outcome, exc: BaseException) -> Outcome:
    """``out`` (it returned) as the failure a worker reports when its value cannot be stored."""
    return Outcome(
        out.task_id,
        out.function,
        out.attempt,
        False,
        error=unsendable_text(out.task_id, out.function, out.value, exc),
        exc_type="SerializationError",
        started=out.started,
        finished=out.finished,
        provenance=out.provenance,
    )


class AwaitedCall:
    """A coroutine function (``async def``) as a task: each call runs it to its end.

    Its call alone gives a coroutine, which no rank can send back (the task failed:
    ``cannot pickle 'coroutine' object``; under plain ``python`` ``get`` gave the
    coroutine itself). Each call runs in an event loop of its own, in a thread of
    its own when this thread already runs one (a notebook, plain ``python``).

    Args:
        func: The coroutine function.
    """

    __slots__ = ("func",)

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            running = False
        else:
            running = True
        if not running:
            # Outside the except block: a task's error was chained to "RuntimeError: no
            # running event loop" ("During handling of the above exception...": hunt14a).
            return asyncio.run(self.func(*args, **kwargs))
        state = context.thread_state()  # the task this call is: its id, seed, nested ids

        def run() -> Any:
            context.adopt_thread_state(state)
            return asyncio.run(self.func(*args, **kwargs))

        return _async_pool().submit(run).result()


class _Threads:
    """Daemon threads that run ``async def`` calls made under a running event loop.

    Kept for the process's life, never one thread per call: a thread that imports qiskit
    first and then ends makes qiskit 2.6 crash later (SIGSEGV in the next transpile, or at
    exit: found in session 13 with an ``async def`` task that imported qiskit, on one rank
    under ``asyncio.run``). A thread starts only when none is idle, so a nested call takes
    another one instead of waiting for its own.

    Daemon threads, not a ``ThreadPoolExecutor``'s: the interpreter joins those at exit,
    and a call that never returns (a task awaiting forever, then the job cancelled) kept
    the process alive for good (hunt14a: ``qshpc run --workers 0`` recorded CANCELED and
    never exited; on Slurm the job would hold its nodes until its time limit).
    """

    def __init__(self) -> None:
        import queue

        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on one of the threads; its ``concurrent.futures.Future``."""
        import concurrent.futures

        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                threading.Thread(target=self._serve, name="qshpc-async", daemon=True).start()
        self._calls.put((fn, future))
        return future

    def _serve(self) -> None:
        while True:
            fn, future = self._calls.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as exc:  # the task's, handed to the caller
                    future.set_exception(exc)
            del fn, future
            with self._lock:
                self._idle += 1


_ASYNC_POOL: _Threads | None = None
_ASYNC_POOL_LOCK = threading.Lock()


def _forget_async_pool() -> None:
    """In a child forked without exec: its threads are not there, a new pool starts them
    (the parent's pool took the call and no thread ran it: the child hung for good)."""
    global _ASYNC_POOL, _ASYNC_POOL_LOCK
    _ASYNC_POOL, _ASYNC_POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_async_pool)


def _async_pool() -> _Threads:
    """The threads that run ``async def`` calls made under a running event loop (:class:`_Threads`)."""
    global _ASYNC_POOL
    with _ASYNC_POOL_LOCK:
        if _ASYNC_POOL is None:
            _ASYNC_POOL = _Threads()
        return _ASYNC_POOL


class TargetedCall:
    """A task function run with its target's threads and environment variables.

    ``distribute_task(target={"cpu": 4, "env_vars": {...}})`` ships this in place
    of the bare function: while a call runs, ``current_task().cpus`` (and so
    Aer's threads) is 4, and the variables are set in ``os.environ`` (restored
    after the call). Threads are capped at the rank's cores, which only bites a
    nested call (it runs inline on its parent's rank) or plain ``python``.

    Args:
        func: The task function.
        threads: Threads per call (0: the rank's cores).
        env: Environment variables set during each call, or None.
    """

    __slots__ = ("env", "func", "threads")

    def __init__(self, func: Callable[..., Any], threads: int, env: dict[str, str] | None) -> None:
        self.func = func
        self.threads = threads
        self.env = env

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        threads = min(self.threads, context.rank_info().cpus) if self.threads else 0
        old_threads = context.set_task_threads(threads)
        saved: dict[str, str | None] = {}
        if self.env:
            import os

            for k, v in self.env.items():
                saved[k] = os.environ.get(k)
                os.environ[k] = v
        try:
            return self.func(*args, **kwargs)
        finally:
            context.set_task_threads(old_threads)
            if saved:
                import os

                for k, old in saved.items():
                    if old is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = old

    def __repr__(self) -> str:
        return f"<{getattr(self.func, '__qualname__', self.func)} with {self.threads} thread(s)>"
