"""The program API: what a qshpc program imports.

The same program file runs under ``qshpc run`` (rank 0 runs it, workers run its
tasks), under ``qshpc submit`` on Slurm, and under plain ``python`` (tasks run
in the same process).
"""

from __future__ import annotations

import math
import numbers
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, ParamSpec, TypeVar, overload

from qshpc import settings
from qshpc.errors import UsageError, UserError
from qshpc.program import backend as _backend
from qshpc.program.refs import (
    ObjectRef,
    Stored,
    TaskRef,
    fresh,
    iter_completed,
    refuse_on_dispatcher,
    wait_all,
    wait_some,
)
from qshpc.program.resources import Target, check_requirements
from qshpc.program.session import SPAN_GET, SPAN_WAIT, Session

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_session: Session | None = None


def _set_session(session: Session | None) -> None:
    global _session
    _session = session


#: A worker rank's job arguments (its job dir, the arguments), read from the
#: store by the first task that calls get_arguments() there.
_worker_arguments: tuple[str, dict[str, Any]] | None = None
_worker_lock = threading.Lock()


def _arguments_on_worker(job_dir: str) -> dict[str, Any]:
    """The job's arguments read from its store once per worker (as rank 0 reads them)."""
    global _worker_arguments
    with _worker_lock:
        if _worker_arguments is None or _worker_arguments[0] != job_dir:
            from qshpc.store import read_inputs

            _worker_arguments = (job_dir, read_inputs(job_dir).arguments)
        return _worker_arguments[1]


def get_arguments() -> dict[str, Any]:
    """Return the arguments the job was started with (a dict; empty when none).

    Inside a task they are the same, on every rank (as in quantum-serverless,
    whose workers all saw the job's arguments). Each call returns a new dict;
    its values are shared between calls (a circuit is not copied). Under plain ``python``,
    arguments come from the file named by the ``QSHPC_ARGUMENTS`` environment
    variable, if set.
    """
    # A new dict at each call, as quantum-serverless decoded them afresh: a key
    # popped by one caller stays for the next (the values are shared, not copied).
    if _session is not None:
        return dict(_session.arguments)
    from qshpc.task import context

    job_dir = context.worker_job()
    if job_dir is not None:  # inside a task on a worker rank
        return dict(_arguments_on_worker(job_dir))
    path = settings.ARGUMENTS.get()
    if path is not None:
        from qshpc.jobs.prepare import load_arguments_file

        return load_arguments_file(path)
    return {}


def save_result(result: Any) -> bool:
    """Store the program's result in the job store (durable when this returns).

    Calling it again replaces the earlier result (with a warning). Only the
    program saves the result: called inside a distributed task it raises, so
    that task fails (see :func:`_refuse_in_task`).

    Returns:
        True, as quantum-serverless did.

    Raises:
        UserError: Called inside a task (on any rank, or under plain python).
        SerializationError: The result nests lists and dicts more than 100 levels deep,
            or holds itself (nothing is saved; the program may catch it and save a flatter
            copy).
    """
    _refuse_in_task()
    from qshpc.store.nesting import check_stored

    check_stored(result, "the result passed to save_result")  # as run with qshpc as without
    if _session is None:
        print("qshpc: result saved in memory only (run the program with `qshpc run` to store it)")
        return True
    if _session.result_saved:
        warnings.warn(
            "save_result was called again: the later result replaces the earlier one",
            stacklevel=2,
        )
    _session.save_result(result)
    return True


def _refuse_in_task() -> None:
    """``save_result`` belongs to the program: refuse it inside a task, on every rank alike.

    A task's call could not be kept: it runs on a worker, where nothing else
    writes the store; tasks run in any order, so several calls would race; and a
    resumed job reuses stored task results without running the tasks again, so
    the result would vanish on resume. Failing the task (the worker keeps
    serving) says so where the user looks, with the fix.
    """
    from qshpc.task import context

    task = context.current_task()
    info = context.rank_info()
    if task is None and info.rank == 0:
        return
    where = f"task {task.task_id} ({task.function})" if task is not None else "a task's thread"
    raise UserError(
        f"save_result was called inside {where} on rank {info.rank}: only the program saves "
        "the job's result. Return the value from the task and save it in the program, "
        "e.g. save_result(get(refs))"
    )


