"""perf20: the short way of a call's key (:func:`qshpc.cache.keys._flat`, and circuits not
counted twice) gives the key the general walk gives, for every shape of arguments."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Gate, Parameter
from qiskit.circuit.classical import types
from qiskit.circuit.random import random_circuit
from qiskit.providers.fake_provider import GenericBackendV2

from qshpc.cache.keys import call_key, function_digest
from qshpc.cache.keywalk import _CIRCUIT
from qshpc.runtime.intake import keyable


def _task(circuit: Any, shots: int = 100) -> Any:
    return circuit, shots


def _bell(name: str | None = None) -> QuantumCircuit:
    qc = QuantumCircuit(2, name=name)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


class _MyCircuit(QuantumCircuit):  # type: ignore[misc]
    pass


def _circuits() -> list[QuantumCircuit]:
    theta = Parameter("θ")
    param = QuantumCircuit(1)
    param.rx(theta, 0)
    param.ry(2 * theta + 1, 0)
    meta = _bell("meta")
    meta.metadata = {"a": 1, "b": [1.5, "x"]}
    custom = QuantumCircuit(2)
    custom.append(Gate("mine", 1, []), [0])
    two_custom = QuantumCircuit(2)
    sub = QuantumCircuit(2, name="sub")
    sub.cx(0, 1)
    two_custom.append(sub.to_gate(), [0, 1])
    two_custom.append(Gate("other", 1, [0.5]), [1])
    laid_out = transpile(
        random_circuit(3, 3, seed=5), GenericBackendV2(5, seed=1), seed_transpiler=1
    )
    with_var = QuantumCircuit(1, 1)
    with_var.add_input("v", types.Bool())
    made = []
    for i in range(4):
        c = random_circuit(2, 2, seed=40 + i)
        c.measure_all()
        made.append(c)
    return [
        _bell(),  # a default name (circuit-N)
        _bell("named"),
        QuantumCircuit(3),  # empty
        param,
        meta,
        custom,
        two_custom,
        laid_out,
        with_var,
        *made,
    ]


SCALARS: list[Any] = [
    0, 1, -7, 2**80, True, False, 0.0, -0.0, 1.0, 1.5, math.inf, math.nan, None, "", "ab",
    "θ\udcff", b"", b"\x00\x01", 1 + 2j, complex(0, -0.0),
]  # fmt: skip


@pytest.fixture(scope="module")
def digest() -> bytes:
    return function_digest(_task)


def _both(digest: bytes, args: Any, kwargs: Any = None, seed: int | None = None) -> None:
    """The key the short way (and with its QPY bytes kept) is the general walk's key."""
    q1: dict[int, Any] = {}
    q2: dict[int, Any] = {}
    walked = call_key(digest, args, kwargs, seed, q1, fast=False)
    assert call_key(digest, args, kwargs, seed, q2) == walked
    # The same circuits' bytes kept (the bytes themselves may differ between two dumps:
    # QPY writes custom gates' definitions in hash-map order, keyed in parts for that).
    assert {k: v[0] for k, v in q1.items()} == {k: v[0] for k, v in q2.items()}
    assert call_key(digest, args, kwargs, seed) == walked  # no QPY bytes given
    if type(args) is tuple and keyable(args):
        # Counted already by keyable: the circuits are not counted again, same key.
        assert call_key(digest, args, kwargs, seed, {}, standard=True) == walked
    # The general walk feeds the same tokens wherever the arguments go in one.
    assert walked == call_key(digest, args, kwargs, seed, None, fast=False)


def test_the_short_way_gives_the_general_walks_key_for_every_shape(digest: bytes) -> None:
    circuits = _circuits()
    call_key(digest, (circuits[0],), None, None, fast=False)  # a walk meets QuantumCircuit
    assert _CIRCUIT[0] is QuantumCircuit
    shapes: list[tuple[Any, ...]] = [()]
    for c in circuits:
        shapes += [(c,), (c, 1000), (c, 3, "x", None), (1.5, c, True)]
    for s in SCALARS:
        shapes += [(s,), (circuits[0], s), (s, circuits[1], s)]
    shapes += [
        tuple(circuits[:4]),  # several circuits
        (circuits[0], circuits[0]),  # the same one twice
        ((circuits[0], circuits[1]),),  # a tuple of circuits: the walk
        ([circuits[0]],),  # a list: the walk
        (circuits[0], np.float64(0.5)),  # numpy scalars: the walk
        (circuits[0], np.int64(3), np.bool_(True)),
        (circuits[0], np.array([1, 2])),
        (_MyCircuit(2),),  # a subclass: the walk
        (circuits[0], {"a": 1}),
        (circuits[0], Parameter("p")),
    ]
    for args in shapes:
        for seed in (None, 0, 12345):
            _both(digest, args, None, seed)
    # Keyword arguments always take the walk.
    _both(digest, (circuits[0],), {"shots": 10})
    _both(digest, (), {"circuit": circuits[1], "shots": 10})


