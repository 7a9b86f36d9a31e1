"""Finished calls of a batch on a worker, encoded for the store as they finish (rank 0 appends them)."""

from __future__ import annotations

import pickle
from typing import Any

from qshpc.runtime.protocol import result_message
from qshpc.store.chunk import ChunkBuilder, encode_meta
from qshpc.task.context import placed_buffers
from qshpc.task.execute import unsendable_text
from qshpc.task.payload import writeable_cloud_dumps, writeable_dumps


class Results:
    """Finished attempts of one batch not yet sent, encoded for the store as they finish."""

    def __init__(self, rank: int, host: str) -> None:
        self.host = host
        self.builder = ChunkBuilder(rank)
        self.values: list[Any] = []
        #: (position, traceback text, exception class name, the exception pickled or None)
        self.failures: list[tuple[int, str, str, bytes | None]] = []
        self.info: list[tuple[str, str, str, dict[str, Any]]] = []  # id, key, name, provenance
        self.seeds: list[int | None] = []

    def __len__(self) -> int:
        return len(self.values)

    def add(
        self,
        task_id: str,
        key: str,
        name: str,
        ok: bool,
        value: Any,
        error: str | None,
        exc_type: str,
        provenance: dict[str, Any],
        seed: int | None,
        started: float,
        finished: float,
        cause: bytes | None = None,
    ) -> None:
        meta = encode_meta(task_id, key, name, self.host, error, provenance)
        try:
            self.builder.add(meta, ok, value, started, finished)
        except Exception as exc:  # the value cannot be stored: the task failed
            ok, value, error, exc_type = (
                False,
                None,
                unsendable_text(task_id, name, value, exc),
                "SerializationError",
            )
            meta = encode_meta(task_id, key, name, self.host, error, provenance)
            self.builder.add(meta, False, None, started, finished)
        if not ok:
            self.failures.append((len(self.values), error or "", exc_type, cause))
        self.values.append(value)
        self.info.append((task_id, key, name, provenance))
        self.seeds.append(seed)

    def fail_unpicklable(self) -> None:
        """Send by value (cloudpickle) what pickle cannot carry; the rest fails its task.

        An instance of a class of the program file (``__main__.Point``) pickles
        only by value on a worker, as Ray sends it: rank 0 loads it as an
        instance of the program's own class (cloudpickle keeps the class's
        identity across the round trip).
        """
        for i, value in enumerate(self.values):
            if value is None:
                continue
            try:
                pickle.dumps(value, protocol=5)
            except Exception as exc:
                try:
                    self.values[i] = _ByValue(writeable_cloud_dumps(value))
                    continue
                except Exception:
                    pass
                task_id, key, name, prov = self.info[i]
                error = unsendable_text(task_id, name, value, exc)
                self.builder.fail(i, encode_meta(task_id, key, name, self.host, error, prov))
                self.values[i] = None
                self.failures.append((i, error, "SerializationError", None))

    def message(
        self, bid: int, first: int, submitted: Any, attempts: list[int] | None, final: bool
    ) -> tuple[Any, ...]:
        """The result message for rank 0."""
        n = len(self.values)
        chunk = self.builder.take(
            submitted[first : first + n],
            None if attempts is None else attempts[first : first + n],
            self.seeds if any(s is not None for s in self.seeds) else None,
        )
        failures = sorted(self.failures, key=_first)
        values: Any = self.values
        if placed_buffers() and _holds_read_only(values):
            values = _Pickled(values)  # a list again on rank 0
        return result_message(bid, first, values, chunk, failures, final)


class _ByValue:
    """A value cloudpickle wrote: unpickled, it is the value itself."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return (pickle.loads, (self.data,))


class _Pickled:
    """A batch's values as they travel to rank 0 when one holds a read-only numpy array:
    unpickled there, they are the list itself.

    They are pickled here by :class:`~qshpc.task.payload.WriteablePickler`, so a numpy array that is
    read-only on this worker (a slice of an array from ``put``) arrives writeable,
    as the task's result does when the program runs on one rank. mpi4py's pickle
    would carry the flag over: on 3986114 ``get`` gave ``a[:2]`` of a placed array
    read-only under workers only.
    """

    __slots__ = ("data",)

    def __init__(self, values: list[Any]) -> None:
        self.data = writeable_dumps(values)

    def __reduce__(self) -> tuple[Any, ...]:
        return (pickle.loads, (self.data,))


class _Found(Exception):
    """A read-only numpy array was met (ends :func:`_holds_read_only`'s pass early)."""


class _Sink:
    """A file that keeps nothing: pickling into it only walks the value."""

    def write(self, data: Any) -> None:
        pass


class _Detector(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind.__name__ == "ndarray" and kind.__module__ == "numpy" and not obj.flags.writeable:
            raise _Found
        return NotImplemented


def _holds_read_only(values: list[Any]) -> bool:
    """True when pickling ``values`` would meet a read-only numpy array.

    A walk by pickle that keeps no bytes (a large array is handed to the sink, not
    copied), ending at the first such array; most batches hold none and travel as
    before, pickled once by the transport. Its callers walk only in a process that
    holds placed arrays (:func:`~qshpc.task.context.placed_buffers`): the walk
    costs about what pickling does (64 small ``QuasiDistribution``s 0.17 ms, 200k
    numpy floats 0.5 s), and elsewhere a result's read-only array is the program's
    own, read-only on every rank count (``get`` gives writeable copies of it). A value pickle cannot carry: False (the
    transport's pickling fails as before, and :meth:`Results.fail_unpicklable` runs).
    """
    try:
        _Detector(_Sink(), protocol=5).dump(values)
    except _Found:
        return True
    except Exception:
        return False
    return False


def writeable(value: Any) -> Any:
    """``value``, or a copy of it when it holds a read-only numpy array, each writeable
    there (what rank 0 gives the program for a call it ran itself, as from a worker)."""
    if not placed_buffers() or not _holds_read_only([value]):
        return value
    try:
        return pickle.loads(writeable_dumps(value))
    except Exception:  # a part pickle cannot carry (met after the array): as it is
        return value


def _first(failure: tuple[int, str, str, bytes | None]) -> int:
    return failure[0]
