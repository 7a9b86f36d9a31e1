"""hunt21c: result cache keys that forged hits (two calls of different results, one key)
or never hit (one call, a new key in every process).

Each test fails on b295950 (session 20's main) and passes here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qshpc.cache import key
from qshpc.cache.jobcache import CacheConfig, JobCache
from tests.conftest import run_cli

# -- one key in every process ---------------------------------------------------------------

#: A program whose cached calls take values Qiskit and Aer make differently in every
#: process, though they decide nothing of the results: a transpiled circuit (QPY
#: writes its layout's registers in the order of a set of them), noise models (each
#: quantum error draws a uuid4 as its id; ``from_backend`` holds a transpiler pass that
#: keeps ``hash()`` of its arguments) and a ParameterVector (a uuid4 of its own).
PROGRAM = """\
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import ParameterVector
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit_aer.noise import NoiseModel, depolarizing_error
from qshpc import distribute_task, get, save_result

@distribute_task()
def width(circuit):
    return circuit.num_qubits

@distribute_task()
def noisy(noise):
    return sorted(noise.noise_instructions)

@distribute_task()
def length(vector):
    return len(vector)

backend = GenericBackendV2(5, seed=1)
bell = QuantumCircuit(2, 2)
bell.h(0)
bell.cx(0, 1)
bell.measure([0, 1], [0, 1])
laid_out = transpile(bell, backend, seed_transpiler=1)
noise = NoiseModel()
noise.add_all_qubit_quantum_error(depolarizing_error(0.01, 1), ["x", "sx"])
refs = [width(laid_out), noisy(noise), noisy(NoiseModel.from_backend(backend)),
        length(ParameterVector("v", 3))]
