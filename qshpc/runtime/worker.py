"""The loop of a worker rank: receive batches, run the calls, send results back.

Workers never run the program's top-level code: task functions arrive by
value. A worker waits with an ``improbe`` and a short sleep back-off rather
than a blocking receive, because MPICH's blocking receives spin on a core.
It talks to rank 0 through a :class:`~qshpc.runtime.protocol.Wiring` (mpi4py's
under ``qshpc run``; a loopback in the unit tests, where workers are threads).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qshpc import _timeline, settings
from qshpc.program import backend
from qshpc.program.refs import ObjectRef
from qshpc.runtime.batchrun import BatchRunner
from qshpc.runtime.forkserver import program_needs as program_needs
from qshpc.runtime.protocol import (
    TAG_BATCH,
    TAG_BYE,
    TAG_CUT,
    TAG_FLUSH,
    TAG_GONE,
    TAG_HEARTBEAT,
    TAG_LEAVE,
    TAG_STOP,
    Transport,
    Wiring,
)
from qshpc.runtime.results import Results
from qshpc.runtime.sender import Sender
from qshpc.runtime.stopsig import stops_on_sigint
from qshpc.runtime.tidy import Tidy
from qshpc.task import context

_MAX_SLEEP_S = 0.002
#: The probes a worker makes when it looks for rank 0's CUT (between calls, before a batch).
#: MPICH's ``MPI_Improbe`` matches the messages its progress engine already took in, and
#: only then moves it on, by one message: the first probe after a long call (no MPI call
#: for seconds) misses a CUT that came meanwhile, and every message queued ahead of it
#: (a batch is 2 or more: pkl5's header, the pickle, its out-of-band buffers) takes one
#: more probe. With one probe a check, a worker running 3 s calls saw the CUT only after 3
#: or more further calls, past the 2 s the job's end waits (hunt23a; the loopback of the
#: unit tests has no such lag). A probe that finds nothing costs ~2 us.
CUT_PROBES = 16
#: After SIGINT/SIGTERM, how long a worker waits for rank 0's STOP before it leaves by itself.
STOP_GRACE_S = 30.0


class _StopSignals:
    """SIGINT/SIGTERM on a worker: rank 0 ends the job; the worker does not die first.

    ``mpiexec`` (Ctrl-C, the ``qshpc run`` launcher) and Slurm (scancel) signal
    every rank at once. A worker that died of it would make the MPI launcher
    kill rank 0 before it stored CANCELED, and a Ctrl-C raising
    KeyboardInterrupt inside a task would record it as that task's failure. So
    the first signal only starts a clock: the worker goes on until rank 0's STOP
    and leaves as usual, or, if no STOP came within ``STOP_GRACE_S`` (rank 0
    gone or wedged), leaves by itself. A second signal ends it at once.
    """

    def __init__(self) -> None:
        self.first: int | None = None
        self.old: dict[int, Any] = {}
        self.timer: threading.Timer | None = None

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # a loopback worker (unit tests): the process's signals are not its own
        for s in (signal.SIGINT, signal.SIGTERM):
            if s == signal.SIGINT and not stops_on_sigint():
                continue  # ignored where this rank started: kept so
            self.old[s] = signal.signal(s, self._on_signal)

    def restore(self) -> None:
        """Default handling again (a worker in MPI_Finalize must die of the launcher's SIGTERM).

        The clock stops: the worker said goodbye, and rank 0 may take long to
        finalize the store before it joins MPI_Finalize.
        """
        if self.timer is not None:
            self.timer.cancel()
        for s in self.old:
            signal.signal(s, signal.SIG_DFL)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.first is not None:
            os._exit(128 + signum)
        self.first = signum
        self.timer = threading.Timer(STOP_GRACE_S, os._exit, args=(128 + signum,))
        self.timer.daemon = True
        self.timer.start()


_signals: list[_StopSignals] = []  # this worker's, from its start-up to its goodbye


def catch_stop_signals() -> _StopSignals:
    """Handle SIGINT/SIGTERM as :class:`_StopSignals` says, from now until the goodbye (once).

    A worker calls it first thing after ``MPI_Init`` (:mod:`qshpc.runtime.start`), so a
    Ctrl-C during its imports does not kill it either; :func:`serve` calls it too.
    """
    if not _signals:
        from qshpc.runtime.program_main import cancel_signal

        signals = _StopSignals()
        signals.install()
        _signals.append(signals)
        early = cancel_signal()  # remembered since the rank's first line (qshpc.cli.main)
        if early is not None and signals.old:
            signals._on_signal(early, None)  # the clock starts: rank 0 cancels the job
    return _signals[0]


#: Seconds between a worker's looks for rank 0's LEAVE (its heartbeat thread's, while a call runs).
LEAVE_POLL_S = 0.1
#: The longest a worker told to LEAVE waits for its result sends in flight before its goodbye.
LEAVE_SENDS_S = 30.0


def _heartbeat(beat: Heartbeat) -> None:
    """Tell rank 0 this rank is alive, even while a long task runs; leave when rank 0 says.

    Non-blocking sends, at most one in flight: a rank 0 that is busy (or gone)
    must never block this thread, or the worker's shutdown with it. Between
    heartbeats it looks for rank 0's LEAVE (:data:`TAG_LEAVE`) every
    :data:`LEAVE_POLL_S`: the job ended while this worker's main thread still
    runs a call, and only this thread can answer (:meth:`Heartbeat.leave_now`).
    """
    world, stop, pending = beat.world, beat._stop, beat.pending
    interval = settings.HEARTBEAT_S.get()
    step = min(interval, LEAVE_POLL_S)
    next_beat = time.monotonic() + interval
    while not stop.wait(step):
        try:
            msg = beat.comm.improbe(0, TAG_LEAVE)
            if msg is not None:
                beat.leave_now(msg.recv())
                return
            now = time.monotonic()
            if now < next_beat:
                continue
            next_beat = now + interval
            if beat.neighbours:
                beat.tell_gone()
            if not pending:
                pending.append(world.isend(None, dest=0, tag=TAG_HEARTBEAT))
            elif pending[0].Test():
                pending[0] = world.isend(None, dest=0, tag=TAG_HEARTBEAT)
        except Exception:
            return


class Heartbeat:
    """A worker's heartbeats to rank 0, sent by a thread from start-up to goodbye.

    Started before the worker imports what tasks need, so rank 0 (which no
    longer waits for the workers to be ready) sees a slow start as alive.
    Only under ``MPI_THREAD_MULTIPLE``; otherwise it does nothing.

    The same thread answers rank 0's LEAVE: the job ended (the program returned
    while this worker's call still ran, say) and rank 0 recorded the call
    abandoned. Under ``srun`` nothing else would end this rank: it ran the call
    to its end, then sent its result to a rank 0 that was gone (MPICH aborted
    with an error stack, the Slurm job FAILED) or waited ~30 s for its lock to
    lapse (review44 F1). See :meth:`leave_now`.

    Args:
        wiring: How this worker reaches rank 0.
        on_leave: What ends the rank after its goodbye at a LEAVE (given ``why``,
            rank 0's words, and whether the result of the call rank 0 named was
            sent after all); None: only :attr:`left` is set, and the serve loop
            returns after the call (the loopback's worker threads).
    """

    def __init__(self, wiring: Wiring, on_leave: Callable[[str, bool], None] | None = None) -> None:
        self.world = wiring.world
        self.comm = wiring.comm
        self.any_tag = wiring.any_tag
        self.on_leave = on_leave
        self.pending: list[Any] = []
        #: ``rank -> (pid, start ticks)``: the other workers of this host, watched each
        #: heartbeat (:mod:`qshpc.runtime.gone`); set once the ranks are known.
        self.neighbours: dict[int, tuple[int, int]] = {}
        self.told: list[Any] = []  # the sends of those reports (waited for with the heartbeat's)
        #: The serve loop's result sends: completed (or waited for) before a goodbye at LEAVE.
        self.sender: Sender | None = None
        #: Set once this rank said goodbye at rank 0's LEAVE: the serve loop says none.
        self.left = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if wiring.multithreaded:
            self._thread = threading.Thread(target=_heartbeat, args=(self,), daemon=True)
            self._thread.start()

    def tell_gone(self) -> None:
        """Tell rank 0 of each neighbour whose process ended (once each): it loses it now."""
        from qshpc.runtime.gone import ended

        for rank, (pid, ticks) in list(self.neighbours.items()):
            if ended(pid, ticks):
                del self.neighbours[rank]
                self.told.append(self.world.isend(("G", rank), dest=0, tag=TAG_GONE))

    def leave_now(self, message: Any) -> None:
        """Rank 0's LEAVE: say goodbye for this rank now, then end it (``on_leave``).

        Called by the heartbeat thread (the call still runs), or by the serve
        loop when the LEAVE reached it first (the call had just ended: its probe
        takes any tag); then the heartbeat thread is stopped first, so that it
        makes no MPI call after this one. What rank 0 still sent this rank (a
        batch queued behind the call, its CUT) is received, so that no send of
        rank 0's is left waiting when it finalizes MPI; the result sends in
        flight complete (a call that ended as LEAVE came: rank 0 receives its
        result, review47 F1) and none starts after; then the goodbye, and the
        last heartbeat's completion, as :func:`serve` does at its end.
        """
        why = str(message[1]) if isinstance(message, tuple) and len(message) > 1 else ""
        task = message[2] if isinstance(message, tuple) and len(message) > 2 else None
        self.left.set()
        self.stop()  # (from the heartbeat thread itself: only flags it)
        try:
            while (msg := self.comm.improbe(0, self.any_tag)) is not None:
                msg.recv()
            if self.sender is not None:  # rank 0 receives them while it awaits the goodbye
                self.sender.close(LEAVE_SENDS_S)
            self.world.send(None, dest=0, tag=TAG_BYE)
            for req in self.pending + self.told:
                req.Wait()
        except Exception:  # rank 0 is gone: nothing left to tell it
            pass
        sent = task is not None and self.sender is not None and self.sender.sent(str(task))
        if self.on_leave is not None:
            self.on_leave(why or "the job ended", sent)

    def stop(self) -> None:
        """Stop the thread (its last send may still be in flight: see ``pending``)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()


def preload(program: Path | None = None) -> None:
    """Import what tasks will need while rank 0 is still starting the program.

    ``QSHPC_PRELOAD`` names the modules (default ``auto``: what
    :func:`program_needs` finds in ``program``; qiskit and Aer together cost
    about 1.5 s of imports on a cold start); an empty value turns it off. A
    module that is missing, or fails to import, is skipped: tasks that need it
    will say so. With
    qiskit_aer, the default simulator and pass manager are built too
    (``qshpc.aer.simulator.warm``).
    """
    import importlib

    from qshpc.runtime.gctune import uncollected

    names = settings.PRELOAD.get()
    if names == ("auto",):
        names = program_needs(program) if program is not None else ("qiskit", "qiskit_aer")
    with uncollected():
        for name in names:
            try:
                importlib.import_module(name)
            except (Exception, SystemExit):  # missing, or broken (an AttributeError of a
                # version mismatch, a module's own sys.exit at import: the worker died of it,
                # review33 F1): a task that needs it says so; on c590a0b the worker hung in
                # MPI_Finalize
                pass
    if "qiskit_aer" in names and "qiskit_aer" in sys.modules:
        try:
            import qshpc.aer.engine  # noqa: F401  (what Sampler.run imports at its first call)
            from qshpc.aer.simulator import warm

            warm()
        except Exception:  # a task that needs the simulator will report it
            pass


def serve(
    wiring: Wiring,
    info: context.RankInfo | None = None,
    heartbeat: Heartbeat | None = None,
    at_first_batch: Callable[[], None] | None = None,
) -> None:
    """Run tasks until rank 0 says stop, then say goodbye so rank 0 can finalize cleanly.

    Args:
        wiring: How this worker reaches rank 0.
        info: This rank's place (default: the process's ``rank_info()``).
        heartbeat: The heartbeats started with the worker (default: start them now).
        at_first_batch: Called once, when the first batch arrives, before its
            calls run (the preload a job with the cache on defers: a rerun whose
            calls all hit sends no batch, and its workers import nothing).
    """
    signals = catch_stop_signals()
    beat = heartbeat or Heartbeat(wiring)
    info = info or context.rank_info()
    job = context.worker_job()
    watch = None
    if job is not None:
        from qshpc.runtime.orphan import Rank0Watch

        watch = Rank0Watch(Path(job), info.rank)  # srun keeps a worker whose rank 0 died
    try:
        _serve(wiring, info, at_first_batch, beat)
    finally:
        if watch is not None:
            watch.stop()  # before the goodbye, after which rank 0 releases its lock
        beat.stop()
    if beat.left.is_set():  # the goodbye was said at rank 0's LEAVE
        while beat.on_leave is not None:  # its thread ends this process: no MPI call here
            time.sleep(1.0)
        signals.restore()
        _signals.clear()
        return
    # Rank 0 drains heartbeats until every worker's goodbye has arrived, so the
    # last heartbeat completes and nothing is left in flight at MPI_Finalize.
    wiring.world.send(None, dest=0, tag=TAG_BYE)
    for req in beat.pending + beat.told:
        req.Wait()
    signals.restore()
    _signals.clear()


def _serve(
    wiring: Wiring,
    info: context.RankInfo,
    at_first_batch: Callable[[], None] | None = None,
    beat: Heartbeat | None = None,
) -> None:
    import cloudpickle

    funcs: dict[int, tuple[Any, str, bytes]] = {}  # fn_id -> (function, name, digest)
    inline = backend.InlineBackend(nested=True, rank=info.rank)
    backend.activate(inline)
    # One table: objects rank 0 sent and those tasks put here (ids name their rank).
    objects = inline.objects
    comm, status, any_tag = wiring.comm, wiring.status(), wiring.any_tag
    left = beat.left if beat is not None else None
    sleep = 0.0
    # Ranks outnumber cores: an idle worker polling fast steals rank 0's CPU.
    crowded = info.crowded()  # the union of the host ranks' masks (Slurm binds each rank)
    first_sleep = settings.IDLE_SLEEP_S.get()
    if first_sleep is None:
        first_sleep = 5e-4 if crowded else 2e-5
    sender = Sender(comm)
    if beat is not None:
        beat.sender = sender
    runner = BatchRunner(info)
    cache: Any = None  # this worker's JobCache, made at the first batch with cached calls
    shipped: Any = None  # whether this worker's modules hold what each function's key read
    cut_status = wiring.status()
    cut = [False]  # rank 0 sent CUT: the job is ending, start no more calls

    def is_cut() -> bool:
        """Has rank 0 said CUT? (Checked between calls, every _PARTIAL_S at most.)"""
        if left is not None and left.is_set():
            return True  # said goodbye at rank 0's LEAVE: no further call, no MPI call
        if not cut[0]:
            for _ in range(CUT_PROBES):  # one probe misses a CUT that came during a call
                msg = comm.improbe(0, TAG_CUT, cut_status)
                if msg is not None:
                    msg.recv()
                    cut[0] = True
                    break
        return cut[0]

    def lookup(ref: Any) -> Any:
        return inline.get_object(ref.obj_id) if type(ref) is ObjectRef else ref

    tidy = Tidy()  # the worker's streams and signal handlers, put back after a task's changes
    warned: set[str] = set()
    first = True
    try:
        while True:
            if left is not None and left.is_set():
                return  # said goodbye at rank 0's LEAVE: no further MPI call from this thread
            msg = comm.improbe(0, any_tag, status)
            if msg is None and sleep:
                # After a sleep, MPICH's first probe only takes in what came meanwhile (see
                # CUT_PROBES): a batch sent during the sleep was seen one sleep later, up to
                # 2 ms more on every round trip to an idle worker (hunt23a: 2.2-3.3 ms a
                # get() of one call, 1.2-1.5 ms with this second look).
                msg = comm.improbe(0, any_tag, status)
            if msg is None:
                if sender.reqs:
                    sender.prune()
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
            if tag == TAG_CUT:
                cut[0] = True
                continue
            if tag == TAG_LEAVE:  # (the call it was sent for had ended: see Heartbeat)
                if beat is not None:
                    beat.leave_now(data)  # ends this process when the rank is an MPI one
                return
            assert tag == TAG_BATCH
            if first:
                _timeline.mark("first batch")
                first = False
                if at_first_batch is not None:
                    at_first_batch()
            _, bid, new_funcs, new_objs, job_seed, *columns = data
            # Sent before rank 0 said CUT: none of its calls runs. The CUT may still wait
            # behind this batch in the queue (sent after it): look for it now, or the batch's
            # first call started after the cancel, and rank 0 stopped it unfinished at the
            # end of its grace (review26 #2: tasks started 2.3 s after job.stop()).
            if cut[0] or is_cut():
                submitted, attempts = columns[4], columns[3]
                sender.send(Results(info.rank, info.host), bid, 0, submitted, attempts, True)
                continue
            if job_seed != context.job_seed():
                context.set_job_seed(job_seed)  # nested calls derive their seeds too
            for fn_id, blob, name, digest in new_funcs:
                funcs[fn_id] = (_function(cloudpickle.loads, blob, name, info), name, digest)
            for oid, blob, buffers in new_objs:
                objects[oid] = backend.received(blob, buffers)
            cached = columns[6]
            if cached is not None and cache is None:
                cache = _job_cache(cached[0])
                if inline.cache is not None:  # opened by a nested call of a cache=True task
                    inline.cache.flush(timeout=CACHE_FLUSH_S)
                inline.cache = cache  # nested calls of cached functions use it too
            store = cache.store if cached is not None else None
            if cached is not None and cached[1] is not None:  # stored only where keyed alike
                if shipped is None:
                    from qshpc.cache.shipped import ShippedDigests

                    shipped = ShippedDigests()
                sent = cached[0].get("bindings") or {}
                ckeys = shipped.keys(cached[1], columns[1], funcs, sent, cached[0].get("by_call"))
                if ckeys is not cached[1]:
                    columns[6] = (cached[0], ckeys)
            runner.run(sender, bid, columns, funcs, lookup if objects else None, store, is_cut)
            if tidy.changed():
                _tidy_after(tidy, info, funcs, columns[1], warned)
    finally:
        if left is None or not left.is_set():  # (after a LEAVE, rank 0 takes nothing more)
            sender.flush(timeout=0.5)
            # (inline.cache: the job's, or one a nested call of a cache=True task opened.)
            if inline.cache is not None:
                finish_cache(inline.cache, wiring.world)


def _function(loads: Callable[[bytes], Any], blob: bytes, name: str, info: context.RankInfo) -> Any:
    """The task function ``blob`` holds; when it cannot be unpickled here, a stand-in whose
    every call fails with why, so that the worker serves on.

    Unpickling it also imports the modules it and the globals it reads need, and
    rebuilds those globals: a module found through the program's own ``sys.path``
    change, or a global whose ``__setstate__`` raises off rank 0, made the worker
    die with a traceback outside any task (review28 F6: the job FAILED, or under
    Slurm each rank was lost for want of a heartbeat 30 s later).
    """
    try:
        return loads(blob)
    except Exception as exc:
        return _Unloadable(_unloadable_text(name, info, exc), exc)


class _Unloadable:
    """A task function that could not be unpickled on this worker: each call raises why."""

    def __init__(self, text: str, exc: Exception) -> None:
        self.text = text
        self.exc = exc

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from qshpc.errors import SerializationError

        raise SerializationError(self.text) from self.exc


def _unloadable_text(name: str, info: context.RankInfo, exc: Exception) -> str:
    """Why the task function ``name`` cannot run on this worker, and what to do."""
    if isinstance(exc, ImportError):
        hint = (
            "a module it (or a global it reads) needs cannot be imported on the worker; "
            "workers do not see the program's own changes to sys.path (sys.path.insert in "
            "the program): put that folder on PYTHONPATH before the job starts, or install "
            "the package"
        )
    else:
        hint = (
            "a global it reads cannot be rebuilt on a worker (a handle, a device, a "
            "__setstate__ that works only in the program's process): make it inside the "
            "task, or pass plain data as an argument"
        )
    return (
        f"the task function {name} cannot be unpickled on rank {info.rank} (host {info.host}): "
        f"{type(exc).__name__}: {exc}; {hint}"
    )


def _tidy_after(
    tidy: Tidy, info: context.RankInfo, funcs: dict[int, tuple[Any, str, bytes]], fn_ids: Any,
    warned: set[str],
) -> None:  # fmt: skip
    """A task changed the worker's streams, signal handlers or alarm: put them back, say so once.

    (:mod:`qshpc.runtime.tidy`: an alarm left armed fired in this loop and the
    worker stopped serving; a ``sys.stderr = None`` made it exit 1 at the end.)
    """
    changed = [c for c in tidy.restore() if c not in warned]
    if not changed:
        return
    warned.update(changed)
    ids = [fn_ids] if type(fn_ids) is int else fn_ids
    names = ", ".join(sorted({funcs[i][1] for i in ids if i in funcs}))
    print(
        f"qshpc: warning: rank {info.rank} on host {info.host}: a task of {names} left "
        f"{', '.join(changed)} set; it was put back after the task's batch, so that the "
        "worker serves on (undo such changes in the task: try/finally, signal.alarm(0))",
        file=sys.stderr,
        flush=True,
    )


#: The longest a worker waits for an earlier cache's writes when the job's cache opens.
CACHE_FLUSH_S = 5.0
#: Seconds between a worker's reports of its last cache writes to rank 0.
FLUSH_REPORT_S = 1.0


def finish_cache(cache: Any, world: Transport) -> bool:
    """Before the goodbye: write every result still queued for the cache, telling rank 0.

    Nothing computed is left out of the cache because the job ends: the wait
    lasts while the writes progress (:data:`qshpc.cache.jobcache.STALL_S`
    without one gives up), and rank 0 waits for this worker's goodbye as long
    as its reports (:data:`TAG_FLUSH`) come, saying how many are left. A
    Ctrl-C ends this rank as at any time (:class:`_StopSignals`); rank 0 then
    stops waiting too.

    Returns:
        True when every queued result was written (or failed on its own).
    """
    sent: list[Any] = []
    t0 = time.monotonic()
    told = [False]

    def tell(left: int, waited: float) -> bool:
        told[0] = True
        if sent:
            sent[:] = [r for r in sent if not r.Test()]
        sent.append(world.isend(("F", left, int(cache.written), waited), dest=0, tag=TAG_FLUSH))
        return False

    done = cache.drain(tell, every=FLUSH_REPORT_S)
    if told[0]:
        left = cache.left
        tell(left, time.monotonic() - t0)  # the last report: 0 left, or what is given up
        if left:
            from qshpc.cache.jobcache import STALL_S

            print(
                f"qshpc: cache: rank {context.rank_info().rank}: {left:,} result(s) not cached: "
                f"no write ended for {STALL_S:.0f} s",
                file=sys.stderr,
                flush=True,
            )
    return bool(done)


def _job_cache(info: dict[str, Any]) -> Any:
    from qshpc.cache.jobcache import CacheConfig, JobCache

    return JobCache(CacheConfig.from_dict(info.get("config")), info.get("job"), worker=True)
