"""Cache keys: the same in every process and run of a program, different when the call is."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from qshpc.cache import key
from qshpc.cache.keys import UncacheableError, call_key, circuit_digest, function_digest

DATA = Path(__file__).parent / "cache_data"
ROOT = Path(__file__).parents[2]


def _keys(folder: Path, hash_seed: str, burn: int = 0, runpy: bool = False) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED=hash_seed, KEYPROG_BURN=str(burn))
    prog = str(folder / "keyprog.py")
    cmd = [sys.executable, prog]
    if runpy:  # as `qshpc run` runs a program
        cmd = [sys.executable, "-c", f"import runpy; runpy.run_path({prog!r}, run_name='__main__')"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    keys: dict[str, str] = json.loads(out.stdout)
    return keys


def _copy(tmp: Path, name: str, edits: dict[str, tuple[str, str]] | None = None) -> Path:
    """A copy of the program and its helper module in a new folder, with text replaced."""
    folder = tmp / name
    folder.mkdir()
    for f in ("keyprog.py", "keyhelper.py"):
        shutil.copy(DATA / f, folder / f)
    for f, (old, new) in (edits or {}).items():
        text = (folder / f).read_text()
        assert old in text, (f, old)
        (folder / f).write_text(text.replace(old, new, 1))
    return folder


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return _keys(_copy(tmp_path_factory.mktemp("keys"), "base"), "1")


def test_keys_are_stable_across_processes_folders_and_line_numbers(
    base: dict[str, str], tmp_path: Path
) -> None:
    # Another hash seed (set order), other circuits made before (default names),
    # new Parameter UUIDs: the same keys.
    assert _keys(DATA, "2", burn=7) == base
    # Run as `qshpc run` runs it (runpy), from another folder, lines added above:
    moved = _copy(
        tmp_path,
        "moved",
        {"keyprog.py": ('"""Prints', '# a comment\n\n\n\n"""Prints')},
    )
    assert _keys(moved, "3", runpy=True) == base


EDITS = {
    # what is edited -> the calls whose keys must change
    "helper code": ({"keyprog.py": ("return x + 1", "return x + 2")}, "plain param ansatz seeded"),
    "global read": ({"keyprog.py": ("SHOTS = 1000", "SHOTS = 1001")}, "plain param ansatz seeded"),
    "own module": ({"keyhelper.py": ("FACTOR = 2", "FACTOR = 3")}, "plain param ansatz seeded"),
    "closure": ({"keyprog.py": ("make_closure(3)", "make_closure(4)")}, "closure"),
    "array": ({"keyprog.py": ("arr[1, 1] = 5.0", "arr[1, 1] = 6.0")}, "ansatz"),
    "class default": ({"keyprog.py": ("shots: int = 10", "shots: int = 11")}, "plain param"),
    "default arg": ({"keyprog.py": ("lambda x, y=2", "lambda x, y=3")}, "lambda sets"),
    "unused global": ({"keyprog.py": ("UNUSED = 1", "UNUSED = 2")}, ""),
    "circuit": ({"keyprog.py": ("qc.cx(0, 1)", "qc.cz(0, 1)")}, "plain seeded"),
    "gate": (
        {"keyprog.py": ("GATES = [HGate(), Measure()]", "GATES = [Measure(), HGate()]")},
        "gates",
    ),
}


@pytest.mark.parametrize("what", list(EDITS))
def test_an_edit_changes_exactly_the_keys_it_touches(
    what: str, base: dict[str, str], tmp_path: Path
) -> None:
    edits, changed = EDITS[what]
    keys = _keys(_copy(tmp_path, "edit", edits), "5")
    assert {k for k in keys if keys[k] != base[k]} == set(changed.split())


def test_arguments_seed_and_kwargs() -> None:
    def f(x: object, y: object = None) -> None: ...

    d = function_digest(f)
    k = call_key(d, (1,), None, None)
    assert len(k) == 64
    assert call_key(d, (1,), None, None) == k
    assert call_key(d, (1,), None, 7) != k
    assert call_key(d, (1,), None, 7) != call_key(d, (1,), None, 8)
    assert call_key(d, (1.0,), None, None) != k  # 1 and 1.0 are different inputs
    assert call_key(d, (True,), None, None) != k
    assert call_key(d, (), {"x": 1, "y": 2}, None) == call_key(d, (), {"y": 2, "x": 1}, None)
    assert call_key(d, ([1, 2],), None, None) != call_key(d, ((1, 2),), None, None)
    assert call_key(d, ("ab", "c"), None, None) != call_key(d, ("a", "bc"), None, None)
    a = np.arange(6.0).reshape(2, 3)
    assert call_key(d, (a,), None, None) == call_key(d, (a.copy(),), None, None)
    assert call_key(d, (a,), None, None) != call_key(d, (a.reshape(3, 2),), None, None)
    assert call_key(d, (a,), None, None) != call_key(d, (a.astype(np.float32),), None, None)
    assert call_key(d, (a.T,), None, None) == call_key(d, (np.ascontiguousarray(a.T),), None, None)
    assert call_key(d, (np.float64(1.5),), None, None) != call_key(
        d, (np.float32(1.5),), None, None
    )


