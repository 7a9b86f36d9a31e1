"""References to task results and to objects placed with :func:`qshpc.put`.

A :class:`TaskRef` is a :class:`concurrent.futures.Future` (a subclass), so
``concurrent.futures.wait``/``as_completed``, ``asyncio.wrap_future`` and
``await ref`` accept it. It is lighter than a plain ``Future``: every reference
of a process shares one condition (a plain ``Future`` builds its own, about
1 us), and the runtime resolves whole batches of references under that one
lock, which is what lets rank 0 keep up with 100k tiny tasks per second.

An :class:`ObjectRef` (from ``put``) is ready from the start: ``wait``,
``as_completed`` and ``concurrent.futures.wait`` count it as done. Its id names
the rank that placed it, so ids never collide across ranks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError as _FuturesCancelledError
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_PENDING, _RUNNING, _DONE, _FAILED, _CANCELLED = range(5)
_NAMES = ("pending", "running", "done", "failed", "cancelled")
# What concurrent.futures reads in ``Future._state``.
_FUTURE_STATES = ("PENDING", "RUNNING", "FINISHED", "FINISHED", "CANCELLED_AND_NOTIFIED")

# One condition for every reference of this process: waiters sleep on it (no
# spinning) and the dispatcher notifies it once per batch, not once per task.
# It wraps an RLock, so concurrent.futures.wait may acquire it once per future.
_cond = threading.Condition()

_LOG = logging.getLogger("qshpc")
#: The name of rank 0's dispatcher thread, which also runs TaskRefs' done-callbacks.
DISPATCHER_THREAD = "qshpc-dispatcher"


class CancelledError(_FuturesCancelledError):
    """The task was cancelled before it ran (also a ``concurrent.futures.CancelledError``)."""


def refuse_on_dispatcher(timeout: float | None, what: str) -> None:
    """Refuse to wait for a call on rank 0's dispatcher thread, where done-callbacks run.

    That thread sends the calls and takes their results: waiting on it for a
    call not done yet waited forever (or until ``timeout``), as nothing could
    send it. Calls submitted from a callback are fine; waiting is not.

    Raises:
        UserError: On the dispatcher thread, unless ``timeout`` is 0 (a look).
    """
    if timeout == 0 or threading.current_thread().name != DISPATCHER_THREAD:
        return
    from qshpc.errors import UserError

    raise UserError(
        f"{what} was called in a done-callback (ref.add_done_callback(...)), which runs on "
        "qshpc's dispatcher thread: the calls it waits for could not be sent meanwhile, so it "
        "would wait forever. Submit calls from the callback if you like, but wait for them "
        "in the program (get, wait or as_completed)"
    )


class Stored:
    """A result left undecoded until the program reads it: ``load()`` decodes it.

    A task result over ``QSHPC_RESULT_MEMORY_MAX`` bytes that rank 0 keeps only in
    the job's store once written there
    (:meth:`qshpc.program.session.Session.in_store`): ``load()`` reads it back. Or a
    large cache hit of this user's (:meth:`qshpc.cache.store.CacheDir.get`'s
    ``lazy``): checked whole at the call, recorded in the job's store from its
    bytes, decoded when the program reads it. ``result()`` decodes it once and
    keeps the value; ``get`` decodes it anew at each read and keeps the bytes: a
    decode is a copy of the program's own, as ``get`` gives (:func:`fresh` of a
    decoded value, a second copy, cost a 12-qubit distribution ~0.5 ms more).
    """

    __slots__ = ("load",)

    def __init__(self, load: Callable[[], Any]) -> None:
        self.load = load


_load_lock = threading.Lock()


def from_hit(hit: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> Any:
    """The value a cache hit resolves its call's reference with: a :class:`Stored` when
    the hit was not decoded and no parameter of the call needs rebinding in it, else the
    value (decoded now, its parameters the call's: :func:`qshpc.cache.rebind.rebind_hit`)."""
    rebind = _REBIND or _rebind()
    if hit.later is not None and not rebind.needs_rebind(hit):
        return Stored(hit.later)  # a new value at each call (Hit.load keeps the first)
    return rebind.rebind_hit(hit, args, kwargs)


def from_done(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> Any:
    """The value a resume's stored result resolves its call's reference with: its circuits
    with the call's Parameters (:func:`qshpc.cache.rebind.rebind`); one left in the store
    (:class:`Stored`) stays there unless the call has Parameters to put in it."""
    rebind = _REBIND or _rebind()
    if type(value) is Stored:
        if not rebind.arg_parameters(args, kwargs):
            return value
        value = value.load()
    return rebind.rebind(value, args, kwargs)


#: :mod:`qshpc.cache.rebind`, once a hit was met (an import at each hit costs it ~0.7 us).
_REBIND: Any = None


def _rebind() -> Any:
    global _REBIND
    from qshpc.cache import rebind

    _REBIND = rebind
    return rebind


#: Set by a backend that keys cached calls and looks them up later (the runtime's
#: ``Intake._defer``): what looks them up. ``ref.result()``/``ref.exception()`` of a
#: pending reference call it first, so that a hit is seen at once (review51 F6: they
#: waited for the dispatcher thread's next turn, ~45 ms a call).
flush_lookups: Callable[[], object] | None = None


def _flush_lookups() -> None:
    hook = flush_lookups
    if hook is not None:
        hook()


class TaskRef(Future[T]):
    """A reference to the result of one distributed task call: a ``concurrent.futures.Future``.

    Attributes:
        task_id: The stable task id (call index on rank 0, ``"17.2"`` when nested).
        function: Qualified name of the task function.
    """

    __slots__ = ("_callbacks", "_error", "_st", "_value", "function", "task_id")

    #: Shared by every reference (concurrent.futures locks it around its checks).
    _condition = _cond

    def __init__(self, task_id: str, function: str) -> None:
        # No Future.__init__: it would build a Condition per reference.
        self.task_id = task_id
        self.function = function
        self._st = _PENDING
        self._value: Any = None
        self._error: BaseException | None = None
        # Callbacks, and a marker that concurrent.futures' waiters are installed
        # (they live in __dict__, made only then): resolving checks this one slot.
        self._callbacks: list[Callable[[Future[T]], object]] | None = None

    def __repr__(self) -> str:
        return f"<TaskRef {self.task_id} {self.function} {_NAMES[self._st]}>"

    # -- what concurrent.futures reads --------------------------------------
    @property
    def _state(self) -> str:  # type: ignore[override]
        return _FUTURE_STATES[self._st]

    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        d = self.__dict__
        w: list[Any] | None = d.get("_w")
        if w is None:
            w = d["_w"] = []
            if self._callbacks is None:
                self._callbacks = []
        return w

    @property
    def _result(self) -> Any:  # type: ignore[override]
        value = self._value
        return self._loaded() if type(value) is Stored else value

    def _loaded(self) -> Any:
        """The value, decoded now if it was left as its bytes (:class:`Stored`), once."""
        with _load_lock:
            value = self._value
            if type(value) is Stored:
                value = value.load()  # raises (CacheReadError) where it does not decode
                self._value = value
        return value

    @property
    def _exception(self) -> BaseException | None:  # type: ignore[override]
        return self._error

    # -- the Future API -------------------------------------------------------
    def done(self) -> bool:
        """Return True when the task finished, failed or was cancelled."""
        return self._st >= _DONE

    def running(self) -> bool:
        """Return True while the task is dispatched and not finished."""
        return self._st == _RUNNING

    def cancelled(self) -> bool:
        """Return True when the task was cancelled before it ran."""
        return self._st == _CANCELLED

    def cancel(self) -> bool:
        """Cancel the task if it has not been dispatched yet.

        Returns:
            True when it was (or already had been) cancelled, False when it runs or ended.
        """
        with _cond:
            if self._st != _PENDING:
                return self._st == _CANCELLED
            self._cancel_locked()
            _cond.notify_all()
        self._run_callbacks()
        return True

    def _cancel_locked(self) -> None:
        """Mark a pending task cancelled (the caller holds ``_cond`` and notifies)."""
        self._st = _CANCELLED
        self._error = CancelledError(f"task {self.task_id} ({self.function}) was cancelled")
        for waiter in self.__dict__.get("_w", ()):
            waiter.add_cancelled(self)

    def set_running_or_notify_cancel(self) -> bool:
        """Mark the task running; False when it was cancelled (as ``Future`` does)."""
        with _cond:
            if self._st == _CANCELLED:
                return False
            if self._st == _PENDING:
                self._st = _RUNNING
            return True

    def result(self, timeout: float | None = None) -> T:
        """Wait for the task and return its result.

        Args:
            timeout: Seconds to wait; None waits forever.

        Raises:
            TaskError: The task raised on its worker.
            CancelledError: The task was cancelled.
            TimeoutError: Not done within ``timeout``.
        """
        if self._st < _DONE:
            refuse_on_dispatcher(timeout, "ref.result()")
            _flush_lookups()
            wait_all([self], timeout)
        if self._error is not None:
            raise raised_copy(self._error)
        value: T = self._value
        if type(value) is Stored:
            value = self._loaded()
        return value

    def _value_once(self) -> Any:
        """:meth:`result`, for a use that does not keep it (a call's argument, pickled
        into its payload): a result left in its bytes or in the job's store
        (:class:`Stored`) is decoded for this use alone and stays where it was."""
        value = self._value
        if type(value) is Stored and self._error is None and self._st == _DONE:
            return value.load()
        return self.result()

    def _fresh(self) -> Any:
        """What ``get`` gives of a finished reference: a copy of the result of its own.

        A result still in its stored bytes (:class:`Stored`) is decoded for this read
        alone, and stays its bytes: the decode is the copy.
        """
        value = self._value
        if type(value) is Stored and self._error is None:
            return value.load()  # raises (CacheReadError) where it does not decode
        return fresh(self.result())

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the task and return its exception (None when it succeeded).

        Raises:
            CancelledError: The task was cancelled (as ``Future.exception`` does).
            TimeoutError: Not done within ``timeout``.
        """
        if self._st < _DONE:
            refuse_on_dispatcher(timeout, "ref.exception()")
            _flush_lookups()
            wait_all([self], timeout)
        if self._st == _CANCELLED:
            assert self._error is not None
            raise raised_copy(self._error)
        return self._error

    def add_done_callback(self, fn: Callable[[Future[T]], object]) -> None:
        """Call ``fn(ref)`` when the task ends (at once if it already has).

        An exception in ``fn`` is logged and ignored, as ``Future`` does.
        """
        with _cond:
            if self._st < _DONE:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        _call(fn, self)

    def set_result(self, result: T) -> None:
        """Resolve the reference with ``result`` (for tools that complete futures)."""
        resolve_many([(self, True, result)])

    def set_exception(self, exception: BaseException | None) -> None:
        """Resolve the reference with ``exception``."""
        resolve_many([(self, False, exception)])

    def __await__(self) -> Generator[Any, None, T]:
        """``await ref`` inside a coroutine: the task's result, without blocking the loop."""
        import asyncio

        return (yield from asyncio.wrap_future(self).__await__())

    # -- pickling ---------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        """A finished reference travels with its outcome; a pending one cannot travel.

        While a call's arguments are pickled (:func:`collecting`), a pending one is
        recorded instead: the call then waits for it.
        """
        if self._st < _DONE:
            c = collecting.found
            if c.on:
                c.pending.append(self)
                return (_pending_placeholder, (self.task_id,))
            raise TypeError(
                f"TaskRef {self.task_id} ({self.function}) is not done and cannot be sent: "
                "pass it as a task argument (the task then starts once it is done), "
                "or get() its value first"
            )
        value = self._value
        if type(value) is Stored:
            value = value.load()  # for this pickling alone: rank 0 keeps it stored
        return (_finished_ref, (self.task_id, self.function, self._st, value, self._error))

    def __copy__(self) -> TaskRef[T]:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> TaskRef[T]:
        return self

    # -- runtime side -------------------------------------------------------------
    def _run_callbacks(self) -> None:
        cbs, self._callbacks = self._callbacks, None
        for cb in cbs or ():
            _call(cb, self)


#: Results of these types are immutable: ``get`` gives them as they are.
_IMMUTABLE = frozenset({int, float, complex, bool, str, bytes, type(None)})


def raised_copy(error: BaseException) -> BaseException:
    """A copy of a reference's stored ``error``, for one ``get`` (or ``result``) to raise.

    Raising the stored exception itself added each ``get``'s frames to its one
    traceback: after three ``get`` calls caught by ``except``, the fourth's
    traceback showed all four lines, the first ones inside handled ``try``
    blocks, and kept their frames alive (review44 F3). Each copy has its own
    traceback, of that ``get`` only, and the same class, message, remote
    traceback (a TaskError's) and attributes; like Ray's, which rebuilds the
    error at each ``ray.get``. An exception that cannot be copied this way is
    raised again without its old traceback.

    ``copy.copy`` first (its ``__reduce_ex__`` keeps the C-level fields:
    OSError's ``filename``, UnicodeDecodeError's, SyntaxError's; review47 F4),
    then the class's ``__new__`` with ``args`` and ``__dict__`` (a class whose
    ``__init__`` takes other arguments than its ``args``).
    """
    import copy as copying

    cls = type(error)
    try:
        copy = copying.copy(error)
        if type(copy) is not cls:
            raise TypeError("copied to another type")
        copy.__traceback__ = None
    except BaseException as exc:  # a copy that raises SystemExit too (review56 M2)
        if isinstance(exc, KeyboardInterrupt):
            raise
        try:
            copy = cls.__new__(cls, *error.args)
            copy.__dict__.update(error.__dict__)
            copy.args = error.args
        except BaseException as bad:  # a class whose __new__ wants other arguments
            if isinstance(bad, KeyboardInterrupt):
                raise
            return error.with_traceback(None)
    copy.__cause__ = error.__cause__
    copy.__context__ = error.__context__
    copy.__suppress_context__ = error.__suppress_context__
    return copy


def fresh(value: Any) -> Any:
    """A copy of a task's result of its own, as Ray's ``get`` deserializes one each time.

    A program that changes what one ``get`` gave never changes what a later
    ``get`` of the same reference gives, nor the value a task given the reference
    receives. Immutable values come as they are; a list, dict or plain dict subclass
    (``QuasiDistribution``) of immutable values is copied as such (measured, under
    load: 0.3 ms for a 12-qubit ``QuasiDistribution``, against 1.3 ms through pickle),
    a numpy array by ``copy()``; the rest go through pickle, or ``copy.deepcopy``
    what pickle cannot carry (a class of the program), or as they are when neither
    can copy them.
    """
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    shallow = _shallow_copy(value)
    if shallow is not None:
        return shallow
    import pickle

    from qshpc.task.payload import writeable_dumps

    try:
        # each read-only numpy array as a writeable copy, as a worker's result travels
        # (on 8076006 ``get`` of ``np.frombuffer(...)`` in a result gave it read-only
        # under ``-n 1`` only: pickle keeps the flag)
        return pickle.loads(writeable_dumps(value))
    except Exception:
        pass
    import copy

    try:
        return copy.deepcopy(value)
    except Exception:
        return value


#: Deeper lists and dicts are copied through pickle.
_MAX_DEPTH = 8


def _shallow_copy(value: Any) -> Any:
    """A copy of ``value`` made of lists, tuples, dicts (and numpy arrays, each a
    writeable copy) over immutable values without pickle, or None when it holds
    anything else (:func:`~qshpc.program.copies.plain_copy`)."""
    copies = _COPIES or _copies()
    out = copies.plain_copy(value, {}, _array_copy, _dict_subclass_copy, _MAX_DEPTH, False)
    return None if out is copies.CANNOT else out


#: :mod:`qshpc.program.copies`, once a result was copied (two imports each ``get`` of a
#: value: ~1 us).
_COPIES: Any = None


def _copies() -> Any:
    global _COPIES
    from qshpc.program import copies

    _COPIES = copies
    return copies


def _array_copy(value: Any) -> Any:
    return value.copy(order="K")  # a Fortran-ordered array stays so (review48)


def _dict_subclass_copy(value: Any) -> Any:
    """A copy of a dict subclass of immutable values that pickles as a plain one does (its
    items, then its ``__dict__``: no slots, no state methods of its own), or whose class
    says its items and ``__dict__`` are the whole of it (``__qshpc_plain_dict__ = True``:
    ``qshpc.aer``'s ``QuasiDistribution``, whose ``__reduce__`` rebuilds it from them),
    else ``CANNOT``."""
    cannot = (_COPIES or _copies()).CANNOT
    kind: Any = type(value)
    if not isinstance(value, dict) or not _IMMUTABLE.issuperset(map(type, value.values())):
        return cannot
    attrs = getattr(value, "__dict__", None)
    if (
        attrs is None
        or any("__slots__" in vars(base) for base in (*kind.__mro__[1:-2], kind))
        or getattr(kind, "__reduce_ex__", None) is not object.__reduce_ex__
        or (
            getattr(kind, "__reduce__", None) is not object.__reduce__
            and getattr(kind, "__qshpc_plain_dict__", None) is not True
        )
        or getattr(kind, "__getstate__", None) is not object.__getstate__
        or getattr(kind, "__setitem__", None) is not dict.__setitem__
        or hasattr(kind, "__setstate__")
        or not _IMMUTABLE.issuperset(map(type, attrs.values()))
    ):
        return cannot
    new = kind.__new__(kind)
    dict.update(new, value)
    new.__dict__.update(attrs)
    return new


def _call(fn: Callable[[Any], object], ref: Any) -> None:
    try:
        fn(ref)
    except Exception:
        _LOG.exception("exception calling callback for %r", ref)


def _pending_placeholder(task_id: str) -> TaskRef[Any] | None:
    """Stands for a pending TaskRef: the reference itself again when a waiting call's
    snapshot is loaded (:func:`load_snapshot`), else nothing (the payload is thrown away)."""
    resolve = collecting.found.resolve
    return resolve.get(task_id) if resolve is not None else None


def load_snapshot(data: bytes, deps: Sequence[TaskRef[Any]]) -> Any:
    """The arguments a waiting call was pickled with at its call, its references in place.

    ``deps``: the references that were pending then (done now, or not: each
    comes back as itself, so its outcome is read when the call is packed again).
    """
    import pickle

    found = collecting.found
    found.resolve = {d.task_id: d for d in deps}
    try:
        return pickle.loads(data)
    finally:
        found.resolve = None


def _finished_ref(
    task_id: str, function: str, state: int, value: Any, error: BaseException | None
) -> TaskRef[Any]:
    """Rebuild a finished reference on the rank that unpickles it."""
    ref: TaskRef[Any] = TaskRef(task_id, function)
    ref._st, ref._value, ref._error = state, value, error
    return ref


def resolve_many(items: Iterable[tuple[TaskRef[Any], bool, Any]]) -> None:
    """Resolve references in one go: ``(ref, ok, value_or_exception)``.

    Takes the lock once and wakes waiters once, whatever the number of refs.
    """
    with_callbacks: list[TaskRef[Any]] = []
    with _cond:
        for ref, ok, value in items:
            if ref._st >= _DONE:
                continue
            if ok:
                ref._value = value
                ref._st = _DONE
            else:
                ref._error = value
                ref._st = _FAILED
            if ref._callbacks is not None:
                with_callbacks.append(ref)
        for ref in with_callbacks:
            for waiter in ref.__dict__.get("_w", ()):  # concurrent.futures' and as_completed's
                if ref._st == _DONE:
                    waiter.add_result(ref)
                else:
                    waiter.add_exception(ref)
        _cond.notify_all()
    for ref in with_callbacks:
        ref._run_callbacks()


def resolve_new(ref: TaskRef[Any], value: Any) -> None:
    """Resolve a reference no other thread has seen yet (a cache hit at its call): nothing
    can wait on it or have a callback on it, so no lock and no wake-up (1.3 us of 1.8)."""
    ref._value = value
    ref._st = _DONE


def resolve_values(chunks: Iterable[tuple[list[TaskRef[Any]], list[Any]]]) -> None:
    """Resolve successful references in one go: ``(refs, values)`` pairs of equal length."""
    resolve_many(
        (ref, True, value)
        for refs, values in chunks
        for ref, value in zip(refs, values, strict=True)
    )


def cancel_all(refs: Iterable[Any]) -> bool:
    """Cancel every reference or none, as one ``Future.cancel()`` of their whole.

    Under the lock dispatch takes (:func:`mark_running`): when none of them has
    started (each still queued, or cancelled already), all are cancelled and
    True is returned; when any runs or has ended, nothing is cancelled and
    False is returned, so their results all still come.
    """
    refs = list(refs)
    with _cond:
        if not all(isinstance(r, TaskRef) and r._st in (_PENDING, _CANCELLED) for r in refs):
            return False
        fresh = [r for r in refs if r._st == _PENDING]
        for ref in fresh:
            ref._cancel_locked()
        _cond.notify_all()
    for ref in fresh:
        ref._run_callbacks()
    return True


def mark_running(refs: Iterable[TaskRef[Any]]) -> bool:
    """Mark references as dispatched (they can no longer be cancelled).

    Under the lock ``cancel`` takes: a call whose ``cancel()`` returned True
    never runs. Returns False when one of them was cancelled (leave it out).
    """
    whole = True
    with _cond:
        for ref in refs:
            st = ref._st
            if st == _PENDING:
                ref._st = _RUNNING
            elif st == _CANCELLED:
                whole = False
    return whole


def requeue(ref: TaskRef[Any]) -> None:
    """A dispatched call goes back to the queue (a retry on rank 0)."""
    ref._st = _PENDING


def wait_all(refs: list[Any], timeout: float | None = None) -> None:
    """Sleep until every reference is done.

    Raises:
        TimeoutError: When ``timeout`` seconds pass first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    i = 0
    with _cond:
        while i < len(refs):
            if refs[i]._st >= _DONE:
                i += 1
                continue
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                n = sum(1 for r in refs if r._st < _DONE)
                raise TimeoutError(f"{n} of {len(refs)} tasks not done after {timeout} s")
            _cond.wait(remaining if remaining is not None else 1.0)


def wait_some(
    refs: list[Any], num_returns: int, timeout: float | None
) -> tuple[list[Any], list[Any]]:
    """Ray's ``wait``: the first ``num_returns`` done references (fewer only on timeout), the rest.

    Both lists keep the input order. ``timeout=0`` looks once and returns.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    with _cond:
        while True:
            ready: list[int] = []
            for i, r in enumerate(refs):
                if r._st >= _DONE:
                    ready.append(i)
                    if len(ready) == num_returns:
                        break
            if len(ready) >= num_returns:
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            _cond.wait(remaining if remaining is not None else 1.0)
    chosen = set(ready)
    return [refs[i] for i in ready], [r for i, r in enumerate(refs) if i not in chosen]


class _Arrivals:
    """A waiter that collects references as they finish (what ``as_completed`` needs)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.event = threading.Event()
        self.finished: list[Any] = []

    def add_result(self, ref: Any) -> None:
        with self.lock:
            self.finished.append(ref)
            self.event.set()

    add_exception = add_result
    add_cancelled = add_result


def iter_completed(refs: list[Any], timeout: float | None) -> Iterator[Any]:
    """Yield each reference once, as it finishes; those already done first, in input order.

    Raises:
        TimeoutError: Some are not done after ``timeout`` seconds (raised by the iterator).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    arrivals = _Arrivals()
    seen: set[int] = set()
    first: list[Any] = []
    waiting: list[TaskRef[Any]] = []
    with _cond:
        for r in refs:
            if id(r) in seen:
                continue
            seen.add(id(r))
            if r._st >= _DONE:
                first.append(r)
            else:
                r._waiters.append(arrivals)
                waiting.append(r)
    left = len(waiting)
    try:
        yield from first
        while left:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(
                    f"{left} of {len(seen)} tasks not done after {timeout} s "
                    "(as_completed: the ones done so far were yielded)"
                )
            arrivals.event.wait(remaining)
            with arrivals.lock:
                batch, arrivals.finished = arrivals.finished, []
                arrivals.event.clear()
            left -= len(batch)
            yield from batch
    finally:
        with _cond:
            for r in waiting:
                w = r.__dict__.get("_w")
                if w and arrivals in w:
                    w.remove(arrivals)


# ObjectRef ids: the placing rank in the high bits, a per-rank counter below.
_INDEX_BITS = 40
_INDEX_MASK = (1 << _INDEX_BITS) - 1


def object_id(rank: int, index: int) -> int:
    """The id of the ``index``-th object placed by ``rank`` (unique across the ranks of a job)."""
    return (rank << _INDEX_BITS) | index


class ObjectRef(Future[Any]):
    """A reference to an object placed with :func:`qshpc.put`.

    Pass it as a task argument: the object travels to each worker once and is
    substituted for the reference there (at the top level of the arguments; a
    reference nested in a list, dict or object stays a reference, and ``get``
    on it inside the task returns the object). It is done from the start.

    Attributes:
        obj_id: Unique in the job: the placing rank and that rank's put counter.
    """

    __slots__ = ("obj_id",)

    _condition = _cond
    _st = _DONE
    _error = None

    def __init__(self, obj_id: int) -> None:
        self.obj_id = obj_id

    @property
    def owner(self) -> int:
        """The rank that placed the object."""
        return self.obj_id >> _INDEX_BITS

    @property
    def index(self) -> int:
        """The object's number among those its rank placed."""
        return self.obj_id & _INDEX_MASK

    def __repr__(self) -> str:
        return f"<ObjectRef {self.owner}:{self.index}>"

    def placed_digest(self) -> bytes | None:
        """The digest by value of the object this process placed as it (made at the put),
        or None when it placed none such (a reference a worker got from rank 0)."""
        return _digest_getter(self.obj_id) if _digest_getter is not None else None

    def __reduce__(self) -> tuple[Any, ...]:
        c = collecting.found
        if c.on:
            c.objs.append(self.obj_id)
        return (ObjectRef, (self.obj_id,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and other.obj_id == self.obj_id

    def __hash__(self) -> int:
        return hash(("ObjectRef", self.obj_id))

    @property
    def _state(self) -> str:  # type: ignore[override]
        return "FINISHED"

    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        w: list[Any] = self.__dict__.setdefault("_w", [])
        return w

    def done(self) -> bool:
        """Always True: the object was placed when ``put`` returned."""
        return True

    def running(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def cancel(self) -> bool:
        return False

    def result(self, timeout: float | None = None) -> Any:
        """The object (as ``get(ref)``)."""
        if _object_getter is None:
            raise RuntimeError("no qshpc backend is active to look the object up")
        return _object_getter(self)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return None

    def add_done_callback(self, fn: Callable[[Future[Any]], object]) -> None:
        _call(fn, self)

    def __await__(self) -> Generator[Any, None, Any]:
        return self.result()
        yield  # pragma: no cover - makes this a generator


class Found:
    """What references being pickled in one thread recorded (see :data:`collecting`)."""

    __slots__ = ("objs", "on", "pending", "resolve")

    def __init__(self) -> None:
        self.on = False
        self.objs: list[int] = []
        self.pending: list[TaskRef[Any]] = []
        #: While a snapshot is loaded: its pending references by task id.
        self.resolve: dict[str, TaskRef[Any]] | None = None


class _Collecting(threading.local):
    def __init__(self) -> None:
        self.found = Found()


#: Per thread: while ``collecting.found.on``, a pickled ObjectRef adds its id to
#: ``objs`` and a pickled pending TaskRef adds itself to ``pending`` (see
#: ``qshpc.runtime.backend.pack``). Pickle calls each reference's ``__reduce__``
#: wherever it sits (lists, dicts, sets, an object's attributes), so finding
#: them costs nothing beyond pickling.
collecting = _Collecting()


#: Set by the backend module: how ``ObjectRef.result()`` finds the object.
_object_getter: Callable[[ObjectRef], Any] | None = None


def set_object_getter(getter: Callable[[ObjectRef], Any]) -> None:
    """Tell ``ObjectRef.result`` how to look objects up (the backend does, once)."""
    global _object_getter
    _object_getter = getter


_digest_getter: Callable[[int], bytes | None] | None = None


def set_digest_getter(getter: Callable[[int], bytes | None]) -> None:
    """Tell ``ObjectRef.placed_digest`` how to look digests up (the backend does, once)."""
    global _digest_getter
    _digest_getter = getter


def substitute_top(
    args: tuple[Any, ...], kwargs: dict[str, Any], lookup: Callable[[Any], Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Replace the references among the arguments themselves (not nested ones) by ``lookup(ref)``.

    This is Ray's rule: a reference passed as an argument arrives as its value;
    one inside a list, dict or object arrives as a reference, which the task
    reads with ``get``.
    """
    for a in args:
        if type(a) is ObjectRef or type(a) is TaskRef:
            args = tuple(lookup(x) if type(x) in _REF_TYPES else x for x in args)
            break
    if kwargs:
        for v in kwargs.values():
            if type(v) in _REF_TYPES:
                kwargs = {k: lookup(x) if type(x) in _REF_TYPES else x for k, x in kwargs.items()}
                break
    return args, kwargs


_REF_TYPES = frozenset((ObjectRef, TaskRef))


def has_top_refs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """True when a reference is among the arguments themselves (cheap: no nested scan)."""
    for a in args:
        if type(a) in _REF_TYPES:
            return True
    if kwargs:
        for v in kwargs.values():
            if type(v) in _REF_TYPES:
                return True
    return False


def top_task_refs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[TaskRef[Any]]:
    """The TaskRefs among the arguments themselves (the ones the task receives as values)."""
    found = [a for a in args if type(a) is TaskRef]
    if kwargs:
        found += [v for v in kwargs.values() if type(v) is TaskRef]
    return found
