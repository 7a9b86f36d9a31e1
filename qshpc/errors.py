"""The qshpc exception hierarchy.

Every error a user can cause derives from :class:`UserError`; the CLI prints
its message on stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

import builtins
import re
import types
from collections.abc import Callable
from typing import Any

_TRACEBACK = re.compile(r"(?:  \+ Exception Group )?Traceback \(most recent call last\):\s*")


#: The lines Python writes between the exceptions of a chain (``raise ... from``, an error
#: raised while handling another): the next exception's traceback follows each.
_CHAINS = (
    "The above exception was the direct cause of the following exception:",
    "During handling of the above exception, another exception occurred:",
)
#: The longest head :func:`error_head` gives (a 1 MiB message printed 2 MB: review55 E3).
HEAD_MAX = 1000


def error_head(text: str, exc_type: str | None = None) -> str:
    """The line of an error text that names the error, ``ClassName: message`` (its
    first line): the exception line of the chain's last traceback, not the text's last
    line, which is a message's second line, a note (``add_note``) or an exception
    group's frame (review53 K1). The text is read forward from its first traceback, and
    only a chain's own separator leads to the next one: a traceback quoted inside the
    message (a subprocess's output, a log) is the message's, not the error's (review55
    E1: the last ``Traceback`` line of the text named a quoted ``ZeroDivisionError``).
    A message whose first line is empty gives its first line of text (E4). A text with
    no traceback in it gives its last line; qshpc's hints (``qshpc: hint: ...``) after
    the error are left out. At most :data:`HEAD_MAX` characters.

    ``exc_type``, the error's class name where the caller knows it (a TaskError), picks
    the chain's last exception line of that class: a chain separator quoted in the
    message (a subprocess's chained traceback) cannot then name another error."""
    lines = [line for line in text.rstrip().splitlines() if line.strip()]
    while len(lines) > 1 and lines[-1].startswith("qshpc: hint: "):
        lines.pop()
    if not lines:
        return ""
    start = next((i for i, line in enumerate(lines) if _TRACEBACK.fullmatch(line)), None)
    head = lines[-1]
    heads: list[str] = []
    while start is not None:
        found = _exception_line(lines, start)
        if found is None:
            break
        at, head = found
        if re.fullmatch(r"[\w.]+:\s*", head) and at + 1 < len(lines):
            nxt = lines[at + 1]
            if nxt.strip() not in _CHAINS and not _TRACEBACK.fullmatch(nxt):
                head = f"{head.rstrip()} {nxt.strip()}"
        start = next(
            (
                i + 1
                for i in range(at + 1, len(lines) - 1)
                if lines[i] in _CHAINS and _TRACEBACK.fullmatch(lines[i + 1])
            ),
            None,
        )
        heads.append(head)
    if exc_type and heads:
        named = [h for h in heads if h.split(":", 1)[0].rpartition(".")[2] == exc_type]
        head = named[-1] if named else head
    if len(head) > HEAD_MAX:  # its start and its end (what qshpc adds goes at its end:
        # the results kept and the `--resume` command, review56 L3)
        half = HEAD_MAX // 2
        head = f"{head[:half]} ... ({len(head) - 2 * half} characters left out) ... {head[-half:]}"
    return head


def _exception_line(lines: list[str], start: int) -> tuple[int, str] | None:
    """The index and text of the exception line of the traceback whose header is
    ``lines[start]``: the first line after its frames (indented) that is not indented."""
    group = lines[start].startswith("  +")
    for at in range(start + 1, len(lines)):
        line = lines[at]
        if group:  # its own lines are "  | ...": those of its members are further in
            if not line.startswith("  | "):
                return None
            line = line[4:]
        if line and not line[0].isspace():
            return at, line
    return None


class QshpcError(Exception):
    """Base class of every qshpc error."""


class MessageOnly:
    """An error IPython (a notebook, ``ipython``) shows as its message alone.

    IPython calls ``_render_traceback_`` when an exception has one: a user error,
    whose message names the input and the fix, then shows as that message, not
    after a traceback through qshpc's own source (review32 F3: 3 to 6 frames of
    client/local.py, jobs/spec.py, job.py). Plain Python is unchanged.
    """

    def _render_traceback_(self) -> list[str]:
        """The lines IPython shows: ``ClassName: message`` and the exception's notes."""
        lines = f"{type(self).__name__}: {self}".splitlines()
        notes = getattr(self, "__notes__", None)
        if isinstance(notes, list):
            lines.extend(str(n) for n in notes)
        cause = getattr(self, "__cause__", None)  # (``raise ... from exc``: review33 F8)
        if cause is not None and not isinstance(cause, MessageOnly):
            first = (str(cause).splitlines() or [""])[0]
            lines.append(f"(caused by {type(cause).__name__}: {first[:300]})")
        return lines


class UserError(MessageOnly, QshpcError):
    """Bad input from the user: a missing file, a bad value. CLI exit code 2."""


class UsageError(UserError, ValueError):
    """A bad argument to ``get``, ``wait`` and their kin: also a ``ValueError``, as Ray raised
    for them, so ``except ValueError`` around them in a Ray program still catches it."""


class ResourceError(UserError):
    """A resource request that is invalid or cannot fit (unknown key, too little memory)."""


class JobNotFoundError(UserError):
    """No job with this id or directory exists in the store."""


class StoreError(QshpcError):
    """The job store cannot be read or written (corrupt file, disk full, permissions)."""


class DamagedStoreError(StoreError):
    """A job store (or arguments file) whose bytes are not what qshpc wrote.

    Attributes:
        path: The damaged file.
        detail: What is wrong (which bytes, or what could not be read).
    """

    def __init__(self, path: object, detail: str) -> None:
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{path} is damaged: {detail}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.detail))