def update_status(status: str) -> bool:
    """Set a sub-status shown beside the job's state (``RUNNING: sampling batch 3/10``).

    Returns:
        True when a job recorded it (False under plain ``python``), as qiskit-serverless's.
    """
    if not isinstance(status, str):
        raise UserError(f"update_status takes a string, got {type(status).__name__}")
    if _session is not None:
        from qshpc.text import utf8_safe

        _session.update_status(utf8_safe(status))  # (a lone surrogate: review56 L4)
        return True
    return False


def _default_name(func: Any) -> str:
    """A task's name when none is given: its function's qualified name; ``partial(f)``
    for a ``functools.partial`` (its repr printed its arguments: a large array made a
    multi-line name in every record and status table)."""
    import functools

    if isinstance(func, functools.partial):
        return f"partial({_default_name(func.func)})"
    return str(getattr(func, "__qualname__", None) or repr(func))


class DistributedTask(Generic[P, R]):
    """A function whose calls run on worker ranks; calling it returns a :class:`TaskRef`.

    The function travels to the workers *by value* (cloudpickle), so functions
    and lambdas defined in the program file work, and workers never re-run the
    program's top-level code.
    """

    def __init__(
        self,
        func: Callable[P, R],
        target: Target,
        retries: int,
        name: str | None = None,
        cache: bool | None = None,
    ) -> None:
        self.func = func
        self.target = target
        self.retries = retries
        self.name: str = name or _default_name(func)
        #: True/False: this function's calls use the result cache or not, whatever
        #: the job says; None: as the job says (``qshpc run --cache``).
        self.cache = cache
        self.__doc__ = func.__doc__
        self.__wrapped__ = func
        # As functools.wraps gives them (code that labels results by ``f.__name__``;
        # review28 F12): the function's own, or the object's class name for a callable.
        self.__name__: str = getattr(func, "__name__", type(func).__name__)
        self.__qualname__: str = getattr(func, "__qualname__", self.__name__)
        #: Prefix of this function's task ids, counted apart from the others' ("p" for
        #: the primitives' blocks: they exist on some rank counts only, and the ids, so
        #: the seeds, of the program's own calls must not depend on them).
        self.id_prefix = ""
        self._digest: bytes | None = None
        #: Threads per call asked for (0: the rank's cores); rank 0 places calls by it.
        self.threads = target.threads
        #: What a rank calls: the function, or the function with its target's threads and env.
        self.runner: Callable[..., Any] = func
        import inspect

        if inspect.iscoroutinefunction(func):  # async def: each call runs it to its end
            from qshpc.task.execute import AwaitedCall

            self.runner = AwaitedCall(func)
        if target.threads or target.env_vars:
            from qshpc.task.execute import TargetedCall

            self.runner = TargetedCall(self.runner, target.threads, target.env_vars)
        #: Call shapes (positional count, keyword names) known to fit the signature.
        self._fits: set[tuple[int, tuple[str, ...]]] = set()
        self._signature: Any = None  # inspect.Signature, False when it cannot be read

    @property
    def digest(self) -> bytes:
        """Digest of the function by value (for task identity on resume)."""
        if self._digest is None:
            from qshpc.program.backend import function_digest

            self._digest = function_digest(self)
        return self._digest

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> TaskRef[R]:
        shape = (len(args), tuple(kwargs))
        if shape not in self._fits:
            self._check_fits(args, kwargs, shape)
        if self.target.mem_gb:
            _check_memory(self, args, kwargs)
        ref = _backend.current().submit(self, args, kwargs)
        if _session is not None:  # rank 0's count, for the progress shown against it
            _session.submitted += 1
        return ref

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        """A task defined in a class body binds like a method: ``obj.task(x)`` calls it with
        ``obj`` first, as quantum-serverless's plain-function wrapper did (the instance
        travels to the worker by value, like any argument). On the class: the task itself."""
        if instance is None:
            return self
        import types

        return types.MethodType(self, instance)

    def _check_fits(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], shape: tuple[int, tuple[str, ...]]
    ) -> None:
        """Refuse a call whose arguments do not bind to the function, at the call (as Ray).

        Else it would fail on a worker, once per retry. Whether arguments bind
        depends on their count and keyword names only: each shape is checked once.
        A wrapper's own signature is taken (not the function it wraps): one that
        takes more than it shows is not second-guessed.

        Raises:
            TypeError: The arguments do not fit (the message names the signature).
        """
        if self._signature is None:
            import inspect

            try:
                self._signature = inspect.signature(self.func, follow_wrapped=False)
            except (TypeError, ValueError):  # a builtin or a callable it cannot read
                self._signature = False
        if self._signature is not False:
            try:
                self._signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(
                    f"task {self.name} called with arguments that do not fit "
                    f"{self.name}{self._signature}: {exc}"
                ) from None
        self._fits.add(shape)

    def __getstate__(self) -> dict[str, Any]:
        return {
            "func": self.func,
            "target": self.target,
            "retries": self.retries,
            "name": self.name,
            "cache": self.cache,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["func"], state["target"], state["retries"], state["name"], state.get("cache")
        )

    def __repr__(self) -> str:
        return f"<distributed task {self.name}>"


