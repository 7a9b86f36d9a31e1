"""The messages between rank 0 and the workers: tags, shapes, and the transport they travel on.

Rank 0's dispatcher and every worker exchange these messages
(:mod:`qshpc.runtime.start` does the start-up: one collective after
``MPI_Init``, then :data:`TAG_JOB` from rank 0 to each worker):

====================  ===========  =========================================================
tag                   direction    message
====================  ===========  =========================================================
:data:`TAG_BATCH`     0 -> worker  ``("B", bid, funcs, objs, job_seed, ids, fn_ids, payloads,
                                   attempts, submitted, keys, cache[, steps])``
                                   (:func:`batch_message`)
:data:`TAG_RESULT`    worker -> 0  ``("R", bid, first, values, chunk, failures, final)``
                                   (:func:`result_message`)
:data:`TAG_STOP`      0 -> worker  :data:`STOP`: no more batches; say goodbye
:data:`TAG_CUT`       0 -> worker  :data:`CUT`: the job is ending: start no more calls of the
                                   batches held; send what is done as each batch's last
                                   message (the rest never ran)
:data:`TAG_HEARTBEAT` worker -> 0  ``None``, every ``QSHPC_HEARTBEAT_S``, on the plain world
:data:`TAG_FLUSH`     worker -> 0  ``("F", left, written, seconds)``, on the plain world: after
                                   STOP, results still on their way to the result cache
                                   (sent when the wait starts, then every second, and
                                   ``left == 0`` when done): rank 0 waits for its goodbye
                                   while these come
:data:`TAG_BYE`       worker -> 0  ``None``, the worker's last message, on the plain world
:data:`TAG_LEAVE`     0 -> worker  ``("L", why)``: the job ended while this worker still ran
                                   a call (rank 0 recorded it abandoned); its heartbeat thread
                                   (or its loop, the call just ended) says goodbye at once,
                                   then the rank finalizes MPI and exits 0 without the call
                                   (:class:`qshpc.runtime.worker.Heartbeat`)
:data:`TAG_GONE`      worker -> 0  ``("G", rank)``, on the plain world: the process of another
                                   worker of this host ended (:mod:`qshpc.runtime.gone`)
:data:`TAG_JOB`       0 -> worker  ``(job_dir or None, error or None, program, argv)``, once
                                   at start-up, on the plain world (workers poll for it with
                                   sleeps: a blocking receive would spin on a core rank 0 needs);
                                   ``argv``: rank 0's program's ``sys.argv``, the tasks' too
====================  ===========  =========================================================

A batch's columns: task ids; one function id for all calls (an int) or one per
call; payloads (pickled ``(args, kwargs)`` bytes, or a tuple of plain positional
values); attempts (None: all first tries); submission times; task keys (None:
the worker computes them); the result cache (None: the job has no cache
settings and no call of the batch is cached; else ``(info, keys)``: ``info``
the cache's settings and the job id, a ``{"config": ..., "job": ...}`` dict
(nested calls on the worker use them too), and ``keys`` the cache key of each
call, None for a call not cached, or None for none: the worker stores each
result of a call with a key); and, only in the batch of a multi-rank call
(``target={"ranks": k}``, alone in its batch), an 8th column ``[(size, hosts)]``:
the ranks rank 0 holds for it (:class:`qshpc.task.context.Step`). ``funcs`` are
the functions this worker has not seen yet, ``(fn_id, cloudpickled function, name, digest)``; ``objs`` the objects
placed with ``put`` it has not seen, ``(obj_id, pickle, buffers)``
(:func:`qshpc.program.backend.wire_form`: classes of the program by value, arrays
out of band; the worker unpickles a copy for each use).

A result message holds the values of the calls ``first .. first + len(values)``
of batch ``bid``, their store records already encoded (a
:class:`~qshpc.store.chunk.RecordChunk`), the failures ``(position, traceback,
exception type, the exception pickled or None)``, and ``final``: True on the
batch's last message.

The transport (:class:`Transport`) is the part of an mpi4py communicator these
messages use; :class:`qshpc.runtime.loopback.Loopback` is an in-process one
for tests. Rank 0 and the workers call it directly, so MPI's hot path has no
layer in between.
"""

