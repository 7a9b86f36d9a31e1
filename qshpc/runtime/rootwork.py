"""Rank 0 running queued calls itself while the program waits in ``get`` (``QSHPC_ROOT_WORKS``).

Off by default: measured (benchmarks/root_works.py), a program thread running
tiny calls starves the dispatcher thread of the GIL. ``1`` always helps;
``auto`` helps only when calls take over 2 ms on average and rank 0 has a
core of its own. The program thread takes calls from the end of the queue the
dispatcher thread does not send from.
"""

from __future__ import annotations

import os
import pickle
import time
from typing import TYPE_CHECKING, Any

from qshpc.program.backend import task_key, task_ranks
from qshpc.program.refs import (
    TaskRef,
    mark_running,
    requeue,
    resolve_many,
    substitute_top,
    wait_all,
)
from qshpc.runtime.pacing import COMMIT_S
from qshpc.runtime.results import writeable
from qshpc.task import context
from qshpc.task.execute import run_task
from qshpc.task.payload import loads_keyed
from qshpc.task.seeding import derive_seed

if TYPE_CHECKING:
    from qshpc.runtime.intake import Intake
    from qshpc.runtime.pacing import Pace


class RootWork:
    """Rank 0's program thread as a worker while it waits.

    Args:
        intake: Rank 0's queue (the dispatcher), its session and placed objects.
        pace: The dispatcher's measure of the calls.
        mode: ``"1"`` always; ``"auto"``: see the module doc.
        cores_given: The batch system gave each rank cores of its own (Slurm's
            ``--cpus-per-task``), so rank 0 has one even if the affinity mask is shared.
    """

    def __init__(self, intake: Intake, pace: Pace, mode: str, cores_given: bool = False) -> None:
        self.d = intake
        self.pace = pace
        self.mode = mode
        info = context.rank_info()
        self.has_core = info.local_size <= len(os.sched_getaffinity(0)) or cores_given
        self._funcs: dict[int, Any] = {}  # fn_id -> the function as the workers run it

    def _shipped(self, fn_id: int) -> Any:
        """The function of ``fn_id`` as shipped to the workers (unpickled once).

        Rank 0 runs what the workers run: the function as it was at its first
        call, not the program's object, whose globals may have been rebound
        since (a call's result, and its cache key, must not depend on the rank).
        """
        func = self._funcs.get(fn_id)
        if func is None:
            import cloudpickle

            func = self._funcs[fn_id] = cloudpickle.loads(self.d._fn_blobs[fn_id][0])
        return func

    def should_work(self) -> bool:
        """Whether the program thread takes calls now."""
        holds = getattr(self.d, "holds", None)
        if holds is not None and holds.root:
            return False  # a multi-rank call holds rank 0's core (runtime/wide.py)
        if self.mode == "1":
            return True
        return self.has_core and self.pace.mean_task_s > 0.002

    def help_wait(self, refs: list[TaskRef[Any]], timeout: float | None) -> None:
        """Wait for ``refs`` as ``wait_all`` does, running queued calls meanwhile."""
        d = self.d
        deadline = None if timeout is None else time.monotonic() + timeout
        info = context.rank_info()
        done: list[tuple[TaskRef[Any], bool, Any]] = []
        last = time.monotonic()
        while any(not r.done() for r in refs):
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            e = None
            # With a timeout, only a call that should end well within it: on 2dca53c
            # get(ref, timeout=0.5) ran a 3 s call and returned after 3 s, where Ray (and
            # qshpc without this help) raises TimeoutError at 0.5 s.
            if self.should_work() and (
                remaining is None or remaining > _FITS * self.pace.mean_task_s > 0
            ):
                try:
                    e = d.pending.pop()  # the dispatcher takes from the other end
                except IndexError:
                    pass
                if e is not None and task_ranks(e.task) > 1:
                    d.pending.append(e)  # a multi-rank call: the dispatcher holds its ranks
                    e = None
                elif e is not None and e.task.threads > info.cpus:
                    d.pending.appendleft(e)  # more cores than rank 0 has: a worker's
                    e = None
            if e is None:
                d.session.sync()
                resolve_many(done)
                done = []
                try:
                    wait_all(refs, 0.1 if remaining is None else min(0.1, remaining))
                except TimeoutError:
                    continue
                break
            if not mark_running([e.ref]):
                continue  # the program cancelled it
            raw = (
                e.payload if type(e.payload) is bytes else pickle.dumps((e.payload, {}), protocol=5)
            )
            if e.key is None:  # by its circuits' QPY bytes as sent (not dumped again)
                (args, kwargs), loaded = loads_keyed(raw)
                e.key = task_key(e.task.digest, raw, e.ref.task_id, (args, kwargs), loaded)
            else:
                args, kwargs = pickle.loads(raw)
            if e.objs:  # object references among the arguments themselves
                args, kwargs = substitute_top(args, kwargs, d.object_of)
            seed = _seed_of(e.ref.task_id)
            func = self._shipped(e.fn_id)
            out = run_task(func, args, kwargs, e.ref.task_id, e.task.name, seed, e.attempt)
            stored, where = d.session.record(out, e.key, e.submitted, seed)
            if out.ok and stored is out:
                if e.ckey and d.cache is not None:
                    d.cache.store(e.ckey, e.task.name, e.ref.task_id, value=out.value, shared=True)
                held = d.session.held(out, where, e.ref)  # a large one: the store's (synced)
                # A slice of a placed array is read-only here: writeable, as from a worker
                done.append((e.ref, True, writeable(held) if held is out.value else held))
            elif e.attempt <= e.task.retries and stored is out:
                e.attempt += 1
                requeue(e.ref)
                d.pending.append(e)
            else:  # failed (or its value cannot be stored: failed, as on a worker)
                done.append((e.ref, False, stored.task_error(info.rank, info.host)))
            if time.monotonic() - last > COMMIT_S:
                d.session.sync()
                resolve_many(done)
                done, last = [], time.monotonic()
        d.session.sync()
        resolve_many(done)
        wait_all(refs, None if deadline is None else max(0.0, deadline - time.monotonic()))


#: Under ``get(timeout=T)``, rank 0 takes a call only while more than this many mean
#: call times are left (none before a call's time is known).
_FITS = 4.0


def _seed_of(task_id: str) -> int | None:
    seed = context.job_seed()
    return None if seed is None else derive_seed(seed, task_id)


__all__ = ["RootWork"]
