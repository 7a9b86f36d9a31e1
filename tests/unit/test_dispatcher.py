"""Rank 0's dispatcher and the worker loop, unit-tested in threads over an in-process loopback.

The same Dispatcher and serve() that run under mpiexec run here, with
qshpc.runtime.loopback in place of mpi4py's communicators (as submitit tests its
job side with a mocked subprocess): batching, back-off, a lost worker, retries,
nested calls, dependencies, ordering, results sent in parts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qshpc import current_task, distribute_task, get, put
from qshpc.errors import TaskError
from qshpc.program.refs import TaskRef
from qshpc.runtime.dispatcher import Dispatcher
from qshpc.runtime.loopback import Loopback
from qshpc.runtime.pacing import MAX_BATCH, Pace
from qshpc.runtime.protocol import TAG_BATCH, TAG_LEAVE, TAG_RESULT
from tests.unit.loopback_ranks import GATE, gated, loopback_ranks

pytestmark = pytest.mark.timeout(120)


@dataclass
class Ranks:
    """Rank 0's dispatcher and the worker threads, over one loopback."""

    d: Dispatcher
    net: Loopback
    threads: list[threading.Thread]

    def call(self, task: Any, *args: Any, **kwargs: Any) -> TaskRef[Any]:
        """A call as the program makes it (``task(*args)`` on rank 0)."""
        return self.d.submit(task, args, kwargs)

    def batches(self) -> list[tuple[int, Any]]:
        """``(worker, batch message)`` of every batch sent so far."""
        return [(dest, msg) for _, dest, msg in self.net.sent(TAG_BATCH)]


@contextmanager
def ranks(workers: int = 2, worker_timeout: float | None = None) -> Iterator[Ranks]:
    pids = list(range(100, 101 + workers))
    with loopback_ranks(workers, pids=pids, worker_timeout=worker_timeout) as (d, net, threads):
        yield Ranks(d, net, threads)


@distribute_task()
def square(x: int) -> int:
    return x * x


@distribute_task()
def whoami(x: int) -> tuple[int, str, int]:
    ctx = current_task()
    assert ctx is not None
    return x, ctx.task_id, ctx.attempt


def test_calls_come_back_in_order_with_their_ids() -> None:
    with ranks(2) as r:
        refs = [r.call(whoami, i) for i in range(300)]
        out = get(refs, timeout=60)
        assert [x for x, _, _ in out] == list(range(300))
        assert [tid for _, tid, _ in out] == [str(i) for i in range(300)]
        assert {dest for dest, _ in r.batches()} == {1, 2}  # both workers got work
    assert not r.d.abandoned and not r.d.lost  # every worker said goodbye


def test_a_burst_goes_out_in_few_large_batches() -> None:
    n = 5000
    with ranks(2) as r:
        refs = [r.call(square, i) for i in range(n)]
        assert get(refs, timeout=60) == [i * i for i in range(n)]
        sizes = [len(msg[5]) for _, msg in r.batches()]
    assert sum(sizes) == n and max(sizes) <= MAX_BATCH
    assert len(sizes) < n / 20, sizes  # one message per call would be n


def test_batch_policy_is_guided_with_a_floor() -> None:
    pace = Pace()
    assert pace.batch_size(1, 2) == 1  # a lone call leaves at once
    assert pace.batch_size(100_000, 2) == MAX_BATCH
    assert pace.batch_size(40, 2) == 10  # pending / (2 * workers)
    pace.learn(1e-5 / 0.3)  # calls of about 10 us: a batch should hold 2 ms of them
    assert pace.batch_size(10, 2) == 5  # the tail split evenly, not one call per batch
    pace.learn(1.0)  # long calls: no floor
    assert pace.batch_size(3, 2) == 1


def test_idle_ranks_back_off_instead_of_spinning() -> None:
    with ranks(2) as r:
        assert get(r.call(square, 3), timeout=30) == 9
        time.sleep(0.3)  # let the back-off reach its longest sleep
        before = [list(c) for c in r.net.probes]
        time.sleep(0.5)
        after = r.net.probes
        # At most one probe per 2 ms sleep (plus heartbeat checks); a spinning loop makes 100k+.
        assert after[0][0] - before[0][0] < 600  # rank 0's dispatcher
        assert max(after[0][w] - before[0][w] for w in (1, 2)) < 600  # the workers
        start = time.monotonic()
        assert get(r.call(square, 4), timeout=30) == 16  # a new call wakes it at once
        assert time.monotonic() - start < 2.0


@distribute_task(retries=1)
def flaky(x: int) -> tuple[int, int]:
    ctx = current_task()
    assert ctx is not None
    if ctx.attempt == 1:
        raise ValueError(f"first try of {x} fails")
    return x, ctx.attempt