save_result(get(refs))
"""


def _job(prog: Path, hash_seed: str) -> str:
    out = run_cli(
        "run", str(prog), "--workers", "1", "--cache", env={"PYTHONHASHSEED": hash_seed},
        timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.mpi
def test_calls_of_transpiled_circuits_and_noise_models_hit_in_the_next_run(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """On b295950 the second run ran all four calls again: (4 tasks run, 0 from the
    cache) with hash seeds 1 and 4 (the layout's two registers in the other order), and
    the noise models and the vector missed in every run whatever the hash seed."""
    prog = tmp_path / "laid_out.py"
    prog.write_text(PROGRAM)
    first = _job(prog, "1")
    assert "4 tasks run" in first
    second = _job(prog, "4")
    assert "(0 tasks run, 4 from the cache)" in second, second


def _keys_in(hash_seed: str, code: str) -> list[str]:
    """The keys ``code`` prints, one a line, run in a new process with ``hash_seed``."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


KEYS = """\
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Parameter
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit_aer.noise import NoiseModel
from qshpc.cache import key

def run(circuit):
    return circuit

backend = GenericBackendV2(5, seed=1)
theta = Parameter("t")
ansatz = QuantumCircuit(3)
ansatz.rx(2 * theta, 0)
ansatz.cx(0, 2)
ansatz.cx(1, 2)
for circuit in (ansatz, ansatz.assign_parameters([0.5])):
    print(key(run, (transpile(circuit, backend, seed_transpiler=1),)))
print(key(run, (NoiseModel.from_backend(backend),)))
"""


def test_a_transpiled_circuit_and_a_backends_noise_model_have_one_key_per_call() -> None:
    """On b295950 hash seeds 1, 4 and 7 gave the transpiled circuits two keys each, and
    the noise model three."""
    keys = [_keys_in(seed, KEYS) for seed in ("1", "4", "7")]
    assert len(keys[0]) == 3 and keys[0] == keys[1] == keys[2]


def test_the_layout_of_a_transpiled_circuit_is_in_its_key() -> None:
    from qiskit import QuantumCircuit, transpile
    from qiskit.providers.fake_provider import GenericBackendV2

    def run(circuit: Any) -> Any:
        return circuit

    backend = GenericBackendV2(5, seed=1)
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    a = transpile(bell, backend, initial_layout=[0, 1], seed_transpiler=1)
    b = transpile(bell, backend, initial_layout=[0, 1], seed_transpiler=1)
    assert key(run, (a,)) == key(run, (b,))
    b.layout.initial_layout.swap(3, 4)  # the ancillas placed otherwise: the same gates
    assert a.data == b.data and a.layout != b.layout
    assert key(run, (a,)) != key(run, (b,))
    # Routed: a final layout (the qubits permuted by swaps), keyed as well.
    ring = QuantumCircuit(3)
    ring.cx(0, 1)
    ring.cx(1, 2)
    ring.cx(2, 0)
    line = GenericBackendV2(3, coupling_map=[[0, 1], [1, 2]], seed=1)
    c = transpile(ring, line, initial_layout=[0, 1, 2], seed_transpiler=1)
    d = transpile(ring, line, initial_layout=[0, 1, 2], seed_transpiler=1)
    assert c.layout.final_layout is not None and key(run, (c,)) == key(run, (d,))
    d.layout.final_layout.swap(0, 2)
    assert c.data == d.data and key(run, (c,)) != key(run, (d,))


# -- forged hits -----------------------------------------------------------------------------


def _gates(**angles: float) -> list[str]:
    """A task that applies its gates in the order they are given (``kwargs`` keeps it)."""
    return list(angles)


def test_keyword_arguments_taken_as_kwargs_are_keyed_in_their_order() -> None:
    """On b295950 ``gates(rx=.1, rz=.2)`` and ``gates(rz=.2, rx=.1)`` had one key: the
    second call got the first one's ``["rx", "rz"]``."""
    first, second = {"rx": 0.1, "rz": 0.2}, {"rz": 0.2, "rx": 0.1}
    assert _gates(**first) != _gates(**second)
    assert key(_gates, (), first) != key(_gates, (), second)
    cache = JobCache(CacheConfig(), None)
    assert cache.key(_gates, (), first, None) != cache.key(_gates, (), second, None)
    assert cache.key(_gates, (), first, None, live=True) != cache.key(
        _gates, (), second, None, live=True
    )
    assert key(_gates, (), first) == key(_gates, (), dict(first))
    assert key(_gates, (), {"rx": 0.1}, seed=3) == key(_gates, (), {"rx": 0.1}, seed=3)

    def named(rx: float = 0.0, rz: float = 0.0) -> float:  # no **kwargs: one call
        return rx + rz

    assert key(named, (), first) == key(named, (), second)


def test_a_keyword_only_default_set_in_place_changes_the_next_key() -> None:
    """On b295950 the call after ``f.__kwdefaults__["k"] = 5`` kept the first key (a
    notebook cell that sets it): it got the result for k=1."""

    def f(x: int, *, k: int = 1) -> int:
        return x + k

    cache = JobCache(CacheConfig(), None)
    before = cache.key(f, (1,), None, None, live=True)
    assert cache.key(f, (1,), None, None, live=True) == before
    assert f.__kwdefaults__ is not None
    f.__kwdefaults__["k"] = 5
    assert cache.key(f, (1,), None, None, live=True) != before


def test_expressions_of_a_vector_and_of_parameters_named_like_it_differ() -> None:
    """On b295950 a circuit of ``2*v[i]`` had one key whether ``v`` was a ParameterVector
    or eleven ``Parameter("v[i]")``: their parameters sort otherwise (``v[10]`` before
    ``v[2]`` by name), so binding values in order gave other circuits."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter, ParameterVector

    def run(circuit: Any, values: Any) -> Any:
        return circuit.assign_parameters(values)

    def circuit(params: list[Any]) -> Any:
        qc = QuantumCircuit(1)
        for p in params:
            qc.rx(2 * p, 0)
        return qc

    vector = circuit(list(ParameterVector("v", 11)))
    named = circuit([Parameter(f"v[{i}]") for i in range(11)])
    values = np.arange(11.0)
    assert run(vector, values) != run(named, values)
    assert key(run, (vector, values)) != key(run, (named, values))
    again = circuit(list(ParameterVector("v", 11)))  # a new vector (another UUID)
    assert key(run, (vector, values)) == key(run, (again, values))
    # An expression that is an argument, the same way; ``a*b`` against one named so.
    a, b = Parameter("a"), Parameter("b")
    assert key(run, (a * b + 1, 0)) != key(run, (Parameter("a*b") + 1, 0))
    assert key(run, (a * b + 1, 0)) == key(run, (Parameter("a") * Parameter("b") + 1, 0))


def test_a_parameter_vector_is_keyed_by_its_name_and_length() -> None:
    from qiskit.circuit import ParameterVector

    def run(vector: Any) -> int:
        return len(vector)

    assert key(run, (ParameterVector("v", 3),)) == key(run, (ParameterVector("v", 3),))
    assert key(run, (ParameterVector("v", 3),)) != key(run, (ParameterVector("v", 4),))
    assert key(run, (ParameterVector("v", 3),)) != key(run, (ParameterVector("w", 3),))


def test_a_quantum_errors_probabilities_stay_in_the_key() -> None:
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    def run(noise: Any) -> Any:
        return noise

    def model(p: float) -> Any:
        noise = NoiseModel()
        noise.add_all_qubit_quantum_error(depolarizing_error(p, 1), ["x"])
        return noise

    assert key(run, (model(0.01),)) == key(run, (model(0.01),))
    assert key(run, (model(0.01),)) != key(run, (model(0.02),))
    assert re.fullmatch("[0-9a-f]{64}", key(run, (model(0.01),)))


def test_a_circuit_of_custom_gates_has_one_key() -> None:
    """On b295950 a circuit with two gates of no standard name (QPY's table of their
    definitions comes in the order of a hash map) had a new key at most calls: 20
    keys of one circuit were 2 different ones, a rerun hit by chance."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter
    from qiskit.circuit.library import PauliEvolutionGate
    from qiskit.quantum_info import SparsePauliOp

    def run(circuit: Any) -> Any:
        return circuit

    bell, flip = QuantumCircuit(2), QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    flip.x(0)
    gates = QuantumCircuit(3)
    gates.append(bell.to_gate(), [0, 1])
    gates.append(flip.to_gate(), [1, 2])
    t = Parameter("t")
    trotter = QuantumCircuit(2)
    trotter.append(PauliEvolutionGate(SparsePauliOp("XX"), t), [0, 1])
    trotter.append(PauliEvolutionGate(SparsePauliOp("ZZ"), 2 * t), [0, 1])
    nested = QuantumCircuit(3)
    nested.append(gates.to_gate(), [0, 1, 2])
    nested.x(0)
    for circuit in (gates, trotter, nested):
        assert len({key(run, (circuit,)) for _ in range(20)}) == 1
    # Each gate by its place, bits and definition.
    swapped = QuantumCircuit(3)
    swapped.append(flip.to_gate(), [0, 1])
    swapped.append(bell.to_gate(), [1, 2])
    other = QuantumCircuit(3)
    other.append(bell.to_gate(), [1, 2])
    other.append(flip.to_gate(), [1, 2])
    keys = {key(run, (c,)) for c in (gates, swapped, other, nested)}
    assert len(keys) == 4
    zi = QuantumCircuit(2)
    zi.append(PauliEvolutionGate(SparsePauliOp("XX"), t), [0, 1])
    zi.append(PauliEvolutionGate(SparsePauliOp("ZI"), 2 * t), [0, 1])
    assert key(run, (zi,)) != key(run, (trotter,))


EXTENSION = """\
#include <Python.h>
static PyObject *value(PyObject *self, PyObject *args) { return PyLong_FromLong(VALUE); }
static PyMethodDef methods[] = {{"value", value, METH_NOARGS, "v"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "kernels", NULL, -1, methods};
PyMODINIT_FUNC PyInit_kernels(void) { return PyModule_Create(&mod); }
"""

USES_EXTENSION = """\
import kernels
from kernels import value
from qshpc.cache import key

def by_module(x):
    return x + kernels.value()

def by_name(x):
    return x + value()

def imported_in_body(x):
    from kernels import value
    return x + value()

print(by_module(0), *(key(f, (1,)) for f in (by_module, by_name, imported_in_body)))
"""


def _build(folder: Path, value: int) -> None:
    import shutil
    import sysconfig

    gcc = shutil.which("gcc") or shutil.which("cc")
    include = sysconfig.get_paths()["include"]
    if gcc is None or not Path(include, "Python.h").exists():
        pytest.skip("no C compiler or Python headers")
    (folder / "kernels.c").write_text(EXTENSION.replace("VALUE", str(value)))
    out = folder / f"kernels{sysconfig.get_config_var('EXT_SUFFIX')}"
    out.unlink(missing_ok=True)
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-I", include, str(folder / "kernels.c"), "-o", str(out)],
        check=True,
        capture_output=True,
    )