class SchemaVersionError(StoreError, UserError):
    """A job store written with a schema version this qshpc does not know."""


class SerializationError(UserError):
    """A value (argument, task input or result) that cannot be serialized."""


class NoResultError(MessageOnly, QshpcError):
    """The job has no saved result (not finished, failed, or never called save_result)."""


class JobFailedError(MessageOnly, QshpcError):
    """The job ended FAILED or CANCELED; the message holds its error text."""


class JobTimeoutError(MessageOnly, QshpcError, TimeoutError):
    """A wait for a job (``job.result(timeout=...)``, ``job.wait(timeout=...)``) ran out;
    the job goes on. A ``TimeoutError``."""


class WorkerLostError(QshpcError):
    """A worker rank died while holding tasks."""


class QshpcWarning(UserWarning):
    """Base class of qshpc's warnings (the CLI prints them as ``qshpc: warning: ...``)."""


class SlurmStateWarning(QshpcWarning):
    """Slurm reported a job state qshpc does not know (shown as UNKNOWN)."""


class _Field:
    """A field of :class:`TaskError` kept in the instance's ``__dict__``: a data descriptor,
    so that in ``TaskError(SomeError)`` it wins over a property of ``SomeError``'s of the
    same name (review56 M5: a settable ``host`` property of the task's exception forged
    the ``host`` and ``task_id`` that the TaskError's message names)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None

    def __set__(self, obj: object, value: Any) -> None:
        obj.__dict__[self.name] = value


class TaskError(QshpcError):
    """A distributed task raised.

    ``get`` raises it, and where the original exception's class allows it, it is
    also an instance of that class (``TaskError(ValueError)`` derives from both,
    as Ray's ``RayTaskError`` does), so ``except ValueError`` around ``get``
    catches a task's ``ValueError``. Attributes of the original exception are
    read through (``err.code``); ``err.args`` are the original's.

    Attributes:
        task_id: The task's stable id (its call index on rank 0).
        function: The task function's qualified name.
        rank: The MPI rank that ran it.
        host: The host that ran it.
        remote_traceback: The traceback text from the worker.
        exc_type: Name of the exception class raised on the worker.
        attempts: How many times the task ran.
        cause: The original exception, rebuilt on this rank (None when it could
            not travel: a class that cannot be pickled, say).
    """

    task_id = _Field()
    function = _Field()
    rank = _Field()
    host = _Field()
    remote_traceback = _Field()
    exc_type = _Field()
    attempts = _Field()
    cause = _Field()

    def __init__(
        self,
        task_id: str,
        function: str,
        rank: int,
        host: str,
        remote_traceback: str,
        exc_type: str = "Exception",
        attempts: int = 1,
        cause: BaseException | None = None,
    ) -> None:
        self.task_id = task_id
        self.function = function
        self.rank = rank
        self.host = host
        self.remote_traceback = remote_traceback
        self.exc_type = exc_type
        self.attempts = attempts
        self.cause = cause
        last = error_head(remote_traceback, exc_type) or exc_type
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        self._message = (
            f"task {task_id} ({function}) failed on rank {rank}, host {host}{tries}: {last}\n"
            f"### remote traceback (rank {rank} on {host}):\n{remote_traceback.rstrip()}"
        )
        # Not super().__init__: in a TaskError(SomeError), that would be SomeError's
        # __init__, which may want arguments of its own.
        BaseException.__init__(self, self._message)

    def __str__(self) -> str:
        return self._message

    def __reduce__(self) -> tuple[object, ...]:
        # The cause travels as bytes of its own: one that cannot be rebuilt on
        # the other side (its class needs constructor arguments pickle does not
        # keep, say) leaves a plain TaskError there instead of failing the load.
        return (
            _rebuild,
            (
                self.task_id,
                self.function,
                self.rank,
                self.host,
                self.remote_traceback,
                self.exc_type,
                self.attempts,
                dump_cause(self.cause),
            ),
        )


def task_error(
    task_id: str,
    function: str,
    rank: int,
    host: str,
    remote_traceback: str,
    exc_type: str = "Exception",
    attempts: int = 1,
    cause: BaseException | None = None,
) -> TaskError:
    """The :class:`TaskError` for a failed task: also an instance of ``cause``'s class when it can be.

    It stays a plain :class:`TaskError` when there is no cause, when the cause is
    not an ``Exception`` (``KeyboardInterrupt`` and ``SystemExit`` must not escape
    ``except Exception``), or when its class cannot be combined with TaskError
    (it refuses subclasses, a metaclass conflict). A cause that is itself a
    TaskError (a nested task's) passes its own cause on. A ``StopIteration``
    (or ``StopAsyncIteration``) comes back as a ``RuntimeError``, as asyncio's
    futures give it: as itself, raised by ``get`` in an iterator's ``__next__`` or
    in ``map(get, refs)``, it would end the caller's loop silently, its error lost.
    The cause's own ``__cause__`` and ``__context__`` (``raise X from e`` in the
    task) are the TaskError's, so that ``err.__cause__`` is the task's ``e``.
    """
    fields = (task_id, function, rank, host, remote_traceback, exc_type, attempts)
    if isinstance(cause, TaskError):
        cause = cause.cause
    stop = isinstance(cause, (StopIteration, StopAsyncIteration))
    base = RuntimeError if stop else type(cause)
    dual = _dual_class(base) if isinstance(cause, Exception) else None
    err: TaskError | None = None
    if dual is not None and cause is not None:
        try:
            # a group's __new__ wants its message and members (review53 K3: so that
            # `except* ValueError` in the program matches a task's group)
            group = getattr(cause, "exceptions", None) if _is_group(cause) else None
            first = (getattr(cause, "message", ""), group) if group else (remote_traceback,)
            # (a group by its built-in __new__: a class's own `__new__(cls, code, excs)`
            # given the message as its code set a wrong `code` and message: review55 E5)
            err = (_builtin_new if group else _bare_new)(dual, first)  # type: ignore[assignment]
            if not isinstance(err, dual):
                # a __new__ that hands out one shared instance (review53 K2): raising
                # it would miss `except TaskError` and overwrite the user's object
                raise TypeError("__new__ gave no new instance")
            assert err is not None
            TaskError.__init__(err, *fields, cause=cause)
            err.args = cause.args
            _copy_c_fields(cause, err)
            _copy_own_fields(cause, err)
        except Exception:  # C fields that refuse
            err = None
    if err is None:
        err = TaskError(*fields, cause=cause)
    if stop:
        head, sep, rest = err._message.partition("\n")
        err._message = f"{head}{_STOP_NOTE.format(type(cause).__name__)}{sep}{rest}"
        BaseException.__init__(err, err._message)
    if cause is not None:
        err.__cause__ = cause.__cause__
        err.__context__ = cause.__context__
        err.__suppress_context__ = cause.__suppress_context__
    return err


#: What a task's ``StopIteration`` error adds to its first line (review48).
_STOP_NOTE = (
    " (the task raised {0}: get raises it as a TaskError that is a RuntimeError, "
    "as asyncio does, not as a {0} that would end a loop around get silently; "
    "the {0} itself is err.cause)"
)


def _copy_c_fields(cause: BaseException, err: BaseException) -> None:
    """The fields a built-in exception class keeps in C (``errno``, ``filename``; a
    UnicodeDecodeError's ``start``/``end``/``reason``, a SyntaxError's ``lineno``, an
    ImportError's ``name``/``path``, an AttributeError's ``obj``): the TaskError, made
    without the class's ``__init__``, had them 0 or None (review53 K7)."""
    for base in type(cause).__mro__:
        if base in (Exception, BaseException, object) or base.__flags__ & _HEAPTYPE:
            continue
        for name, member in vars(base).items():
            if isinstance(member, (types.MemberDescriptorType, types.GetSetDescriptorType)):
                try:
                    setattr(err, name, getattr(cause, name))
                except (AttributeError, TypeError, ValueError):
                    pass  # unset on the cause (characters_written), or read-only


#: The fields :meth:`TaskError.__init__` sets: the cause's own of these names are read
#: as ``err.cause.NAME``.
_TASK_FIELDS = frozenset(
    ("task_id", "function", "rank", "host", "remote_traceback", "exc_type", "attempts", "cause",
     "_message")
)  # fmt: skip


def _copy_own_fields(cause: BaseException, err: BaseException) -> None:
    """The cause's own attributes over what its class's ``__new__`` set on ``err`` (made
    with the traceback text as its argument): ``__new__(cls, code)`` setting
    ``self.code`` gave ``err.code`` the traceback text, not the task's 7 (review55 E5).
    One ``__new__`` set that the cause has not is dropped (read through to the cause)."""
    mine = getattr(err, "__dict__", None)
    theirs = getattr(cause, "__dict__", None)
    if not isinstance(mine, dict) or not isinstance(theirs, dict):
        return
    for name in [n for n in mine if n not in _TASK_FIELDS and n not in theirs]:
        del mine[name]
    for name, value in theirs.items():
        if name not in _TASK_FIELDS and not name.startswith("__"):
            mine[name] = value


def _builtin_new(cls: type[BaseException], args: tuple[object, ...]) -> BaseException:
    """An instance of ``cls`` made by the ``__new__`` of its nearest built-in base."""
    for base in cls.__mro__:
        if base.__flags__ & _HEAPTYPE == 0:  # the first built-in class
            new: Callable[..., BaseException] = base.__new__
            return new(cls, *args)
    raise TypeError(f"{cls.__name__} has no built-in base")


def _is_group(exc: BaseException) -> bool:
    group = getattr(builtins, "BaseExceptionGroup", None)  # Python 3.11
    return group is not None and isinstance(exc, group)


def _bare_new(cls: type[BaseException], args: tuple[object, ...]) -> BaseException:
    """An instance of ``cls`` made without its ``__init__``: by its ``__new__`` with
    ``args``, or, when a ``__new__`` of the class's own wants other arguments
    (review47 F6: ``__new__(cls, code)`` given ``args`` ``(code, "strict")``), by the
    ``__new__`` of its nearest built-in base, as pickle's would not."""
    try:
        return cls.__new__(cls, *args)
    except Exception:
        for base in cls.__mro__:
            if base.__flags__ & _HEAPTYPE == 0:  # the first built-in class
                new: Callable[..., BaseException] = base.__new__
                return new(cls, *args)
        raise


#: ``Py_TPFLAGS_HEAPTYPE``: set on a class defined in Python, not on a built-in one.
_HEAPTYPE = 1 << 9


_DUALS: dict[type, type | None] = {}


def _dual_class(cause_cls: type) -> type | None:
    """``TaskError(cause_cls)``, made once per class; None when Python refuses the combination."""
    if cause_cls in _DUALS:
        return _DUALS[cause_cls]
    dual: type | None
    if issubclass(cause_cls, TaskError) or cause_cls is Exception:
        dual = None
    else:
        name = f"TaskError({cause_cls.__name__})"
        try:
            dual = types.new_class(
                name,
                (TaskError, cause_cls),
                exec_body=lambda ns: ns.update(
                    {"__getattr__": _read_through, "__module__": TaskError.__module__}
                ),
            )
            dual.__qualname__ = name
        except Exception:  # a final class, a layout or metaclass conflict
            dual = None
    _DUALS[cause_cls] = dual
    return dual


def _read_through(self: TaskError, name: str) -> object:
    """Attributes the original exception had (``err.code``) read through the TaskError."""
    if name.startswith("__") or name in ("cause", "_message"):
        raise AttributeError(name)
    cause = self.__dict__.get("cause")
    if cause is None:
        raise AttributeError(name)
    return getattr(cause, name)


def _rebuild(
    task_id: str,
    function: str,
    rank: int,
    host: str,
    remote_traceback: str,
    exc_type: str,
    attempts: int,
    cause: bytes | None,
) -> TaskError:
    return task_error(
        task_id, function, rank, host, remote_traceback, exc_type, attempts, load_cause(cause)
    )


#: A cause bigger than this (pickled) does not travel: the traceback text does.
MAX_CAUSE_BYTES = 1 << 20

#: The most exceptions of a cause's ``__cause__``/``__context__`` chain that travel with it.
MAX_CHAIN = 16

#: The first item of :func:`dump_cause`'s chain tuple (a bare exception: qshpc before session 27).
_CHAIN_MARK = "qshpc.cause-chain/1"


class StandInError(Exception):
    """What stands for an exception of a task's ``__cause__``/``__context__`` chain that
    could not travel to this rank (its class or an argument does not pickle): it names
    the original's class and message, and keeps its place in the chain.

    Attributes:
        type_name: The original's class, ``module.QualName``.
        message: ``str()`` of the original.
    """

    def __init__(self, type_name: str, message: str) -> None:
        self.type_name = type_name
        self.message = message
        super().__init__(f"{type_name}: {message}" if message else type_name)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.type_name, self.message))


