"""Rank 0's intake: task calls from the program thread into the dispatcher's queue.

The program thread only appends to :attr:`Intake.pending` (and wakes the
dispatcher thread when a worker has room); it never touches MPI. A call of a
function that uses the result cache is looked up here, at the call: a hit is
recorded and resolved at once and never travels to a worker; a miss carries
its key, so that the worker stores the result. Calls whose
arguments are all immutable plain values go as they are; others are pickled at
the call (a snapshot: later changes to a list do not reach the task), after
their references are found: a call waiting on another call's result waits in
:attr:`Intake.blocked` until that result is in.

This is the hottest code of rank 0 (150k calls a second on 2-3 ranks), so
:class:`~qshpc.runtime.dispatcher.Dispatcher` *is* an :class:`Intake` (a base
class, not an object it calls through).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from qshpc.program.backend import FROM_CACHE, TaskSpec, dumps_payload, task_key
from qshpc.program.refs import ObjectRef, TaskRef, find_refs, resolve_many, substitute
from qshpc.task import context
from qshpc.task.seeding import derive_seed

if TYPE_CHECKING:
    from qshpc.program.session import Session


class Entry:
    """One queued call."""

    __slots__ = ("args", "attempt", "ckey", "deps", "fn_id", "key", "kwargs", "objs", "payload",
                 "ref", "submitted", "task")  # fmt: skip

    def __init__(self, ref: TaskRef[Any], task: TaskSpec, fn_id: int, payload: Any = None) -> None:
        self.ref = ref
        self.task = task
        self.fn_id = fn_id
        self.attempt = 1
        # bytes (pickled (args, kwargs) at the call), or the args tuple of plain values
        self.payload = payload
        self.key: str | None = None  # None: the worker computes it
        # The result cache: None, not cached; "", to look up once the arguments are
        # known; else the key its result is stored under.
        self.ckey: str | None = None
        self.submitted = time.time()
        self.objs: tuple[int, ...] | list[int] = ()
        self.deps: list[TaskRef[Any]] = []
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}


class Intake:
    """The program thread's side of rank 0's backend: calls in, objects placed.

    Args:
        session: The job session (store, arguments, resume data).
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pending: deque[Entry] = deque()
        self.blocked: list[Entry] = []
        self.cache = session.cache
        self._ids = itertools.count()
        # id(task) -> (fn_id, cloudpickled function, task, its calls use the cache)
        self._fn_ids: dict[int, tuple[int, bytes, TaskSpec, bool]] = {}
        self._fn_blobs: dict[int, tuple[bytes, TaskSpec]] = {}
        self._resume = bool(session.done)
        self._objects: dict[int, Any] = {}
        self._obj_ids = itertools.count(1)
        self._wake = threading.Event()
        self._idle = False  # the dispatcher thread sleeps and a worker has room: wake it
        self._error: BaseException | None = None

    def put(self, obj: Any) -> ObjectRef:
        """Place ``obj`` once; it travels to each worker with its first call that needs it."""
        oid = next(self._obj_ids)
        self._objects[oid] = obj
        return ObjectRef(oid)

    def get_object(self, obj_id: int) -> Any:
        """The object placed as ``obj_id``."""
        return self._objects[obj_id]

    def object_of(self, ref: Any) -> Any:
        """``ref``'s object when it is an :class:`ObjectRef`, else ``ref``."""
        return self._objects[ref.obj_id] if isinstance(ref, ObjectRef) else ref

    def _fn(self, task: TaskSpec) -> tuple[int, bytes, TaskSpec, bool]:
        known = self._fn_ids.get(id(task))
        if known is not None and known[2] is task:
            return known
        import cloudpickle

        fn_id = len(self._fn_ids) + 1
        blob = cloudpickle.dumps(task.func, protocol=5)
        cached = self.cache is not None and self.cache.wanted(getattr(task, "cache", None))
        # The function travels once, as it is now: its cache digest is taken now too.
        cached = cached and self.cache is not None and self.cache.digest(task) is not None
        known = self._fn_ids[id(task)] = (fn_id, blob, task, cached)
        self._fn_blobs[fn_id] = (blob, task)
        return known

    def submit(self, task: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskRef[Any]:
        """Queue one call; return its reference at once."""
        if self._error is not None:
            raise RuntimeError("the qshpc dispatcher stopped") from self._error
        task_id = str(next(self._ids))
        ref: TaskRef[Any] = TaskRef(task_id, task.name)
        known = self._fn_ids.get(id(task))
        if known is None or known[2] is not task:
            known = self._fn(task)
        fn_id = known[0]
        if known[3]:
            self._submit_cached(Entry(ref, task, fn_id), args, kwargs)
        elif not self._resume and plain(args, kwargs):
            # Immutable values: no snapshot to take, no reference to find; they
            # are pickled with the batch and the worker computes the task key.
            self.pending.append(Entry(ref, task, fn_id, args))
        else:
            self._submit_general(Entry(ref, task, fn_id), args, kwargs)
        if self._idle:
            self._idle = False
            self._wake.set()
        return ref

    def _submit_cached(self, entry: Entry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A call of a cached function: a hit is recorded and resolved here, at the call."""
        entry.ckey = ""
        if not self._resume and plain(args, kwargs):
            if not self._look_up(entry, args, None):
                entry.payload = args
                self.pending.append(entry)
            return
        self._submit_general(entry, args, kwargs)

    def _look_up(self, entry: Entry, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> bool:
        """Look the call up in the cache; True (recorded and resolved) on a hit.

        On a miss the entry keeps the key, and whoever runs the call stores its result.
        """
        cache = self.cache
        assert cache is not None
        task_id = entry.ref.task_id
        job_seed = context.job_seed()
        seed = None if job_seed is None else derive_seed(job_seed, task_id)
        if entry.objs:  # the key covers what was placed, not the reference to it
            args, kwargs = substitute(args, self.object_of), substitute(kwargs, self.object_of)
        key = cache.key(entry.task, args, kwargs, seed)
        if key is None:
            entry.ckey = None
            return False
        hit = cache.lookup(key)
        if hit is None:
            entry.ckey = key
            return False
        self.session.record_hit(task_id, key, entry.task.name, hit, entry.submitted, seed)
        FROM_CACHE.add(entry.ref)
        resolve_many([(entry.ref, True, hit.value)])
        return True

    def _submit_general(self, entry: Entry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        objs, deps = find_refs(args, kwargs)
        entry.objs = objs
        if any(not d.done() for d in deps):
            entry.deps, entry.args, entry.kwargs = deps, args, kwargs
            self.blocked.append(entry)
            return
        if deps:
            args, kwargs = substitute(args, value_of), substitute(kwargs, value_of)
        if self._prepare(entry, args, kwargs):
            self.pending.append(entry)

    def _prepare(self, entry: Entry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Pickle the arguments (a snapshot at call time); False when the call needs no run:
        a resumed job has its result, or the result cache has."""
        if entry.ckey == "" and not self._resume and self._look_up(entry, args, kwargs):
            return False
        entry.payload = dumps_payload(args, kwargs, entry.task.name, entry.ref.task_id)
        if not self._resume:
            return True
        entry.key = task_key(entry.task.digest, entry.payload, entry.ref.task_id)
        done = self.session.done_result(entry.key)
        if done is not None:
            resolve_many([(entry.ref, True, done[0])])
            return False
        return not (entry.ckey == "" and self._look_up(entry, args, kwargs))

    def unblock(self) -> bool:
        """Queue the blocked calls whose dependencies are all done; True when any was."""
        ready = [e for e in self.blocked if all(d.done() for d in e.deps)]
        if not ready:
            return False
        self.blocked = [e for e in self.blocked if e not in ready]
        for e in ready:
            try:
                args = substitute(e.args, value_of)
                kwargs = substitute(e.kwargs, value_of)
            except BaseException as exc:
                resolve_many([(e.ref, False, exc)])
                continue
            if self._prepare(e, args, kwargs):
                self.pending.append(e)
        return True


_PLAIN = frozenset((int, float, str, bool, complex, bytes, type(None)))


def plain(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """True for positional immutable plain values only (no snapshot, no reference to find)."""
    if kwargs:
        return False
    for a in args:
        if type(a) not in _PLAIN:
            return False
    return True


def value_of(ref: Any) -> Any:
    """A dependency's value (raises its error when it failed)."""
    if isinstance(ref, TaskRef):
        return ref.result()
    return ref


__all__ = ["Entry", "Intake", "plain", "value_of"]