def test_a_compiled_module_of_ones_own_rebuilt_changes_the_keys(tmp_path: Path) -> None:
    """On b295950 a function calling a compiled module beside the program (a Cython or
    pybind11 build) was keyed by the names it calls: rebuilt to return 2 instead of 1,
    its calls kept their keys and got the old results."""
    (tmp_path / "uses.py").write_text(USES_EXTENSION)
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])

    def keys() -> list[str]:
        out = subprocess.run(
            [sys.executable, str(tmp_path / "uses.py")],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": path},
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    _build(tmp_path, 1)
    one = keys()
    _build(tmp_path, 2)
    two = keys()
    assert one[0] == "1" and two[0] == "2"
    assert all(a != b for a, b in zip(one[1:], two[1:], strict=True))
    _build(tmp_path, 1)  # the same build again: the same keys
    assert keys() == one


def test_the_parent_package_of_a_module_a_task_imports_is_in_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``import h21pkg.sub`` in a task's body runs and binds ``h21pkg`` too, whose
    ``X`` the task reads. On b295950 only ``h21pkg.sub`` was keyed: an edit to
    ``h21pkg/__init__.py`` kept the key, both where the package was not imported
    (rank 0 of an MPI job: keyed by its files) and where it was (a rebound ``X``)."""
    package = tmp_path / "h21pkg"
    package.mkdir()
    (package / "__init__.py").write_text("X = 1\n")
    (package / "sub.py").write_text("Y = 10\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def task(x: int) -> int:
        import h21pkg.sub  # type: ignore[import-not-found]

        return x + h21pkg.X + h21pkg.sub.Y  # type: ignore[no-any-return]

    assert "h21pkg" not in sys.modules
    before = key(task, (1,))
    (package / "__init__.py").write_text("X = 2\n")
    assert key(task, (1,)) != before
    assert "h21pkg" not in sys.modules  # keyed by its files, not imported

    try:
        assert task(1) == 13
        cache = JobCache(CacheConfig(), None)
        first = cache.key(task, (1,), None, None, live=True)
        sys.modules["h21pkg"].X = 7
        assert task(1) == 18
        assert cache.key(task, (1,), None, None, live=True) != first
    finally:
        for name in ("h21pkg.sub", "h21pkg"):
            sys.modules.pop(name, None)


def test_datetime_arrays_are_keyed_by_unit_and_value() -> None:
    """On b295950 a datetime64 or timedelta64 array could not be keyed (numpy gives them
    no buffer): such calls ran every time, uncached."""

    def run(when: Any) -> Any:
        return when

    day = np.array(["2026-12-05"], "datetime64[D]")
    assert key(run, (day,)) == key(run, (day.copy(),))
    assert key(run, (day,)) != key(run, (day.astype("datetime64[s]"),))
    assert key(run, (day,)) != key(run, (day + 1,))
    assert key(run, (np.array([5], "timedelta64[ns]"),)) != key(
        run, (np.array([6], "timedelta64[ns]"),)
    )


def test_a_value_the_program_puts_in_builtins_is_in_the_key() -> None:
    """On b295950 a global the task finds in ``builtins`` (``builtins.H21C_SHOTS = 100``,
    as tools like kernprof put ``profile`` there) was left out: 100 and 200 gave one
    key."""
    import builtins

    def f(x: int) -> int:
        return x + H21C_SHOTS  # type: ignore[name-defined]  # noqa: F821

    def plain(x: list[int]) -> int:
        return len(x) + sum(x)  # Python's own builtins: nothing added

    try:
        builtins.H21C_SHOTS = 100  # type: ignore[attr-defined]
        first = key(f, (1,))
        cache = JobCache(CacheConfig(), None)
        live = cache.key(f, (1,), None, None, live=True)
        builtins.H21C_SHOTS = 200  # type: ignore[attr-defined]
        assert f(1) == 201
        assert key(f, (1,)) != first
        assert cache.key(f, (1,), None, None, live=True) != live
    finally:
        del builtins.H21C_SHOTS  # type: ignore[attr-defined]
    assert key(plain, ([1],)) == key(plain, ([1],))


class _Rebuilt:
    """A value whose ``__reduce__`` makes a function for the occasion (cloudpickle,
    which qshpc falls back to for arguments, pickles it)."""

    def __init__(self, v: int) -> None:
        self.v = v

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        v = self.v

        def make() -> _Rebuilt:
            return _Rebuilt(v)

        return make, ()


def test_a_function_made_by_reduce_is_keyed_by_its_content_each_time() -> None:
    """On b295950 the walk numbered functions by ``id()`` without keeping them: the
    second value's function, made at the address the first one's had freed, was fed as
    a back-reference, so ``(1, 2)`` and ``(1, 3)`` had one key."""

    def run(pair: Any) -> int:
        return int(pair[1].v)

    assert key(run, ((_Rebuilt(1), _Rebuilt(2)),)) != key(run, ((_Rebuilt(1), _Rebuilt(3)),))
    assert key(run, ((_Rebuilt(1), _Rebuilt(2)),)) == key(run, ((_Rebuilt(1), _Rebuilt(2)),))


def test_a_partial_task_whose_argument_changes_in_place_is_keyed_again() -> None:
    """On b295950 ``distribute_task()(partial(f, config))`` called in the program's
    process kept its first key after ``config["k"] = 9``: the partial's arguments were
    no dependency of the live key."""
    import functools

    from qshpc import distribute_task

    def f(config: dict[str, int], x: int) -> int:
        return x + config["k"]

    config = {"k": 1}
    task = distribute_task()(functools.partial(f, config))
    cache = JobCache(CacheConfig(), None)
    first = cache.key(task, (1,), None, None, live=True)
    config["k"] = 9
    assert cache.key(task, (1,), None, None, live=True) != first
    by_name = distribute_task()(functools.partial(f, x=1))
    assert cache.key(by_name, (config,), None, None, live=True) == cache.key(
        by_name, (config,), None, None, live=True
    )