def dump_cause(exc: BaseException | None) -> bytes | None:
    """The exception and its ``__cause__``/``__context__`` chain pickled, or None when the
    exception itself cannot be.

    cloudpickle carries classes defined in the program file by value (with the
    id that makes rank 0 map them back to its own class). An exception whose
    class has a Python ``__init__`` of its own is rebuilt without calling it
    (its ``args`` and attributes, ``__slots__`` ones too, restored), because
    pickle's default calls ``cls(*args)``, which fails for ``__init__(self, a, b)``.
    Each exception of the chain travels on its own: one that cannot becomes a
    :class:`StandInError` naming its class and message (pickle keeps no chain:
    on 30ab84a a task's ``raise X from e`` came back with ``__cause__`` None).
    """
    if exc is None:
        return None
    if isinstance(exc, TaskError):
        exc = exc.cause
        if exc is None:
            return None
    chain, links = _chain(exc)
    blobs = [_dump_one(e) for e in chain]
    if blobs[0] is None:
        return None
    import pickle

    if len(chain) > 1:
        names = [(_type_name(e), _message(e)) for e in chain]
        whole = pickle.dumps((_CHAIN_MARK, blobs, names, links), protocol=5)
        if len(whole) <= MAX_CAUSE_BYTES:
            return whole
    alone = pickle.dumps((_CHAIN_MARK, blobs[:1], [(_type_name(exc), "")], [(-1, -1, False)]))
    if len(alone) <= MAX_CAUSE_BYTES:
        return alone
    # Too big to travel: its class does, with its message cut, so that `except
    # ValueError` catches it on rank 0 as it does in a run without workers (review53 K6).
    slim = _dump_slim(exc, len(alone))
    if slim is None:
        return None
    alone = pickle.dumps((_CHAIN_MARK, [slim], [(_type_name(exc), "")], [(-1, -1, False)]))
    return alone if len(alone) <= MAX_CAUSE_BYTES else None


