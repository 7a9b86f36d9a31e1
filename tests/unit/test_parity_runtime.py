"""Issue 14's runtime pieces in one process: refs as futures, Ray's wait, ids, nested refs,
TaskError as its cause's class, cpu targets placed on the ranks that have the cores.

The dispatcher and workers run over the in-process loopback (as tests/unit/test_dispatcher.py);
the program-side semantics run on the inline backend (plain ``python``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import pickle
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

import qshpc
from qshpc import (
    ObjectRef,
    TaskError,
    TaskRef,
    UserError,
    as_completed,
    distribute_task,
    get,
    get_refs_by_status,
    put,
    wait,
)
from qshpc.errors import ResourceError, dump_cause, load_cause, task_error
from qshpc.program import backend
from qshpc.program.backend import pack
from qshpc.program.refs import resolve_many
from qshpc.runtime.dispatcher import Dispatcher
from qshpc.runtime.loopback import Loopback
from qshpc.runtime.protocol import TAG_BATCH
from qshpc.task.context import current_task, rank_info
from tests.unit.loopback_ranks import loopback_ranks

pytestmark = pytest.mark.timeout(120)


@contextmanager
def ranks(cpus: list[int]) -> Iterator[tuple[Dispatcher, Loopback]]:
    """Rank 0 and ``len(cpus)`` worker threads with those cores, over one loopback."""
    with loopback_ranks(len(cpus), cpus=cpus) as (d, net, _):
        yield d, net


@distribute_task()
def square(x: int) -> int:
    return x * x


@distribute_task()
def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


# -- refs are futures -------------------------------------------------------------
def test_task_refs_are_futures_for_concurrent_futures_and_asyncio() -> None:
    refs = [square(i) for i in range(5)]
    assert all(isinstance(r, cf.Future) for r in refs)
    done, not_done = cf.wait(refs, timeout=5)
    assert len(done) == 5 and not not_done
    assert sorted(r.result() for r in cf.as_completed(refs, timeout=5)) == [0, 1, 4, 9, 16]

    async def main() -> list[Any]:
        return [await refs[2], await asyncio.wrap_future(refs[3]), await put("o")]

    assert asyncio.run(main()) == [4, 9, "o"]
    pending: TaskRef[int] = TaskRef("x", "f")
    seen: list[int] = []
    pending.add_done_callback(lambda f: seen.append(f.result()))
    t = threading.Timer(0.05, pending.set_result, args=(7,))
    t.start()
    assert next(iter(cf.as_completed([pending], timeout=5))).result() == 7
    t.join(5)  # callbacks run after the waiters are woken (as concurrent.futures does)
    assert seen == [7]


def test_future_cancel_and_exception_follow_concurrent_futures() -> None:
    ref: TaskRef[int] = TaskRef("c", "f")
    assert ref.cancel() and ref.cancelled() and ref.done()
    with pytest.raises(cf.CancelledError):
        ref.result()
    with pytest.raises(cf.CancelledError):
        ref.exception()
    done, _ = cf.wait([ref], timeout=0)
    assert done == {ref}


def test_a_pending_ref_cannot_be_pickled_and_a_done_one_travels_with_its_value() -> None:
    ref: TaskRef[int] = TaskRef("p", "f")
    with pytest.raises(TypeError, match="not done"):
        pickle.dumps(ref)
    resolve_many([(ref, True, 42)])
    again = pickle.loads(pickle.dumps(ref))
    assert again.done() and again.result() == 42 and again.task_id == "p"


def test_as_completed_yields_done_ones_first_and_times_out_clearly() -> None:
    a, b = put(1), square(3)
    late: TaskRef[int] = TaskRef("late", "f")
    it = as_completed([a, b, late], timeout=0.1)
    assert next(it) is a and next(it) is b
    with pytest.raises(TimeoutError, match=r"1 of 3 tasks not done after 0\.1 s"):
        next(it)
    with pytest.raises(UserError, match="list of references"):
        list(as_completed(a))  # type: ignore[arg-type]


# -- Ray's wait ---------------------------------------------------------------------
def test_wait_returns_exactly_num_returns_in_input_order() -> None:
    refs = [square(i) for i in range(5)]
    done, pending = wait(refs, num_returns=3)
    assert done == refs[:3] and pending == refs[3:]
    late: TaskRef[int] = TaskRef("late", "f")
    done, pending = wait([late, *refs[:2]], num_returns=2, timeout=0)
    assert done == refs[:2] and pending == [late]
    done, pending = wait([late, refs[0]], num_returns=2, timeout=0.05)
    assert done == [refs[0]] and pending == [late]  # fewer only on timeout
    assert wait([]) == ([], [])
    o1, o2 = put(1), put(2)
    assert wait([o1, o2], num_returns=2, timeout=0) == ([o1, o2], [])
    assert get_refs_by_status([o1, late], timeout=0) == ([o1], [late])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda r: wait(r[0]), "single one"),
        (lambda r: wait([r[0], r[0]]), "distinct"),
        (lambda r: wait(r, num_returns=0), "num_returns must be between 1 and 2"),
        (lambda r: wait(r, num_returns=3), "num_returns must be between 1 and 2"),
        (lambda r: wait(r, timeout=-1), "timeout must be None or"),
        (lambda r: wait([r[0], 5]), "item 1 is a int"),
        (lambda r: get_refs_by_status(r, wat=1), "get_refs_by_status takes num_returns"),
    ],
)
def test_wait_refuses_bad_input_clearly(call: Any, match: str) -> None:
    refs = [square(1), square(2)]
    with pytest.raises(UserError, match=match):
        call(refs)


@pytest.mark.parametrize("timeout", [-1, float("nan"), "3", True])
def test_get_refuses_a_bad_timeout_on_any_rank_count(timeout: Any) -> None:
    # On 2+ ranks get(ref, timeout=-1) raised "not done after -1 s", on one rank it
    # returned the value: the same refusal as wait's, before waiting, everywhere.
    ref = square(3)
    with pytest.raises(UserError, match="get: timeout must be None or a number of seconds"):
        qshpc.get(ref, timeout=timeout)
    with pytest.raises(UserError, match="get: timeout must be None"):
        qshpc.get([ref], timeout=timeout)
    assert qshpc.get(ref, timeout=float("inf")) == 9
    assert qshpc.get(ref, timeout=np.float32(5)) == 9


# -- references at any depth, ids that never collide ------------------------------
class Holder:
    def __init__(self, ref: Any) -> None:
        self.ref = ref


def test_pack_finds_references_at_any_depth() -> None:
    o = put("x")
    late: TaskRef[int] = TaskRef("late", "f")
    value = ([{"a": (1, [o])}], {"s": {o}, "h": Holder(late)})
    _, objs, pending = pack(value, "f", "1")
    assert set(objs) == {o.obj_id} and list(pending) == [late]
    data, objs, pending = pack(([1, 2, "x"], {}), "f", "1")
    assert objs == () and pending == () and pickle.loads(data) == ([1, 2, "x"], {})


def test_object_ids_name_their_rank() -> None:
    a = put("mine")
    assert isinstance(a, ObjectRef) and a.owner == rank_info().rank and a.index >= 1
    inline = backend.InlineBackend(nested=True, rank=3)
    b = inline.put("theirs")
    assert b.owner == 3 and b.obj_id != a.obj_id
    with pytest.raises(UserError, match="placed by a task on rank 3"):
        backend.current().get_object(b.obj_id)


@distribute_task()
def reads(c: Any) -> Any:
    return [get(c["deep"][0][0]), get(c["task"][0]), get(c["obj"].ref)]


@distribute_task()
def worker_puts(tag: str) -> list[str]:
    refs = [put(f"{tag}-{i}") for i in range(3)]
    return [get(reads({"deep": [[r]], "task": [square(2)], "obj": Holder(r)}))[0] for r in refs]


def test_nested_references_over_the_loopback_never_collide() -> None:
    # One worker thread: worker threads of one process share the program API's
    # backend (in MPI each rank is a process); tests/mpi/test_parity.py runs two.
    with ranks([1]) as (d, _):
        for rnd in range(3):
            assert get(
                [d.submit(worker_puts, (f"w{rnd}{k}",), {}) for k in range(2)], timeout=60
            ) == [[f"w{rnd}{k}-{i}" for i in range(3)] for k in range(2)]
            mine = [d.put(f"r{rnd}-{i}") for i in range(4)]
            calls = [
                d.submit(
                    reads,
                    ({"deep": [[m]], "task": [d.submit(square, (i,), {})], "obj": Holder(m)},),
                    {},
                )
                for i, m in enumerate(mine)
            ]
            assert get(calls, timeout=60) == [
                [f"r{rnd}-{i}", i * i, f"r{rnd}-{i}"] for i in range(4)
            ]


# -- TaskError as its cause's class -----------------------------------------------
class CodeError(Exception):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


class Final(Exception):
    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("final")


class NeedsArgs(Exception):
    def __new__(cls, a: int, b: int) -> NeedsArgs:
        return super().__new__(cls, a, b)


@pytest.mark.parametrize(
    "cause",
    [
        ValueError("v"),
        KeyError("k"),
        FileNotFoundError(2, "nope", "/x"),
        CodeError(3, "d"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"),
        NeedsArgs(1, 2),  # a __new__ of its own (a plain TaskError before session 27)
    ],
)
def test_task_error_is_also_its_causes_class_and_travels(cause: Exception) -> None:
    err = task_error("7", "f", 1, "h", "Traceback\nX: y\n", type(cause).__name__, 1, cause)
    assert isinstance(err, TaskError) and isinstance(err, type(cause))
    assert (err.task_id, err.rank, err.host) == ("7", 1, "h") and "failed on rank 1" in str(err)
    assert err.args == cause.args
    back = load_cause(dump_cause(cause))
    assert type(back) is type(cause)
    again = pickle.loads(pickle.dumps(err))
    assert isinstance(again, type(cause)) and isinstance(again, TaskError)
    if isinstance(cause, CodeError):
        assert again.code == 3  # type: ignore[attr-defined]
    if isinstance(cause, OSError):
        assert (err.errno, err.filename) == (2, "/x")  # type: ignore[attr-defined]


@pytest.mark.parametrize("cause", [Final("f"), KeyboardInterrupt(), None])
def test_task_error_falls_back_to_plain_when_the_class_refuses(cause: Any) -> None:
    err = task_error("7", "f", 1, "h", "tb", "X", 1, cause)
    assert type(err) is TaskError
    assert pickle.loads(pickle.dumps(err)).task_id == "7"


def test_nested_task_error_keeps_the_original_class_and_get_catches_it() -> None:
    @distribute_task()
    def bad() -> None:
        raise CodeError(5, "deep")

    @distribute_task()
    def outer() -> None:
        get(bad())

    with pytest.raises(CodeError) as info:
        get(outer())
    assert isinstance(info.value, TaskError) and info.value.code == 5  # type: ignore[attr-defined]
    with ranks([1, 1]) as (d, _):
        with pytest.raises(CodeError):
            get(d.submit(outer, (), {}), timeout=60)
        with pytest.raises(ValueError):
            get(d.submit(distribute_task()(int), ("x",), {}), timeout=60)


# -- cpu targets ----------------------------------------------------------------------
@distribute_task(target={"cpu": 3})
def wide() -> int:
    ctx = current_task()
    assert ctx is not None
    return ctx.cpus  # capped at the process's cores here (worker threads share one process)


@distribute_task(target={"cpu": 9})
def too_wide() -> None:
    return None


def test_cpu_target_places_calls_on_workers_with_the_cores() -> None:
    with ranks([1, 3, 1]) as (d, net):
        refs = [d.submit(wide, (), {}) for _ in range(8)] + [
            d.submit(square, (i,), {}) for i in range(20)
        ]
        out = get(refs, timeout=60)
        assert out[8:] == [i * i for i in range(20)]
        wide_ids = {r.task_id for r in refs[:8]}
        went = {dest for _, dest, msg in net.sent(TAG_BATCH) if wide_ids & set(msg[5])}
        assert went == {2}  # only rank 2 has 3 cores
        with pytest.raises(ResourceError, match=r"cpu=9.*rank 1: 1, rank 2: 3, rank 3: 1"):
            d.submit(too_wide, (), {})


def test_cpu_refusal_says_what_the_ranks_have_in_one_short_line() -> None:
    class Wide:
        name, threads = "f", 64

    many = {r: 4 for r in range(1, 4000)} | {4000: 8}
    with pytest.raises(ResourceError) as info:
        backend.check_threads(Wide(), many)  # type: ignore[arg-type]
    text = str(info.value)
    assert "(ranks 1-3999: 4 each, rank 4000: 8)" in text and len(text) < 400, text


def test_cpu_target_sets_the_threads_and_environment_of_the_call() -> None:
    @distribute_task(target={"cpu": 1, "env_vars": {"QSHPC_TEST_VAR": "on"}})
    def env() -> list[Any]:
        import os

        from qshpc.aer.simulator import sim_spec

        ctx = current_task()
        assert ctx is not None
        return [ctx.cpus, sim_spec().threads, os.environ.get("QSHPC_TEST_VAR")]

    assert get(env()) == [1, 1, "on"]
    import os

    assert "QSHPC_TEST_VAR" not in os.environ


def test_unknown_target_keys_and_pip_are_checked_at_decoration() -> None:
    with pytest.raises(ResourceError, match=r"resources=.*no meaning"):
        distribute_task(target={"resources": {"custom": 1}})
    with pytest.raises(ResourceError, match="pip install nope-not-a-package-qshpc"):
        distribute_task(target={"pip": ["nope-not-a-package-qshpc"]})(square.func)
    assert qshpc.Target(mem=2).mem_gb == 2.0 == qshpc.Target.from_dict({"mem": 2}).mem


def test_configuration_refuses_what_a_job_cannot_honour() -> None:
    with pytest.raises(UserError, match="ranks are fixed when it starts"):
        qshpc.Configuration(auto_scaling=True).check()
    with pytest.raises(UserError, match="this environment's Python"):
        qshpc.Configuration(python_version="py27").check()
    with pytest.raises(UserError, match="a whole number >= 0"):
        qshpc.Configuration(workers=-1).check()
    qshpc.Configuration(workers=2, python_version=qshpc.Configuration.PYTHON_V3_9 * 0).check()


def test_cpu_refusal_for_every_core_of_this_machine_names_workers_0() -> None:
    """review28 F10: with `cpu` = this machine's cores, fewer workers cannot help (rank 0
    keeps a core); only the program's own process has them all."""
    import os

    here = len(os.sched_getaffinity(0))

    class All:
        name, threads = "f", here

    with pytest.raises(ResourceError) as info:
        backend.check_threads(All(), {1: max(1, here - 1)})  # type: ignore[arg-type]
    assert "--workers 0" in str(info.value) and "fewer workers" not in str(info.value)