def test_function_digest_covers_defaults_closures_and_helpers() -> None:
    def make(k: int) -> object:
        def inner(x: int) -> int:
            return x * k

        return inner

    assert function_digest(make(2)) == function_digest(make(2))
    assert function_digest(make(2)) != function_digest(make(3))

    def g(x: int, y: int = 1) -> int:
        return x + y

    d = function_digest(g)
    g.__defaults__ = (2,)
    assert function_digest(g) != d


def test_library_code_is_keyed_by_name_not_walked() -> None:
    def f(x: float) -> float:
        return float(np.sqrt(x))

    assert function_digest(f) == function_digest(f)
    assert key(np.sqrt, (1.0,)) == key(np.sqrt, (1.0,))


def test_cycles_and_recursion() -> None:
    a: list[object] = [1]
    a.append(a)
    b: list[object] = [1]
    b.append(b)

    def fact(n: int) -> int:
        return 1 if n < 2 else n * fact(n - 1)

    assert key(fact, (a,)) == key(fact, (b,))
    assert key(fact, (a,)) != key(fact, ([1, [1]],))


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
def test_gates_arrays_subclasses_and_odd_objects() -> None:
    from qiskit.circuit import Reset
    from qiskit.circuit.library import HGate, XGate

    def f(x: object) -> None: ...

    # Singleton gates' classes name no module: keyed, by what they are (not an error).
    assert key(f, (HGate(),)) == key(f, (HGate(),)) != key(f, (XGate(),))
    assert key(f, ([HGate(), Reset()],)) != key(f, ([HGate()],))
    # An ndarray subclass is not the plain array: a mask, a matrix product.
    a = np.array([1.0, 2.0, 3.0])
    masked = np.ma.array(a, mask=[0, 1, 0])
    assert len({key(f, (a,)), key(f, (masked,)), key(f, (np.ma.array(a, mask=[1, 0, 0]),))}) == 3
    assert key(f, (masked,)) == key(f, (np.ma.array(a.copy(), mask=[0, 1, 0]),))
    assert key(f, (np.asmatrix(np.eye(2)),)) != key(f, (np.eye(2),))

    class Odd:
        def __reduce_ex__(self, protocol: object) -> object:
            return (Odd,)  # too short for pickle: the walk fails in no foreseen way

    with pytest.raises(UncacheableError):  # not cached; never the job's failure
        key(f, (Odd(),))


def test_uncacheable_values_raise() -> None:
    def f(x: object) -> None: ...

    with pytest.raises(UncacheableError):
        key(f, (threading.Lock(),))
    with pytest.raises(UncacheableError):
        key(f, ((i for i in range(3)),))
    deep: list[object] = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(UncacheableError):
        key(f, (deep,))


def test_circuit_digest_ignores_default_names_and_parameter_uuids() -> None:
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter, ParameterVector

    def build(name: str | None = None) -> QuantumCircuit:
        t, v = Parameter("t"), ParameterVector("v", 2)
        qc = QuantumCircuit(2, name=name)
        qc.rx(t, 0)
        qc.ry(v[0] * 2 + v[1], 1)
        qc.global_phase = t / 2
        return qc

    first = circuit_digest(build())
    assert all(circuit_digest(build()) == first for _ in range(5))
    assert circuit_digest(build("mine")) != first  # a name the user gave is kept
    other = build()
    other.rz(0.5, 0)
    assert circuit_digest(other) != first
    # the memo of a parameterized circuit notices a change to it
    qc = build()
    d = circuit_digest(qc)
    qc.x(1)
    assert circuit_digest(qc) != d
    # expressions are kept apart from parameters of the same text
    p = QuantumCircuit(1)
    p.rx(Parameter("a") + Parameter("b"), 0)
    q = QuantumCircuit(1)
    q.rx(Parameter("a + b"), 0)
    assert circuit_digest(p) != circuit_digest(q)


