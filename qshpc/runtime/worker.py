"""The loop of a worker rank: receive batches, run the calls, send results back.

Workers never run the program's top-level code: task functions arrive by
value. A worker waits with an ``improbe`` and a short sleep back-off rather
than a blocking receive, because MPICH's blocking receives spin on a core.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
import time
import traceback
from typing import Any

from qshpc.refs import ObjectRef, substitute
from qshpc.runtime import backend, context
from qshpc.runtime.backend import task_key
from qshpc.runtime.mpi import (
    TAG_BATCH,
    TAG_BYE,
    TAG_HEARTBEAT,
    TAG_RESULT,
    TAG_STOP,
    heartbeat_interval,
)
from qshpc.store.chunk import ChunkBuilder, encode_meta

_PARTIAL_S = 0.25  # send finished results of a long batch at least this often
_MAX_SLEEP_S = 0.002
_MAX_SENDS = 4  # result messages in flight before this worker waits for one


class _Results:
    """Finished attempts of one batch not yet sent, encoded for the store as they finish."""

    def __init__(self, rank: int, host: str) -> None:
        self.host = host
        self.builder = ChunkBuilder(rank)
        self.values: list[Any] = []
        self.failures: list[tuple[int, str, str]] = []
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
    ) -> None:
        meta = encode_meta(task_id, key, name, self.host, error, provenance)
        try:
            self.builder.add(meta, ok, value, started, finished)
        except Exception as exc:  # the value cannot be stored: the task failed
            ok, value, error, exc_type = (
                False,
                None,
                _unsendable(task_id, name, value, exc),
                "SerializationError",
            )
            meta = encode_meta(task_id, key, name, self.host, error, provenance)
            self.builder.add(meta, False, None, started, finished)
        if not ok:
            self.failures.append((len(self.values), error or "", exc_type))
        self.values.append(value)
        self.info.append((task_id, key, name, provenance))
        self.seeds.append(seed)

    def fail_unpicklable(self) -> None:
        """Turn every value that pickle cannot carry into its task's failure."""
        for i, value in enumerate(self.values):
            if value is None:
                continue
            try:
                pickle.dumps(value, protocol=5)
            except Exception as exc:
                task_id, key, name, prov = self.info[i]
                error = _unsendable(task_id, name, value, exc)
                self.builder.fail(i, encode_meta(task_id, key, name, self.host, error, prov))
                self.values[i] = None
                self.failures.append((i, error, "SerializationError"))

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
        return ("R", bid, first, self.values, chunk, sorted(self.failures), final)


def _unsendable(task_id: str, name: str, value: Any, exc: BaseException) -> str:
    return (
        f"SerializationError: the return value of task {task_id} ({name}, "
        f"{type(value).__name__}) cannot be serialized: {exc}. Return plain data, numpy "
        "arrays or Qiskit objects.\n"
    )


class _Sender:
    """Sends result messages without blocking, keeping a few in flight.

    A blocking send of a large message waits for rank 0 to receive it, and
    MPICH waits by polling: the worker then burns the core rank 0 needs.
    """

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self.reqs: list[Any] = []

    def send(
        self,
        results: _Results,
        bid: int,
        first: int,
        submitted: Any,
        attempts: list[int] | None,
        final: bool,
    ) -> None:
        try:
            msg = results.message(bid, first, submitted, attempts, final)
            req = self.comm.isend(msg, dest=0, tag=TAG_RESULT)
        except Exception:
            results.fail_unpicklable()  # a return value cannot be pickled for the trip
            msg = results.message(bid, first, submitted, attempts, final)
            req = self.comm.isend(msg, dest=0, tag=TAG_RESULT)
        self.reqs.append(req)
        self.reqs = [r for r in self.reqs if not r.test()[0]]
        while len(self.reqs) > _MAX_SENDS:
            time.sleep(50e-6)
            self.reqs = [r for r in self.reqs if not r.test()[0]]

    def flush(self, timeout: float = 10.0) -> None:
        """Wait for every send (polling with sleeps, not MPICH's spin), at most ``timeout`` s.

        Rank 0 receives every result before it says stop, unless it aborts.
        """
        deadline = time.monotonic() + timeout
        while self.reqs and time.monotonic() < deadline:
            self.reqs = [r for r in self.reqs if not r.test()[0]]
            if self.reqs:
                time.sleep(50e-6)


def _heartbeat(world: Any, stop: threading.Event, pending: list[Any]) -> None:
    """Tell rank 0 this rank is alive, even while a long task runs.

    Non-blocking sends, at most one in flight: a rank 0 that is busy (or gone)
    must never block this thread, or the worker's shutdown with it.
    """
    interval = heartbeat_interval()
    while not stop.wait(interval):
        try:
            if not pending:
                pending.append(world.isend(None, dest=0, tag=TAG_HEARTBEAT))
            elif pending[0].Test():
                pending[0] = world.isend(None, dest=0, tag=TAG_HEARTBEAT)
        except Exception:
            return


def preload() -> None:
    """Import what tasks will need while rank 0 is still starting the program.

    ``QSHPC_PRELOAD`` (default ``qiskit,qiskit_aer``: about 1.5 s of imports on
    a cold start) names the modules; an empty value turns it off. A module that
    is missing is skipped: tasks that need it will say so. With qiskit_aer, the
    default simulator and pass manager are built too (``qshpc.aer.simulator.warm``).
    """
    import importlib

    names = [n.strip() for n in os.environ.get("QSHPC_PRELOAD", "qiskit,qiskit_aer").split(",")]
    for name in filter(None, names):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if "qiskit_aer" in names and "qiskit_aer" in sys.modules:
        try:
            from qshpc.aer.simulator import warm

            warm()
        except Exception:  # a task that needs the simulator will report it
            pass


