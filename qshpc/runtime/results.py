"""Finished calls of a batch on a worker, encoded for the store as they finish (rank 0 appends them)."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

from qshpc.runtime.protocol import result_message
from qshpc.store.chunk import ChunkBuilder, encode_meta
from qshpc.task.context import placed_buffers
from qshpc.task.execute import unsendable_text
from qshpc.task.payload import WriteablePickler, writeable_cloud_dumps


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
        #: (position, cache write) of successful calls: written once they are sent
        #: (:meth:`after_sent`), so that a value that cannot make the trip is not cached.
        self.to_cache: list[tuple[int, Callable[[], None]]] = []

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
        cache: Callable[[], None] | None = None,
    ) -> None:
        """Encode one finished attempt's record; ``cache``: the call's cache write, made
        once its record is made and it is sent (:meth:`after_sent`)."""
        meta = encode_meta(task_id, key, name, self.host, error, provenance)
        try:
            self.builder.add(meta, ok, value, started, finished)
        except Exception as exc:  # the value cannot be stored: the task failed
            cache = None
            ok, value, error, exc_type = (
                False,
                None,
                unsendable_text(task_id, name, value, exc),
                "SerializationError",
            )
            meta = encode_meta(task_id, key, name, self.host, error, provenance)
            self.builder.add(meta, False, None, started, finished)
        if cache is not None and ok:
            self.to_cache.append((len(self.values), cache))
        if not ok:
            self.failures.append((len(self.values), error or "", exc_type, cause))
        self.values.append(value)
        self.info.append((task_id, key, name, provenance))
        self.seeds.append(seed)

    def after_sent(self) -> None:
        """Cache the results that were sent (a value the store or the trip refused failed
        its call: a later job must not take it from the cache; review28 F18)."""
        if self.to_cache:
            failed = {f[0] for f in self.failures}
            for pos, cache in self.to_cache:
                if pos not in failed:
                    cache()
            self.to_cache.clear()

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
                    self.values[i] = by_value = _ByValue(writeable_cloud_dumps(value))
                    # a large one is in the chunk too (rank 0 encodes it): the same object
                    # there, or the message failed again and the worker ended (fix42a)
                    unencoded = self.builder.unencoded
                    for k, (j, _) in enumerate(unencoded):
                        if j == i:
                            unencoded[k] = (j, by_value)
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
        if placed_buffers():
            values = for_the_trip(values)
        return result_message(bid, first, values, chunk, failures, final)


class _ByValue:
    """A value cloudpickle wrote: unpickled, it is the value itself."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return (pickle.loads, (self.data,))


class _Pickled:
    """A batch's values as they travel to rank 0, pickled here (:func:`for_the_trip`):
    unpickled there, they are the list itself."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __reduce__(self) -> tuple[Any, ...]:
        return (pickle.loads, (self.data,))


class _Recorder:
    """A file that keeps what pickle writes, a large buffer (a numpy array's data) by
    reference: pickling into it costs what a walk does until the bytes are joined."""

    __slots__ = ("large", "parts")

    def __init__(self) -> None:
        self.parts: list[Any] = []
        #: A numpy array's buffer was written whole (the transport sends such out of band).
        self.large = False

    def write(self, data: Any) -> None:
        if type(data) is not bytes:
            self.large = True
        self.parts.append(data)

    def joined(self) -> bytes:
        return b"".join(self.parts)


def _writeable_pass(value: Any) -> tuple[_Recorder, bool] | None:
    """``value`` pickled once by :class:`~qshpc.task.payload.WriteablePickler`: what it
    wrote, and whether it met a read-only numpy array; None when pickle cannot carry it."""
    out = _Recorder()
    pickler = WriteablePickler(out, protocol=5)
    try:
        pickler.dump(value)
    except Exception:
        return None
    return out, pickler.copied


def for_the_trip(values: list[Any]) -> Any:
    """A batch's values as they go to rank 0 from a process holding placed arrays.

    A numpy array read-only on this worker (a slice of an array from ``put``)
    arrives writeable, as the task's result does when the program runs on one
    rank: mpi4py's pickle would carry the flag over (on 3986114 ``get`` gave
    ``a[:2]`` of a placed array read-only under workers only). One pickling pass
    both finds such arrays and writes them as writeable copies; its bytes go as
    they are (:class:`_Pickled`, a list again on rank 0) unless it found none and
    wrote a large array (then the list goes, and the transport sends the array out
    of band). Was: a walk by pickle to find one, then a second pickling (session 13:
    Results holding read-only arrays in benchmarks/RESULTS.md). A value pickle
    cannot carry: the list (the transport's pickling fails as before, and
    :meth:`Results.fail_unpicklable` runs).

    Its callers call it only in a process that holds placed arrays
    (:func:`~qshpc.task.context.placed_buffers`): elsewhere a result's read-only
    array is the program's own, read-only on every rank count (``get`` gives
    writeable copies of it), and the transport pickles the values once as before.
    """
    done = _writeable_pass(values)
    if done is None:
        return values
    out, copied = done
    if out.large and not copied:
        return values
    return _Pickled(out.joined())


def writeable(value: Any) -> Any:
    """``value``, or a copy of it when it holds a read-only numpy array, each writeable
    there (what rank 0 gives the program for a call it ran itself, as from a worker)."""
    if not placed_buffers():
        return value
    done = _writeable_pass(value)
    if done is None or not done[1]:  # nothing to change, or a part pickle cannot carry
        return value
    try:
        return pickle.loads(done[0].joined())
    except Exception:
        return value


def _first(failure: tuple[int, str, str, bytes | None]) -> int:
    return failure[0]
