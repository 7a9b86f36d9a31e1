"""The interface every execution backend offers, and which one is active.

* no runtime (plain ``python program.py``) and inside workers: :class:`InlineBackend`
  runs a task at the call, in this process;
* ``qshpc run`` with one rank: the same, recording each task in the job store;
* ``qshpc run`` with workers: :class:`qshpc.runtime.dispatcher.Dispatcher`.
"""

from __future__ import annotations

import atexit
import hashlib
import inspect
import itertools
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from qshpc.program.refs import ObjectRef, TaskRef, find_refs, resolve_many, substitute
from qshpc.task import context, payload
from qshpc.task.execute import Outcome, run_task

if TYPE_CHECKING:
    from qshpc.cache.jobcache import JobCache
    from qshpc.program.session import Session


class TaskSpec(Protocol):
    """What a backend needs of a task function (:class:`qshpc.program.api.DistributedTask` is one)."""

    @property
    def func(self) -> Callable[..., Any]:
        """The function, called with a call's arguments."""
        ...

    @property
    def name(self) -> str:
        """The name shown in the store."""
        ...

    @property
    def retries(self) -> int:
        """How many times a call that raises is tried again."""
        ...

    @property
    def digest(self) -> bytes:
        """Digest of the function by value (see :func:`function_digest`)."""
        ...

    @property
    def cache(self) -> bool | None:
        """Whether calls use the result cache: True, False, or None (as the job says)."""
        ...