def _check_memory(task: DistributedTask[Any, Any], args: Any, kwargs: dict[str, Any]) -> None:
    """Refuse a call whose circuits cannot fit the task's ``mem`` before it is queued."""
    circuits = [
        a for a in (*args, *kwargs.values()) if hasattr(a, "num_qubits") and hasattr(a, "data")
    ]
    for a in (*args, *kwargs.values()):
        if isinstance(a, (list, tuple)):
            circuits += [c for c in a if hasattr(c, "num_qubits") and hasattr(c, "data")]
    if circuits:
        from qshpc.aer.sizing import check_fits

        check_fits(circuits, task.target.mem_gb)


@overload
def distribute_task(target: Callable[P, R]) -> DistributedTask[P, R]: ...
@overload
def distribute_task(
    target: Target | dict[str, Any] | None = None,
    *,
    retries: int = 0,
    name: str | None = None,
    cache: bool | None = None,
) -> Callable[[Callable[P, R]], DistributedTask[P, R]]: ...
def distribute_task(
    target: Any = None,
    *,
    retries: int = 0,
    name: str | None = None,
    cache: bool | None = None,
) -> Any:
    """Turn a function into a distributed task.

    ``@distribute_task()`` (quantum-serverless's form) or bare ``@distribute_task``
    (as Ray's ``@ray.remote``): both make a task with the default target.

    Args:
        target: Resources per call: ``{"cpu": 1, "gpu": 0, "mem": 2}`` (mem in GB).
        retries: How many times to retry a call that raises.
        name: Name shown in the store (default: the function's qualified name).
        cache: True: a call whose key (the function and its arguments by value,
            the task's seed, the versions of qiskit, Aer and qshpc) was computed
            by an earlier job returns the stored result without running, and
            new results are stored (see docs/cache.md). False: never, even in a
            job run with ``--cache`` (a task with side effects). None (the
            default): as the job says.

    Raises:
        ResourceError: An unknown target key (the message lists the valid ones).
        UserError: ``retries`` or ``cache`` of the wrong type.
    """
    if callable(target) and not isinstance(target, (Target, dict)):
        return distribute_task(retries=retries, name=name, cache=cache)(target)  # bare
    tgt = Target.from_any(target)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise UserError(f"retries must be a whole number >= 0, got {retries!r}")
    if cache is not None and not isinstance(cache, bool):
        raise UserError(f"cache must be True, False or None, got {cache!r}")

    def wrap(func: Callable[P, R]) -> DistributedTask[P, R]:
        if not callable(func):
            raise UserError(f"distribute_task decorates functions, got {type(func).__name__}")
        task = DistributedTask(func, tgt, retries, name, cache)
        check_requirements(tgt.pip, f"task {task.name} (target pip)")
        return task

    return wrap


