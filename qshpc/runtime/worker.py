"""The loop of a worker rank: receive batches, run the calls, send results back.

Workers never run the program's top-level code: task functions arrive by
value. A worker waits with an ``improbe`` and a short sleep back-off rather
than a blocking receive, because MPICH's blocking receives spin on a core.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from typing import Any

from qshpc.refs import ObjectRef, substitute
from qshpc.runtime import backend, context
from qshpc.runtime.execute import Outcome, run_task
from qshpc.runtime.mpi import (
    TAG_BATCH,
    TAG_BYE,
    TAG_HEARTBEAT,
    TAG_RESULT,
    TAG_STOP,
    heartbeat_interval,
)

_PARTIAL_S = 0.25  # send finished results of a long batch at least this often
_MAX_SLEEP_S = 0.002


def _row(pos: int, o: Outcome) -> tuple[Any, ...]:
    return (pos, o.ok, o.value, o.error, o.exc_type, o.started, o.finished, o.provenance)


def _send(comm: Any, bid: int, rows: list[tuple[Any, ...]], final: bool) -> None:
    try:
        comm.send(("R", bid, rows, final), dest=0, tag=TAG_RESULT)
        return
    except Exception:
        pass
    # Some return value cannot be pickled: find it, report it as the task's error.
    fixed = []
    for row in rows:
        try:
            pickle.dumps(row, protocol=5)
            fixed.append(row)
        except Exception:
            try:
                import cloudpickle

                cloudpickle.dumps(row[2], protocol=5)
                fixed.append(row)
                continue
            except Exception as exc:
                err = (
                    f"SerializationError: the return value of this task ({type(row[2]).__name__}) "
                    f"cannot be serialized: {exc}. Return plain data, numpy arrays or Qiskit "
                    "objects.\n"
                )
            fixed.append((row[0], False, None, err, "SerializationError", row[5], row[6], row[7]))
    comm.send(("R", bid, fixed, final), dest=0, tag=TAG_RESULT)


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

    ``QSHPC_PRELOAD`` (default ``qiskit,qiskit_aer``: about 1.5 s of imports)
    names the modules; an empty value turns it off. A module that is missing
    is skipped: tasks that need it will say so.
    """
    import importlib

    for name in os.environ.get("QSHPC_PRELOAD", "qiskit,qiskit_aer").split(","):
        if name.strip():
            try:
                importlib.import_module(name.strip())
            except ImportError:
                pass


def serve(mpi: Any, comm: Any) -> None:
    """Run tasks until rank 0 says stop, then say goodbye so rank 0 can finalize cleanly."""
    preload()
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

    funcs: dict[int, Any] = {}
    objects: dict[int, Any] = {}
    inline = backend.InlineBackend()
    backend.activate(inline)
    status = mpi.Status()
    sleep = 0.0
    # Ranks outnumber cores: an idle worker polling fast steals rank 0's CPU.
    info = context.rank_info()
    crowded = info.local_size > len(os.sched_getaffinity(0))
    first_sleep = float(os.environ.get("QSHPC_IDLE_SLEEP_S", "5e-4" if crowded else "2e-5"))

    def lookup(ref: Any) -> Any:
        return objects[ref.obj_id] if isinstance(ref, ObjectRef) else ref

    while True:
        msg = comm.improbe(0, mpi.ANY_TAG, status)
        if msg is None:
            sleep = min(_MAX_SLEEP_S, sleep * 2 or first_sleep)
            time.sleep(sleep)
            continue
        sleep = 0.0
        tag = status.Get_tag()
        data = msg.recv()
        if tag == TAG_STOP:
            return
        assert tag == TAG_BATCH
        _, bid, new_funcs, new_objs, tasks = data
        for fn_id, blob in new_funcs:
            funcs[fn_id] = cloudpickle.loads(blob)
        for oid, obj in new_objs:
            objects[oid] = obj
        rows: list[tuple[Any, ...]] = []
        last = time.monotonic()
        for pos, (task_id, fn_id, name, payload, seed, attempt) in enumerate(tasks):
            try:
                args, kwargs = pickle.loads(payload)
                if objects:
                    args, kwargs = substitute(args, lookup), substitute(kwargs, lookup)
            except Exception as exc:
                rows.append(_row(pos, _failed(task_id, name, attempt, exc)))
                continue
            out = run_task(funcs[fn_id], args, kwargs, task_id, name, seed, attempt)
            rows.append(_row(pos, out))
            if time.monotonic() - last > _PARTIAL_S and pos < len(tasks) - 1:
                _send(comm, bid, rows, False)
                rows = []
                last = time.monotonic()
        _send(comm, bid, rows, True)


def _failed(task_id: str, name: str, attempt: int, exc: BaseException) -> Outcome:
    import traceback

    now = time.time()
    return Outcome(
        task_id,
        name,
        attempt,
        False,
        error="".join(traceback.format_exception(exc)),
        exc_type=type(exc).__name__,
        started=now,
        finished=now,
    )
