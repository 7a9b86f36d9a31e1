"""Rank 0's dispatcher: coalesces task calls into batches for the worker ranks.

The program's thread only appends calls to a queue. One dispatcher thread
owns every MPI call on rank 0: it sends guided-size batches (about
``pending / (2 * workers)`` calls, so a lone call goes out at once and a burst
of 100k goes out in large batches), keeps two batches in flight per worker so
no worker waits for a round trip, records results in the store and resolves
the references. It sleeps with a short back-off when there is nothing to do,
so waiting burns no core.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from qshpc import settings
from qshpc.errors import WorkerLostError
from qshpc.program.backend import TaskSpec, dumps_payload, task_key
from qshpc.program.refs import (
    ObjectRef,
    TaskRef,
    find_refs,
    mark_running,
    resolve_many,
    resolve_values,
    substitute,
    wait_all,
)
from qshpc.runtime.mpi import (
    TAG_BATCH,
    TAG_BYE,
    TAG_HEARTBEAT,
    TAG_RESULT,
    TAG_STOP,
    worker_timeout,
)
from qshpc.task import context
from qshpc.task.execute import Outcome, run_task
from qshpc.task.seeding import derive_seed

if TYPE_CHECKING:
    from qshpc.program.session import Session

_IN_FLIGHT = 2  # batches per worker
_MAX_BATCH = 512
_COMMIT_S = 0.02  # under load, commit (and resolve) at most this often
_MAX_SLEEP_S = 0.002
_MIN_SLEEP_S = 50e-6
_MIN_BATCH_S = 0.002  # the least work worth a batch of its own (see _batch_size)


class _Entry:
    __slots__ = ("args", "attempt", "deps", "fn_id", "key", "kwargs", "objs", "payload", "ref",
                 "submitted", "task")  # fmt: skip

    def __init__(
        self, ref: TaskRef[Any], task: TaskSpec, fn_id: int, payload: Any = None
    ) -> None:
        self.ref = ref
        self.task = task
        self.fn_id = fn_id
        self.attempt = 1
        # bytes (pickled (args, kwargs) at the call), or the args tuple of plain values
        self.payload = payload
        self.key: str | None = None  # None: the worker computes it
        self.submitted = time.time()
        self.objs: tuple[int, ...] | list[int] = ()
        self.deps: list[TaskRef[Any]] = []
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}


class _Worker:
    __slots__ = ("alive", "batches", "funcs", "host", "last_seen", "objs", "pid", "rank", "sends")

    def __init__(self, rank: int, host: str, pid: int) -> None:
        self.rank = rank
        self.host = host
        self.pid = pid
        self.alive = True
        self.last_seen = time.monotonic()
        self.sends: list[Any] = []
        self.batches: dict[int, list[_Entry]] = {}
        self.funcs: set[int] = set()
        self.objs: set[int] = set()


class Dispatcher:
    """The backend of rank 0 when there are worker ranks.

    Args:
        mpi: The ``mpi4py.MPI`` module.
        comm: A pkl5 communicator over COMM_WORLD.
        session: The job session (store, arguments, resume data).
        hosts: Host name of every rank.
    """

    def __init__(
        self, mpi: Any, comm: Any, session: Session, hosts: list[str], pids: list[int] | None = None
    ) -> None:
        self.mpi = mpi
        self.comm = comm
        self.session = session
        self.workers = [_Worker(r, hosts[r], pids[r] if pids else 0) for r in range(1, len(hosts))]
        self.lost: list[str] = []
        self.abandoned = False
        self._stop_now = False
        self._dispatch_log: int | None = None
        if session.job_dir is not None:
            from qshpc.jobs.postmortem import DISPATCH_LOG

            path = session.job_dir / "logs" / DISPATCH_LOG
            from qshpc.store import perms

            self._dispatch_log = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, perms.file_mode()
            )
        self._timeout = worker_timeout()
        self._next_check = time.monotonic() + 1.0
        self.pending: deque[_Entry] = deque()
        self.blocked: list[_Entry] = []
        self._ids = itertools.count()
        self._batch_ids = itertools.count()
        self._fn_ids: dict[int, tuple[int, bytes, TaskSpec]] = {}
        self._fn_blobs: dict[int, tuple[bytes, TaskSpec]] = {}
        self._resume = bool(session.done)
        self._objects: dict[int, Any] = {}
        self._obj_ids = itertools.count(1)
        self._resolve: list[tuple[TaskRef[Any], bool, Any]] = []
        self._resolve_ok: list[tuple[list[TaskRef[Any]], list[Any]]] = []
        self._last_commit = time.monotonic()
        self._wake = threading.Event()
        self._idle = False
        self._stop = False
        self._mean_task_s = 0.0
        self._last_size = 1
        self._last_send = 0.0
        self._root_mode = "0"
        self._root_has_core = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="qshpc-dispatcher", daemon=True)
        self._thread.start()

    # -- program thread ------------------------------------------------------
    def put(self, obj: Any) -> ObjectRef:
        oid = next(self._obj_ids)
        self._objects[oid] = obj
        return ObjectRef(oid)

    def get_object(self, obj_id: int) -> Any:
        return self._objects[obj_id]

    def _fn(self, task: TaskSpec) -> int:
        known = self._fn_ids.get(id(task))
        if known is not None and known[2] is task:
            return known[0]
        import cloudpickle

        fn_id = len(self._fn_ids) + 1
        self._fn_ids[id(task)] = (fn_id, cloudpickle.dumps(task.func, protocol=5), task)
        self._fn_blobs[fn_id] = (self._fn_ids[id(task)][1], task)
        return fn_id

    def submit(
        self, task: TaskSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskRef[Any]:
        if self._error is not None:
            raise RuntimeError("the qshpc dispatcher stopped") from self._error
        task_id = str(next(self._ids))
        ref: TaskRef[Any] = TaskRef(task_id, task.name)
        known = self._fn_ids.get(id(task))
        fn_id = known[0] if known is not None and known[2] is task else self._fn(task)
        if not self._resume and _plain(args, kwargs):
            # Immutable values: no snapshot to take, no reference to find; they
            # are pickled with the batch and the worker computes the task key.
            self.pending.append(_Entry(ref, task, fn_id, args))
        else:
            self._submit_general(_Entry(ref, task, fn_id), args, kwargs)
        if self._idle:
            self._idle = False
            self._wake.set()
        return ref

    def _submit_general(self, entry: _Entry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        objs, deps = find_refs(args, kwargs)
        entry.objs = objs
        if any(not d.done() for d in deps):
            entry.deps, entry.args, entry.kwargs = deps, args, kwargs
            self.blocked.append(entry)
            return
        if deps:
            args, kwargs = substitute(args, _value_of), substitute(kwargs, _value_of)
        if self._prepare(entry, args, kwargs):
            self.pending.append(entry)

    def _prepare(self, entry: _Entry, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Pickle the arguments (a snapshot at call time); False when a resumed job has it."""
        entry.payload = dumps_payload(args, kwargs, entry.task.name, entry.ref.task_id)
        if not self._resume:
            return True
        entry.key = task_key(entry.task.digest, entry.payload, entry.ref.task_id)
        done = self.session.done_result(entry.key)
        if done is not None:
            resolve_many([(entry.ref, True, done[0])])
            return False
        return True

    def enable_root_work(self, mode: str, cores_given: bool = False) -> None:
        """Let rank 0's program thread run queued calls while it waits in ``get``.

        Args:
            mode: ``"1"`` always; ``"auto"`` only when calls take over 2 ms on
                average (measured) and rank 0 has a core of its own, because on
                tiny calls a busy program thread starves the dispatcher thread
                of the GIL (see benchmarks/RESULTS.md).
        """
        self._root_mode = mode
        info = context.rank_info()
        self._root_has_core = info.local_size <= len(os.sched_getaffinity(0)) or cores_given
        self.help_wait = self._help_wait

    def _root_should_work(self) -> bool:
        if self._root_mode == "1":
            return True
        return self._root_has_core and self._mean_task_s > 0.002

    def _help_wait(self, refs: list[TaskRef[Any]], timeout: float | None) -> None:
        import pickle

        deadline = None if timeout is None else time.monotonic() + timeout
        info = context.rank_info()
        done: list[tuple[TaskRef[Any], bool, Any]] = []
        last = time.monotonic()
        while any(not r.done() for r in refs):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            e = None
            if self._root_should_work():
                try:
                    e = self.pending.pop()  # the dispatcher takes from the other end
                except IndexError:
                    pass
            if e is None:
                self.session.sync()
                resolve_many(done)
                done = []
                try:
                    wait_all(refs, 0.1 if remaining is None else min(0.1, remaining))
                except TimeoutError:
                    continue
                break
            mark_running([e.ref])
            raw = (
                e.payload if type(e.payload) is bytes else pickle.dumps((e.payload, {}), protocol=5)
            )
            args, kwargs = pickle.loads(raw)
            if e.objs:
                args = substitute(args, self._object_of)
                kwargs = substitute(kwargs, self._object_of)
            if e.key is None:
                e.key = task_key(e.task.digest, raw, e.ref.task_id)
            seed = _seed_of(e.ref.task_id)
            out = run_task(e.task.func, args, kwargs, e.ref.task_id, e.task.name, seed, e.attempt)
            self.session.record(out, e.key, e.submitted, seed)
            if out.ok:
                done.append((e.ref, True, out.value))
            elif e.attempt <= e.task.retries:
                e.attempt += 1
                e.ref._state = 0
                self.pending.append(e)
            else:
                done.append((e.ref, False, out.task_error(info.rank, info.host)))
            if time.monotonic() - last > _COMMIT_S:
                self.session.sync()
                resolve_many(done)
                done, last = [], time.monotonic()
        self.session.sync()
        resolve_many(done)
        wait_all(refs, None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _object_of(self, ref: Any) -> Any:
        return self._objects[ref.obj_id] if isinstance(ref, ObjectRef) else ref

    def shutdown(self, abort: bool = False, drain_s: float | None = None) -> None:
        """Finish in-flight work (all queued calls unless ``abort``), then stop the workers.

        Args:
            abort: Cancel calls not yet sent to a worker.
            drain_s: Wait at most this long for calls in flight to report (their
                results are stored); then leave them (``abandoned`` becomes True).
        """
        if abort:
            cancelled = list(self.pending) + self.blocked
            self.pending.clear()
            self.blocked.clear()
            for e in cancelled:
                e.ref.cancel()
        self._stop = True
        self._wake.set()
        self._thread.join(drain_s)
        if self._thread.is_alive():
            self.abandoned = True
            self._stop_now = True
            self._thread.join(5.0)
        if self._error is not None:
            raise RuntimeError("the qshpc dispatcher failed") from self._error

    # -- dispatcher thread ---------------------------------------------------
    def _run(self) -> None:
        try:
            profile = settings.PROFILE_DISPATCHER.get()
            if profile is not None:
                import cProfile

                cProfile.runctx("self._loop()", globals(), {"self": self}, str(profile))
            else:
                self._loop()
        except BaseException as exc:  # surface to the program thread
            self._error = exc
            failed = [
                (e.ref, False, exc) for w in self.workers for b in w.batches.values() for e in b
            ]
            failed += [(e.ref, False, exc) for e in self.pending]
            resolve_many(failed)
        finally:
            for w in self.workers:
                if not w.alive:
                    continue
                try:
                    self.comm.send(("S",), dest=w.rank, tag=TAG_STOP)
                except Exception:  # pragma: no cover - best effort at shutdown
                    w.alive = False
            self._goodbyes()

    def _busy(self) -> bool:
        return bool(self.pending or self.blocked or any(w.batches for w in self.workers if w.alive))

    def _check_workers(self) -> None:
        """Declare lost any worker silent for longer than the timeout, failing what it held."""
        now = time.monotonic()
        for src in self._drain(TAG_HEARTBEAT):
            self.workers[src - 1].last_seen = now
        for w in self.workers:
            if w.alive and now - w.last_seen > self._timeout:
                self._lose(w, now - w.last_seen)
        if self.pending and not any(w.alive for w in self.workers):
            err = WorkerLostError("no worker rank is left to run tasks: " + "; ".join(self.lost))
            items = [(e.ref, False, err) for e in self.pending]
            self.pending.clear()
            resolve_many(items)

    def _drain(self, tag: int) -> list[int]:
        """Receive every waiting heartbeat/goodbye (plain MPI messages); return their sources."""
        world = self.mpi.COMM_WORLD
        status = self.mpi.Status()
        sources: list[int] = []
        while True:
            msg = world.improbe(self.mpi.ANY_SOURCE, tag, status)
            if msg is None:
                return sources
            msg.recv()
            sources.append(status.Get_source())

    def _goodbyes(self, timeout: float = 10.0) -> None:
        """After STOP: wait for each live worker's goodbye, draining heartbeats meanwhile."""
        waiting = {w.rank for w in self.workers if w.alive}
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            self._drain(TAG_HEARTBEAT)
            waiting -= set(self._drain(TAG_BYE))
            time.sleep(0.001)
        self._drain(TAG_HEARTBEAT)
        if waiting:
            self.abandoned = True  # someone did not answer: do not risk MPI_Finalize

    def _lose(self, w: _Worker, silent: float) -> None:
        w.alive = False
        held = [e for b in w.batches.values() for e in b if not e.ref.done()]
        names = sorted({e.task.name for e in held})
        ids = ", ".join(e.ref.task_id for e in held[:20]) + (" ..." if len(held) > 20 else "")
        text = (
            f"worker rank {w.rank} on host {w.host} (pid {w.pid}) stopped responding "
            f"(no heartbeat for {silent:.0f} s: killed, crashed or out of memory?) while holding "
            f"{len(held)} task(s) [{ids}] of {', '.join(names) or 'no function'}"
        )
        self.lost.append(text)
        print(f"qshpc: {text}", flush=True)
        self._flush()
        resolve_many([(e.ref, False, _lost_error(e, w, text)) for e in held])
        w.batches.clear()
        w.sends.clear()

    def _loop(self) -> None:
        status = self.mpi.Status()
        sleep = 0.0
        while True:
            progressed = False
            while True:
                msg = self.comm.improbe(self.mpi.ANY_SOURCE, TAG_RESULT, status)
                if msg is None:
                    break
                self._on_result(status.Get_source(), msg.recv())
                progressed = True
            if (self._resolve or self._resolve_ok) and (
                not progressed or time.monotonic() - self._last_commit > _COMMIT_S
            ):
                self._flush()
            if self.blocked:
                progressed |= self._unblock()
            if self.pending:
                progressed |= self._assign()
            for w in self.workers:
                if w.sends:
                    w.sends = [r for r in w.sends if not r.test()[0]]
            if time.monotonic() > self._next_check:
                self._check_workers()
                self._next_check = time.monotonic() + 0.5
            if self._stop_now or (
                self._stop and not self._busy() and not self._resolve and not self._resolve_ok
            ):
                if self._stop_now:
                    self._flush()
                    return
                for w in self.workers:
                    if w.alive:
                        for r in w.sends:
                            r.wait()
                return
            if progressed:
                sleep = 0.0
                continue
            sleep = min(self._sleep_cap(), sleep * 2 or 20e-6)
            # Nothing moved (no result in, every worker full or nothing queued):
            # sleep, or this thread spins a core the workers need. A new call
            # wakes it only when a worker has room for it: waking it for every
            # call of a burst would cost a thread switch per call.
            self._idle = any(w.alive and len(w.batches) < _IN_FLIGHT for w in self.workers)
            self._wake.wait(sleep)
            self._wake.clear()
            self._idle = False

    def _flush(self) -> None:
        self.session.sync()
        items, self._resolve = self._resolve, []
        chunks, self._resolve_ok = self._resolve_ok, []
        resolve_values(chunks)
        resolve_many(items)
        self._last_commit = time.monotonic()

    def _unblock(self) -> bool:
        ready = [e for e in self.blocked if all(d.done() for d in e.deps)]
        if not ready:
            return False
        self.blocked = [e for e in self.blocked if e not in ready]
        for e in ready:
            try:
                args = substitute(e.args, _value_of)
                kwargs = substitute(e.kwargs, _value_of)
            except BaseException as exc:
                resolve_many([(e.ref, False, exc)])
                continue
            if self._prepare(e, args, kwargs):
                self.pending.append(e)
        return True

    def _assign(self) -> bool:
        sent = False
        n = len(self.workers)
        for w in self.workers:
            if not self.pending:
                break
            if not w.alive or len(w.batches) >= _IN_FLIGHT:
                continue
            size = self._batch_size(len(self.pending), n)
            batch = []
            try:
                for _ in range(size):
                    batch.append(self.pending.popleft())
            except IndexError:  # rank 0's program thread took the last ones
                if not batch:
                    break
            funcs = []
            objs = []
            known = w.funcs
            fn_ids = [e.fn_id for e in batch]
            for fn_id in set(fn_ids) - known:
                known.add(fn_id)
                blob, task = self._fn_blobs[fn_id]
                funcs.append((fn_id, blob, task.name, task.digest))
            if self._objects:
                for e in batch:
                    for oid in e.objs:
                        if oid not in w.objs:
                            w.objs.add(oid)
                            objs.append((oid, self._objects[oid]))
            attempts = [e.attempt for e in batch]
            keys = [e.key for e in batch]
            columns = (
                [e.ref.task_id for e in batch],
                fn_ids[0] if fn_ids.count(fn_ids[0]) == len(fn_ids) else fn_ids,
                [e.payload for e in batch],
                None if attempts.count(1) == len(attempts) else attempts,
                [e.submitted for e in batch],
                None if keys.count(None) == len(keys) else keys,
            )
            self._last_size = len(batch)
            self._last_send = time.monotonic()
            bid = next(self._batch_ids)
            w.batches[bid] = batch
            if self._dispatch_log is not None:
                from qshpc.jobs.postmortem import compress_ids

                line = f"{w.rank} {compress_ids([e.ref.task_id for e in batch])}\n"
                os.write(self._dispatch_log, line.encode())
            mark_running(e.ref for e in batch)
            w.sends.append(
                self.comm.isend(
                    ("B", bid, funcs, objs, context.job_seed(), *columns),
                    dest=w.rank,
                    tag=TAG_BATCH,
                )
            )
            sent = True
        return sent

    def _batch_size(self, pending: int, workers: int) -> int:
        """Guided self-scheduling with a floor.

        Guided: ``pending / (2 * workers)``, so a lone call leaves at once and a
        burst leaves in big batches. The floor keeps the tail of a burst of tiny
        calls from dissolving into one-call batches, each costing a round trip:
        a batch should hold at least ``_MIN_BATCH_S`` of measured work (or the
        remaining calls split evenly), which for calls of 2 ms or more is one call.
        """
        size = -(-pending // (2 * workers))
        if self._mean_task_s > 0:
            floor = min(_MAX_BATCH, int(_MIN_BATCH_S / self._mean_task_s))
            size = max(size, min(floor, -(-pending // workers)))
        return min(_MAX_BATCH, max(1, size))

    def _sleep_cap(self) -> float:
        """The longest back-off sleep: short only while a batch of short calls is due back.

        A batch out for longer than 4 times its expected time plus 5 ms (calls not
        as short as the last ones were) gets the full back-off, so that waiting
        for long calls stays cheap.
        """
        if self._mean_task_s <= 0 or not any(w.batches for w in self.workers):
            return _MAX_SLEEP_S
        expected = self._mean_task_s * self._last_size
        if time.monotonic() - self._last_send > 4 * expected + 0.005:
            return _MAX_SLEEP_S
        return min(_MAX_SLEEP_S, max(_MIN_SLEEP_S, expected / 4))

    def _on_result(self, source: int, data: Any) -> None:
        _, bid, first, values, chunk, failures, final = data
        w = self.workers[source - 1]
        w.last_seen = time.monotonic()
        if not w.alive:
            return
        batch = w.batches[bid] if final is False else w.batches.pop(bid)
        n = len(values)
        if not n:
            return
        rows = chunk.rows
        span = float((rows["finished"] - rows["started"]).mean())
        self._mean_task_s = 0.7 * self._mean_task_s + 0.3 * span
        entries = batch[first : first + n]
        self.session.record_chunk(chunk, n - len(failures), len(failures))
        if not failures:
            self._resolve_ok.append(([e.ref for e in entries], values))
            return
        bad = {i for i, _, _ in failures}
        ok = [i for i in range(n) if i not in bad]
        self._resolve_ok.append(([entries[i].ref for i in ok], [values[i] for i in ok]))
        for i, error, exc_type in failures:
            e = entries[i]
            if e.attempt <= e.task.retries:
                e.attempt += 1
                self.pending.appendleft(e)
                continue
            name = e.task.name
            out = Outcome(e.ref.task_id, name, e.attempt, False, None, error, exc_type)
            self._resolve.append((e.ref, False, out.task_error(w.rank, w.host)))


def _lost_error(e: _Entry, w: _Worker, text: str) -> BaseException:
    from qshpc.errors import TaskError

    return TaskError(
        e.ref.task_id, e.task.name, w.rank, w.host, f"WorkerLostError: {text}\n", "WorkerLostError"
    )


_PLAIN = frozenset((int, float, str, bool, complex, bytes, type(None)))


def _plain(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """True for positional immutable plain values only (no snapshot, no reference to find)."""
    if kwargs:
        return False
    for a in args:
        if type(a) not in _PLAIN:
            return False
    return True


def _seed_of(task_id: str) -> int | None:
    seed = context.job_seed()
    return None if seed is None else derive_seed(seed, task_id)


def _value_of(ref: Any) -> Any:
    if isinstance(ref, TaskRef):
        return ref.result()
    return ref
