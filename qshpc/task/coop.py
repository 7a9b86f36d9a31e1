"""Cooperative groups: the calls of a batch take turns, and their batchable steps run together.

A worker that runs short simulation tasks one after another pays the
simulator's fixed cost per run (about 0.65 ms for Aer, plus caches cooled by
the transpiler in between). Here the calls of one batch run on a few threads
that take turns: exactly one runs at a time, as if they ran in order, until a
call reaches a step marked with :func:`together` (the Aer layer marks its
exact-probability runs). That call parks and the next one starts. When every
call of the group is parked or finished, the parked steps run as one: one Aer
run of all their circuits. Then each parked call resumes in turn.

Only one call runs Python at a time, so tasks never run side by side on a
rank's cores (no oversubscription, no memory surprise), and the order in which
calls start is the batch's order. What a task may notice: between its start
and its end, other tasks of the batch ran.

Outside a group (rank 0, a plain Python process, a thread of the user's),
:func:`together` runs the step at once, alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from qshpc.task.execute import FATAL  # the runtime's interruptions: not a call's failure

_local = threading.local()

#: ``STEPS_ALONE[0]``: how many :func:`together` steps ran outside a group in
#: this process. The worker reads it before and after a call (a list, so that
#: the read is cheap): a call that had such a step may be worth a group.
STEPS_ALONE = [0]


def together(key: Hashable, execute: Callable[[list[Any]], list[Any]], item: Any) -> Any:
    """Run ``execute([item])[0]``, batched with the parked steps of the same ``key`` in a group.

    Args:
        key: Steps with equal keys run in one ``execute`` call.
        execute: Takes a list of items; returns one result per item, in order.
            It must not depend on which other items share the call.
        item: This step's input.

    Returns:
        This item's result.

    Raises:
        Exception: What ``execute`` raised for this item (when a shared call
            fails, each item is run alone, so one bad item fails only its task).
    """
    runner: _Runner | None = getattr(_local, "runner", None)
    if runner is None:
        STEPS_ALONE[0] += 1
        return execute([item])[0]
    return runner.park(_Step(key, execute, item))


def seconds_for_others() -> float:
    """Seconds this thread's call has spent parked beyond its share of the shared runs.

    Cumulative over the calls the thread ran; 0.0 outside groups. A caller that
    reads it before and after its work subtracts the difference to get its own
    time: the turns of the other calls, and their part of the shared run, are
    not its cost.
    """
    runner: _Runner | None = getattr(_local, "runner", None)
    return runner.for_others if runner is not None else 0.0


class _Step:
    __slots__ = ("error", "execute", "item", "key", "result", "share")

    def __init__(self, key: Hashable, execute: Callable[[list[Any]], list[Any]], item: Any) -> None:
        self.key = key
        self.execute = execute
        self.item = item
        self.result: Any = None
        self.error: BaseException | None = None
        self.share = 0.0  # seconds of the shared run counted as this step's


_IDLE, _PARKED = 0, 1


class _Runner(threading.Thread):
    """A thread that runs calls when the scheduler hands it the turn."""

    def __init__(self, back: threading.Semaphore) -> None:
        super().__init__(daemon=True, name="qshpc-coop")
        self.go = threading.Semaphore(0)
        self.back = back
        self.call: Callable[[], None] | None = None
        self.state = _IDLE
        self.step: _Step | None = None
        self.fatal: BaseException | None = None
        self.for_others = 0.0  # see seconds_for_others

    def run(self) -> None:
        _local.runner = self
        while True:
            self.go.acquire()
            call = self.call
            if call is None:
                return
            try:
                call()
            except BaseException as exc:  # calls catch their own: only FATAL gets here
                self.fatal = exc
            self.call = None
            self.state = _IDLE
            self.back.release()

    def park(self, step: _Step) -> Any:
        self.step = step
        self.state = _PARKED
        parked = time.perf_counter()
        self.back.release()
        self.go.acquire()
        self.for_others += time.perf_counter() - parked - step.share
        self.step = None
        if step.error is not None:
            raise step.error
        return step.result


class Group:
    """Persistent runner threads of one process (a worker keeps one group).

    Args:
        width: Calls in flight at once: the most steps one shared run holds.
    """

    def __init__(self, width: int) -> None:
        self.width = max(1, width)
        self._back = threading.Semaphore(0)
        self._runners: list[_Runner] = []

    def _turn(self, runner: _Runner) -> None:
        """Let ``runner`` run until it parks or its call ends."""
        runner.go.release()
        self._back.acquire()
        if runner.fatal is not None:
            fatal, runner.fatal = runner.fatal, None
            raise fatal

    def run(
        self, calls: Sequence[Callable[[], None]], after: Callable[[], None] | None = None
    ) -> None:
        """Run every call, ``width`` at a time, in turns; return when all are done.

        Args:
            calls: Callables that catch their own exceptions (as task bodies do);
                one that raises a BaseException stops the group and it propagates.
            after: Called in this thread after each turn (e.g. to send finished results).
        """
        while len(self._runners) < min(self.width, len(calls)):
            runner = _Runner(self._back)
            runner.start()
            self._runners.append(runner)
        todo = iter(calls)
        parked: list[_Runner] = []

        def start_next(runner: _Runner) -> None:
            # Keep the runner busy until it parks or no call is left.
            while runner.state == _IDLE:
                call = next(todo, None)
                if call is None:
                    return
                runner.call = call
                self._turn(runner)
                if after is not None:
                    after()
            parked.append(runner)

        for runner in self._runners[: len(calls)]:
            start_next(runner)
        while parked:
            ready, parked = parked, []
            _run_steps([r.step for r in ready if r.step is not None])
            for runner in ready:
                self._turn(runner)
                if after is not None:
                    after()
                if runner.state == _PARKED:
                    parked.append(runner)
                else:
                    start_next(runner)

    def close(self) -> None:
        """Stop the runner threads (they are daemons; this is for tidiness and tests)."""
        for runner in self._runners:
            runner.call = None
            runner.go.release()
        for runner in self._runners:
            runner.join(timeout=1.0)
        self._runners.clear()


def _run_steps(steps: list[_Step]) -> None:
    """Run parked steps, one ``execute`` call per key; on failure, each alone."""
    by_key: dict[Hashable, list[_Step]] = {}
    for step in steps:
        by_key.setdefault(step.key, []).append(step)
    for group in by_key.values():
        execute = group[0].execute
        start = time.perf_counter()
        try:
            results = execute([s.item for s in group])
        except BaseException as exc:  # a Rust panic, a sys.exit too: it fails the calls only
            if isinstance(exc, FATAL):
                raise
            if len(group) == 1:
                group[0].error = exc
                group[0].share = time.perf_counter() - start
                continue
            for step in group:  # find the items that fail, and fail only their calls
                start = time.perf_counter()
                try:
                    step.result = step.execute([step.item])[0]
                except BaseException as alone:
                    if isinstance(alone, FATAL):
                        raise
                    step.error = alone
                step.share = time.perf_counter() - start
            continue
        share = (time.perf_counter() - start) / len(group)
        for step, result in zip(group, results, strict=True):
            step.result = result
            step.share = share


__all__ = ["STEPS_ALONE", "Group", "seconds_for_others", "together"]
