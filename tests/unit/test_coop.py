"""Cooperative groups: calls take turns, their steps share runs, failures stay their own.

The Aer part runs real Aer: the exact runs of a group's tasks share one Aer run,
and every task's distribution (sampled ones included, with its seed) is the same
as when the task runs alone.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from qshpc.task import context, coop
from qshpc.task.context import TaskContext


def _wire(values: Any) -> list[Any]:
    """A message's values as rank 0 reads them: through pickle, as the transport sends them
    (a process holding placed arrays, as an earlier test in this process may leave it,
    sends them pickled once: ``qshpc.runtime.results.for_the_trip``)."""
    return list(pickle.loads(pickle.dumps(values)))


@pytest.fixture
def group() -> Iterator[coop.Group]:
    g = coop.Group(4)
    yield g
    g.close()


class Doubler:
    """A step that doubles numbers, recording each shared call's size."""

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def __call__(self, items: list[Any]) -> list[Any]:
        self.sizes.append(len(items))
        if any(i < 0 for i in items):
            raise ValueError(f"negative in {items}")
        return [2 * i for i in items]


def test_steps_of_a_group_share_runs_and_calls_take_turns(group: coop.Group) -> None:
    execute = Doubler()
    running = [0]
    most = [0]
    out: dict[int, int] = {}
    order: list[int] = []

    def call(i: int) -> None:
        order.append(i)
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.001)  # lets another thread run, if one could
        running[0] -= 1
        a = coop.together("double", execute, i)
        running[0] += 1
        most[0] = max(most[0], running[0])
        running[0] -= 1
        out[i] = coop.together("double", execute, a)

    group.run([partial(call, i) for i in range(10)])
    assert out == {i: 4 * i for i in range(10)}
    assert order == list(range(10))  # calls start in the batch's order
    assert most[0] == 1  # never two calls at once
    assert sum(execute.sizes) == 20
    assert max(execute.sizes) == 4  # the group's width
    assert len(execute.sizes) < 20


def test_a_failing_item_fails_only_its_call(group: coop.Group) -> None:
    execute = Doubler()
    out: dict[int, Any] = {}

    def call(i: int) -> None:
        try:
            out[i] = coop.together("double", execute, i)
        except ValueError as exc:
            out[i] = exc

    group.run([partial(call, i) for i in (1, -2, 3, 4)])
    assert out[1] == 2 and out[3] == 6 and out[4] == 8
    assert isinstance(out[-2], ValueError) and "negative in [-2]" in str(out[-2])


class Panic(BaseException):
    """Like pyo3's PanicException: a BaseException that is not an exit."""


def test_a_panicking_shared_run_fails_the_calls_not_the_group(group: coop.Group) -> None:
    def execute(items: list[int]) -> list[int]:
        if 2 in items:
            raise Panic("index out of bounds")
        return items

    out: dict[int, Any] = {}

    def call(i: int) -> None:
        try:
            out[i] = coop.together("p", execute, i)
        except Panic as exc:
            out[i] = exc

    group.run([partial(call, i) for i in range(4)])
    assert out[0] == 0 and out[1] == 1 and out[3] == 3
    assert isinstance(out[2], Panic)


def test_steps_of_other_keys_run_apart(group: coop.Group) -> None:
    a, b = Doubler(), Doubler()
    out: dict[int, int] = {}

    def call(i: int) -> None:
        out[i] = coop.together("a" if i % 2 else "b", a if i % 2 else b, i)

    group.run([partial(call, i) for i in range(4)])
    assert out == {0: 0, 1: 2, 2: 4, 3: 6}
    assert a.sizes == [2] and b.sizes == [2]


def test_system_exit_in_a_call_reaches_the_caller(group: coop.Group) -> None:
    def call(i: int) -> None:
        if i == 2:
            raise SystemExit(3)

    with pytest.raises(SystemExit):
        group.run([partial(call, i) for i in range(4)])


