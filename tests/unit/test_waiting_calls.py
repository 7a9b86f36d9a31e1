"""Calls that take other calls' results (``g(f(x))``) in the real Dispatcher over the
in-process loopback: each waits until all of its dependencies ended, then runs with their
values (or fails with a dependency's error); a waiting call is looked at again only when
one of its dependencies ends, and the job's end cancels those still waiting."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from qshpc import distribute_task, get
from qshpc.errors import TaskError
from tests.unit.loopback_ranks import GATE, gated
from tests.unit.test_dispatcher import ranks

pytestmark = pytest.mark.timeout(120)


@distribute_task()
def plus(*xs: int) -> int:
    return sum(xs)


@distribute_task()
def values(refs: list[Any]) -> list[Any]:
    return [ref.result(0) for ref in refs]  # nested references travel done, as in Ray


@distribute_task(retries=0)
def boom(x: int) -> int:
    raise ValueError(f"boom {x}")


def test_calls_wait_for_every_dependency_and_get_their_values() -> None:
    with ranks(2) as r:
        a, b = r.call(plus, 1), r.call(plus, 2)
        twice = r.call(plus, a, a)  # the same dependency twice
        both = r.call(plus, a, b, 10)
        nested = r.call(values, [a, b])  # references inside a list
        chain = [r.call(plus, 0)]
        for _ in range(200):
            chain.append(r.call(plus, chain[-1], 1))
        assert get([twice, both, nested], timeout=60) == [2, 13, [1, 2]]
        assert get(chain[-1], timeout=60) == 200


def test_a_failed_dependency_fails_the_calls_waiting_on_it() -> None:
    with ranks(2) as r:
        bad = r.call(boom, 1)
        after = [r.call(plus, bad, i) for i in range(5)]
        ok = r.call(plus, 1, 2)
        for ref in after:
            with pytest.raises(TaskError, match="boom 1"):
                get(ref, timeout=60)
        assert get(ok, timeout=60) == 3


def test_waiting_calls_are_not_looked_at_until_a_dependency_ends() -> None:
    """2000 calls waiting on one long call: the dispatcher used to go through all of them at
    every turn of its loop (a chain of 50k dependent calls took 7 s against 0.75 s)."""
    GATE.clear()
    with ranks(2) as r:
        looks = []
        unblock = r.d.unblock

        def counted() -> bool:
            looks.append(len(r.d.blocked) + len(r.d.parked))
            return unblock()

        r.d.unblock = counted  # type: ignore[method-assign]
        head = r.call(gated, 5)
        waiting = [r.call(plus, head, i) for i in range(2000)]
        deadline = time.monotonic() + 30
        while len(r.d.parked) < 2000 and time.monotonic() < deadline:  # all parked
            time.sleep(0.01)
        turns = len(looks)
        time.sleep(0.5)  # the dispatcher's loop turns meanwhile (a worker is busy)
        assert len(looks) == turns, "parked calls were looked at with no dependency ended"
        GATE.set()
        assert get(waiting, timeout=60) == [5 + i for i in range(2000)]
        assert not r.d.parked and not r.d.blocked


def test_calls_still_waiting_when_the_job_ends_are_cancelled() -> None:
    GATE.clear()
    try:
        with ranks(1) as r:
            head = r.call(gated, 1)
            waiting = [r.call(plus, head, i) for i in range(10)]
            deadline = time.monotonic() + 30
            while len(r.d.parked) < 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            GATE.set()  # (the worker thread must end for the shutdown below)
            r.d.shutdown(abort=True, drain_s=10)
        assert all(ref.done() for ref in waiting)  # nobody waits for them forever
    finally:
        GATE.set()


@distribute_task()
def shape(x: int, xs: list[int], opts: dict[str, Any], *, extra: list[int]) -> Any:
    return [x, list(xs), {k: list(v) for k, v in opts.items()}, list(extra)]


@distribute_task()
def first_done(pair: list[Any]) -> list[Any]:
    return [pair[0].result(0), pair[1]]


def test_a_waiting_call_takes_its_arguments_as_they_were_at_the_call() -> None:
    """Ray pickles a call's arguments when it is made. On 724bf2f a call waiting on another
    call's result took its other arguments as they were when it was unblocked: a list the
    program appended to after the call reached the task (107 for 7)."""
    GATE.clear()
    with ranks(2) as r:
        slow = r.call(gated, 7)
        xs, inner, extra = [1], [2], [3]
        top = r.call(shape, slow, xs, {"k": inner}, extra=extra)  # waits: top-level ref
        nested = r.call(first_done, [slow, xs])  # waits: a ref inside a list
        xs.append(100)
        inner.append(200)
        extra.append(300)
        GATE.set()
        assert get(top, timeout=60) == [7, [1], {"k": [2]}, [3]]
        assert get(nested, timeout=60) == [7, [1]]


def test_a_waiting_call_of_unpicklable_arguments_is_refused_at_the_call() -> None:
    GATE.clear()
    with ranks(2) as r:
        slow = r.call(gated, 1)
        with pytest.raises(Exception, match="cannot be serialized"):
            r.call(shape, slow, [threading.Lock()], {}, extra=[])
        GATE.set()
        assert get(slow, timeout=60) == 1