class _Slim:
    """Pickles as an exception of ``cls`` with ``args``, made without its ``__init__``."""

    def __init__(self, cls: type[BaseException], args: tuple[object, ...]) -> None:
        self.cls, self.args = cls, args

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_exception, (self.cls, self.args, None, None, False))


def _dump_slim(exc: BaseException, size: int) -> bytes | None:
    """``exc``'s class with only its message, cut to 2000 characters, pickled."""
    if not _default_reduce(type(exc)):
        return None  # its own __reduce__ would carry what made it too big
    text = (
        f"{_message(exc)} [qshpc: cut: the exception pickled to {size} bytes, over the "
        f"{MAX_CAUSE_BYTES} that travel; its traceback text has the rest]"
    )
    try:
        import cloudpickle

        blob: bytes = cloudpickle.dumps(_Slim(type(exc), (text,)), protocol=5)
    except Exception:
        return None
    return blob


def _chain(exc: BaseException) -> tuple[list[BaseException], list[tuple[int, int, bool]]]:
    """``exc`` and the exceptions its ``__cause__``/``__context__`` reach (at most
    :data:`MAX_CHAIN`), and for each the indexes of its cause and context (-1: none)."""
    chain = [exc]
    where = {id(exc): 0}
    links: list[tuple[int, int, bool]] = []
    i = 0
    while i < len(chain):
        e = chain[i]
        pair = []
        for nxt in (e.__cause__, e.__context__):
            if nxt is None:
                pair.append(-1)
            elif id(nxt) in where:
                pair.append(where[id(nxt)])
            elif len(chain) < MAX_CHAIN:
                where[id(nxt)] = len(chain)
                pair.append(len(chain))
                chain.append(nxt)
            else:
                pair.append(-1)
        links.append((pair[0], pair[1], e.__suppress_context__))
        i += 1
    return chain, links


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def _message(exc: BaseException) -> str:
    try:
        return str(exc)[:2000]
    except Exception:
        return ""