def test_outside_a_group_a_step_runs_at_once_and_is_counted() -> None:
    execute = Doubler()
    before = coop.STEPS_ALONE[0]
    assert coop.together("double", execute, 5) == 10
    assert coop.STEPS_ALONE[0] == before + 1
    assert execute.sizes == [1]
    # a thread of the user's inside a task is not a runner either
    box: list[int] = []
    t = threading.Thread(target=lambda: box.append(coop.together("double", execute, 1)))
    t.start()
    t.join()
    assert box == [2]


def test_time_parked_for_others_is_not_the_calls_own(group: coop.Group) -> None:
    runs: list[float] = []
    own: dict[int, tuple[float, float]] = {}

    def slow(items: list[int]) -> list[int]:
        start = time.perf_counter()
        time.sleep(0.01 * len(items))
        runs.append(time.perf_counter() - start)
        return items

    def call(i: int) -> None:
        start, others = time.perf_counter(), coop.seconds_for_others()
        coop.together("slow", slow, i)
        wall = time.perf_counter() - start
        own[i] = (wall, wall - (coop.seconds_for_others() - others))

    group.run([partial(call, i) for i in range(4)])
    (run,) = runs  # the four calls parked, then ran together
    # Each call was parked through the whole run: its share (a quarter) is its own, the
    # rest of its wait is not. Bounds from the run as measured, not from the clock: was
    # 0.005 < own < 0.03, over by a preempted thread's wake-up (1 in 300 at load 11).
    for wall, mine in own.values():
        assert mine >= run / 4 * 0.999, own
        assert wall - mine >= run * 3 / 4 * 0.999, own


# --- real Aer: grouped tasks against the same tasks alone ---------------------------


def _circuits(n: int) -> list[Any]:
    from qiskit.circuit.random import random_circuit

    out = []
    for i in range(n):
        c = random_circuit(5, 5, seed=40 + i)
        c.measure_all()
        out.append(c)
    return out


def _task(i: int, circuit: Any, shots: int | None, sink: dict[int, Any]) -> None:
    from qshpc.aer import Sampler

    task = TaskContext(task_id=str(i), function="t", seed=1000 + i)
    prov = context.push_task(task)
    try:
        dist = Sampler(options={"shots": shots}).run(circuit).result().quasi_dists[0]
    finally:
        context.pop_task()
    sink[i] = (dist, prov)


@pytest.mark.parametrize("shots", [None, 300])
def test_grouped_aer_tasks_equal_alone_and_share_one_run(
    group: coop.Group, shots: int | None
) -> None:
    pytest.importorskip("qiskit_aer")
    circuits = _circuits(6)
    alone: dict[int, Any] = {}
    for i, c in enumerate(circuits):
        _task(i, c, shots, alone)
    grouped: dict[int, Any] = {}
    group.run([partial(_task, i, c, shots, grouped) for i, c in enumerate(circuits)])
    for i in range(6):
        assert grouped[i][0] == alone[i][0]  # bit-identical, sampled ones included
        assert grouped[i][0].shots == shots
        assert "aer_shared_experiments" not in alone[i][1]
        assert grouped[i][1]["seed"] == 1000 + i
    # width 4: tasks 0-3 shared one Aer run, 4-5 the next
    assert [grouped[i][1]["aer_shared_experiments"] for i in range(6)] == [4, 4, 4, 4, 2, 2]


