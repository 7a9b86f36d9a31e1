"""Session 12's mends (mend12b): work a call did twice or three times, now once.

Each test counts the calls of the real function (a profile hook: no function is
replaced), so that a second walk coming back fails it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.timeout(240)]


@contextmanager
def calls_of(*functions: Callable[..., Any]) -> Iterator[dict[str, int]]:
    """Count the calls of ``functions`` (whatever name they were imported as) in this thread
    and in threads started meanwhile (a primitive's ``LocalJob`` runs its blocks in one)."""
    codes = {f.__code__: f.__qualname__ for f in functions}  # type: ignore[attr-defined]
    counts = dict.fromkeys(codes.values(), 0)
    previous = sys.getprofile()

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            name = codes.get(frame.f_code)
            if name is not None:
                counts[name] += 1

    sys.setprofile(hook)
    threading.setprofile(hook)
    try:
        yield counts
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
        sys.setprofile(previous)


def _circuits() -> list[Any]:
    """A plain measured circuit, one holding a custom gate named ``h`` (an X: mend11's
    first), and a parametrized one."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    from tests.faults.test_hunt11_mend11 import _shadowing_circuits

    plain = QuantumCircuit(2, name="plain")
    plain.h(0)
    plain.cx(0, 1)
    plain.measure_all()
    shadowed = next(iter(_shadowing_circuits())).measure_all(inplace=False)
    t = Parameter("t")
    para = QuantumCircuit(1, name="para")
    para.ry(t, 0)
    para.measure_all()
    return [plain, shadowed, para]


# --- 1. one unshadow per circuit and call ---------------------------------------------


@pytest.mark.parametrize("shots", [None, 300])
def test_v1_sampler_unshadows_each_circuit_once(shots: int | None) -> None:
    """On 7186ba2 a V1 ``Sampler.run`` walked each circuit for custom gates named like
    standard ones three times (``aer_refusal``'s ``shadow_refusal``, whose result was
    dropped, ``prepare_exact`` and ``aer_forms``): 9 ``unshadow`` calls for 3
    circuits. Now once each, the form passed on; the results are those of
    ``Statevector``."""
    from qiskit.quantum_info import Statevector

    from qshpc.aer import Sampler
    from qshpc.aer.shadowed import unshadow

    plain, shadowed, para = _circuits()
    sampler = Sampler(options={"shots": shots, "seed": 5})
    with calls_of(unshadow) as counts:
        result = sampler.run([plain, shadowed, para, para], [[], [], [0.3], [1.1]]).result()
    assert counts == {"unshadow": 3}, counts
    wants = [
        Statevector(c.remove_final_measurements(inplace=False)).probabilities()
        for c in (plain, shadowed, para.assign_parameters([0.3]), para.assign_parameters([1.1]))
    ]
    for dist, want in zip(result.quasi_dists, wants, strict=True):
        got = [dist.get(k, 0.0) for k in range(len(want))]
        assert np.allclose(got, want, atol=0.0 if shots is None else 0.12), (got, want)


def test_v1_sampler_with_aer_options_unshadows_each_circuit_once() -> None:
    """The path without an exact plan (shots and Aer run options): the circuit itself,
    not a body, goes to ``aer_forms``; it is unshadowed once there too."""
    from qshpc.aer import Sampler
    from qshpc.aer.shadowed import unshadow

    _, shadowed, _ = _circuits()
    with calls_of(unshadow) as counts:
        dist = Sampler().run(shadowed, shots=200, seed=1, max_parallel_threads=1)
        quasi = dist.result().quasi_dists[0]
    assert counts == {"unshadow": 1}, counts
    assert quasi == {1: 1.0}, quasi  # the custom "h" is an X


def test_v1_estimator_and_sweep_unshadow_each_group_once() -> None:
    """``expectation_values`` (the V1 ``Estimator`` and ``run_sweep``) did the same three
    walks per group; now one."""
    from qiskit.quantum_info import SparsePauliOp, Statevector

    from qshpc.aer import Estimator, run_sweep
    from qshpc.aer.shadowed import unshadow

    plain, shadowed, para = _circuits()
    bodies = [c.remove_final_measurements(inplace=False) for c in (plain, shadowed, para)]
    obs = [SparsePauliOp("ZZ"), SparsePauliOp("Z"), SparsePauliOp("X")]
    with calls_of(unshadow) as counts:
        values = Estimator().run(bodies, obs, [[], [], [0.7]]).result().values
    assert counts == {"unshadow": 3}, counts
    want = [
        Statevector(b.assign_parameters(r) if r else b).expectation_value(o).real
        for b, o, r in zip(bodies, obs, [[], [], [0.7]], strict=True)
    ]
    assert np.allclose(values, want), (values, want)
    with calls_of(unshadow) as counts:
        evs = run_sweep(bodies[2], [[0.1], [0.5]], observables=["Z"])
    assert counts == {"unshadow": 1}, counts
    assert np.allclose(np.ravel(evs), np.cos([0.1, 0.5])), evs


def test_v2_primitives_unshadow_once_on_each_side() -> None:
    """SamplerV2 and EstimatorV2 walked a PUB's circuit at ``run`` (``aer_refusal``, then
    ``prepare_exact`` for the estimator) and again, twice, where a rank prepares it
    (``prepare``'s own ``unshadow`` and ``prepare_exact``'s). Now once at ``run`` and
    once per rank and circuit (here the same process: two)."""
    from qiskit.quantum_info import SparsePauliOp

    from qshpc.aer import EstimatorV2, SamplerV2
    from qshpc.aer.shadowed import unshadow
    from qshpc.aer.v2.prepared import reset_caches

    _, shadowed, _ = _circuits()
    reset_caches()
    with calls_of(unshadow) as counts:
        result = SamplerV2(seed=2).run([shadowed], shots=50).result()
    assert counts == {"unshadow": 2}, counts
    assert result[0].data.meas.get_int_counts() == {1: 50}
    body = shadowed.remove_final_measurements(inplace=False)
    reset_caches()
    with calls_of(unshadow) as counts:
        evs = EstimatorV2().run([(body, SparsePauliOp("Z"))]).result()[0].data.evs
    assert counts == {"unshadow": 2}, counts
    assert np.isclose(float(evs), -1.0), evs


def test_refusals_are_unchanged() -> None:
    """The refusals the single walk gives are those of ``aer_refusal``: a shadowing gate
    without a definition, and a classical variable before it."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Gate

    from qshpc.aer import Sampler
    from qshpc.aer.circuits import aer_refusal, aer_runnable
    from qshpc.errors import UserError

    bare = QuantumCircuit(1, name="bare")
    bare.append(Gate("h", 1, []), [0])
    bare.measure_all()
    reason = aer_refusal(bare)
    assert reason is not None and reason.startswith("its operation 'h' (Gate)"), reason
    assert aer_runnable(bare) == (bare, reason)
    with pytest.raises(UserError, match="circuit 'bare' cannot run on Aer: its operation 'h'"):
        Sampler().run(bare)
    both = bare.copy()
    both.add_var("flag", False)
    assert (aer_refusal(both) or "").startswith("it has classical variables (flag)")
    plain = _circuits()[0]
    assert aer_runnable(plain) == (plain, None)
    assert aer_runnable(plain)[0] is plain