def serve(mpi: Any, comm: Any) -> None:
    """Run tasks until rank 0 says stop, then say goodbye so rank 0 can finalize cleanly."""
    from qshpc.runtime.gctune import tune

    tune()
    stop = threading.Event()
    beat = None
    pending: list[Any] = []
    world = mpi.COMM_WORLD
    if mpi.Query_thread() == mpi.THREAD_MULTIPLE:
        beat = threading.Thread(target=_heartbeat, args=(world, stop, pending), daemon=True)
        beat.start()
    try:
        _serve(mpi, comm)
    finally:
        stop.set()
        if beat is not None:
            beat.join()
    # Rank 0 drains heartbeats until every worker's goodbye has arrived, so the
    # last heartbeat completes and nothing is left in flight at MPI_Finalize.
    world.send(None, dest=0, tag=TAG_BYE)
    for req in pending:
        req.Wait()


def _serve(mpi: Any, comm: Any) -> None:
    import cloudpickle

    funcs: dict[int, tuple[Any, str, bytes]] = {}  # fn_id -> (function, name, digest)
    objects: dict[int, Any] = {}
    inline = backend.InlineBackend()
    backend.activate(inline)
    status = mpi.Status()
    sleep = 0.0
    # Ranks outnumber cores: an idle worker polling fast steals rank 0's CPU.
    info = context.rank_info()
    crowded = info.local_size > len(os.sched_getaffinity(0))
    first_sleep = float(os.environ.get("QSHPC_IDLE_SLEEP_S", "5e-4" if crowded else "2e-5"))
    sender = _Sender(comm)

    def lookup(ref: Any) -> Any:
        return objects[ref.obj_id] if isinstance(ref, ObjectRef) else ref

    try:
        while True:
            msg = comm.improbe(0, mpi.ANY_TAG, status)
            if msg is None:
                if sender.reqs:
                    sender.reqs = [r for r in sender.reqs if not r.test()[0]]
                sleep = min(_MAX_SLEEP_S, sleep * 2 or first_sleep)
                time.sleep(sleep)
                continue
            sleep = 0.0
            tag = status.Get_tag()
            data = msg.recv()
            if tag == TAG_STOP:
                # Rank 0 received every result before it said stop, unless it
                # aborted: then it no longer listens, and waiting would only
                # delay the goodbye it waits for.
                sender.flush(timeout=0.5)
                return
            assert tag == TAG_BATCH
            _, bid, new_funcs, new_objs, job_seed, *columns = data
            if job_seed != context.job_seed():
                context.set_job_seed(job_seed)  # nested calls derive their seeds too
            for fn_id, blob, name, digest in new_funcs:
                funcs[fn_id] = (cloudpickle.loads(blob), name, digest)
            for oid, obj in new_objs:
                objects[oid] = obj
            _run_batch(sender, bid, columns, funcs, lookup if objects else None, info)
    finally:
        sender.flush(timeout=0.5)


def _run_batch(
    sender: _Sender,
    bid: int,
    columns: list[Any],
    funcs: dict[int, tuple[Any, str, bytes]],
    lookup: Any,
    info: context.RankInfo,
) -> None:
    """Run one batch's calls in order, sending results at least every ``_PARTIAL_S``.

    ``columns``: task ids, function id (one int for all, or one per call),
    payloads (pickled ``(args, kwargs)`` bytes, or a tuple of plain positional
    values), attempts (None: all first), submission times, keys (None: this
    worker computes them).
    """
    from qshpc.seeding import derive_seed

    ids, fn_ids, payloads, attempts, submitted, keys = columns
    job_seed = context.job_seed()
    results = _Results(info.rank, info.host)
    push, pop, task_context, now = (
        context.push_task,
        context.pop_task,
        context.TaskContext,
        time.time,
    )
    one_fn = type(fn_ids) is int
    if one_fn:
        func, name, digest = funcs[fn_ids]
    first = 0
    last = time.monotonic()
    n = len(ids)
    for pos in range(n):
        task_id = ids[pos]
        if not one_fn:
            func, name, digest = funcs[fn_ids[pos]]
        attempt = 1 if attempts is None else attempts[pos]
        seed = None if job_seed is None else derive_seed(job_seed, task_id)
        key = None if keys is None else keys[pos]
        payload = payloads[pos]
        error: str | None = None
        exc_type = ""
        value: Any = None
        prov = push(task_context(task_id, name, seed, attempt))
        try:
            if type(payload) is tuple:  # plain values, sent unpickled (Dispatcher.submit)
                args, kwargs = payload, None
                raw = None
            else:
                raw = payload
                args, kwargs = pickle.loads(payload)
                if lookup is not None:
                    args, kwargs = substitute(args, lookup), substitute(kwargs, lookup)
            if key is None:
                key = task_key(digest, raw or pickle.dumps((args, {}), protocol=5), task_id)
            started = now()
            try:
                value = func(*args, **kwargs) if kwargs else func(*args)
                ok = True
            except Exception as exc:
                ok, error, exc_type = False, traceback.format_exc(), type(exc).__name__
            finished = now()
        except Exception as exc:  # the arguments could not be unpickled
            started = finished = now()
            ok, error, exc_type = False, traceback.format_exc(), type(exc).__name__
        finally:
            pop()
        results.add(
            task_id, key or "", name, ok, value, error, exc_type, prov, seed, started, finished
        )
        if pos < n - 1 and time.monotonic() - last > _PARTIAL_S:
            sender.send(results, bid, first, submitted, attempts, False)
            first += len(results)
            results = _Results(info.rank, info.host)
            last = time.monotonic()
    sender.send(results, bid, first, submitted, attempts, True)
