"""The qshpc exception hierarchy.

Every error a user can cause derives from :class:`UserError`; the CLI prints
its message on stderr and exits with code 2, without a traceback.
"""

from __future__ import annotations

import types


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
        last = remote_traceback.strip().splitlines()[-1] if remote_traceback.strip() else exc_type
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
    (it refuses subclasses, needs its own constructor, a metaclass conflict).
    A cause that is itself a TaskError (a nested task's) passes its own cause on.
    """
    fields = (task_id, function, rank, host, remote_traceback, exc_type, attempts)
    if isinstance(cause, TaskError):
        cause = cause.cause
    dual = _dual_class(type(cause)) if isinstance(cause, Exception) else None
    if dual is not None and cause is not None:
        try:
            err: TaskError = dual.__new__(dual, remote_traceback)  # type: ignore[assignment]
            TaskError.__init__(err, *fields, cause=cause)
            err.args = cause.args
            if isinstance(cause, OSError):
                for name in ("errno", "strerror", "filename", "filename2"):
                    setattr(err, name, getattr(cause, name))
            return err
        except Exception:  # a class with a __new__ of its own, C fields that refuse
            pass
    return TaskError(*fields, cause=cause)


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


def dump_cause(exc: BaseException | None) -> bytes | None:
    """The exception pickled, or None when it cannot be.

    cloudpickle carries classes defined in the program file by value (with the
    id that makes rank 0 map them back to its own class). An exception whose
    class has a Python ``__init__`` of its own is rebuilt without calling it
    (its ``args`` and attributes restored), because pickle's default calls
    ``cls(*args)``, which fails for ``__init__(self, a, b)``.
    """
    if exc is None:
        return None
    if isinstance(exc, TaskError):
        exc = exc.cause
        if exc is None:
            return None
    blob = _dump_exception(exc, exc.__dict__ or None)
    if blob is None and exc.__dict__ and _plain_reduce(type(exc)):
        # An attribute that cannot travel (a lock, an open file): the exception goes
        # without it, so that ``except ItsClass`` still catches it on rank 0.
        blob = _dump_exception(exc, {k: v for k, v in exc.__dict__.items() if _travels(v)})
    return blob if blob is not None and len(blob) <= MAX_CAUSE_BYTES else None


def _dump_exception(exc: BaseException, state: dict[str, object] | None) -> bytes | None:
    try:
        import io

        import cloudpickle

        cause = exc

        class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
            def reducer_override(self, obj: object) -> object:
                if obj is cause and _plain_reduce(type(cause)):
                    return (_rebuild_exception, (type(cause), cause.args, state))
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


def _plain_reduce(cls: type) -> bool:
    """True for a class with a Python ``__init__`` and the default ``__reduce__``."""
    return (
        cls.__reduce__ is BaseException.__reduce__  # type: ignore[comparison-overlap]
        and cls.__reduce_ex__ is BaseException.__reduce_ex__  # type: ignore[comparison-overlap]
        and isinstance(cls.__dict__.get("__init__") or _find_init(cls), types.FunctionType)
    )


def _find_init(cls: type) -> object:
    for base in cls.__mro__:
        if "__init__" in base.__dict__:
            return base.__dict__["__init__"]
    return None


def _rebuild_exception(
    cls: type[BaseException], args: tuple[object, ...], state: dict[str, object] | None
) -> BaseException:
    """An exception of ``cls`` with ``args`` and attributes ``state``, without calling its ``__init__``."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    if state:
        exc.__dict__.update(state)
    return exc


def load_cause(blob: bytes | None) -> BaseException | None:
    """The exception from :func:`dump_cause`'s bytes; None when it cannot be rebuilt here."""
    if blob is None:
        return None
    try:
        import pickle

        exc = pickle.loads(blob)
    except Exception:
        return None
    return exc if isinstance(exc, BaseException) else None
