"""Rank 0's intake: task calls from the program thread into the dispatcher's queue.

The program thread only appends to :attr:`Intake.pending` (and wakes the
dispatcher thread when a worker has room); it never touches MPI. Calls whose
arguments are all immutable plain values go as they are; others are pickled at
the call (a snapshot: later changes to a list do not reach the task), after
their references are found at any depth (they report themselves while
pickled, see :func:`qshpc.program.backend.pack`): a call waiting on another
call's result waits in :attr:`Intake.blocked` until that result is in. A call
whose ``cpu`` target only some workers meet waits in :attr:`Intake.placed`.

This is the hottest code of rank 0 (150k calls a second on 2-3 ranks), so
:class:`~qshpc.runtime.dispatcher.Dispatcher` *is* an :class:`Intake` (a base
class, not an object it calls through).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qshpc.errors import UserError
from qshpc.program import refs as _refs
from qshpc.program.backend import (
    FROM_CACHE,
    PLAIN,
    Frozen,
    TaskSpec,
    check_threads,
    foreign_object_error,
    freeze,
    own_digest,
    pack,
    plain,
    refers_to_objects,
    snapshot_object,
    task_key,
    task_ranks,
    wire_form,
    with_objects,
)
from qshpc.program.refs import (
    ObjectRef,
    TaskRef,
    from_done,
    from_hit,
    load_snapshot,
    mark_running,
    object_id,
    resolve_many,
    resolve_new,
    substitute_top,
    top_task_refs,
)
from qshpc.store._qpy import circuit_class as _circuit_class
from qshpc.task import context
from qshpc.task.seeding import derive_seed

if TYPE_CHECKING:
    from concurrent.futures import Future

    from qshpc.program.session import Session
    from qshpc.task.payload import Qpy


class Entry:
    """One queued call."""

    __slots__ = ("args", "attempt", "cbind", "ckey", "deps", "fn_id", "key", "kwargs", "objs",
                 "payload", "ref", "snapshot", "submitted", "task", "waits")  # fmt: skip

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
        # The bindings of user modules its arguments' key read (a worker checks them
        # before it stores the result: :mod:`qshpc.cache.shipped`); None: none.
        self.cbind: list[Any] | None = None
        self.submitted = time.time()
        self.objs: Sequence[int] = ()
        self.deps: list[TaskRef[Any]] = []
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}
        self.waits = 0  # dependencies not done yet, while the call is parked (Intake.unblock)
        # A waiting call's arguments as pickled at the call (None: ``args``/``kwargs``
        # hold only references and immutable values, nothing a later change can reach)
        self.snapshot: bytes | None = None


class Intake:
    """The program thread's side of rank 0's backend: calls in, objects placed.

    Args:
        session: The job session (store, arguments, resume data).
        cpus: Cores of each worker rank (``{rank: cores}``); a call whose ``cpu``
            target no worker meets is refused, one only some meet is placed.
    """

    def __init__(self, session: Session, cpus: dict[int, int] | None = None) -> None:
        self.session = session
        self.pending: deque[Entry] = deque()
        #: Calls waiting for other calls' results, as the program thread made them
        #: (it only appends); the dispatcher thread parks them in ``parked``.
        self.blocked: deque[Entry] = deque()
        #: The dispatcher thread's: parked calls (by id), and the calls waiting on each
        #: dependency not done (by the dependency's id: ``(dependency, calls)``).
        self.parked: dict[int, Entry] = {}
        self._waits: dict[int, tuple[Future[Any], list[Entry]]] = {}
        #: Dependencies that ended since the dispatcher last looked (their done-callbacks,
        #: run by whichever thread resolved them).
        self._ended: deque[Future[Any]] = deque()
        #: Calls that need more cores than the smallest worker has (sent only to those with them).
        self.placed: deque[Entry] = deque()
        self.cpus = cpus or {1: 1}
        self.min_cpus = min(self.cpus.values())
        self.cache = session.cache
        self._ids = itertools.count()
        #: Ids of the tasks counted apart (``DistributedTask.id_prefix``), by prefix.
        self._prefixed: dict[str, itertools.count[int]] = {}
        #: Rank 0 runs queued calls itself (``Dispatcher.enable_root_work``).
        self.root_runs = False
        #: Ids of calls made inside calls rank 0 runs itself, by (parent, attempt, prefix).
        self._nested: dict[tuple[str, int, str], itertools.count[int]] = {}
        # id(task) -> (fn_id, cloudpickled function, task, its calls use the cache)
        self._fn_ids: dict[int, tuple[int, bytes, TaskSpec, bool]] = {}
        # Numbers of the task functions: ``len(self._fn_ids) + 1`` gave two functions one
        # number when two threads made their first calls at once, and every call of one
        # then ran the other (review31 F2).
        self._fn_counter = itertools.count(1)
        self._fn_blobs: dict[int, tuple[bytes, TaskSpec]] = {}
        self._fn_objs: dict[int, list[int]] = {}  # objects a function's closure refers to
        self._resume = bool(session.done)
        self._objects: dict[int, Any] = {}
        #: Placed objects the program or a task on rank 0 read: each get is a copy.
        self._frozen: dict[int, Frozen] = {}
        #: Placed objects as sent to the workers (:func:`wire_form`), made once.
        self._wired: dict[int, tuple[bytes, list[Any]]] = {}
        #: A placed object that refers to others or to calls' results: (the objects it
        #: refers to, at any depth; the task references in it that were not done).
        self._obj_refs: dict[int, tuple[set[int], list[TaskRef[Any]]]] = {}
        self._obj_digests: dict[int, bytes] = {}  # see backend.Placed.digest
        self._obj_ids = itertools.count(1)
        self._wake = threading.Event()
        #: Calls keyed and not looked up yet (:meth:`_defer`): (entry, arguments as keyed,
        #: key, bindings, seed).
        self._later: list[tuple[Entry, tuple[Any, ...], str, list[Any], int | None]] = []
        self._later_lock = threading.Lock()
        self._later_at = 0.0  # when the first of the calls in _later was keyed
        # (reentrant: a done-callback of a hit resolved here may wait, which looks up)
        self._later_run = threading.RLock()
        self._idle = False  # the dispatcher thread sleeps and a worker has room: wake it
        self._error: BaseException | None = None
        #: A multi-rank call's function was registered: set in the program thread before
        #: its first call is queued, so a dispatcher that reads it after taking a call
        #: from the queue never sends a multi-rank call as an ordinary one.
        self.wide_seen = False
        self._big = BigArguments()

    def put(self, obj: Any) -> ObjectRef:
        """Place a copy of ``obj`` as it is now; it travels to each worker with its first
        call that needs it, with the objects it refers to.

        Raises:
            SerializationError: ``obj`` cannot be pickled.
            UserError: It refers to an object rank 0 does not hold.
        """
        placed = snapshot_object(obj, self._obj_digests)
        objs = placed.objs
        if objs:
            self._check_objects(objs)
        oid = object_id(0, next(self._obj_ids))
        self._objects[oid] = placed.copy
        self._obj_digests[oid] = placed.digest
        if objs or placed.pending:
            inner, waits = self._with_inner(objs)
            self._obj_refs[oid] = (set(inner), [*placed.pending, *waits])
        return ObjectRef(oid)

    def _with_inner(self, objs: Sequence[int]) -> tuple[Sequence[int], list[TaskRef[Any]]]:
        """``objs`` and the objects those placed objects refer to, at any depth; and the
        task references inside them that are not done (a call taking them waits)."""
        refs = self._obj_refs
        inner: set[int] | None = None
        waits: list[TaskRef[Any]] = []
        for oid in objs:
            more = refs.get(oid)
            if more is not None:
                inner = (inner or set(objs)) | more[0]
                waits += [r for r in more[1] if not r.done()]
        return (objs if inner is None else tuple(inner)), waits

    def object_digest(self, obj_id: int) -> bytes | None:
        """The digest by value of the object placed here as ``obj_id`` (None: none such)."""
        return self._obj_digests.get(obj_id)

    def get_object(self, obj_id: int) -> Any:
        """The object placed as ``obj_id``.

        Raises:
            UserError: An object rank 0 does not hold (placed by a task on a worker).
        """
        try:
            frozen = self._frozen.get(obj_id)
            if frozen is None:  # the object stays as placed: the dispatcher sends it
                frozen = freeze(self._objects[obj_id])
                if type(frozen) is not Frozen:
                    return frozen
                self._frozen[obj_id] = frozen
        except KeyError:
            raise foreign_object_error(obj_id, 0) from None
        return frozen.thaw()

    def object_of(self, ref: Any) -> Any:
        """``ref``'s object when it is an :class:`ObjectRef`, else ``ref``."""
        return self.get_object(ref.obj_id) if type(ref) is ObjectRef else ref

    def wired(self, oid: int) -> tuple[int, bytes, list[Any]]:
        """``(oid, pickle, buffers)``: placed object ``oid`` as a batch sends it."""
        w = self._wired.get(oid)
        if w is None:  # at its first call's dispatch: the references inside it are done
            w = self._wired[oid] = wire_form(self._objects[oid])
        return (oid, *w)

    def _placed(self, ref: Any) -> Any:
        """``ref``'s object as placed, not a copy: only for reading (keys)."""
        if type(ref) is not ObjectRef:
            return ref
        try:
            return self._objects[ref.obj_id]
        except KeyError:
            raise foreign_object_error(ref.obj_id, 0) from None

    def _check_objects(self, objs: Any) -> None:
        """Refuse references to objects rank 0 does not hold (placed by a task on a worker)."""
        for oid in objs:
            if oid not in self._objects:
                raise foreign_object_error(oid, 0)

    def _fn(self, task: TaskSpec) -> tuple[int, bytes, TaskSpec, bool]:
        known = self._fn_ids.get(id(task))
        if known is not None and known[2] is task:
            return known
        blob, objs, pending = pack(task.runner, task.name, "-", "function")
        if b"cloudpickle" not in blob:  # by value always: workers never run the program
            from qshpc.task import payload

            blob = payload.cloud_dumps(task.runner)
        if pending:
            raise UserError(
                f"task function {task.name} refers to TaskRef {pending[0].task_id}, which "
                "is not done: pass it to the task as an argument (the call then waits for it)"
            )
        self._check_objects(objs)
        if objs and self._obj_refs:
            objs, waits = self._with_inner(objs)
            if waits:
                raise UserError(
                    f"task function {task.name} refers to an object placed with put that holds "
                    f"TaskRef {waits[0].task_id}, which is not done: pass the object's reference "
                    "to the task as an argument (the call then waits for it)"
                )
        fn_id = next(self._fn_counter)  # (atomic: threads of the program register at once)
        cached = self.cache is not None and self.cache.wanted(getattr(task, "cache", None))
        # The function travels once, as it is now: its cache digest is taken now too.
        cached = cached and self.cache is not None and self.cache.digest(task) is not None
        if task_ranks(task) > 1:
            self.wide_seen = True
        known = self._fn_ids[id(task)] = (fn_id, blob, task, cached)
        self._fn_blobs[fn_id] = (blob, task)
        if objs:
            self._fn_objs[fn_id] = sorted(set(objs))
        return known

    def submit(self, task: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskRef[Any]:
        """Queue one call; return its reference at once.

        Raises:
            ResourceError: Its ``cpu`` target is more than any worker has.
            UserError: Its arguments refer to an object rank 0 does not hold.
            SerializationError: Its arguments cannot be pickled.
        """
        if self._error is not None:
            raise RuntimeError("the qshpc dispatcher stopped") from self._error
        known = self._fn_ids.get(id(task))
        if known is None or known[2] is not task:
            known = self._fn(task)
        threads = task.threads  # 0 unless the target asks for cores
        wide = threads > self.min_cpus if threads else False
        if wide:
            check_threads(task, self.cpus)  # refused at the call: no worker has the cores
        prefix = getattr(task, "id_prefix", "")
        # A call rank 0 runs itself (QSHPC_ROOT_WORKS) calls it: asked only then, as
        # current_task() costs ~1.6 us here (a threading.local's missing attribute).
        parent = context.current_task() if self.root_runs else None
        if parent is not None:
            task_id = self._nested_id(parent, prefix)
        else:
            counter = self._prefixed.setdefault(prefix, itertools.count()) if prefix else self._ids
            task_id = f"{prefix}{next(counter)}"
        ref: TaskRef[Any] = TaskRef(task_id, task.name)
        fn_id = known[0]
        if known[3]:
            self._submit_cached(Entry(ref, task, fn_id), args, kwargs)
        elif not self._resume and plain(args, kwargs):
            # Immutable values: no snapshot to take, no reference to find; they
            # are pickled with the batch and the worker computes the task key.
            (self.placed if wide else self.pending).append(Entry(ref, task, fn_id, args))
        else:
            self._submit_general(Entry(ref, task, fn_id), args, kwargs)
        # Wake a sleeping dispatcher only when the call left work for it: a cache
        # hit is resolved here, and waking the dispatcher for each hit made it
        # take the GIL at every I/O call of the next ones.
        if self._idle and (self.pending or self.placed or self.blocked):
            self._idle = False
            self._wake.set()
        return ref

    def _nested_id(self, parent: context.TaskContext, prefix: str) -> str:
        """The id of a call made inside a call rank 0 runs itself: ``17.0``, ``17.1``..., as
        a worker running call 17 names its nested calls (so their seeds are the same).

        Counted from the program's calls, such a call took the next top-level id: which
        calls rank 0 takes depends on timing, so every later call's id, and seed, did too
        (a nested call got id 2 instead of 1.0 under ``QSHPC_ROOT_WORKS=1``, on a4e8063).
        """
        key = (parent.task_id, parent.attempt, prefix)
        counter = self._nested.get(key)
        if counter is None:
            counter = self._nested[key] = itertools.count()
        return f"{parent.task_id}.{prefix}{next(counter)}"

    def _submit_cached(self, entry: Entry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """A call of a cached function: a hit is recorded and resolved here, at the call."""
        entry.ckey = ""
        if not self._resume and plain(args, kwargs):
            if not self._look_up(entry, args, None, new=True):
                entry.payload = args
                self.queue(entry)
            return
        if not self._resume and not kwargs and keyable(args):
            # No reference can be inside: keyed before it is pickled, and pickled
            # only on a miss (a hit pickles nothing), with the key's QPY bytes.
            qpy: Qpy = {}
            if self._defer(entry, args, qpy):
                return
            if not self._look_up(entry, args, None, qpy, new=True):
                self._pack(entry, args, kwargs, at_call=True, qpy=qpy)
            return
        self._submit_general(entry, args, kwargs)

    # -- lookups in bursts (perf18) ------------------------------------------------
    def _defer(self, entry: Entry, args: tuple[Any, ...], qpy: Qpy) -> bool:
        """Key a call of plain values and circuits now and look it up with the next ones
        (:meth:`look_up_later`); False when its arguments hold anything else.

        A burst of calls (``[sample(c) for c in circuits]``) then takes its keys in a
        row and its lookups in a row: a 2-qubit hit cost rank 0 ~80 µs with the two
        interleaved at each call, ~55 µs so (the same code, run warm). The key is taken
        at the call, of the arguments as they are then; a miss goes to the workers as
        the QPY bytes keyed (:class:`_Keyed`), never as the circuit as it is later.
        Called right after :func:`keyable` passed ``args`` (their circuits' gates counted).
        """
        circuit = _circuit_class()
        for a in args:
            t = type(a)
            if t not in PLAIN and (t is not circuit or a.num_parameters):
                return False  # an array can change in place; a Parameter is rebound in a hit
        cache = self.cache
        assert cache is not None
        job_seed = context.job_seed()
        seed = None if job_seed is None else derive_seed(job_seed, entry.ref.task_id)
        binds: list[Any] = []  # what a worker checks before it stores (review46 H1)
        # (standard: its caller's keyable(args) counted the circuits' gates a moment ago)
        key = cache.key(entry.task, args, None, seed, qpy=qpy, binds=binds, standard=True)
        if key is None:
            entry.ckey = None
            self._pack(entry, args, {}, at_call=True, qpy=qpy)
            return True
        if len(args) == 1:  # (the commonest call: a tuple without a generator's frames)
            a = args[0]
            keyed: tuple[Any, ...] = (_Keyed(_keyed_bytes(a, qpy)) if type(a) is circuit else a,)
        else:
            keyed = tuple(_Keyed(_keyed_bytes(a, qpy)) if type(a) is circuit else a for a in args)
        with self._later_lock:
            later = self._later
            first = not later
            if first:
                self._later_at = time.monotonic()
                _refs.flush_lookups = self.look_up_later  # (ref.result() looks up first)
            later.append((entry, keyed, key, binds, seed))
            full = len(later) >= LATER_MAX
        if full:
            self.look_up_later()
        elif first and self._idle:
            # The dispatcher thread sleeps (up to 50 ms): wake it once a burst, and it
            # looks them up when the burst stops growing (Dispatcher._later_due), so that
            # a wait outside qshpc's own (``concurrent.futures.wait``, a ``done()`` poll)
            # sees a hit in about a millisecond (review51 F6). The program's own waits
            # (get, wait, ref.result()) look them up at once.
            self._wake.set()
        return True

    def look_up_later(self) -> bool:
        """Look up the calls :meth:`_defer` keyed (either thread); True when there were any.

        A hit is recorded and resolved; a miss is queued with the QPY bytes its key was
        taken of. A call whose lookup or record fails fails with that error (the
        others go on).
        """
        with self._later_run:  # one thread at a time (the cache's counts, the order)
            if not self._look_up_now():
                return False
        if self._idle and (self.pending or self.placed):
            self._idle = False
            self._wake.set()
        return True

    def _look_up_now(self) -> bool:
        """Take the calls waiting in ``_later`` and look them up; False when there were none.

        In three steps, each in a row for the whole burst (perf19: a hit cost rank 0 a
        lock, a wake-up and the state checks of its own at each step): the lookups (a
        miss is queued at once); the hits, marked running under one lock (one the program
        cancelled meanwhile is neither recorded nor resolved, review51 F1) and each
        recorded in the job store; then every outcome resolved in one go. No hit is
        resolved before its record is in the store's batch, as before.

        A Ctrl-C (``KeyboardInterrupt``) or ``SystemExit`` the program thread gets meanwhile
        is raised on; the outcomes recorded so far are resolved first, and the call at
        hand and those not recorded go back to ``_later``, wherever it lands, for the next
        lookup: never dropped (review51 F2: one became that call's error and the program
        went on; a call dropped so would leave its ``get`` waiting forever). The call at
        hand may have been recorded already: it is recorded again then (the last record
        is the task's).
        """
        if not self._later:  # (the usual case at a wait, and every one without the cache)
            return False
        cache = self.cache
        assert cache is not None  # (calls wait in _later only with the cache: _defer)
        later: list[tuple[Entry, tuple[Any, ...], str, list[Any], int | None]] = []
        hits: list[tuple[int, Any]] = []  # (its place in later, the hit)
        done: list[tuple[TaskRef[Any], bool, Any]] = []  # resolved at the end
        i = k = 0  # the lookups, then the records, made so far
        try:
            with self._later_lock:
                later, self._later = self._later, []
            lookup = cache.lookup
            while i < len(later):
                entry, keyed, key, binds, _ = later[i]
                if not entry.ref.done():  # (done: cancelled by the program before its lookup)
                    try:
                        hit = lookup(key)
                        if hit is None:
                            entry.ckey, entry.cbind = key, binds or None
                            self._pack(entry, keyed, {}, at_call=True)
                        else:
                            hits.append((i, hit))
                    except Exception as exc:  # this call fails; the others are looked up
                        done.append((entry.ref, False, exc))
                i += 1
            if hits:
                whole = mark_running([later[j][0].ref for j, _ in hits])
                record = self.session.record_hit
                add = FROM_CACHE.add
                while k < len(hits):
                    j, hit = hits[k]
                    entry, _, key, _, seed = later[j]
                    ref = entry.ref
                    k += 1
                    if not whole and ref.cancelled():
                        continue  # cancelled meanwhile: neither recorded nor resolved
                    try:
                        record(ref.task_id, key, entry.task.name, hit, entry.submitted, seed)
                        add(ref)
                        # No Parameter in the arguments (see _defer): nothing to rebind, and
                        # a hit decoded already is its value (from_hit's, without its steps).
                        later_load = hit.later
                        value = hit.value if later_load is None else from_hit(hit, (), None)
                        done.append((ref, True, value))
                    except Exception as exc:  # this call fails; the others are recorded
                        done.append((ref, False, exc))
            if done:
                resolve_many(done)
        except BaseException:
            # once each: a hit appended just before ``i += 1`` is in both (review55 P1)
            back = list(
                {
                    id(c): c for c in [later[j] for j, _ in hits[max(k - 1, 0) :]] + later[i:]
                }.values()
            )
            with self._later_lock:
                self._later[:0] = back
            if done:
                resolve_many(done)
            raise
        return bool(later)

    def _look_up(
        self,
        entry: Entry,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        qpy: Qpy | None = None,
        new: bool = False,
    ) -> bool:
        """Look the call up in the cache; True (recorded and resolved) on a hit.

        A resumed job first looks for the key among its own results: the record
        of a hit is stored under its cache key (found there even when the cache
        has lost the entry since).

        ``qpy``: the QPY bytes of the circuits its payload holds (written a
        moment ago, by :func:`pack`): the key reuses them. ``new``: looked up at the
        call, before its reference is returned (no other thread can wait on it yet).

        On a miss the entry keeps the key, and whoever runs the call stores its result.
        A call with an object reference nested in its arguments is not cached: its
        key would hold the reference's id, which another job reuses for another object.
        """
        cache = self.cache
        assert cache is not None
        task_id = entry.ref.task_id
        job_seed = context.job_seed()
        seed = None if job_seed is None else derive_seed(job_seed, task_id)
        if entry.objs:  # the key covers what was placed, not the reference to it
            args, kwargs = substitute_top(args, kwargs or {}, self._placed)
            if refers_to_objects((args, kwargs)):
                entry.ckey = None
                return False
        binds: list[Any] = []  # what a worker checks before it stores (review46 H1)
        key = cache.key(entry.task, args, kwargs, seed, qpy=qpy, binds=binds)
        if key is None:
            entry.ckey = None
            return False
        if self._resume:  # a hit of the run resumed is recorded under its cache key
            done = self.session.done_result(key)
            if done is not None:
                resolve_many([(entry.ref, True, from_done(done[0], args, kwargs))])
                return True
        hit = cache.lookup(key)
        if hit is None:
            entry.ckey, entry.cbind = key, binds or None
            return False
        self.session.record_hit(task_id, key, entry.task.name, hit, entry.submitted, seed)
        FROM_CACHE.add(entry.ref)
        # The call's own Parameters, where the hit has a parameter of the same name.
        # A large hit stays its bytes until the program reads it (refs.Stored).
        value = from_hit(hit, args, kwargs)
        if new:
            resolve_new(entry.ref, value)
        else:
            resolve_many([(entry.ref, True, value)])
        return True

    def _submit_general(self, entry: Entry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        tasks = top_task_refs(args, kwargs)  # object references stay: workers substitute them
        if tasks:
            deps = [d for d in tasks if not d.done()]
            if deps:
                if not fixed(args, kwargs):  # a snapshot: a list changed later is not seen
                    data, _, pending = pack(
                        (args, kwargs), entry.task.name, entry.ref.task_id, what="arguments"
                    )
                    entry.snapshot, args, kwargs = data, (), {}
                    deps = list(pending)  # at any depth (none: all ended meanwhile)
                entry.deps, entry.args, entry.kwargs = deps, args, kwargs
                self.blocked.append(entry)
                return
            try:
                args, kwargs = substitute_top(args, kwargs, value_of)
            except BaseException as exc:  # a dependency failed: so does this call
                resolve_many([(entry.ref, False, exc)])
                return
        self._pack(entry, args, kwargs, at_call=True)

    def _pack(
        self,
        entry: Entry,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        at_call: bool,
        qpy: Qpy | None = None,
    ) -> None:
        """Pickle a call whose top-level TaskRefs are done (a snapshot), and queue it.

        A TaskRef nested anywhere in the arguments that is not done yet blocks the
        call until it is (it then travels done, with its outcome); an ObjectRef
        anywhere travels with its object. A reference to an object rank 0 does
        not hold is refused: at the call (raised), or later (the call fails).
        """
        if not at_call:  # unblocked: its top-level TaskRefs are done now
            if entry.snapshot is not None:
                args, kwargs = load_snapshot(entry.snapshot, entry.deps)
                entry.snapshot = None
            try:
                args, kwargs = substitute_top(args, kwargs, value_of)
            except BaseException as exc:  # a dependency failed: so does this call
                resolve_many([(entry.ref, False, exc)])
                return
        # A cached call's key reuses the QPY bytes of its circuits that the payload holds
        # (``qpy`` given: the key was taken first, and the payload takes its bytes).
        if qpy is None and entry.ckey == "":
            qpy = {}
        try:
            data, objs, pending = pack((args, kwargs), entry.task.name, entry.ref.task_id, qpy=qpy)
            if len(data) >= BIG_CALL_BYTES:
                self._big.note(args, kwargs, entry.task.name)
            if objs and not pending:
                self._check_objects(objs)
                if self._obj_refs:  # objects that refer to others, or to calls' results
                    objs, pending = self._with_inner(objs)
        except UserError as exc:
            if at_call:
                raise
            resolve_many([(entry.ref, False, exc)])
            return
        if pending:  # it waits, with its arguments as they are now (the snapshot); or for
            # the results a placed object it takes refers to
            entry.deps, entry.snapshot = list(pending), data
            self.blocked.append(entry)
            return
        if objs:
            entry.objs = objs if len(objs) == 1 else tuple(set(objs))
        if entry.ckey == "" and not self._resume and self._look_up(entry, args, kwargs, qpy):
            return  # the cache has it
        entry.payload = data
        if self._resume:
            if not self._prepare(entry, args, kwargs, qpy):
                return
        elif entry.objs or own_digest((args, kwargs)):
            # A worker would key it by bytes that change per run, or by the ids of the
            # objects it refers to, not by their values (a resumed program that placed
            # other objects got the old results).
            key = task_key(entry.task.digest, data, entry.ref.task_id, (args, kwargs))
            entry.key = with_objects(key, entry.objs, self._obj_digests)
        threads = entry.task.threads
        (self.placed if threads and threads > self.min_cpus else self.pending).append(entry)

    def queue(self, entry: Entry, first: bool = False) -> None:
        """Queue a call: in ``placed`` when it needs more cores than some worker has."""
        q = self.placed if entry.task.threads > self.min_cpus else self.pending
        if first:
            q.appendleft(entry)
        else:
            q.append(entry)

    def _prepare(
        self, entry: Entry, args: tuple[Any, ...], kwargs: dict[str, Any], qpy: Qpy | None = None
    ) -> bool:
        """A resumed job's call: False when the store (or the result cache) has its result."""
        key = task_key(entry.task.digest, entry.payload, entry.ref.task_id, (args, kwargs))
        entry.key = with_objects(key, entry.objs, self._obj_digests)
        done = self.session.done_result(entry.key)
        if done is not None:  # its circuits with this run's Parameters (see rebind)
            resolve_many([(entry.ref, True, from_done(done[0], args, kwargs))])
            return False
        return not (entry.ckey == "" and self._look_up(entry, args, kwargs, qpy))

    def unblock(self) -> bool:
        """Queue the waiting calls whose dependencies are all done; True when any was.

        Each call is looked at when it comes in, and again only when one of its
        dependencies ends (a done-callback): not at every turn of the dispatcher's
        loop, which made a long chain of dependent calls quadratic (50k calls
        waiting on 50k others: 7 s against 0.75 s independent).
        """
        ready: list[Entry] = []
        blocked, waits, parked, ended = self.blocked, self._waits, self.parked, self._ended
        while blocked:
            e = blocked.popleft()
            seen: set[int] = set()
            n = 0
            for d in e.deps:
                if id(d) in seen or d.done():
                    continue
                seen.add(id(d))
                n += 1
                slot = waits.get(id(d))
                if slot is None:
                    waits[id(d)] = (d, [e])
                    d.add_done_callback(ended.append)  # at once if it ended meanwhile
                else:
                    slot[1].append(e)
            e.waits = n
            if n:
                parked[id(e)] = e
            else:
                ready.append(e)
        while ended:
            slot = waits.pop(id(ended.popleft()), None)
            for e in slot[1] if slot is not None else ():
                e.waits -= 1
                if not e.waits:
                    parked.pop(id(e), None)  # (gone when the job was ending meanwhile)
                    ready.append(e)
        for e in ready:
            self._pack(e, e.args, e.kwargs, at_call=False)
        return bool(ready)

    def waiting(self) -> list[Entry]:
        """The calls waiting for others' results (taken out: the job is ending)."""
        out = [*self.blocked, *self.parked.values()]
        self.blocked.clear()
        self.parked.clear()
        self._waits.clear()
        return out

    def take_placed(self, cores: int, size: int) -> list[Entry]:
        """Up to ``size`` placed calls a worker with ``cores`` cores can run, in queue order."""
        taken: list[Entry] = []
        kept: list[Entry] = []
        while self.placed and len(taken) < size:
            e = self.placed.popleft()
            (taken if e.task.threads <= cores else kept).append(e)
        self.placed.extendleft(reversed(kept))
        return taken


#: A call's pickled arguments this large are looked at for a value passed before
#: (:class:`BigArguments`).
BIG_CALL_BYTES = 16 << 20


class BigArguments:
    """Says once when one large array (16 MiB or more; anything with ``nbytes`` that takes
    a weak reference) goes to a second call: each call sends (and rank 0 pickles) its own copy, where
    ``put`` sends it once (review38 F8: one 200 MB array to 16 calls took 26 s and 3 GB on
    rank 0, 1.2 s and 664 MB with ``put``). Only calls of 16 MiB or more are looked at:
    other calls cost nothing here. The value is known by its identity (a weak reference:
    another object that took a freed one's id is not it); a value changed in place between
    the calls still counts as the same (the copy each call sends is then what it needs,
    and the line says so)."""

    def __init__(self) -> None:
        self.seen: dict[int, Any] = {}  # id -> weakref of a large top-level argument
        self.said = False

    def note(self, args: tuple[Any, ...], kwargs: dict[str, Any], task: str) -> None:
        if self.said:
            return
        import weakref

        for value in (*args, *kwargs.values()):
            size = _size_of(value)
            if size < BIG_CALL_BYTES:
                continue
            ref = self.seen.get(id(value))
            if ref is not None and ref() is value:
                self.said = True
                _say_put(size, task)
                return
            try:
                self.seen[id(value)] = weakref.ref(value)
            except TypeError:  # no weak reference: its id alone could lie
                continue


def _size_of(value: Any) -> int:
    """Bytes of an array (its ``nbytes``), cheaply; 0 for anything else."""
    n = getattr(value, "nbytes", None)
    return n if isinstance(n, int) else 0


def _say_put(size: int, task: str) -> None:
    import sys

    from qshpc.text import shown

    print(
        f"qshpc: hint: one {size / 2**20:,.0f} MiB argument went to a second call of "
        f"{shown(task)}: each call sends its own copy of it (rank 0 pickles it each time); "
        "`ref = put(value)` once, then pass `ref`, sends it once to each worker (the tasks "
        "get the value; docs/program-api.md, put)",
        file=sys.stderr,
        flush=True,
    )


def fixed(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """True when the arguments are references and immutable plain values only: a call
    waiting with them needs no snapshot."""
    for a in (*args, *kwargs.values()) if kwargs else args:
        t = type(a)
        if t not in PLAIN and t is not TaskRef and t is not ObjectRef:
            return False
    return True


#: :meth:`Intake._defer` looks its calls up once this many wait (or when the dispatcher
#: thread runs, or the program waits).
LATER_MAX = 128


class _Keyed:
    """A circuit argument of a call looked up later (:meth:`Intake._defer`): the QPY bytes
    its key was taken of, pickled as the circuit is (:func:`qshpc.task.payload.load_circuit`)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        from qshpc.task.payload import load_circuit

        return (load_circuit, (self.data,))


def _keyed_bytes(circuit: Any, qpy: Qpy) -> bytes:
    """The QPY bytes a call's key took of ``circuit`` (its walk keeps them in ``qpy``)."""
    known = qpy.get(id(circuit))
    if known is not None and known[0] is circuit:
        return known[1]
    from qshpc.store import _qpy  # (not met: every circuit's walk keeps its bytes)

    return _qpy.dump(circuit)  # pragma: no cover


def keyable(args: tuple[Any, ...]) -> bool:
    """True when no reference can be inside ``args``: plain values, numeric arrays, and
    circuits of standard gates without metadata (what goes as QPY), at the top level."""
    circuit_class = None
    for a in args:
        t = type(a)
        if t in PLAIN:
            continue
        if t.__name__ == "ndarray" and t.__module__ == "numpy":
            if a.dtype.hasobject:
                return False
            continue
        if circuit_class is None:
            circuit_class = _circuit_class()  # (an import here cost each call ~0.7 us)
        if t is not circuit_class or circuit_class is None or a.metadata:
            return False
        # The names counted in Rust (``count_ops()`` copies them into an OrderedDict):
        # 0.8 against 2.9 µs a 2-qubit circuit, at each cached call.
        rust: Any = getattr(a, "_data", None)
        counts = rust.count_ops() if hasattr(rust, "count_ops") else a.count_ops()
        if not counts.keys() <= (_STANDARD or _standard_names()):
            return False
    return True


_STANDARD: frozenset[str] | None = None


def _standard_names() -> frozenset[str]:
    global _STANDARD
    from qshpc.task.payload import standard_names

    _STANDARD = standard_names()
    return _STANDARD


def value_of(ref: Any) -> Any:
    """A dependency's value (raises its error when it failed)."""
    if isinstance(ref, TaskRef):
        return ref._value_once()
    return ref


__all__ = ["Entry", "Intake", "keyable", "plain", "value_of"]