from __future__ import annotations

from typing import Any, Protocol

TAG_BATCH = 11
TAG_RESULT = 12
TAG_STOP = 13
TAG_CUT = 14
TAG_HEARTBEAT = 15
TAG_BYE = 16
TAG_JOB = 17
TAG_FLUSH = 18
TAG_LEAVE = 19
TAG_GONE = 20

#: The stop message.
STOP = ("S",)
#: The cut message (the job ends: run no call not yet started).
CUT = ("C",)


def batch_message(
    bid: int, funcs: list[Any], objs: list[Any], job_seed: int | None, columns: tuple[Any, ...]
) -> tuple[Any, ...]:
    """The message of batch ``bid`` (see the module doc for the columns)."""
    return ("B", bid, funcs, objs, job_seed, *columns)


def result_message(
    bid: int,
    first: int,
    values: list[Any],
    chunk: Any,
    failures: list[tuple[int, str, str, bytes | None]],
    final: bool,
) -> tuple[Any, ...]:
    """A worker's message with results of batch ``bid`` from position ``first``."""
    return ("R", bid, first, values, chunk, failures, final)


class Request(Protocol):
    """A send in flight (mpi4py's ``Request``)."""

    def test(self) -> tuple[bool, Any]:
        """``(done, value)`` without waiting."""
        ...

    def wait(self) -> Any:
        """Wait for the send to complete."""
        ...

    def Test(self) -> bool:
        """True when complete (the heartbeat's check)."""
        ...

    def Wait(self) -> None:
        """Wait for the send to complete."""
        ...


class Message(Protocol):
    """A matched message not yet received (mpi4py's ``Message``)."""

    def recv(self) -> Any:
        """Receive it: the object sent."""
        ...


class Status(Protocol):
    """Where a probed message came from (mpi4py's ``Status``)."""

    def Get_source(self) -> int:
        """The sender's rank."""
        ...

    def Get_tag(self) -> int:
        """The message's tag."""
        ...


class Transport(Protocol):
    """The communicator calls rank 0 and the workers make (mpi4py's ``Intracomm`` has them).

    Rank 0 and the workers each hold two: the pkl5 communicator for batches and
    results, and the plain world for heartbeats and goodbyes.
    """

    def improbe(self, source: int, tag: int, status: Any = None) -> Message | None:
        """A matching message if one is waiting, else None (never blocks)."""
        ...

    def isend(self, obj: Any, dest: int, tag: int) -> Request:
        """Start sending ``obj``; returns at once."""
        ...

    def send(self, obj: Any, dest: int, tag: int) -> None:
        """Send ``obj`` (a blocking send; only for tiny messages)."""
        ...


class Wiring(Protocol):
    """How one rank reaches the others: its two transports, and MPI's wildcards and statuses.

    :func:`qshpc.runtime.mpi.wiring` makes it from mpi4py; a loopback makes one per rank.
    """

    comm: Transport  # batches and results (pkl5: messages over 2 GiB)
    world: Transport  # heartbeats and goodbyes
    any_source: int
    any_tag: int
    multithreaded: bool  # a heartbeat thread may send while the main thread works

    def status(self) -> Status:
        """A fresh status object to probe with."""
        ...

    def receive(self, msg: Message) -> Any:
        """Receive ``msg`` (from ``comm.improbe``): the object sent.

        Raises:
            qshpc.runtime.unload.Unloadable: The bytes came but did not unpickle;
                it holds them, for a second try (rank 0's results).
        """
        ...


__all__ = [
    "CUT",
    "STOP",
    "TAG_BATCH",
    "TAG_BYE",
    "TAG_CUT",
    "TAG_FLUSH",
    "TAG_GONE",
    "TAG_HEARTBEAT",
    "TAG_LEAVE",
    "TAG_RESULT",
    "TAG_STOP",
    "Message",
    "Request",
    "Status",
    "Transport",
    "Wiring",
    "batch_message",
    "result_message",
]