def test_primitive_block_circuits_are_keyed_by_their_stable_digest() -> None:
    import pickle

    from qiskit import QuantumCircuit
    from qiskit.circuit import ParameterVector

    from qshpc.primitives.blocks import _Circuits

    def ansatz(shift: float = 0.0) -> QuantumCircuit:
        v = ParameterVector("v", 3)  # new UUIDs each time, as in another process
        qc = QuantumCircuit(2)
        qc.ry(v[0], 0)
        qc.rx(v[2] + 2 * v[1] + shift, 1)
        return qc

    fn = function_digest(len)
    a, b, c = (_Circuits().get(ansatz(s)) for s in (0.0, 0.0, 0.5))
    assert a[0] != b[0] and a[1] != b[1]  # their own QPY bytes and SHA-256 differ
    assert call_key(fn, a, None, 5) == call_key(fn, b, None, 5)
    assert call_key(fn, a, None, 5) != call_key(fn, c, None, 5)
    assert call_key(fn, a, None, 5) != call_key(fn, (bytes(a[0]), str(a[1])), None, 5)
    # The workers get plain bytes and str: the circuit's own QPY, unchanged.
    qpy, k = pickle.loads(pickle.dumps(a, protocol=5))
    assert type(qpy) is bytes and qpy == a[0] and type(k) is str and k == a[1]


def test_a_value_whose_own_digest_fails_is_not_cached() -> None:
    class Broken(bytes):
        def __qshpc_cache_digest__(self) -> bytes:
            raise ValueError("no")

    with pytest.raises(UncacheableError, match="Broken gave no digest"):
        call_key(function_digest(len), (Broken(b"x"),), None, None)


def test_a_cached_calls_key_reuses_the_qpy_bytes_of_its_payload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rank 0 dumps a circuit once per cached call (the payload's QPY serves the key),
    the key is the same as with a fresh dump, and bytes held for another object are
    never taken for a circuit's."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter

    from qshpc.program.backend import pack
    from qshpc.store import _qpy

    qc = QuantumCircuit(2)  # a default name: cut out of the bytes the key hashes
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    named = QuantumCircuit(2, name="mine")
    named.cx(1, 0)
    pqc = QuantumCircuit(1)
    pqc.rx(Parameter("t"), 0)
    args = (qc, [qc, named], {"p": pqc})
    fn = function_digest(len)
    plain_key = call_key(fn, args, None, 3)
    qpy: dict[int, tuple[object, bytes]] = {}
    pack((args, {}), "f", "0", qpy=qpy)
    assert set(qpy) == {id(qc), id(named), id(pqc)}
    dumps: list[object] = []
    real = _qpy.dump
    monkeypatch.setattr(_qpy, "dump", lambda c: dumps.append(c) or real(c))
    assert call_key(fn, args, None, 3, qpy) == plain_key
    assert not any(c is qc or c is named for c in dumps)  # reused, not dumped again
    # bytes recorded for another object (a stale or forged entry) are not used
    other = QuantumCircuit(2)
    other.x(0)
    forged = {id(other): (qc, qpy[id(qc)][1])}
    assert call_key(fn, (other,), None, 3, forged) == call_key(fn, (other,), None, 3)
    assert call_key(fn, (other,), None, 3) != call_key(fn, (qc,), None, 3)


def test_a_circuit_subclass_keeps_its_own_digest_after_plain_circuits_were_keyed() -> None:
    """perf18: a plain ``QuantumCircuit`` takes a short way through the walk once one was
    met; a subclass still goes the long way (its own digest first, then as a circuit)."""
    from qiskit import QuantumCircuit

    class Digested(QuantumCircuit):  # type: ignore[misc]
        def __qshpc_cache_digest__(self) -> bytes:
            return b"mine"

    class Plain(QuantumCircuit):  # type: ignore[misc]
        pass

    fn = b"\x01" * 32
    qc = QuantumCircuit(1, name="q")
    qc.h(0)
    first = call_key(fn, (qc,), None, None)
    assert call_key(fn, (qc,), None, None) == first  # (the short way now)
    d1, d2 = Digested(1, name="q"), Digested(1, name="q")
    d1.h(0)
    d2.x(0)  # another circuit, the same digest of its own: the same key
    assert call_key(fn, (d1,), None, None) == call_key(fn, (d2,), None, None) != first
    p = Plain(1, name="q")  # a subclass of the program's: walked as its objects are
    p.h(0)
    pk = call_key(fn, (p,), None, None)
    assert call_key(fn, (p,), None, None) == pk != first
    p.x(0)
    assert call_key(fn, (p,), None, None) != pk