def _dump_one(exc: BaseException) -> bytes | None:
    """One exception pickled (no chain), or None when it cannot be."""
    state = dict(exc.__dict__)
    slots = _slot_values(exc)
    blob = _dump_exception(exc, state, slots, bool(slots))
    if blob is None and (state or slots) and _default_reduce(type(exc)):
        # An attribute that cannot travel (a lock, an open file): the exception goes
        # without it, so that ``except ItsClass`` still catches it on rank 0.
        kept = {k: v for k, v in state.items() if _travels(v)}
        kept_slots = {k: v for k, v in slots.items() if _travels(v)}
        blob = _dump_exception(exc, kept, kept_slots, True)
    return blob


def _slot_values(exc: BaseException) -> dict[str, object]:
    """The ``__slots__`` attributes set on ``exc`` (pickle's exception default keeps none)."""
    values: dict[str, object] = {}
    for cls in type(exc).__mro__:
        names = cls.__dict__.get("__slots__", ())
        for name in (names,) if isinstance(names, str) else names:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{cls.__name__.lstrip('_')}{name}"
            try:
                values[name] = object.__getattribute__(exc, name)
            except AttributeError:
                pass
    return values


def _dump_exception(
    exc: BaseException, state: dict[str, object], slots: dict[str, object], rebuild: bool
) -> bytes | None:
    """``exc`` pickled; as ``args`` and ``state`` and ``slots`` (what pickle's default
    would not keep) when its class has the default ``__reduce__`` and a Python
    ``__init__``, or when ``rebuild``."""
    try:
        import io

        import cloudpickle

        cause = exc
        cls = type(exc)
        plain = _plain_reduce(cls)
        how = (cls, exc.args, state or None, slots or None, not plain)

        class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
            def reducer_override(self, obj: object) -> object:
                if obj is cause and (plain or (rebuild and _default_reduce(cls))):
                    return (_rebuild_exception, how)
                return super().reducer_override(obj)

        buf = io.BytesIO()
        _Pickler(buf, protocol=5).dump(exc)
        return buf.getvalue()
    except Exception:
        return None