def test_bools_ints_and_floats_stay_apart_the_short_way(digest: bytes) -> None:
    c = _bell("x")
    call_key(digest, (c,), None, None, fast=False)
    keys = {call_key(digest, (c, v), None, None) for v in (1, True, 1.0, 1 + 0j, "1", b"1")}
    assert len(keys) == 6
    assert call_key(digest, (c, 0.0), None, None) != call_key(digest, (c, -0.0), None, None)
    # (c, 1) is not ((c, 1),) nor (c,) with a keyword argument.
    flat = call_key(digest, (c, 1), None, None)
    assert flat != call_key(digest, ((c, 1),), None, None)
    assert flat != call_key(digest, (c,), {"shots": 1}, None)


def test_a_changed_circuit_changes_the_short_ways_key(digest: bytes) -> None:
    c = _bell("y")
    call_key(digest, (c,), None, None, fast=False)
    before = call_key(digest, (c,), None, None, {}, standard=True)
    c.x(0)
    after = call_key(digest, (c,), None, None, {}, standard=True)
    assert after != before
    assert after == call_key(digest, (c,), None, None, fast=False)


def test_custom_gates_are_keyed_in_parts_the_short_way_unless_counted(digest: bytes) -> None:
    # keyable refuses a circuit of custom gates: standard=True is never passed for one.
    two_custom = _circuits()[6]
    assert not keyable((two_custom,))
    assert call_key(digest, (two_custom,), None, None) == call_key(
        digest, (two_custom,), None, None, fast=False
    )


# -- a burst's hits, through the real intake, cache folder and job store ----------------


def test_deferred_hits_resolve_with_their_values_small_and_large(tmp_path: Path) -> None:
    """A call of circuits keyed the short way and looked up in a burst: a small hit resolves
    with its decoded value (from_hit's steps skipped), a large one with its bytes (decoded
    at the read); both recorded as hits, the same values ``get`` and ``result()`` give."""
    from qshpc import distribute_task, get
    from qshpc.cache.jobcache import CacheConfig, JobCache
    from qshpc.program.refs import Stored
    from qshpc.program.session import Session
    from qshpc.runtime.intake import Intake
    from qshpc.store import JobWriter
    from qshpc.store.jobfile import create_job

    @distribute_task()
    def size_of(circuit: Any, n: int) -> Any:
        return {"n": n, "ops": circuit.size()} if n < 10 else list(range(n))

    circuits = [_bell(f"c{i}") for i in range(6)]
    for i, c in enumerate(circuits):
        c.rz(0.1 * i, 0)
    cfg = CacheConfig(True, str(tmp_path / "cache"))
    runtime = {"mpi_size": 1, "ranks": [], "started": 1.0}

    def intake(name: str) -> tuple[Intake, Any, JobCache]:
        job = tmp_path / name
        create_job(job, {"id": name, "title": "t", "created": 5.0, "seed": None}, {})
        w = JobWriter.open(job, runtime)
        cache = JobCache(cfg, name, open_now=True)
        cache.prepare()
        return Intake(Session(job, w, {}, cache=cache)), w, cache

    calls = [(c, 3 if i % 2 else 2000) for i, c in enumerate(circuits)]
    it, w, cache = intake("cold")
    [it.submit(size_of, a, {}) for a in calls]
    it.look_up_later()
    assert len(it.pending) == len(calls)
    for e in it.pending:
        i = int(e.ref.task_id)
        assert cache.dir is not None
        cache.dir.put_value(e.ckey, size_of.func(*calls[i]), "size_of", "cold", e.ref.task_id)
    w.commit()
    it, w, cache = intake("warm")
    refs = [it.submit(size_of, a, {}) for a in calls]
    it.look_up_later()
    assert not it.pending and it.session.cached == len(calls) and cache.hits == len(calls)
    want = [size_of.func(*a) for a in calls]
    for ref, (_, n) in zip(refs, calls, strict=True):
        assert ref.done()
        assert (type(ref._value) is Stored) == (n >= 10)  # a large one left in its bytes
    assert get(refs) == want
    assert [r.result() for r in refs] == want
    w.commit()
