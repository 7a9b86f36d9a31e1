"""The cache in rank 0's dispatcher and the worker loop, in threads over the loopback.

Hits are taken at the call and never travel to a worker; a miss carries its key
in the batch and the worker stores the result; with the cache off, batches carry
nothing of it.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from qshpc import TaskRef, distribute_task, get
from qshpc.cache.jobcache import CacheConfig, JobCache
from qshpc.cache.store import CacheDir
from qshpc.program import backend
from qshpc.program.session import Session
from qshpc.runtime.dispatcher import Dispatcher
from qshpc.runtime.loopback import Loopback
from qshpc.runtime.protocol import TAG_BATCH
from qshpc.task import context
from tests.unit.loopback_ranks import loopback_ranks

pytestmark = pytest.mark.timeout(120)


@contextmanager
def ranks(
    cache: JobCache | None,
    workers: int = 2,
    done: dict[str, Any] | None = None,
    drain_s: float = 10.0,
) -> Iterator[tuple[Dispatcher, Loopback]]:
    session = Session(None, None, {}, done, cache=cache)
    pids = list(range(100, 101 + workers))
    # abort=False: the workers flush their cache writes before their goodbye
    with loopback_ranks(workers, session, pids=pids, abort=False, drain_s=drain_s) as (d, net, _):
        yield d, net


@distribute_task()
def square(x: int) -> int:
    return x * x


@distribute_task(cache=True)
def total(values: list[Any], offset: int = 0) -> int:
    # A reference nested in a list arrives as a reference (Ray's rule): get() reads it.
    return sum(get(v) if isinstance(v, TaskRef) else v for v in values) + offset


@distribute_task(cache=False)
def uncached(x: int) -> int:
    return x + 1


def _batches(net: Loopback) -> list[Any]:
    return [msg for _, _, msg in net.sent(TAG_BATCH)]


def test_cache_off_adds_nothing_to_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QSHPC_CACHE_DIR", str(tmp_path / "c"))
    with ranks(JobCache(CacheConfig(), "job-0")) as (d, net):
        assert get([d.submit(square, (i,), {}) for i in range(50)], timeout=30)[-1] == 49 * 49
    assert all(m[-1] is None for m in _batches(net))
    assert not (tmp_path / "c").exists()


def test_misses_are_stored_by_the_workers_and_hits_never_travel(tmp_path: Path) -> None:
    config = CacheConfig(True, str(tmp_path / "c"))
    with ranks(JobCache(config, "job-1")) as (d, net):
        assert get([d.submit(square, (i,), {}) for i in range(40)], timeout=30)[3] == 9
        sent = _batches(net)
        assert all(m[-1] is not None and all(m[-1][1]) for m in sent)
        info = sent[0][-1][0]
        assert {k: info[k] for k in ("config", "job")} == {
            "config": config.as_dict(),
            "job": "job-1",
        }
        assert list(info["bindings"].values()) == [[]]  # none of a user module (review43 H2)
    entries = list(CacheDir(tmp_path / "c").scan())
    assert len(entries) == 40
    cache = JobCache(config, "job-2")
    with ranks(cache) as (d, net):
        refs = [d.submit(square, (i,), {}) for i in range(45)]
        hits = [r for r in refs if r in backend.FROM_CACHE]
        assert len(hits) == 40 and all(r.done() for r in hits)  # resolved at the call
        assert get(refs, timeout=30) == [i * i for i in range(45)]
        assert sum(len(m[5]) for m in _batches(net)) == 5  # only the misses went out
    assert d.session.cached == 40 and d.session.executed == 5
    assert cache.summary()["hits"] == 40


def test_task_switches_references_and_placed_objects(tmp_path: Path) -> None:
    cache = JobCache(CacheConfig(False, str(tmp_path / "c")), "job-1")  # job: off
    with ranks(cache) as (d, net):
        big = d.put(list(range(1000)))
        first = d.submit(total, (big,), {})
        after = d.submit(total, ([first],), {"offset": 1})  # waits on `first`
        plus = d.submit(uncached, (1,), {})
        assert get([first, after, plus], timeout=30) == [499500, 499501, 2]
    assert len(list(CacheDir(tmp_path / "c").scan())) == 2  # total twice, uncached not
    with ranks(JobCache(CacheConfig(True, str(tmp_path / "c")), "job-2")) as (d, net):
        again = d.put(list(range(1000)))  # another ref, the same value: the same key
        first = d.submit(total, (again,), {})
        assert first.done() and first in backend.FROM_CACHE
        after = d.submit(total, ([first],), {"offset": 1})
        assert get([first, after], timeout=30) == [499500, 499501]
        assert after in backend.FROM_CACHE
        assert not _batches(net)


def test_the_task_seed_is_in_the_key(tmp_path: Path) -> None:
    config = CacheConfig(True, str(tmp_path / "c"))
    context.set_job_seed(5)
    try:
        with ranks(JobCache(config, "a")) as (d, _):
            get([d.submit(square, (i,), {}) for i in range(4)], timeout=30)
        with ranks(JobCache(config, "b")) as (d, _):
            refs = [d.submit(square, (i,), {}) for i in range(4)]
            assert all(r in backend.FROM_CACHE for r in refs)
        context.set_job_seed(6)
        with ranks(JobCache(config, "c")) as (d, _):
            refs = [d.submit(square, (i,), {}) for i in range(4)]
            assert not any(r in backend.FROM_CACHE for r in refs)
            get(refs, timeout=30)
    finally:
        context.set_job_seed(None)


def test_inline_backend_uses_the_cache(tmp_path: Path) -> None:
    config = CacheConfig(True, str(tmp_path / "c"))
    cache = JobCache(config, "inline")
    session = Session(None, None, {}, cache=cache)
    b = backend.InlineBackend(session)
    backend.activate(b)
    try:
        assert get([square(i) for i in range(5)]) == [0, 1, 4, 9, 16]
        cache.flush(10)
        refs = [square(i) for i in range(6)]
        assert [r in backend.FROM_CACHE for r in refs] == [True] * 5 + [False]
        assert session.cached == 5
    finally:
        backend.activate(None)


@distribute_task(cache=True)
def grow(values: list[int]) -> list[int]:
    values.append(len(values))  # the task's own copy of the program's list
    return values


def test_inline_hits_copy_nothing_and_misses_copy_at_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inline, a call the cache answers never copies its arguments (the copy is a pickle
    and a load: more than the hit); a miss still runs on its own copy, taken at the call."""
    copies: list[str] = []
    real = backend._copied

    def counted(*a: Any) -> Any:
        copies.append(a[3])
        return real(*a)

    monkeypatch.setattr(backend, "_copied", counted)
    cache = JobCache(CacheConfig(True, str(tmp_path / "c")), "inline")
    session = Session(None, None, {}, cache=cache)
    backend.activate(backend.InlineBackend(session))
    try:
        mine = [1, 2]
        assert get(grow(mine)) == [1, 2, 2]
        assert mine == [1, 2] and len(copies) == 1  # the miss ran on a copy
        cache.flush(10)
        ref = grow(mine)
        mine.append(99)  # after the call: not the hit's business either
        assert get(ref) == [1, 2, 2] and ref in backend.FROM_CACHE
        assert len(copies) == 1  # the hit copied nothing
        assert get(grow([5])) == [5, 1] and len(copies) == 2
    finally:
        backend.activate(None)