@distribute_task()
def always_fails(x: int) -> int:
    raise ValueError(f"bad {x}")


def test_retries_then_failures_carry_the_remote_traceback() -> None:
    with ranks(2) as r:
        assert get([r.call(flaky, i) for i in range(20)], timeout=60) == [(i, 2) for i in range(20)]
        ref = r.call(always_fails, 7)
        with pytest.raises(TaskError) as err:
            get(ref, timeout=30)
    e = err.value
    assert e.exc_type == "ValueError" and e.rank in (1, 2) and e.host == f"w{e.rank}"
    assert "bad 7" in e.remote_traceback and e.task_id == ref.task_id


@distribute_task()
def outer(x: int) -> tuple[str, str, int]:
    ctx = current_task()
    assert ctx is not None
    inner_id = get(whoami(x))[1]  # a nested call runs on this worker, inline
    return ctx.task_id, inner_id, get(square(x))


def test_nested_calls_run_on_the_worker_with_stable_ids() -> None:
    with ranks(2) as r:
        out = get([r.call(outer, i) for i in range(10)], timeout=60)
    for i, (tid, inner_id, sq) in enumerate(out):
        assert tid == str(i) and inner_id == f"{i}.0" and sq == i * i


@distribute_task()
def add(a: int, b: int) -> int:
    return a + b


@distribute_task()
def total(values: Any, scale: Any) -> float:
    return float(sum(values)) * float(scale)


def test_dependencies_and_placed_objects() -> None:
    with ranks(2) as r:
        a = r.call(add, 1, 2)
        b = r.call(add, a, 10)  # waits for a (blocked), then gets its value
        big = r.d.put(list(range(1000)))
        c = r.call(total, big, 2)
        assert get([a, b, c], timeout=60) == [3, 13, 999000.0]
        sent_objs = [obj for _, msg in r.batches() for obj in msg[3]]
    assert len(sent_objs) == 1  # the object travelled once, to the worker that needed it
    assert put  # the program API's put is the same interface (Intake.put)


@distribute_task()
def slow_square(x: int) -> int:
    time.sleep(0.01)
    return x * x


def test_a_long_batch_sends_its_results_in_parts_in_order() -> None:
    with ranks(1) as r:
        refs = [r.call(slow_square, i) for i in range(120)]
        assert get(refs, timeout=60) == [i * i for i in range(120)]
        parts = [msg for _, _, msg in r.net.sent(TAG_RESULT)]
    assert any(m[6] is False for m in parts)  # not the batch's last message
    firsts: dict[int, list[int]] = {}
    for m in parts:
        firsts.setdefault(m[1], []).append(m[2])
    assert all(f == sorted(f) for f in firsts.values())


@distribute_task()
def unpicklable(x: int) -> Any:
    return threading.Lock()


def test_a_result_that_cannot_travel_fails_only_its_task() -> None:
    with ranks(1) as r:
        bad, good = r.call(unpicklable, 1), r.call(square, 5)
        with pytest.raises(TaskError, match="cannot be serialized"):
            get(bad, timeout=30)
        assert get(good, timeout=30) == 25


