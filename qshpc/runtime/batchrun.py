"""Running one batch of calls on a worker, and encoding their results for rank 0.

Calls run in the batch's order. A function whose calls run Aer's exact
simulations (``qshpc.task.coop.together``) and are short runs its calls in
a cooperative group instead: they still take turns, but their simulations share
one Aer run per turn of the group, which saves Aer's fixed cost per run (see
:mod:`qshpc.task.coop`). ``QSHPC_COOP_WIDTH`` sets how many calls a group
holds at once (default 16; 1 turns groups off).
"""

from __future__ import annotations

import pickle
import time
import traceback
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from qshpc import settings
from qshpc.errors import dump_cause
from qshpc.program.backend import task_key
from qshpc.program.refs import substitute_top
from qshpc.runtime.results import Results
from qshpc.runtime.stopsig import end_fork, forked
from qshpc.task import context, coop
from qshpc.task.execute import FATAL, TASK_ERRORS, class_name, described, undescribed
from qshpc.task.payload import loads_keyed
from qshpc.task.seeding import derive_seed
from qshpc.text import utf8_safe

if TYPE_CHECKING:
    from qshpc.runtime.sender import Sender

_PARTIAL_S = 0.25  # send finished results of a long batch at least this often
#: ... and as soon as their large values (arrays) hold this many bytes: rank 0 receives
#: one message whole before it stores it, so a message of ten 50 MB results held 500 MB
#: there, however few the program kept (review38 F4).
_PARTIAL_BYTES = 16 << 20
#: Calls longer than this gain too little from sharing a simulator run (its
#: fixed cost is under 1 ms) to be worth holding their results back for a group.
_COOP_MAX_TASK_S = 0.1


class BatchRunner:
    """A worker's batch runner: it learns which functions gain from a group.

    Args:
        info: This rank's place in the job.
    """

    def __init__(self, info: context.RankInfo) -> None:
        self.info = info
        width = settings.COOP_WIDTH.get()
        self.group = coop.Group(width) if width > 1 else None
        self.seconds: dict[bytes, float] = {}  # digest -> mean seconds of calls with steps
        self.grouped: set[bytes] = set()  # digests whose calls run in a group

    def run(
        self,
        sender: Sender,
        bid: int,
        columns: list[Any],
        funcs: dict[int, tuple[Any, str, bytes]],
        lookup: Any,
        store: Callable[..., None] | None = None,
        cut: Callable[[], bool] | None = None,
    ) -> None:
        """Run one batch's calls, sending results in order at least every ``_PARTIAL_S``.

        ``columns``: task ids, function id (one int for all, or one per call),
        payloads (pickled ``(args, kwargs)`` bytes, or a tuple of plain positional
        values), attempts (None: all first), submission times, keys (None: this
        worker computes them), the result cache (None, or ``(info, cache keys)``), the
        steps of multi-rank calls (None, or one ``(size, hosts)`` or None per call).
        ``store``: :meth:`qshpc.cache.jobcache.JobCache.store` of this worker,
        called for every successful call that has a cache key. ``cut``, asked
        whenever results go out: True when the job is ending; then no further
        call starts, and the last message holds the calls done (rank 0 takes
        the rest as never run).
        """
        ids, fn_ids, _, attempts, submitted = columns[:5]
        n = len(ids)
        job_seed = context.job_seed()
        flow = _InOrder(sender, bid, n, submitted, attempts, self.info)
        one_fn = type(fn_ids) is int
        digest = funcs[fn_ids if one_fn else fn_ids[0]][2]
        call = _caller(columns, funcs, lookup, job_seed, store)
        grouped, steps, add, now = self.grouped, coop.STEPS_ALONE, flow.results.add, time.monotonic
        builder = flow.results.builder
        pos = 0
        while pos < n:
            if not one_fn:
                digest = funcs[fn_ids[pos]][2]
            if digest in grouped and pos < n - 1:
                break
            seen = steps[0]
            outcome = call(pos)
            if steps[0] != seen:
                self._learn(digest, outcome[10] - outcome[9])
            add(*outcome)
            pos += 1
            if pos < n and (
                now() - flow.last > _PARTIAL_S or builder.unencoded_bytes > _PARTIAL_BYTES
            ):
                flow.send_part()
                add, builder = flow.results.add, flow.results.builder
                if cut is not None and cut():
                    n = pos  # the rest never runs
        flow.next = pos
        if pos < n:
            assert self.group is not None
            done = flow.done
            cutting = [False]

            def into_done(p: int) -> None:
                if not cutting[0]:  # calls start in order: those cut are a suffix
                    done[p] = call(p)

            def after() -> None:
                sent = flow.last
                flow.drain()
                if cut is not None and flow.last != sent and cut():
                    cutting[0] = True

            start = time.monotonic()
            self.group.run([partial(into_done, p) for p in range(pos, n)], after=after)
            flow.drain()
            if cutting[0]:
                pass  # not a measure of the calls' length
            elif (time.monotonic() - start) / (n - pos) > _COOP_MAX_TASK_S:
                # The calls grew long: holding 16 results back no longer pays.
                for p in range(pos, n):
                    self._forget(funcs[fn_ids if one_fn else fn_ids[p]][2])
        sender.send(flow.results, bid, flow.first, submitted, attempts, True)

    def _forget(self, digest: bytes) -> None:
        """Run this function's calls alone again (and learn their time anew)."""
        self.grouped.discard(digest)
        self.seconds.pop(digest, None)

    def _learn(self, digest: bytes, seconds: float) -> None:
        """A call of this function had a step and took ``seconds``: group its calls if short."""
        old = self.seconds.get(digest)
        mean = seconds if old is None else 0.5 * (old + seconds)
        self.seconds[digest] = mean
        if self.group is not None and mean < _COOP_MAX_TASK_S:
            self.grouped.add(digest)