def test_progress_and_status_count_hits_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 18 point 3: get(progress=True) and the job's counts say how many came from the cache."""
    from qshpc.jobs.progress import format_counts, snapshot

    config = CacheConfig(True, str(tmp_path / "c"))
    cache = JobCache(config, "inline")
    session = Session(None, None, {}, cache=cache)
    backend.activate(backend.InlineBackend(session))
    try:
        get([square(i) for i in range(3)])
        cache.flush(10)
        capsys.readouterr()
        assert get([square(i) for i in range(4)], progress=True) == [0, 1, 4, 9]
        err = capsys.readouterr().err
        assert "qshpc: 4/4 tasks done" in err and "3 from cache" in err, err
        assert session.cached == 3
    finally:
        backend.activate(None)
    meta = {
        "id": "j",
        "state": "SUCCEEDED",
        "task_counts": {"SUCCEEDED": 512},
        "tasks_from_cache": 500,
    }
    assert format_counts(snapshot(meta)) == "512 tasks done (500 from cache)"


def test_a_resumed_job_finds_its_hits_in_its_own_store(tmp_path: Path) -> None:
    """A hit is recorded under its cache key: a resume finds it among the job's own
    results (not looked up again, not recomputed when the cache lost the entry)."""
    from types import SimpleNamespace

    from qshpc.cache import key

    done: dict[str, Any] = {
        key(square, (i,)): SimpleNamespace(result=-i, provenance={}) for i in range(3)
    }
    for inline in (False, True):
        # The cache lost every entry of the run resumed.
        cache = JobCache(CacheConfig(True, str(tmp_path / f"c{inline}")), "resumed")
        if inline:
            session = Session(None, None, {}, done, cache=cache)
            backend.activate(backend.InlineBackend(session))
            try:
                refs = [square(i) for i in range(4)]
            finally:
                backend.activate(None)
        else:
            with ranks(cache, 1, done) as (d, net):
                session = d.session
                refs = [d.submit(square, (i,), {}) for i in range(4)]
                assert get(refs, timeout=30)[3] == 9  # not done before: it runs
                assert sum(len(m[5]) for m in _batches(net)) == 1
        assert [r.result(timeout=10) for r in refs[:3]] == [0, -1, -2]  # the job's own
        assert session.skipped == 3 and cache.hits == 0
        assert refs[3].result(timeout=10) == 9