def _sync() -> None:
    if _session is not None:
        _session.sync()


@overload
def get(object_refs: TaskRef[T], timeout: float | None = None, progress: bool = False) -> T: ...
@overload
def get(object_refs: ObjectRef, timeout: float | None = None, progress: bool = False) -> Any: ...
@overload
def get(
    object_refs: Sequence[TaskRef[T]], timeout: float | None = None, progress: bool = False
) -> list[T]: ...
def get(object_refs: Any, timeout: float | None = None, progress: bool = False) -> Any:
    """Wait for task results; a list of references gives a list of results, in order.

    Each ``get`` gives a copy of a task's result of its own, as Ray's does: a change
    the program makes to it in place is not seen by a later ``get`` of the same
    reference nor by a task the reference is passed to (``ref.result()``, the
    future's, gives the same object each time).

    Args:
        object_refs: A :class:`TaskRef`, an :class:`ObjectRef`, or a list/tuple of
            them (Ray's and quantum-serverless's name for it). A tuple gives a list, as
            a list does (Ray's ``get`` refuses a tuple; kept, for the programs that pass
            one: review31 F6).
        timeout: Seconds to wait in all; None waits forever. It bounds the wait, not a
            call's run time: with no worker rank a call ran at the call, and its result
            is given however long it took (docs/program-api.md).
        progress: Show tasks done / total, rate and ETA on stderr while waiting
            (a bar on a terminal, a line every few seconds otherwise).

    Raises:
        TaskError: A task raised (remote traceback, task id, rank and host inside);
            it is also an instance of the task's own exception class when that
            class allows it, so ``except ValueError`` catches a task's ValueError.
        TimeoutError: Not all done within ``timeout``.
        UserError: Not a reference, an object placed on another rank, or a timeout
            that is not None or a number of seconds >= 0.
    """
    refs = object_refs
    timeout = _timeout(timeout, "get")
    if isinstance(refs, ObjectRef):
        return _backend.current().get_object(refs.obj_id)
    if isinstance(refs, TaskRef):
        _wait([refs], timeout)
        return _one(refs)
    if isinstance(refs, (list, tuple)):
        for r in refs:  # before waiting (on 2dca53c: after waiting for every task of the list)
            if not isinstance(r, (TaskRef, ObjectRef)):
                _one(r)
        _wait([r for r in refs if isinstance(r, TaskRef)], timeout, progress)
        return [
            _backend.current().get_object(r.obj_id) if isinstance(r, ObjectRef) else _one(r)
            for r in refs
        ]
    hint = ""
    if not isinstance(refs, (str, bytes, dict)) and hasattr(refs, "__iter__"):
        hint = " (an iterable, which Ray refuses too: pass a list, get(list(refs)))"
    raise UsageError(
        f"get takes a task reference or a list of them, got {type(refs).__name__}{hint}"
    )


def _refuse_in_callback(refs: Sequence[Any], timeout: float | None, what: str) -> None:
    """:func:`refuse_on_dispatcher` when some of ``refs`` are not done yet."""
    if not all(r.done() for r in refs if isinstance(r, TaskRef)):
        refuse_on_dispatcher(timeout, what)


def results_of(refs: list[TaskRef[Any]], timeout: float | None = None) -> list[Any]:
    """``get(refs)`` without its copies: for qshpc's own references, which the program
    never sees (a primitive job's blocks, whose results it builds a new object from)."""
    _wait(refs, timeout)
    return [r.result() for r in refs]


