"""The interface every execution backend offers, and which one is active.

* no runtime (plain ``python program.py``) and inside workers: :class:`InlineBackend`
  runs a task at the call, in this process;
* ``qshpc run`` with one rank: the same, recording each task in the job store;
* ``qshpc run`` with workers: :class:`qshpc.runtime.dispatcher.Dispatcher`.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import pickle
import re
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from qshpc._lazy import loaded
from qshpc.errors import ResourceError, SerializationError, UserError
from qshpc.program.copies import CANNOT, plain_copy
from qshpc.program.refs import (
    ObjectRef,
    TaskRef,
    collecting,
    from_done,
    from_hit,
    load_snapshot,
    object_id,
    resolve_many,
    set_digest_getter,
    set_object_getter,
    substitute_top,
    top_task_refs,
    wait_all,
)
from qshpc.task import context, payload
from qshpc.task.execute import Outcome, run_task

if TYPE_CHECKING:
    from qshpc.cache.jobcache import JobCache
    from qshpc.program.session import Session


def _is_generator(value: Any) -> bool:
    import types

    return isinstance(value, types.GeneratorType)


def _unsendable(out: Outcome) -> Outcome:
    """A generator returned in plain ``python`` fails its call, as under ``qshpc run`` and
    on a worker, where the store or the trip refuses it: a program that works here works
    there too (a live generator here ran its body after its task had ended)."""
    from qshpc.task.execute import unsendable_text

    text = unsendable_text(
        out.task_id, out.function, out.value, TypeError("cannot pickle 'generator' object")
    )
    return Outcome(
        out.task_id, out.function, out.attempt, False, error=text,
        exc_type="SerializationError", started=out.started, finished=out.finished,
        provenance=out.provenance,
    )  # fmt: skip


def _ctrl_c_raises() -> bool:
    """Does a Ctrl-C raise KeyboardInterrupt in this process (Python's own SIGINT handler,
    or IPython's)? Not under ``qshpc run``, whose handler cancels the job."""
    import signal

    handler = signal.getsignal(signal.SIGINT)
    return handler is signal.default_int_handler or (
        callable(handler)
        and getattr(handler, "__module__", "").startswith(("IPython", "ipykernel"))
    )


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

    @property
    def runner(self) -> Callable[..., Any]:
        """What a rank calls: ``func``, or ``func`` with its target's threads and variables."""
        ...

    @property
    def threads(self) -> int:
        """Threads per call its target asks for (0: the rank's cores)."""
        ...


class Backend(Protocol):
    """What the program API needs from an execution backend."""

    def submit(
        self, task: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskRef[Any]: ...

    def put(self, obj: Any) -> ObjectRef: ...

    def get_object(self, obj_id: int) -> Any: ...

    def object_digest(self, obj_id: int) -> bytes | None: ...


_NO_REFS: tuple[()] = ()


def pack(
    value: Any, name: str, task_id: str, what: str = "arguments", qpy: payload.Qpy | None = None
) -> tuple[bytes, Sequence[int], Sequence[TaskRef[Any]]]:
    """Pickle ``value`` (circuits as QPY), finding every reference inside it, at any depth.

    References in lists, dicts, sets, tuples and in the attributes of any object
    pickle reaches record themselves while pickled (:data:`qshpc.refs.collecting`),
    so plain values cost no more than pickling them does. A value that names
    something of the program file (``__main__``) goes by value, with cloudpickle.

    ``qpy``: receives the QPY bytes of the circuits written as QPY
    (:func:`qshpc.task.payload.dumps`), for the cache key of this call.

    Returns:
        ``(payload, object ids, pending TaskRefs)``: the payload is usable only
        when no TaskRef inside is pending (the call must wait for those).

    Raises:
        SerializationError: The value cannot be pickled, even by cloudpickle.
    """
    found = collecting.found
    found.on = True
    try:
        try:
            data = _dumps(value, qpy)
            if b"__main__" not in data:
                objs, pending = found.objs, found.pending
                if not objs and not pending:
                    return data, _NO_REFS, _NO_REFS
                return data, objs[:], pending[:]
        except Exception:
            pass
        found.objs.clear()
        found.pending.clear()
        try:
            data = payload.cloud_dumps(value)
        except Exception as exc:
            subject = f"the {what} of task {task_id} ({name})" if task_id else f"the {what}"
            from qshpc.store.encoding_blob import iterator_hint

            raise SerializationError(
                f"{subject} cannot be serialized: {exc}{iterator_hint(value, 'sent')}. "
                "Pass plain data, numpy arrays or Qiskit objects, or build the object inside "
                "the task."
            ) from None
        return data, found.objs[:], found.pending[:]
    finally:
        found.on = False
        if found.objs:
            found.objs.clear()
        if found.pending:
            found.pending.clear()


_dumps = payload.dumps


class Placed:
    """An object ``put`` placed: ``copy`` is it as it was at the ``put``."""

    __slots__ = ("copy", "digest", "objs", "pending")

    def __init__(
        self, copy: Any, objs: Sequence[int], pending: Sequence[TaskRef[Any]], digest: bytes
    ) -> None:
        self.copy = copy
        #: The objects placed that it refers to (itself, not those they refer to).
        self.objs = objs
        #: The task references inside it that were not done at the ``put``.
        self.pending = pending
        #: Its value for the keys a resumed job finds results by: its pickle, and the
        #: digests of the objects it refers to.
        self.digest = digest


class Frozen:
    """A placed object kept as its pickle: each :meth:`thaw` is a copy of its own.

    Ray deserializes a placed object for each task and each ``get``: a change one
    task makes to it in place never reaches the next task or the program. Its
    contiguous numpy arrays travel out of band and come back as read-only views of
    one buffer (Ray's zero-copy arrays): no copy of their data per call.

    An object made only of lists, tuples, dicts, numbers, strings, numpy arrays
    and circuits is loaded once and copied from that first load at each later
    thaw (:func:`_copy_of`) when the first copy took less time than the load: a
    list of 100 10-qubit depth-20 circuits in 3 ms instead of the 69 ms of
    loading its pickle again (a dict of 20,000 short lists copies slower than it
    loads: loaded each time, as before).
    """

    __slots__ = ("array", "buffers", "data", "template")

    def __init__(self, data: bytes, buffers: list[memoryview], array: Any = None) -> None:
        if buffers or array is not None:
            context.note_placed_buffers()
        self.data = data
        self.buffers = buffers
        #: A placed numpy array alone: a read-only view of it (each thaw a new view).
        self.array = array
        #: The first load, when :func:`_copy_of` can copy it (never handed out); None
        #: when it cannot; ``_UNSEEN`` before the first thaw.
        self.template: Any = _UNSEEN

    def thaw(self) -> Any:
        """A new copy of the object (of a numpy array: a read-only view of it)."""
        if self.array is not None:
            return self.array.view()
        template = self.template
        if template is None:
            return pickle.loads(self.data, buffers=self.buffers)
        if template is not _UNSEEN:
            return _copy_of(template)
        import time

        started = time.perf_counter()
        obj = pickle.loads(self.data, buffers=self.buffers)
        loaded = time.perf_counter()
        out = _copy_of(obj)
        if out is CANNOT:
            self.template = None
            return obj
        # Kept only when copying beats loading (circuits: 20x; many small lists: slower)
        self.template = obj if time.perf_counter() - loaded < loaded - started else None
        return out


#: :attr:`Frozen.template` before the first thaw.
_UNSEEN = object()
#: Deeper structures are loaded from the pickle at each thaw.
_MAX_DEPTH = 64


def _copy_of(obj: Any) -> Any:
    """A copy of ``obj`` sharing nothing mutable with it, as loading its pickle gives
    (lists, tuples, dicts with keys of the immutable types, numpy arrays and scalars,
    circuits; :func:`~qshpc.program.copies.plain_copy`), or ``CANNOT``."""
    return plain_copy(obj, {}, _array_copy, _scalar_or_circuit, _MAX_DEPTH, True)


def _array_copy(obj: Any) -> Any:
    """A read-only array (out of band) as a view; a writeable one copied."""
    return obj.copy() if obj.flags.writeable else obj.view()


def _scalar_or_circuit(obj: Any) -> Any:
    """A numpy scalar as it is (immutable), a circuit's copy, else ``CANNOT``."""
    kind = type(obj)
    module = kind.__module__
    if module == "numpy":
        import numpy as np

        if isinstance(obj, np.generic) and not isinstance(obj, np.object_):
            return obj
        return CANNOT
    if kind.__name__ == "QuantumCircuit" and module.startswith("qiskit."):
        return obj.copy()
    return CANNOT


#: Placed objects of these types are immutable: given as they are, never copied.
_IMMUTABLE = frozenset({int, float, complex, bool, str, bytes, type(None)})


def freeze(obj: Any) -> Any:
    """``obj`` as a :class:`Frozen`; ``obj`` itself when it is immutable, or when it
    cannot be pickled again (a reference still pending: given as it is, as before)."""
    if type(obj) in _IMMUTABLE:
        return obj
    kind = type(obj)
    if kind.__name__ == "ndarray" and kind.__module__ == "numpy":
        ro = _read_only_array(obj)
        if ro is not None:
            return Frozen(b"", [], ro)
    buffers: list[memoryview] = []

    def out_of_band(buf: pickle.PickleBuffer) -> None:
        buffers.append(buf.raw().toreadonly())

    try:
        data = pickle.dumps(obj, protocol=5, buffer_callback=out_of_band)
    except Exception:  # a class or function of the program: cloudpickle, else as it is
        buffers.clear()
        try:
            data = payload.cloud_dumps(obj)  # its arrays copied at each thaw
        except Exception:
            return obj
    return Frozen(data, buffers)


def _read_only_array(arr: Any) -> Any:
    """A read-only array over ``arr``'s memory, whose views cannot be made writeable
    (it rests on a read-only buffer, not on ``arr``), or None (the pickle path)."""
    if arr.dtype.hasobject or not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        return None
    import numpy as np

    try:
        ro = np.asarray(memoryview(arr).toreadonly())
    except (TypeError, ValueError):  # a dtype without a buffer format (datetime64, ...)
        return None
    if ro.dtype != arr.dtype or ro.shape != arr.shape or ro.flags.writeable:
        return None
    return ro


def wire_form(obj: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """A placed object as it travels to a worker: its pickle, classes and functions of
    the program file by value (a worker cannot import ``__main__.Box``), and its
    contiguous arrays as out-of-band buffers (sent without a copy into the pickle)."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        if not payload.by_reference_to_main(data):
            return data, buffers
    except Exception:  # a lambda, a local class: cloudpickle
        pass
    buffers = []
    return payload.cloud_dumps(obj, buffer_callback=buffers.append), buffers


def received(data: bytes, buffers: Sequence[Any]) -> Frozen:
    """The :class:`Frozen` form of an object a worker received (see :func:`wire_form`)."""
    frozen = Frozen(data, [memoryview(b).toreadonly() for b in buffers])
    if len(buffers) == 1 and len(data) < 1024:  # an array alone: a read-only view each use
        obj = frozen.thaw()
        kind = type(obj)
        if kind.__name__ == "ndarray" and kind.__module__ == "numpy":
            ro = _read_only_array(obj)
            if ro is not None:
                return Frozen(b"", [], ro)
    return frozen


def snapshot_object(obj: Any, digests: dict[int, bytes]) -> Placed:
    """``put``'s copy of ``obj`` as it is now, with the references inside it.

    Ray serializes an object at ``put``: a later change the program makes to it
    reaches neither the tasks nor ``get``. The copy is pickled and loaded again
    here (circuits as QPY), so an object that cannot travel is refused at the
    ``put``, not when a call takes it to a worker. The task references inside
    that are not done come back as themselves (a call taking the object waits
    for them). ``digests``: those of the objects placed so far (by id).

    Raises:
        SerializationError: ``obj`` cannot be pickled, even by cloudpickle.
    """
    data, objs, pending = pack(obj, "put", "", what=f"object given to put ({type(obj).__name__})")
    copy = load_snapshot(data, pending) if pending else pickle.loads(data)
    # By value as a call's arguments are (circuits' Parameters by name, not by their
    # UUIDs, new in every process): a resumed program placing the same object finds
    # the results of the calls that took it.
    h = hashlib.blake2b(task_key(b"put", data, "", ((copy,), {})).encode(), digest_size=16)
    for oid in sorted(set(objs)):
        h.update(digests.get(oid, b"?"))
    return Placed(copy, objs, pending, h.digest())


def with_objects(key: str, objs: Sequence[int], digests: dict[int, bytes]) -> str:
    """``key`` (:func:`task_key`) of a call that refers to the objects ``objs`` placed
    with ``put``: it covers their values too (their ids alone name other objects when
    a resumed program places others)."""
    if not objs:
        return key
    h = hashlib.blake2b(key.encode(), digest_size=16)
    for oid in sorted(set(objs)):
        h.update(digests.get(oid, b"?"))
    return h.hexdigest()


def refers_to_objects(value: Any) -> bool:
    """True when ``value`` holds an ObjectRef at any depth (or cannot be pickled to tell)."""
    found = collecting.found
    found.on = True
    try:
        _dumps(value)
        return bool(found.objs)
    except Exception:
        return True
    finally:
        found.on = False
        found.objs.clear()
        found.pending.clear()


def task_ranks(task: TaskSpec) -> int:
    """Ranks one call of ``task`` runs on (its ``target={"ranks": k}``; 1 by default)."""
    return int(getattr(getattr(task, "target", None), "ranks", 1))


def dumps_payload(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, task_id: str) -> bytes:
    """Pickle a task's arguments (snapshot at call time), naming the task if they cannot be."""
    return pack((args, kwargs), name, task_id)[0]


def foreign_object_error(obj_id: int, here: int) -> UserError:
    """The error for an ObjectRef whose object this rank does not hold."""
    ref = ObjectRef(obj_id)
    if ref.owner == here:
        return UserError(
            f"{ref!r} is unknown here: a reference from another job or process, or made by hand"
        )
    if ref.owner == 0:
        return UserError(
            f"{ref!r} (put by the program on rank 0) did not travel to rank {here}: a task "
            "receives the objects its arguments and its function refer to; pass it as an argument"
        )
    return UserError(
        f"{ref!r} was placed by a task on rank {ref.owner}, and an object placed inside a "
        f"task stays on that rank (this is rank {here}): return the object itself from "
        "the task, or put() it in the program"
    )


def _cores_by_rank(have: dict[int, int]) -> str:
    """``rank 1: 4, ranks 2-99: 8``: runs of consecutive ranks with the same cores, one item each."""
    runs: list[list[int]] = []  # [first, last, cores]
    for r, c in sorted(have.items()):
        if runs and runs[-1][1] == r - 1 and runs[-1][2] == c:
            runs[-1][1] = r
        else:
            runs.append([r, r, c])
    return ", ".join(f"rank {a}: {c}" if a == b else f"ranks {a}-{b}: {c} each" for a, b, c in runs)


def check_threads(task: TaskSpec, have: dict[int, int]) -> None:
    """Refuse a call whose ``cpu`` target no rank meets, saying what the job has.

    Args:
        task: The task called.
        have: Cores of each rank that may run it.

    Raises:
        ResourceError: No rank has ``task.threads`` cores.
    """
    if task.threads <= max(have.values()):
        return
    ranks = _cores_by_rank(have)
    import os

    here = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if here is None or task.threads < here:
        local = "fewer workers with LocalClient(workers=N) or qshpc run --workers N"
    elif task.threads == here:  # rank 0 keeps a core: no worker here has them all (review28 F10)
        local = (
            f"it asks for all {here} of this machine's, which only the program's own process "
            "has: --workers 0, LocalClient(workers=0) or plain python"
        )
    else:
        local = f"this machine has {here}"
    raise ResourceError(
        f"task {task.name} asks for target cpu={task.threads}, and no rank of this job has that "
        f"many cores ({ranks}): ask for fewer, or give the job's ranks more cores "
        "(--cpus-per-task with SlurmClient or qshpc submit; on one machine the ranks share "
        f"its cores: {local})"
    )


def function_digest(task: Any, live: bool = False) -> bytes:
    """The identity of a task's function for resume (:func:`task_key`).

    Its digest by value as the result cache takes it
    (:func:`qshpc.cache.keys.function_digest`), less the environment: bytecode,
    constants, defaults, closure cells and the value of every global it reads,
    and so on through the functions and modules of the user's own that it calls,
    taken from the code objects that run; and the variables its target sets. It
    was its ``__qualname__`` and ``inspect.getsource``: the text on disk when the
    first call was keyed (a program edited while its job was in set-up got the new
    text's identity), and nothing the function calls or reads (review35 F1, F2: a
    resume mixed the results of an older helper module, constant or closure value
    with the new code's).

    Taken once per task object (a dispatched call runs the function as shipped at
    its first call), or with ``live`` (a call run here, as it is now: an inline
    run) again when what it reads was rebound, as the cache does
    (:class:`qshpc.cache.jobcache.FunctionDigests`). A function that refers to
    something that cannot be hashed, or whose live walk became too costly, gets a
    digest of its own (random): its calls can only miss on resume, never reuse a
    wrong result.
    """
    global _RESUME_LIVE
    digest: bytes | None
    if live:
        if _RESUME_LIVE is None:
            from qshpc.cache.jobcache import FunctionDigests

            _RESUME_LIVE = FunctionDigests(_unkeyed, _too_costly, env=False)
        digest = _RESUME_LIVE.get(task, live=True)
    else:
        import functools

        from qshpc.cache.keys import UncacheableError, task_digest
        from qshpc.cache.keys import function_digest as walked

        func = task if isinstance(task, functools.partial) else getattr(task, "func", task)
        try:
            digest = task_digest(walked(func, None, env=False), task)
        except UncacheableError as exc:
            from qshpc.cache.jobcache import _task_name

            digest = None
            _unkeyed(_task_name(task, func), exc)
    if digest is None:
        import os

        return b"unkeyed:" + os.urandom(24)
    return digest


#: The resume digests of calls run live (see :func:`function_digest`), made at the first.
_RESUME_LIVE: Any = None


def _unkeyed(name: str, exc: Exception) -> None:
    _resume_note(f"calls of {name} run again on resume: {exc}")


def _too_costly(name: str, took: float) -> None:
    from qshpc.cache.jobcache import costly_walk

    _resume_note(costly_walk(name, took, "run in this process run again on resume"))


def _resume_note(text: str) -> None:
    """Said once when this run resumes a job (where it matters: its calls miss), not
    otherwise (a call run live walks a function that reads a lock again at each call)."""
    session = getattr(_backend, "session", None)  # rank 0's (the dispatcher's, or inline)
    if session is not None and session.done and text not in _NOTED:
        import sys

        _NOTED.add(text)
        print(f"qshpc: note: {text}", file=sys.stderr, flush=True)


_NOTED: set[str] = set()


def task_key(
    fn_digest: bytes,
    payload: bytes,
    task_id: str,
    decoded: tuple[Any, Any] | None = None,
    qpy: payload.Qpy | None = None,
) -> str:
    """The identity of a task for resume: function and arguments by value, plus its id.

    The arguments (``decoded``: the ``(args, kwargs)`` the payload holds) count
    by their value as the result cache walks them
    (:func:`qshpc.cache.keys.value_digest`): a class or function an argument
    names (its class's methods, a helper function or ``functools.partial``
    passed in) by its code, sets sorted, a noise model less the UUIDs Aer draws,
    a circuit's Parameters and realtime variables by name. Pickle names such
    classes and functions by reference only (review42 F1: an edited method of an
    argument's class reused the old results), and writes some values in an
    order that changes per process (F3). Only a payload that names no class or
    function at all and holds no set (:data:`_NOT_PLAIN`: ints, floats,
    strings, bytes, lists, tuples and dicts of them) counts by its pickle,
    exactly as sound and much cheaper; so does one whose every top-level
    argument is a plain value, a numpy array or scalar of no object dtype or a
    ``put`` reference (:func:`_exact_pickle`), and one with no ``decoded``
    (plain values only: :func:`plain`). Arguments the walk cannot take get a
    random identity: their call runs again on resume, never reusing a wrong
    result. ``qpy``: the QPY bytes of the arguments' circuits, when known.

    An argument that says its own stable digest (:func:`own_digest`: the QPY
    bytes of a primitive block's circuit, whose pickle is plain bytes holding
    Parameter UUIDs) is keyed by rank 0, since a worker only sees the bytes.
    """
    h = hashlib.blake2b(fn_digest, digest_size=16)
    if (
        decoded is not None
        and (_NOT_PLAIN.search(payload) is not None or not payload.startswith(_PROTOCOLS))
        and not _exact_pickle(decoded)
    ):
        h.update(_by_value(decoded, qpy))
    else:
        h.update(payload)
    h.update(task_id.encode())
    return h.hexdigest()


#: Pickle opcodes (protocol 4 and 5) of a value that is no builtin scalar, string,
#: list, tuple or dict: STACK_GLOBAL (a class or function named), EMPTY_SET,
#: FROZENSET (written in hash-seed order) and NEXT_BUFFER (out-of-band data). A
#: payload with none of them (a byte search: such a byte inside a string or number
#: makes the call count by value, a little slower, never wrongly by its pickle) holds
#: plain values only, and counts by its pickle.
_NOT_PLAIN = re.compile(b"[\x93\x8f\x91\x97]")
_PROTOCOLS = (b"\x80\x05", b"\x80\x04")


def _exact_pickle(decoded: tuple[Any, Any]) -> bool:
    """True when each top-level argument is of a type whose pickle names no code of the
    user's and is the same in every process: a plain value (:data:`PLAIN`), an
    ``ObjectRef`` (its object counts by value apart: :func:`with_objects`), a numpy
    array or scalar of no object dtype. Their calls count by their pickle: the walk
    costs ~10 µs a call more (a tiny task's dispatch) and is no more exact for them."""
    args, kwargs = decoded
    np = loaded("numpy")
    for a in itertools.chain(args, kwargs.values()) if kwargs else args:
        t = type(a)
        if t in PLAIN or t is ObjectRef:
            continue
        if np is None or not (t is np.ndarray or (isinstance(a, np.generic) and
                                                   t.__module__ == "numpy")):  # fmt: skip
            return False  # (a subclass of the user's: by value)
        if a.dtype.hasobject:
            return False
    return True


#: Top-level arguments :func:`own_digest` looks at.
_LOOK_AT = 64


def own_digest(decoded: tuple[Any, Any]) -> bool:
    """True when a top-level argument says its own digest (``__qshpc_cache_digest__``).

    Such values (:class:`qshpc.primitives.blocks.CircuitQPY`) pickle as plain
    bytes, so only the process that made them (rank 0) can key them by value.
    """
    args, kwargs = decoded
    for a in itertools.islice(args, _LOOK_AT):
        if hasattr(type(a), "__qshpc_cache_digest__"):
            return True
    return bool(kwargs) and any(hasattr(type(v), "__qshpc_cache_digest__") for v in kwargs.values())


def _by_value(decoded: tuple[Any, Any], qpy: payload.Qpy | None = None) -> bytes:
    """``b"value:"`` and the value digest of ``decoded`` (see :func:`task_key`).

    Object references count by the digest of their object made at the ``put``
    (as a task reading a global reference does). When the walk fails, a random
    identity: the call runs again on resume (its pickle could name an edited class).
    """
    from qshpc.cache.keys import value_digest

    try:
        return b"value:" + value_digest(decoded, qpy, placed=True)
    except Exception:  # UncacheableError, RecursionError, a broken __reduce_ex__
        import os

        return b"unkeyed:" + os.urandom(24)


#: References whose result came from the result cache (for the progress display).
FROM_CACHE: weakref.WeakSet[TaskRef[Any]] = weakref.WeakSet()


class InlineBackend:
    """Runs each task at the call, in this process (no MPI, one rank, or nested on a worker).

    Args:
        session: The job session on rank 0 (records tasks in the store), or None.
        prefix: Task id prefix for nested calls on a worker (``"17."``).
        nested: True on a worker: calls are nested in the task running there.
        rank: The rank whose objects ``put`` places (default: this process's rank).
    """

    def __init__(
        self,
        session: Session | None = None,
        prefix: str = "",
        nested: bool = False,
        rank: int | None = None,
    ) -> None:
        self.session = session
        self.prefix = prefix
        #: The result cache (rank 0: the session's; a worker sets its own; plain
        #: ``python``: one opened when a task with ``cache=True`` is first called).
        self.cache: JobCache | None = session.cache if session is not None else None
        self.nested = nested
        self.rank = context.rank_info().rank if rank is None else rank
        self._counters: dict[tuple[str, int, str], itertools.count[int]] = {}
        #: Objects by id: those put here, and (on a worker) those rank 0 sent.
        self.objects: dict[int, Any] = {}
        self.digests: dict[int, bytes] = {}  # of the objects put here (see Placed.digest)
        #: Objects put here that a get read, as their :class:`Frozen` (made at the first).
        self._frozen: dict[int, Frozen] = {}
        self._obj_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._warned = False

    def put(self, obj: Any) -> ObjectRef:
        """Place a copy of ``obj`` as it is now (see :func:`snapshot_object`)."""
        placed = snapshot_object(obj, self.digests)
        with self._lock:
            oid = object_id(self.rank, next(self._obj_ids))
            self.objects[oid] = placed.copy
            self.digests[oid] = placed.digest
        return ObjectRef(oid)

    def object_digest(self, obj_id: int) -> bytes | None:
        """The digest by value of the object put here as ``obj_id`` (None: none such)."""
        return self.digests.get(obj_id)

    def get_object(self, obj_id: int) -> Any:
        """A copy of the object placed as ``obj_id``, its own (see :class:`Frozen`)."""
        try:
            entry = self.objects[obj_id]
        except KeyError:
            raise foreign_object_error(obj_id, self.rank) from None
        if type(entry) is Frozen:  # on a worker: as rank 0 sent it
            return entry.thaw()
        # Frozen beside the object, not in its place: a call taking it copies it as
        # placed (a writeable array). On 8cc329b+hunt11b a get froze it in the table,
        # and later calls got read-only arrays: a task's `arr[0] = 1` worked or raised
        # depending on whether the program had called get(ref) before.
        frozen = self._frozen.get(obj_id)
        if frozen is None:
            frozen = freeze(entry)
            if type(frozen) is not Frozen:
                return frozen
            self._frozen[obj_id] = frozen
        return frozen.thaw()

    def _lookup(self, ref: Any) -> Any:
        if type(ref) is ObjectRef:  # the call copies its arguments (unless immutable)
            try:
                entry = self.objects[ref.obj_id]
            except KeyError:
                raise foreign_object_error(ref.obj_id, self.rank) from None
            return entry.thaw() if type(entry) is Frozen else entry
        return ref.result()

    def _check_threads(self, task: TaskSpec) -> None:
        info = context.rank_info()
        if task.threads <= info.cpus:
            return
        if self.session is not None and not self.nested:
            check_threads(task, {info.rank: info.cpus})  # a one-rank job: refused
        if not self.nested and not self._warned:
            self._warned = True
            warnings.warn(
                f"task {task.name} asks for target cpu={task.threads} and this process has "
                f"{info.cpus} core(s): it runs with {info.cpus} thread(s)",
                stacklevel=4,
            )

    def submit(self, task: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskRef[Any]:
        parent = context.current_task()
        # Nested ids count per parent call (and attempt), so they are stable.
        scope = (parent.task_id, parent.attempt) if parent is not None else ("", 0)
        # Tasks of an id_prefix (the primitives' blocks) are counted apart (see intake).
        kind = getattr(task, "id_prefix", "")
        counter = self._counters.setdefault((*scope, kind), itertools.count())
        base = f"{parent.task_id}." if parent is not None else self.prefix
        task_id = f"{base}{kind}{next(counter)}"
        if task.threads:
            self._check_threads(task)
        ref: TaskRef[Any] = TaskRef(task_id, task.name)
        deps = top_task_refs(args, kwargs)
        if deps:
            wait_all(deps)  # done already, unless they came from another backend
        try:
            # Ray's rule: references that are arguments arrive as values; nested
            # ones stay references, which get() reads inside the task.
            args, kwargs = substitute_top(args, kwargs, self._lookup)
        except BaseException as exc:  # a dependency failed
            resolve_many([(ref, False, exc)])
            return ref
        raw: bytes | None = None
        objs: Sequence[int] = ()  # objects placed that the arguments refer to, nested
        targs, tkwargs = args, kwargs  # what the task gets; keys are taken of the call's own
        copied = not plain(args, kwargs)
        session = self.session
        cache = self.cache_for(task)
        # A call the cache may answer copies nothing unless it must run (a hit of 2-qubit
        # circuits took twice as long with the copy: a QPY dump and load it never used).
        if copied and (cache is None or (session is not None and session.done)):
            # The task takes its own copy of the arguments, as they are at the call (Ray
            # pickles them then): a change the task makes to one never reaches the
            # program, nor does a change the program makes later reach the result.
            raw, targs, tkwargs, objs = _copied(args, kwargs, task.name, task_id)
            copied_now = True
        else:
            copied_now = False
        submitted = time.time()
        key = ""
        if session is not None and session.done:  # resuming: this call may be stored
            if raw is None:
                raw = pack((args, kwargs), task.name, task_id)[0]
            # live: the function runs here as it is now (what it reads, rebound since an
            # earlier call, changes its identity), as the cache's key below
            key = task_key(function_digest(task, live=True), raw, task_id, (args, kwargs))
            key = with_objects(key, objs, self.digests)
            done = session.done_result(key)
            if done is not None:  # its circuits with this run's Parameters (see rebind)
                resolve_many([(ref, True, from_done(done[0], args, kwargs))])
                return ref
        seed = context.job_seed()
        from qshpc.task.seeding import derive_seed

        task_seed = None if seed is None else derive_seed(seed, task_id)
        ckey = None
        if cache is not None:
            # live: the function runs here as it is now (a global rebound since an
            # earlier call changes its key); the result is encoded before the
            # program can change it in place.
            ckey = cache.key(task, args, kwargs, task_seed, live=True)
            if ckey is not None and session is not None and session.done:
                done = session.done_result(ckey)  # a hit of the run resumed: its cache key
                if done is not None:
                    resolve_many([(ref, True, from_done(done[0], args, kwargs))])
                    return ref
            hit = cache.lookup(ckey) if ckey is not None else None
            if hit is not None:
                assert ckey is not None
                if session is not None:
                    session.record_hit(task_id, ckey, task.name, hit, submitted, task_seed)
                FROM_CACHE.add(ref)
                # The call's own Parameters, where the hit has a parameter of the same name.
                resolve_many([(ref, True, from_hit(hit, args, kwargs))])
                return ref
        if copied and not copied_now:  # a miss: the copy, still before anything ran
            raw, targs, tkwargs, objs = _copied(args, kwargs, task.name, task_id)
        if session is not None and not key:  # the record's key (for a later resume)
            if raw is None:
                raw = dumps_payload(args, kwargs, task.name, task_id)
            key = task_key(function_digest(task, live=True), raw, task_id, (args, kwargs))
            key = with_objects(key, objs, self.digests)
        ranks = task_ranks(task)
        step = context.local_step(ranks) if ranks > 1 else None  # in-process: this host's cores
        attempt = 0
        where = None
        while True:
            attempt += 1
            if attempt > 1 and copied:  # a retry starts from the call's arguments
                targs, tkwargs = _copied(args, kwargs, task.name, task_id)[1:3]
            out: Outcome = run_task(
                task.runner, targs, tkwargs, task_id, task.name, task_seed, attempt, step
            )
            if out.exc_type == "KeyboardInterrupt" and _ctrl_c_raises():
                # Ctrl-C while the call ran here (plain ``python``, a notebook's stop
                # button): the program's, as without qshpc (review28 F5: it became the
                # call's failure, and a loop that skips failed points could not be
                # stopped). The call ends failed, so that a later get of it raises.
                info = context.rank_info()
                resolve_many([(ref, False, out.task_error(info.rank, info.host))])
                raise KeyboardInterrupt
            if session is not None:
                stored, where = session.record(out, key, submitted, task_seed)
                if stored is not out:  # its value cannot be stored: failed, as on a worker
                    out = stored
                    break
            if out.ok or attempt > task.retries:
                break
        if out.ok and session is None and not self.nested and _is_generator(out.value):
            out = _unsendable(out)  # as on every other rank (review28 F11)
        if out.ok and ckey is not None and cache is not None:
            cache.store(ckey, task.name, task_id, value=out.value, shared=True)
        info = context.rank_info()
        if not out.ok:
            resolve_many([(ref, False, out.task_error(info.rank, info.host))])
        elif session is not None and where is not None:  # a large one: held in the store
            resolve_many([(ref, True, session.held(out, where, ref))])
        else:
            resolve_many([(ref, True, out.value)])
        return ref

    def cache_for(self, task: TaskSpec) -> JobCache | None:
        """The cache when this task's calls use it, else None (plain ``python``: one is
        opened at the first call of a ``cache=True`` task)."""
        want = getattr(task, "cache", None)
        cache = self.cache
        if cache is None:
            if not want:
                return None
            from qshpc.cache.jobcache import CacheConfig, JobCache

            cache = self.cache = JobCache(CacheConfig(), None)
            atexit.register(cache.finish)  # plain python: store what is queued before exit
        return cache if cache.wanted(want) else None


#: Immutable plain values: a call of these alone needs no copy, no snapshot, no reference
#: search (rank 0's intake and the inline backend alike).
PLAIN = frozenset((int, float, str, bool, complex, bytes, type(None)))


def plain(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """True for positional immutable plain values only (no snapshot, no reference to find)."""
    if kwargs:
        return False
    for a in args:
        if type(a) not in PLAIN:
            return False
    return True


def _copied(
    args: tuple[Any, ...], kwargs: dict[str, Any], name: str, task_id: str
) -> tuple[bytes, tuple[Any, ...], dict[str, Any], Sequence[int]]:
    """``(pickle, args, kwargs, object ids)``: a call's arguments pickled now and loaded
    again, and the objects placed with ``put`` they refer to.

    A task reference nested in them that is not done (one another backend made)
    is waited for first: the copy takes it done. An argument that says its own
    digest (:func:`own_digest`: immutable, and meant for this process) stays itself.

    Raises:
        SerializationError: They cannot be pickled, even by cloudpickle.
    """
    raw, objs, pending = pack((args, kwargs), name, task_id)
    if pending:
        wait_all(list(pending))
        raw, objs, _ = pack((args, kwargs), name, task_id)
    targs, tkwargs = pickle.loads(raw)
    if own_digest((args, kwargs)):
        targs = tuple(a if hasattr(type(a), "__qshpc_cache_digest__") else c
                      for a, c in zip(args, targs, strict=True))  # fmt: skip
        tkwargs = {k: a if hasattr(type(a), "__qshpc_cache_digest__") else tkwargs[k]
                   for k, a in kwargs.items()}  # fmt: skip
    return raw, targs, tkwargs, objs


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


set_object_getter(lambda ref: current().get_object(ref.obj_id))
set_digest_getter(lambda obj_id: current().object_digest(obj_id))