def test_rank_0_dumps_a_cached_calls_circuit_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key of a call hashes the QPY bytes its payload holds (one dump a circuit, hit or miss)."""
    from qiskit import QuantumCircuit

    from qshpc.store import _qpy

    circuits = []
    for i in range(3):
        qc = QuantumCircuit(2)
        qc.rx(0.1 * i, 0)
        qc.cx(0, 1)
        circuits.append(qc)
    from qshpc.runtime import intake

    dumps: list[object] = []
    real = _qpy.dump
    monkeypatch.setattr(_qpy, "dump", lambda c: dumps.append(c) or real(c))
    packed: list[object] = []
    real_pack = intake.pack
    monkeypatch.setattr(intake, "pack", lambda *a, **k: packed.append(a) or real_pack(*a, **k))
    config = CacheConfig(True, str(tmp_path / "c"))
    for job in ("miss", "hit"):
        with ranks(JobCache(config, job), 1) as (d, _):
            dumps.clear()
            packed.clear()
            refs = [d.submit(depth_of, (c,), {}) for c in circuits]
            d.look_up_later()  # (perf18: keyed at the call, looked up with the next ones)
            assert len([x for x in dumps if any(x is c for c in circuits)]) == 3
            assert all((r in backend.FROM_CACHE) == (job == "hit") for r in refs)
            # Keyed before pickling: a hit pickles nothing, a miss once.
            calls = [a for a in packed if isinstance(a[0], tuple)]  # not the function's
            assert len(calls) == (3 if job == "miss" else 0)
            assert get(refs, timeout=30) == [c.depth() for c in circuits]


@distribute_task()
def depth_of(circuit: Any) -> int:
    return int(circuit.depth())


class _CountingEvent(threading.Event):
    def __init__(self) -> None:
        super().__init__()
        self.sets = 0
        self.timeouts: list[float | None] = []

    def set(self) -> None:
        self.sets += 1
        super().set()

    def wait(self, timeout: float | None = None) -> bool:
        self.timeouts.append(timeout)
        return super().wait(timeout)


def test_hits_leave_an_idle_dispatcher_asleep(tmp_path: Path) -> None:
    """A hit queues nothing: it does not wake the dispatcher thread, which sleeps long
    while nothing is out or queued (waking it, or its 2 ms polls, took the GIL from
    the program thread at each I/O call of the hits)."""
    config = CacheConfig(True, str(tmp_path / "c"))
    with ranks(JobCache(config, "fill"), 1) as (d, _):
        get([d.submit(square, (i,), {}) for i in range(20)], timeout=30)
    with ranks(JobCache(config, "hits"), 1) as (d, _):
        event = _CountingEvent()
        old, d._wake = d._wake, event
        old.set()  # the loop's next sleep is on `event`
        deadline = time.monotonic() + 10
        while not event.timeouts and time.monotonic() < deadline:
            time.sleep(0.001)
        refs = [d.submit(square, (i,), {}) for i in range(20)]
        assert all(r in backend.FROM_CACHE for r in refs)
        assert event.sets == 0
        assert max(t or 0 for t in event.timeouts) > 0.01  # idle: a long sleep, not 2 ms polls
        miss = d.submit(square, (21,), {})  # a call to run still wakes it
        assert get(miss, timeout=30) == 441 and event.sets == 1


@pytest.fixture
def slow_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each cache write takes 60 ms; rank 0 waits 0.5 s for a goodbye; reports every 0.1 s."""
    from qshpc.runtime import liveness, worker

    put = CacheDir.put

    def slow_put(self: CacheDir, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.06)
        return put(self, *args, **kwargs)

    monkeypatch.setattr(CacheDir, "put", slow_put)
    monkeypatch.setattr(liveness, "GOODBYE_S", 0.5)
    monkeypatch.setattr(worker, "FLUSH_REPORT_S", 0.1)