def _wait(refs: list[TaskRef[Any]], timeout: float | None, progress: bool = False) -> None:
    """Wait for ``refs``: sleep, or, when the backend lets rank 0 work, run queued calls meanwhile."""
    backend = _look_up_later()
    _refuse_in_callback(refs, timeout, "get")
    waiter = getattr(backend, "help_wait", None) or wait_all
    _sync_for(refs)  # what was submitted and waited for so far, at most once a second
    t0 = time.time()
    try:
        if progress:
            from qshpc.program.getprogress import wait_with_progress

            wait_with_progress(refs, timeout, waiter)
        else:
            waiter(refs, timeout)
    finally:
        _note_wait(SPAN_GET, t0, len(refs))
    _sync_for(refs)


def _sync_for(refs: list[TaskRef[Any]]) -> None:
    """:func:`_sync` for a ``get`` of ``refs``: a store error names the tasks it waited for
    (review49 L3: the first ``get`` after ``job.h5`` was damaged raised the checkpoint's
    error, which named no task, while later ones did)."""
    from qshpc.errors import DamagedStoreError

    try:
        _sync()
    except DamagedStoreError as exc:  # (any other store error says what to do already)
        shown = ", ".join(f"task {r.task_id} ({r.function})" for r in refs[:3])
        shown += f" and {len(refs) - 3} more" if len(refs) > 3 else ""
        met = f"the get of {shown}" if shown else "a get"
        raise DamagedStoreError(
            exc.path, f"{exc.detail} (met by {met}, as rank 0 wrote the job's progress)"
        ) from exc


def _look_up_later() -> Any:
    """Look up the cached calls rank 0 keyed and left for later (``Intake._defer``): a
    wait sees their hits done, as it did when each was looked up at its call. The backend."""
    backend = _backend.current()
    later = getattr(backend, "look_up_later", None)
    if later is not None:
        later()
    return backend


def _note_wait(kind: int, t0: float, n: int) -> None:
    """Tell the session the program waited since ``t0`` (the report's timeline shows it)."""
    if _session is not None:
        _session.note_wait(kind, t0, time.time(), n)


def _one(r: Any) -> Any:
    if isinstance(r, TaskRef):  # a result still in its bytes: decoded for this read alone
        return r._fresh() if type(r._value) is Stored else fresh(r.result())
    raise UsageError(f"get takes task references, got {type(r).__name__} in the list")


def put(value: Any, **kwargs: Any) -> ObjectRef:
    """Place an object once; pass the reference to tasks instead of the object itself.

    The reference is ready at once. The object is copied now, as Ray does: a
    change the program makes to it later reaches neither the tasks nor ``get``.
    Passed as an argument, it arrives as the object; nested in a list, dict or
    object, it stays a reference that ``get`` reads inside the task. It may hold
    other references: a call taking it waits for the task references inside, and
    the objects placed that it refers to travel with it. A worker receives each
    object it needs only once.

    Args:
        value: The object (``put(value=...)`` as in quantum-serverless and Ray).
        **kwargs: Ray's ``_owner`` is accepted and ignored (the placing rank owns it).

    Raises:
        UserError: Another keyword argument.
        SerializationError: The object cannot be pickled (it could not travel).
    """
    unknown = set(kwargs) - {"_owner"}
    if unknown:
        raise UserError(f"put takes the object and Ray's _owner only; got {sorted(unknown)}")
    return _backend.current().put(value)


def _refs(refs: Any, what: str) -> list[Any]:
    """``refs`` as a list of references, or a UserError naming what is wrong."""
    if isinstance(refs, (TaskRef, ObjectRef)):
        raise UsageError(f"{what} takes a list of references, got a single one: {what}([ref])")
    if isinstance(refs, (str, bytes, dict)) or not isinstance(refs, Iterable):
        raise UsageError(f"{what} takes a list of references, got {type(refs).__name__}")
    out = list(refs)
    for i, r in enumerate(out):
        if not isinstance(r, (TaskRef, ObjectRef)):
            raise UsageError(
                f"{what} takes task or object references; item {i} is a {type(r).__name__}"
            )
    return out