# --- 2. a cache write builds a typed Qiskit object's parts once -----------------------


def _typed_values() -> list[Any]:
    from qiskit.circuit import Parameter
    from qiskit.quantum_info import SparsePauliOp, Statevector
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    from qshpc.aer import Sampler

    a, b = Parameter("a"), Parameter("b")
    qc = _circuits()[0]
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.01, 1), ["x"])
    return [
        Statevector.from_label("01"),
        SparsePauliOp(["XZ", "YY"], [0.5, -1.0]),
        2 * a + b,  # parts: a QPY dump and load
        Sampler().run(qc).result(),  # a V1 SamplerResult
        [SparsePauliOp("Z"), {"ev": SparsePauliOp("X")}],  # inside containers
        noise,  # parts: to_dict, from_dict and a comparison (~20 ms)
    ]


def test_cache_write_builds_typed_parts_once(tmp_path: Any) -> None:
    """On 7186ba2 ``qshpc.cache.body.encode`` built a typed object's parts (``to_parts``)
    for its faithfulness check (``faithful``) and again in the blob encoding (a
    ``ParameterExpression``'s: a QPY dump and load, a ``NoiseModel``'s: to_dict,
    from_dict and a comparison). Now once, and the entry is the same bytes; a hit is
    the value written."""
    from qshpc.cache.body import encode
    from qshpc.cache.store import CacheDir
    from qshpc.store import qiskit_objects
    from qshpc.store.encoding_blob import encode_blob

    for i, value in enumerate(_typed_values()):
        objects = 2 if isinstance(value, list) else 1
        with calls_of(qiskit_objects.to_parts) as counts:
            enc = encode(value)
        assert counts == {"to_parts": objects}, (i, counts)
        assert enc.form == "blob" and enc.plain, (i, enc.form)
        if i != 2:  # (a QPY dump names its circuit "circuit-N", N counting up)
            assert enc.body == encode_blob(value), i  # the bytes of the old path
        cache = CacheDir(tmp_path / "c")
        key = f"{i:064x}"
        assert cache.put_value(key, value, "f")
        hit = cache.get(key)
        assert hit is not None and type(hit.value) is type(value), i
        if i == 3:
            assert hit.value.quasi_dists == value.quasi_dists
        else:
            assert hit.value == value, (i, hit.value)