def _travels(value: object) -> bool:
    try:
        import cloudpickle

        cloudpickle.dumps(value, protocol=5)
    except Exception:
        return False
    return True


def _default_reduce(cls: type) -> bool:
    """True for a class with the default exception ``__reduce__``."""
    return (
        cls.__reduce__ is BaseException.__reduce__  # type: ignore[comparison-overlap]
        and cls.__reduce_ex__ is BaseException.__reduce_ex__  # type: ignore[comparison-overlap]
    )


def _plain_reduce(cls: type) -> bool:
    """True for a class with a Python ``__init__`` and the default ``__reduce__``."""
    return _default_reduce(cls) and isinstance(
        cls.__dict__.get("__init__") or _find_init(cls), types.FunctionType
    )


def _find_init(cls: type) -> object:
    for base in cls.__mro__:
        if "__init__" in base.__dict__:
            return base.__dict__["__init__"]
    return None


def _rebuild_exception(
    cls: type[BaseException],
    args: tuple[object, ...],
    state: dict[str, object] | None,
    slots: dict[str, object] | None = None,
    call_init: bool = False,
) -> BaseException:
    """An exception of ``cls`` with ``args`` and attributes ``state`` and ``slots``, without
    calling its ``__init__`` (unless ``call_init``: a built-in one, which sets C fields)."""
    exc = cls(*args) if call_init else _bare_new(cls, args)
    exc.args = args
    if state:
        exc.__dict__.update(state)
    for name, value in (slots or {}).items():
        object.__setattr__(exc, name, value)
    return exc