def _timeout(timeout: Any, what: str) -> float | None:
    """``timeout`` checked: None, or a real number of seconds >= 0 (infinity is None)."""
    if timeout is None:
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, numbers.Real)
        or math.isnan(timeout)
        or timeout < 0
    ):
        raise UsageError(
            f"{what}: timeout must be None or a number of seconds >= 0, got {timeout!r}"
        )
    return None if math.isinf(timeout) else float(timeout)


def wait(
    object_refs: Sequence[TaskRef[Any] | ObjectRef],
    num_returns: int = 1,
    timeout: float | None = None,
    fetch_local: bool = True,
) -> tuple[list[Any], list[Any]]:
    """Ray's ``wait``: wait until ``num_returns`` of ``object_refs`` are ready, or ``timeout`` passes.

    Returns exactly ``num_returns`` ready references (fewer only when the
    timeout passed first) and the rest, each list in input order. Object
    references (from ``put``) are ready at once; ``timeout=0`` looks once.

    Args:
        object_refs: Distinct task or object references.
        num_returns: How many ready references to wait for (1 to ``len(refs)``).
        timeout: Seconds to wait at most; None waits as long as it takes.
        fetch_local: Accepted for Ray programs (results are always fetched).

    Returns:
        ``(ready, not_ready)``.

    Raises:
        UserError: Not a list of references, a reference twice, a bad ``num_returns``.
    """
    items = _refs(object_refs, "wait")
    seconds = _timeout(timeout, "wait")
    if not items:
        return [], []
    if len({id(r) for r in items}) != len(items):
        raise UsageError("wait takes distinct references: the list holds one more than once")
    if (
        isinstance(num_returns, bool)
        or not isinstance(num_returns, int)
        or not (1 <= num_returns <= len(items))
    ):
        raise UsageError(f"num_returns must be between 1 and {len(items)}, got {num_returns!r}")
    _look_up_later()
    _refuse_in_callback(items, seconds, "wait")
    t0 = time.time()
    try:
        done, pending = wait_some(items, num_returns, seconds)
    finally:
        _note_wait(SPAN_WAIT, t0, len(items))
    _sync()
    return done, pending


def get_refs_by_status(object_refs: Sequence[Any], **kwargs: Any) -> tuple[list[Any], list[Any]]:
    """quantum-serverless's name for :func:`wait` (Ray's ``wait``): ``(ready, not_ready)``.

    Keyword arguments: ``num_returns`` (default 1), ``timeout``, ``fetch_local``.
    """
    unknown = set(kwargs) - {"num_returns", "timeout", "fetch_local"}
    if unknown:
        raise UserError(
            f"get_refs_by_status takes num_returns, timeout and fetch_local; got {sorted(unknown)}"
        )
    return wait(object_refs, **kwargs)


def as_completed(refs: Iterable[Any], timeout: float | None = None) -> Iterator[Any]:
    """Yield each reference as it finishes: those already done first, in input order.

    As ``concurrent.futures.as_completed`` (TaskRefs are futures, so that works
    too); object references are done at once. A reference given twice is
    yielded once.

    Raises:
        TimeoutError: Some are not done ``timeout`` seconds after the call (from the iterator).
        UserError: Not a list of references.
    """
    items = _refs(refs, "as_completed")
    seconds = _timeout(timeout, "as_completed")
    _look_up_later()
    _refuse_in_callback(items, seconds, "as_completed")
    for ref in iter_completed(items, seconds):
        _sync()
        yield ref


__all__ = [
    "DistributedTask",
    "as_completed",
    "distribute_task",
    "get",
    "get_arguments",
    "get_refs_by_status",
    "put",
    "save_result",
    "update_status",
    "wait",
]