@pytest.mark.usefixtures("slow_cache")
def test_the_end_waits_for_the_workers_last_cache_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 30 results take ~1.8 s to write, past the goodbye's 0.5 s and the 0.2 s drain:
    # the worker's reports keep rank 0 waiting, and every result is cached.
    cache = JobCache(CacheConfig(True, str(tmp_path / "c")), "job-1")
    with ranks(cache, workers=1, drain_s=0.2) as (d, _):
        assert get([d.submit(square, (i,), {}) for i in range(30)], timeout=30)[-1] == 841
    assert not d.abandoned
    assert len(list(CacheDir(tmp_path / "c").scan())) == 30
    err = capsys.readouterr().err
    assert "the workers write their last" in err and "(rank 1: " in err, err
    assert "the last results reached the cache" in err, err
    # A Ctrl-C (rank 0's handler calls hurry) stops the wait: said, the rest is not cached.
    cache = JobCache(CacheConfig(True, str(tmp_path / "c2")), "job-2")
    with ranks(cache, workers=1, drain_s=0.2) as (d, _):
        assert len(get([d.submit(square, (i,), {}) for i in range(15)], timeout=30)) == 15
        threading.Timer(0.3, d.hurry).start()
    assert d.abandoned
    err = capsys.readouterr().err
    assert "stopped waiting for the workers' last writes" in err, err


@pytest.mark.usefixtures("slow_cache")
def test_rank_0_and_plain_python_finish_their_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from qshpc.cache import jobcache

    cache = JobCache(CacheConfig(True, str(tmp_path / "c")), None)
    for i in range(25):
        cache.store(f"{i:064x}", "f", str(i), value=i)
    assert not cache.finish(stop=lambda: cache.left < 22)  # a signal after a few writes
    err = capsys.readouterr().err
    assert "result(s) not cached: the wait for the cache was stopped" in err, err
    assert cache.finish()  # ~1.2 s more: said after a second, and when done
    err = capsys.readouterr().err
    assert "writing the last" in err and "reached the cache" in err, err
    assert len(list(CacheDir(tmp_path / "c").scan())) == 25
    # A write that never ends (a hung file system) is given up after STALL_S.
    block = threading.Event()
    w = jobcache.Writer(CacheDir(tmp_path / "c3"))
    w.cache.put = lambda *a, **k: block.wait()  # type: ignore[method-assign]
    w.submit("0" * 64, b"x", None, "f", None, "0")
    assert not w.drain(stall_s=0.2, every=0.05) and w.stalled
    block.set()


def test_calls_keyed_for_a_later_lookup_fail_when_the_dispatcher_stops(tmp_path: Path) -> None:
    """perf18: a call keyed at the call and left for a later lookup (``Intake._defer``) fails
    with the error that stopped the dispatcher thread, as a queued call does (none waits on)."""
    from qiskit import QuantumCircuit

    circuits = []
    for i in range(3):
        qc = QuantumCircuit(2)
        for _ in range(i + 1):
            qc.cx(0, 1)
        circuits.append(qc)
    config = CacheConfig(True, str(tmp_path / "c"))
    with ranks(JobCache(config, "fill"), 1) as (d, _):
        assert get([d.submit(depth_of, (c,), {}) for c in circuits], timeout=30) == [1, 2, 3]
    main = threading.main_thread()
    errors: list[BaseException | None] = []
    with pytest.raises(RuntimeError, match="dispatcher failed"):
        with ranks(JobCache(config, "hit"), 1) as (d, _):
            real = d.look_up_later

            def broken() -> bool:  # the dispatcher thread's turn fails (a fault injected)
                if threading.current_thread() is not main:
                    raise OSError("injected")
                return real()

            d.look_up_later = broken  # type: ignore[method-assign]
            refs = [d.submit(depth_of, (c,), {}) for c in circuits]
            # (not get nor ref.exception(): they look them up first, in this thread)
            concurrent.futures.wait(refs, timeout=30)
            errors = [r.exception(timeout=0) for r in refs]
    assert [str(e) for e in errors] == ["injected"] * 3