def load_cause(blob: bytes | None) -> BaseException | None:
    """The exception from :func:`dump_cause`'s bytes, its chain linked again; None when the
    exception itself cannot be rebuilt here (one of its chain: a :class:`StandInError`)."""
    if blob is None:
        return None
    import pickle

    try:
        got = pickle.loads(blob)
    except BaseException as failed:  # a rebuild raising SystemExit too (review56 M2)
        if isinstance(failed, KeyboardInterrupt):
            raise
        return None
    if isinstance(got, BaseException):
        return got
    if not (isinstance(got, tuple) and len(got) == 4 and got[0] == _CHAIN_MARK):
        return None
    _, blobs, names, links = got
    chain: list[BaseException] = []
    for i, (one, (type_name, message)) in enumerate(zip(blobs, names, strict=True)):
        try:
            exc = pickle.loads(one) if one is not None else None
        except BaseException as bad:  # (review56 M2, as above)
            if isinstance(bad, KeyboardInterrupt):
                raise
            exc = None
        if not isinstance(exc, BaseException):
            if i == 0:
                return None
            exc = StandInError(type_name, message)
        chain.append(exc)
    for exc, (cause, context, suppress) in zip(chain, links, strict=True):
        exc.__cause__ = chain[cause] if cause >= 0 else None
        exc.__context__ = chain[context] if context >= 0 else None
        exc.__suppress_context__ = suppress
    return chain[0]