def test_parts_once_is_only_for_its_block() -> None:
    """Outside :func:`parts_once` every ``typed_parts`` builds the parts anew (a value may
    change between two writes), and a nested block keeps the outer one's parts."""
    from qiskit.quantum_info import Statevector

    from qshpc.store.qiskit_objects import parts_once, typed_parts

    sv = Statevector.from_label("0")
    first = typed_parts(sv)
    assert first is not None and typed_parts(sv) is not first
    with parts_once():
        inside = typed_parts(sv)
        with parts_once():
            assert typed_parts(sv) is inside
        assert typed_parts(sv) is inside
    assert typed_parts(sv) is not inside


# --- 1b. the V1 Estimator's pairs of one circuit ----------------------------------------


def test_v1_estimator_analyses_and_transpiles_a_repeated_circuit_once() -> None:
    """On 7186ba2 ``Estimator().run([qc] * n, ...)`` (one ansatz at n parameter sets: each
    pair a group of ``expectation_values``) checked, split, QPY-hashed and transpiled the
    same circuit object n times (``transpile_for`` transpiled each repeat of a key given
    several times in one call). Now once each; each pair still gets its own copy (its
    saves go on it), and the values are those of ``Statevector``."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter
    from qiskit.quantum_info import SparsePauliOp, Statevector

    from qshpc.aer import Estimator
    from qshpc.aer import circuits as aer_circuits
    from qshpc.aer.binding import bindable
    from qshpc.aer.shadowed import unshadow

    t = Parameter("t")
    inner = QuantumCircuit(2, name="block")
    inner.ry(t, 0)
    inner.cx(0, 1)
    qc = QuantumCircuit(2, name="ansatz")
    qc.append(inner.to_gate(), [0, 1])  # not ISA for Aer: transpiled
    rows = [[0.1 * k] for k in range(6)]
    obs = [SparsePauliOp("ZZ"), SparsePauliOp("XI")] * 3
    spies = (unshadow, aer_circuits.prepare_exact, aer_circuits.circuit_sha256, bindable)
    with calls_of(*spies) as counts:
        values = Estimator().run([qc] * 6, obs, rows).result().values
    assert counts == {
        "unshadow": 1,
        "prepare_exact": 1,
        "circuit_sha256": 1,
        "bindable": 1,  # one transpiled form (transpile_for: bindable of each)
    }, counts
    want = [
        Statevector(qc.assign_parameters(r)).expectation_value(o).real
        for r, o in zip(rows, obs, strict=True)
    ]
    assert np.allclose(values, want), (values, want)
    again = Estimator().run([qc] * 6, obs, rows).result().values  # from the transpile cache
    assert np.allclose(again, want)