def test_a_lost_worker_fails_what_it_held_and_the_others_finish(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QSHPC_HEARTBEAT_S", "0.05")
    GATE.clear()
    with ranks(2, worker_timeout=0.6) as r:
        refs = [r.call(gated, i) for i in range(4)]  # one batch each way, two in flight
        deadline = time.monotonic() + 10
        while {dest for dest, _ in r.batches()} != {1, 2} and time.monotonic() < deadline:
            time.sleep(0.01)
        r.net.cut(2)  # rank 2 dies: no heartbeat, no result
        time.sleep(1.5)
        GATE.set()
        outcomes = [(ref.exception(timeout=30), ref) for ref in refs]
        later = get([r.call(square, i) for i in range(10)], timeout=30)  # rank 1 takes it all
    lost = [ref for exc, ref in outcomes if exc is not None]
    assert lost and len(lost) < len(refs)
    for exc, _ in outcomes:
        if exc is not None:
            assert (
                isinstance(exc, TaskError) and exc.exc_type == "WorkerLostError" and exc.rank == 2
            )
            assert "worker rank 2 on host w2 (pid 102) stopped responding" in str(exc)
    assert len(r.d.lost) == 1 and "rank 2" in r.d.lost[0]
    assert later == [i * i for i in range(10)]


def test_a_call_lost_with_its_worker_is_stored_failed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """review49 F5: the program got TaskError(WorkerLostError), but no record was stored
    (the worker that records a call was gone): ``qshpc status`` said "never started" and
    counted 0 failed. Under Slurm the other ranks go on, so such a job ends SUCCEEDED."""
    from qshpc.program.session import Session
    from qshpc.store import JobReader, JobWriter, create_job

    monkeypatch.setenv("QSHPC_HEARTBEAT_S", "0.05")
    job = tmp_path / "job"
    create_job(job, {"id": "j", "title": "t", "created": 5.0, "seed": 3}, {})
    (job / "logs").mkdir()
    writer = JobWriter.open(
        job, {"mpi_size": 3, "ranks": [{"rank": 0, "host": "r0"}], "started": 1.0, "resume": False}
    )
    session = Session(job, writer, {})
    GATE.clear()
    with loopback_ranks(2, session, pids=[100, 101, 102], worker_timeout=0.6) as (d, net, _):
        refs = [d.submit(gated, (i,), {}) for i in range(4)]
        deadline = time.monotonic() + 10
        while {dest for _, dest, _ in net.sent(TAG_BATCH)} != {1, 2} and (
            time.monotonic() < deadline
        ):
            time.sleep(0.01)
        net.cut(2)  # rank 2 dies: no heartbeat, no result
        time.sleep(1.5)
        GATE.set()
        lost = [ref.task_id for ref in refs if ref.exception(timeout=30) is not None]
    session.sync()
    writer.close()
    assert lost and session.failed == len(lost)
    with JobReader.open(job) as reader:
        rows = {r["task_id"]: r for r in reader.tasks()}
    assert {t for t, r in rows.items() if r["state"] == "FAILED"} == set(lost)
    for t in lost:
        row = rows[t]
        assert (row["rank"], row["host"], row["function"]) == (2, "w2", "gated")
        assert (
            "WorkerLostError: worker rank 2 on host w2 (pid 102) stopped responding"
            in (row["error"])
        )
        assert row["started"] <= row["finished"]
    assert all(rows[t]["state"] == "SUCCEEDED" for t in rows if t not in lost)


def test_with_every_worker_lost_queued_calls_fail_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QSHPC_HEARTBEAT_S", "0.05")
    with ranks(1, worker_timeout=0.5) as r:
        assert get(r.call(square, 2), timeout=30) == 4
        r.net.cut(1)
        time.sleep(1.2)
        with pytest.raises(Exception, match="no worker rank is left"):
            get(r.call(square, 3), timeout=30)


@distribute_task()
def where(x: int) -> tuple[int, int]:
    time.sleep(0.005)
    return x, threading.get_ident()


def test_rank0_runs_queued_calls_while_it_waits_when_asked() -> None:
    with ranks(1) as r:
        r.d.enable_root_work("1")
        refs = [r.call(where, i) for i in range(200)]
        r.d.help_wait(refs, 60)  # what get() calls when the active backend can help
        out = [ref.result() for ref in refs]
    assert [x for x, _ in out] == list(range(200))
    here = threading.get_ident()
    assert any(t == here for _, t in out) and any(t != here for _, t in out)


@distribute_task()
def exits(kind: str) -> str:
    import sys

    if kind == "exit":
        sys.exit(3)
    if kind == "interrupt":
        raise KeyboardInterrupt
    if kind == "generator":
        raise GeneratorExit
    return f"{kind} on {threading.get_ident()}"


def test_exits_inside_tasks_fail_those_tasks_and_the_worker_serves_on() -> None:
    with ranks(1) as r:
        errors = []
        for kind in ("exit", "interrupt", "generator"):
            with pytest.raises(TaskError) as err:
                get(r.call(exits, kind), timeout=30)
            errors.append((err.value.exc_type, err.value.remote_traceback.strip().splitlines()[-1]))
        after = get([r.call(exits, "ok") for _ in range(5)], timeout=30)
        assert r.threads[0].is_alive()
    assert errors == [
        ("SystemExit", "SystemExit: 3"),
        ("KeyboardInterrupt", "KeyboardInterrupt"),
        ("GeneratorExit", "GeneratorExit"),
    ]
    assert len(set(after)) == 1  # the one worker thread ran them all


_stuck = threading.Event()


def _wait_unstuck() -> None:  # by reference, as loopback_ranks._wait_gate
    _stuck.wait(60)


@distribute_task()
def stuck(x: int) -> int:
    _wait_unstuck()
    return x


def test_a_call_still_running_when_the_job_ends_is_abandoned_and_recorded() -> None:
    """No 60 s drain: after the grace the busy worker is left (rank 0 does not wait for its
    goodbye), the call's record says it was abandoned, and what it held after it never ran."""
    _stuck.clear()
    try:
        with ranks(1) as r:
            refs = [r.call(stuck, i) for i in range(3)]
            deadline = time.monotonic() + 10
            while not r.batches() and time.monotonic() < deadline:
                time.sleep(0.01)
            t0 = time.monotonic()
            r.d.shutdown(abort=True, drain_s=0.3, why="the program ended (the job SUCCEEDED)")
            assert time.monotonic() - t0 < 5  # the busy worker's call is not waited for
            # review44 F1: it is told to leave (its heartbeat thread says goodbye at once, as
            # under srun nothing else ends it), so rank 0 may finalize MPI as usual
            assert [(d, m[0]) for _, d, m in r.net.sent(TAG_LEAVE)] == [(1, "L")]
            assert "while task 0 (stuck) still ran here" in r.net.sent(TAG_LEAVE)[0][2][1]
            assert r.net.sent(TAG_LEAVE)[0][2][2] == "0"  # its id: the worker says if it sent it
            assert not r.d.abandoned
            first = refs[0].exception(timeout=5)
            assert isinstance(first, TaskError) and first.exc_type == "TaskAbandoned"
            assert "the program ended (the job SUCCEEDED) while this call still ran on rank 1" in (
                first.remote_traceback
            )
            assert all(ref.exception(timeout=5) is not None for ref in refs[1:])
            assert r.d.session.failed == 1  # one record: the call that ran
            _stuck.set()  # checked: let the worker go, or the teardown's join waits 10 s
    finally:
        _stuck.set()


def test_an_abandoned_call_is_recorded_with_the_time_it_ran() -> None:
    """review26 #2: the record of a call cut short by the end of the job starts when its
    worker took it (its batch's send, or the worker's previous result), not at the
    cancel: start = end drew the busy worker idle and counted 0 s of work."""
    _stuck.clear()
    rows: list[tuple[Any, ...]] = []
    try:
        with ranks(1) as r:
            record = r.d.session.record_fields
            r.d.session.record_fields = lambda *a: (rows.append(a), record(*a))[1]  # type: ignore[method-assign]
            assert get(r.call(square, 2), timeout=30) == 4
            ref = r.call(stuck, 1)
            deadline = time.monotonic() + 10
            while len(r.batches()) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            sent = time.time()
            time.sleep(0.6)
            r.d.shutdown(abort=True, drain_s=0.2, why="the job was cancelled")
            assert ref.exception(timeout=5) is not None
            _stuck.set()
    finally:
        _stuck.set()
    (row,) = rows
    started, finished = row[10], row[11]
    assert started <= sent + 0.05 and finished - started >= 0.6, (started, finished, sent)


@distribute_task()
def half(x: int) -> int:
    time.sleep(0.5)
    return x


def test_a_batch_queued_at_a_worker_before_the_cut_does_not_start_after_it() -> None:
    """The worker reads a batch sent before CUT ahead of the CUT: it must not start it
    (on e5f893c it did: a cancelled job ran, or abandoned, one more call per worker)."""
    from qshpc.program.refs import CancelledError

    with ranks(1) as r:
        first, second = r.call(half, 1), r.call(half, 2)
        deadline = time.monotonic() + 10
        while len(r.batches()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(r.batches()) == 2  # both out: the second waits at the worker
        r.d.shutdown(abort=True, drain_s=10, why="the job was cancelled")
        assert first.result(timeout=5) == 1
        with pytest.raises(CancelledError, match="never ran"):
            second.result(timeout=5)
        assert not r.d.abandoned


@distribute_task()
def tenth(x: int) -> int:
    time.sleep(0.1)
    return x


def test_the_end_cuts_the_batches_workers_hold_and_they_say_goodbye() -> None:
    """At the end (abort), workers start no further call of the batches they hold (CUT):
    the calls done are stored, the rest never ran, and every worker ends cleanly."""
    from qshpc.program.refs import CancelledError

    with ranks(2) as r:
        refs = [r.call(tenth, i) for i in range(200)]  # 20 s of calls: all sent at once
        deadline = time.monotonic() + 10
        while sum(ref.done() for ref in refs) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
        r.d.shutdown(abort=True, drain_s=30, why="the job was cancelled")
        assert time.monotonic() - t0 < 5
        assert not r.d.abandoned  # every worker answered and said goodbye
        for t in r.threads:
            t.join(5)
            assert not t.is_alive()

    def error(ref: Any) -> BaseException | None:
        # A call cancelled before it was sent raises from exception(), as a Future does.
        try:
            return ref.exception(timeout=1)
        except CancelledError as exc:
            return exc

    ran = [ref for ref in refs if error(ref) is None]
    never = [ref for ref in refs if isinstance(error(ref), CancelledError)]
    assert len(ran) >= 4 and len(ran) + len(never) == len(refs) and len(never) > 100
    sent = [ref for ref in never if not ref.cancelled()]
    assert sent and "never ran: the job was cancelled" in str(error(sent[0]))
    assert [ref.result() for ref in ran] == [int(ref.task_id) for ref in ran]