def test_a_failing_aer_run_fails_only_its_task(
    group: coop.Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Aer failing on one circuit of a shared run (injected: no real circuit both passes
    the width check and makes Aer fail) fails that task only."""
    pytest.importorskip("qiskit_aer")
    from qshpc.aer import engine

    real = engine.run_aer

    def run_aer(spec: Any, experiments: list[Any], *args: Any, **kwargs: Any) -> Any:
        if any(e.name == "poison" for e in experiments):
            raise RuntimeError("Aer failed: ERROR: injected")
        return real(spec, experiments, *args, **kwargs)

    monkeypatch.setattr(engine, "run_aer", run_aer)
    circuits = _circuits(4)
    circuits[1].name = "poison"
    out: dict[int, Any] = {}

    def call(i: int, circuit: Any) -> None:
        try:
            _task(i, circuit, None, out)
        except Exception as exc:
            out[i] = exc

    group.run([partial(call, i, c) for i, c in enumerate(circuits)])
    assert isinstance(out[1], RuntimeError) and "injected" in str(out[1])
    for i in (0, 2, 3):
        assert isinstance(out[i], tuple) and abs(sum(out[i][0].values()) - 1) < 1e-9


def test_sweep_tasks_share_one_run_and_one_transpile(group: coop.Group) -> None:
    """Tasks of a parameter sweep, each with its own copy of the template (as workers
    receive them): one transpile per rank and one Aer run per group, values as alone."""
    pytest.importorskip("qiskit_aer")
    import io

    from qiskit import QuantumCircuit, qpy
    from qiskit.circuit import Parameter
    from qiskit.quantum_info import SparsePauliOp

    import qshpc.aer
    from qshpc.aer import Estimator, Sampler
    from qshpc.aer import simulator as sim

    theta = Parameter("theta")
    template = QuantumCircuit(2)
    template.ry(theta, 0)
    template.cx(0, 1)
    template.iswap(0, 1)  # not a gate Aer runs: the template is transpiled, once a rank
    buf = io.BytesIO()
    qpy.dump(template, buf)

    def copy() -> Any:  # what a worker unpickles for each task: equal content, a new object
        return qpy.load(io.BytesIO(buf.getvalue()))[0]

    observable = SparsePauliOp(["ZZ", "XX"], [1.0, 0.5])
    points = [0.1 * k for k in range(6)]

    def energy(i: int, sink: dict[int, Any]) -> None:
        task = TaskContext(task_id=str(i), function="e", seed=None)
        prov = context.push_task(task)
        try:
            value = Estimator().run(copy(), observable, [points[i]]).result().values[0]
        finally:
            context.pop_task()
        sink[i] = (float(value), prov)

    def probs(i: int, sink: dict[int, Any]) -> None:  # a Sampler sweep task in the same group
        measured = copy()
        measured.measure_all()
        sink[100 + i] = Sampler().run(measured, [points[i]]).result().quasi_dists[0]

    qshpc.aer.reset_caches()
    alone: dict[int, Any] = {}
    for i in range(4):
        energy(i, alone)
        probs(i, alone)
    assert len(sim._transpiled) == 2  # the template, with and without measurements
    qshpc.aer.reset_caches()
    grouped: dict[int, Any] = {}
    calls = [partial(f, i, grouped) for i in range(4) for f in (energy, probs)]
    group.run(calls)
    assert len(sim._transpiled) == 2
    for i in range(4):
        assert grouped[i][0] == pytest.approx(alone[i][0], abs=1e-12)
        assert grouped[100 + i] == alone[100 + i]
        assert grouped[i][1]["aer_shared_experiments"] == 4  # width 4: 2 energies, 2 samplers


def test_a_sweep_over_tasks_is_one_aer_experiment(
    group: coop.Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Grouped tasks with one template and observable bind their points into ONE Aer
    experiment; identical unbound circuits run once. (A spy counts Aer's experiments.)"""
    pytest.importorskip("qiskit_aer")
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter
    from qiskit.quantum_info import SparsePauliOp

    from qshpc.aer import Estimator, Sampler, engine

    sizes: list[int] = []
    real = engine.run_aer

    def spy(spec: Any, experiments: list[Any], *args: Any, **kwargs: Any) -> Any:
        sizes.append(len(experiments))
        return real(spec, experiments, *args, **kwargs)

    monkeypatch.setattr(engine, "run_aer", spy)
    theta = Parameter("theta")
    template = QuantumCircuit(3)
    template.ry(theta, [0, 1, 2])
    template.cx(0, 1)
    template.cx(1, 2)
    observable = SparsePauliOp(["ZZI", "IXX"], [1.0, -0.3])
    out: dict[int, float] = {}

    def energy(i: int) -> None:
        out[i] = float(Estimator().run(template.copy(), observable, [0.2 * i]).result().values[0])

    group.run([partial(energy, i) for i in range(4)])
    assert sizes == [1]
    alone = [
        float(Estimator().run(template, observable, [0.2 * i]).result().values[0]) for i in range(4)
    ]
    assert [out[i] for i in range(4)] == pytest.approx(alone, abs=1e-12)

    sizes.clear()
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    dists: dict[int, Any] = {}

    def sample(i: int) -> None:
        dists[i] = Sampler().run(bell.copy()).result().quasi_dists[0]

    group.run([partial(sample, i) for i in range(4)])
    assert sizes == [1]
    assert all(dists[i] == pytest.approx({0: 0.5, 3: 0.5}) for i in range(4))


class _Sender:
    """Stands in for the worker's MPI sender: keeps the result messages."""

    def __init__(self) -> None:
        self.messages: list[tuple[Any, ...]] = []

    def send(
        self, results: Any, bid: int, first: int, submitted: Any, attempts: Any, final: bool
    ) -> None:
        self.messages.append(results.message(bid, first, submitted, attempts, final))


def test_worker_groups_short_step_calls_and_stops_when_they_grow_long() -> None:
    from qshpc.runtime.batchrun import BatchRunner

    naps = {"s": 0.0}

    def task(x: int) -> int:
        time.sleep(naps["s"])
        return int(coop.together("double", Doubler(), x))

    def tiny(x: int) -> int:
        return x + 1

    runner = BatchRunner(context.rank_info())
    funcs = {1: (task, "task", b"t" * 32), 2: (tiny, "tiny", b"u" * 32)}

    def batch(fn: int, n: int) -> list[Any]:
        sender = _Sender()
        cols = [
            [str(i) for i in range(n)],
            fn,
            [(i,) for i in range(n)],
            None,
            [0.0] * n,
            None,
            None,
        ]
        runner.run(sender, 1, cols, funcs, None)  # type: ignore[arg-type]
        assert sender.messages[-1][-1] is True  # the last message closes the batch
        return [v for m in sender.messages for v in _wire(m[3])]

    assert batch(2, 50) == [i + 1 for i in range(50)]
    assert b"u" * 32 not in runner.grouped  # no step: never grouped
    assert batch(1, 6) == [2 * i for i in range(6)]
    assert b"t" * 32 in runner.grouped  # short calls with a step: grouped from now on
    naps["s"] = 0.12
    assert batch(1, 4) == [2 * i for i in range(4)]  # results in order, from the group
    assert b"t" * 32 not in runner.grouped  # they grew long: alone again
    assert runner.group is not None
    runner.group.close()


def test_a_cut_grouped_batch_sends_the_calls_done_in_order_and_starts_no_more() -> None:
    """The worker's cooperative-group path under CUT (the job is ending)."""
    from qshpc.runtime.batchrun import BatchRunner

    def task(x: int) -> int:
        time.sleep(0.02)
        return int(coop.together("double", Doubler(), x))

    runner = BatchRunner(context.rank_info())
    funcs = {1: (task, "task", b"t" * 32)}
    runner.grouped.add(b"t" * 32)
    asked = [0]

    def cut() -> bool:
        asked[0] += 1
        return asked[0] >= 2  # the second time results go out

    sender = _Sender()
    n = 200
    cols = [[str(i) for i in range(n)], 1, [(i,) for i in range(n)], None, [0.0] * n, None, None]
    runner.run(sender, 1, cols, funcs, None, cut=cut)  # type: ignore[arg-type]
    values = [v for m in sender.messages for v in _wire(m[3])]
    assert sender.messages[-1][-1] is True
    assert 0 < len(values) < n and values == [2 * i for i in range(len(values))]
    assert runner.group is not None
    runner.group.close()