class Backend(Protocol):
    """What the program API needs from an execution backend."""

    def submit(
        self, task: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskRef[Any]: ...

    def put(self, obj: Any) -> ObjectRef: ...

    def get_object(self, obj_id: int) -> Any: ...


def dumps_payload(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, task_id: str) -> bytes:
    """Pickle a task's arguments (snapshot at call time), naming the task if they cannot be."""
    try:
        return payload.dumps((args, kwargs))
    except Exception:
        import cloudpickle

        try:
            data: bytes = cloudpickle.dumps((args, kwargs), protocol=5)
            return data
        except Exception as exc:
            from qshpc.errors import SerializationError

            raise SerializationError(
                f"the arguments of task {task_id} ({name}) cannot be serialized: {exc}. "
                "Pass plain data, numpy arrays or Qiskit objects, or build the object inside the task."
            ) from None


def function_digest(func: Any) -> bytes:
    """A digest of a task function *by value* (its source, else its bytecode)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(getattr(func, "__qualname__", repr(func)).encode())
    try:
        h.update(inspect.getsource(func).encode())
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        if code is not None:
            h.update(code.co_code)
            h.update(repr(code.co_consts).encode())
    return h.digest()


def task_key(fn_digest: bytes, payload: bytes, task_id: str) -> str:
    """The identity of a task for resume: function and arguments by value, plus its id."""
    h = hashlib.blake2b(fn_digest, digest_size=16)
    h.update(payload)
    h.update(task_id.encode())
    return h.hexdigest()


#: References whose result came from the result cache (for the progress display).
FROM_CACHE: weakref.WeakSet[TaskRef[Any]] = weakref.WeakSet()


class InlineBackend:
    """Runs each task at the call, in this process (no MPI, one rank, or nested on a worker).

    Args:
        session: The job session on rank 0 (records tasks in the store), or None.
        prefix: Task id prefix for nested calls on a worker (``"17."``).
    """

    def __init__(self, session: Session | None = None, prefix: str = "") -> None:
        self.session = session
        self.prefix = prefix
        #: The result cache (rank 0: the session's; a worker sets its own; plain
        #: ``python``: one opened when a task with ``cache=True`` is first called).
        self.cache: JobCache | None = session.cache if session is not None else None
        self._counters: dict[tuple[str, int], itertools.count[int]] = {}
        self._objects: dict[int, Any] = {}
        self._obj_ids = itertools.count(1)
        self._lock = threading.Lock()

    def put(self, obj: Any) -> ObjectRef:
        with self._lock:
            oid = next(self._obj_ids)
            self._objects[oid] = obj
        return ObjectRef(oid)

    def get_object(self, obj_id: int) -> Any:
        return self._objects[obj_id]

    def _lookup(self, ref: Any) -> Any:
        if isinstance(ref, ObjectRef):
            return self._objects[ref.obj_id]
        return ref.result()

    def submit(
        self, task: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskRef[Any]:
        parent = context.current_task()
        # Nested ids count per parent call (and attempt), so they are stable.
        scope = (parent.task_id, parent.attempt) if parent is not None else ("", 0)
        counter = self._counters.setdefault(scope, itertools.count())
        base = f"{parent.task_id}." if parent is not None else self.prefix
        task_id = f"{base}{next(counter)}"
        ref: TaskRef[Any] = TaskRef(task_id, task.name)
        objs, deps = find_refs(args, kwargs)
        if objs or deps:
            try:
                args = substitute(args, self._lookup)
                kwargs = substitute(kwargs, self._lookup)
            except BaseException as exc:  # a dependency failed
                resolve_many([(ref, False, exc)])
                return ref
        session = self.session
        submitted = time.time()
        key = ""
        if session is not None and session.done:  # resuming: this call may be stored
            payload = dumps_payload(args, kwargs, task.name, task_id)
            key = task_key(task.digest, payload, task_id)
            done = session.done_result(key)
            if done is not None:
                resolve_many([(ref, True, done[0])])
                return ref
        seed = context.job_seed()
        from qshpc.task.seeding import derive_seed

        task_seed = None if seed is None else derive_seed(seed, task_id)
        cache, ckey = self._cache_for(task), None
        if cache is not None:
            # live: the function runs here as it is now (a global rebound since an
            # earlier call changes its key); the result is encoded before the
            # program can change it in place.
            ckey = cache.key(task, args, kwargs, task_seed, live=True)
            hit = cache.lookup(ckey) if ckey is not None else None
            if hit is not None:
                assert ckey is not None
                if session is not None:
                    session.record_hit(task_id, ckey, task.name, hit, submitted, task_seed)
                FROM_CACHE.add(ref)
                resolve_many([(ref, True, hit.value)])
                return ref
        if session is not None and not key:  # the record's key (for a later resume)
            key = task_key(task.digest, dumps_payload(args, kwargs, task.name, task_id), task_id)
        attempt = 0
        while True:
            attempt += 1
            out: Outcome = run_task(task.func, args, kwargs, task_id, task.name, task_seed, attempt)
            if session is not None:
                session.record(out, key, submitted, task_seed)
            if out.ok or attempt > task.retries:
                break
        if out.ok and ckey is not None and cache is not None:
            cache.store(ckey, task.name, task_id, value=out.value, shared=True)
        info = context.rank_info()
        resolve_many([(ref, out.ok, out.value if out.ok else out.task_error(info.rank, info.host))])
        return ref


    def _cache_for(self, task: TaskSpec) -> JobCache | None:
        """The cache when this task's calls use it, else None."""
        want = getattr(task, "cache", None)
        cache = self.cache
        if cache is None:
            if not want:
                return None
            from qshpc.cache.jobcache import CacheConfig, JobCache

            cache = self.cache = JobCache(CacheConfig(), None)
            atexit.register(cache.flush)  # plain python: store what is queued before exit
        return cache if cache.wanted(want) else None


_backend: Backend | None = None
_backend_lock = threading.Lock()


def current() -> Backend:
    """Return the active backend, creating an inline one when no runtime runs."""
    global _backend
    if _backend is None:
        with _backend_lock:
            if _backend is None:
                _backend = InlineBackend()
    return _backend


def activate(backend: Backend | None) -> None:
    """Make ``backend`` the active one (runtime only)."""
    global _backend
    _backend = backend