class _InOrder:
    """Results of one batch in batch order; a long batch's go to rank 0 in parts."""

    def __init__(
        self,
        sender: Sender,
        bid: int,
        n: int,
        submitted: Any,
        attempts: list[int] | None,
        info: context.RankInfo,
    ) -> None:
        self.sender, self.bid = sender, bid
        self.submitted, self.attempts, self.info = submitted, attempts, info
        self.done: list[tuple[Any, ...] | None] = [None] * n  # outcomes of a group
        self.results = Results(info.rank, info.host)
        self.first = 0  # batch position of self.results[0]
        self.next = 0  # batch position of the next outcome to add
        self.last = time.monotonic()

    def send_part(self) -> None:
        """Send the results so far (not the batch's last message)."""
        self.sender.send(self.results, self.bid, self.first, self.submitted, self.attempts, False)
        self.first += len(self.results)
        self.results = Results(self.info.rank, self.info.host)
        self.last = time.monotonic()

    def drain(self) -> None:
        """Take a group's outcomes finished in order; send a part if one is due."""
        done, n = self.done, len(self.done)
        while self.next < n and done[self.next] is not None:
            self.results.add(*done[self.next])  # type: ignore[misc]
            done[self.next] = None
            self.next += 1
        if (
            self.next < n
            and len(self.results)
            and (
                time.monotonic() - self.last > _PARTIAL_S
                or self.results.builder.unencoded_bytes > _PARTIAL_BYTES
            )
        ):
            self.send_part()


def _caller(
    columns: list[Any],
    funcs: dict[int, tuple[Any, str, bytes]],
    lookup: Callable[[Any], Any] | None,
    job_seed: int | None,
    store: Callable[..., None] | None = None,
) -> Callable[[int], tuple[Any, ...]]:
    """``call(pos)``: run call ``pos`` of a batch; returns its outcome as ``Results.add`` takes it.

    Everything a call reads is bound once per batch: at 150k calls a second,
    each lookup saved per call shows. A successful call with a cache key is
    handed to ``store`` (which writes it in the background).
    """
    ids, fn_ids, payloads, attempts, _, keys, cached = columns[:7]
    steps = columns[7] if len(columns) > 7 else None
    ckeys = cached[1] if cached is not None and store is not None else None  # may be None
    one_fn = type(fn_ids) is int
    func, name, digest = funcs[fn_ids if one_fn else fn_ids[0]]
    push, pop, task_context, now = (
        context.push_task,
        context.pop_task,
        context.TaskContext,
        time.time,
    )

    def call(pos: int) -> tuple[Any, ...]:
        nonlocal func, name, digest
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
        cause: bytes | None = None
        step = None if steps is None or steps[pos] is None else context.Step(*steps[pos])
        prov = push(task_context(task_id, name, seed, attempt, step))
        try:
            if type(payload) is tuple:  # plain values, sent unpickled (Dispatcher.submit)
                args, kwargs = payload, None
                raw = None
            else:
                raw = payload
                if key is None:  # by its circuits' QPY bytes as sent (not dumped again)
                    (args, kwargs), loaded = loads_keyed(payload)
                    key = task_key(digest, raw, task_id, (args, kwargs), loaded)
                else:
                    args, kwargs = pickle.loads(payload)
                if lookup is not None:  # object references among the arguments themselves
                    args, kwargs = substitute_top(args, kwargs, lookup)
            if key is None:
                key = task_key(digest, pickle.dumps((args, {}), protocol=5), task_id, (args, {}))
            started = now()
            try:
                value = func(*args, **kwargs) if kwargs else func(*args)
                ok = True
            except TASK_ERRORS as exc:
                if forked:  # a child the task forked, not this worker
                    end_fork(f"a task of {name}", exc)
                if isinstance(exc, FATAL):
                    raise
                ok, exc_type = False, class_name(type(exc))
                error, sent = described(exc)  # (review53 K4: one that cannot be read: None)
                cause = dump_cause(sent)  # so that rank 0 raises it as its own class too
            if forked:
                end_fork(f"a task of {name}", None)
            finished = now()
        except TASK_ERRORS as exc:  # the arguments could not be unpickled
            if isinstance(exc, FATAL):
                raise
            started = finished = now()
            ok, exc_type = False, class_name(type(exc))
            try:
                error = utf8_safe(traceback.format_exc())
            except Exception as bad:  # an exception that cannot be read (review53 K4)
                error = undescribed(exc, bad)
        finally:
            pop()
        # Cached once its record is made and its message sent (Results.add, after_sent): a
        # value the store or the trip refuses fails the call, and a later job must not take
        # it from the cache (review28 F18).
        cache: Callable[[], None] | None = None
        if ok and ckeys is not None and ckeys[pos] and store is not None:
            cache = partial(store, ckeys[pos], name, task_id, value=value)
        key = key or ""
        return (
            task_id,
            key,
            name,
            ok,
            value,
            error,
            exc_type,
            prov,
            seed,
            started,
            finished,
            cause,
            cache,
        )

    return call


__all__ = ["BatchRunner"]
