"""Session 12, hunt12a: researcher programs against qshpc's V2 primitives (Aer's names)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("qiskit_aer")

from qiskit import QuantumCircuit, transpile
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2
from qiskit_aer.primitives import SamplerV2 as AerSamplerV2

from qshpc import distribute_task, get
from qshpc.aer import EstimatorV2, SamplerV2
from qshpc.aer.v2.pubs import PubError
from qshpc.errors import UserError
from qshpc.program.api import DistributedTask
from qshpc.store.encoding_h5 import read_native, write_native

pytestmark = pytest.mark.usefixtures("fresh_aer")  # tests/unit/conftest.py


def _ghz_for(backend: GenericBackendV2) -> tuple[QuantumCircuit, QuantumCircuit, SparsePauliOp]:
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    measured = transpile(qc.measure_all(inplace=False), backend=backend, seed_transpiler=1)
    isa = transpile(qc, backend=backend, seed_transpiler=1)
    obs = SparsePauliOp.from_list([("ZZZ", 1), ("ZZI", 0.5), ("XXX", 0.2)])
    return measured, isa, obs.apply_layout(isa.layout)


def _tv(a: dict[str, int], b: dict[str, int], shots: int) -> float:
    return sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b)) / 2 / shots


@pytest.mark.parametrize("wrap", [False, True], ids=["backend", "aersimulator"])
def test_from_backend_simulates_the_backends_noise_as_aer_does(wrap: bool) -> None:
    """`SamplerV2.from_backend(backend)` (Aer's classmethod, in most noisy-simulation
    tutorials) was an AttributeError on qshpc's primitives. It now takes the backend's noise
    model: the estimator's values equal Aer's exactly (0.70488 here, 1.5 without noise), the
    counts match Aer's in distribution (total variation 0.004 at 20000 shots)."""
    backend = GenericBackendV2(4, seed=3)
    measured, isa, obs = _ghz_for(backend)
    target = AerSimulator.from_backend(backend) if wrap else backend
    aer_counts = AerSamplerV2.from_backend(target, seed=1).run([(measured, None, 20000)])
    ours = SamplerV2.from_backend(target, seed=1, default_shots=20000).run([measured])
    a, b = aer_counts.result()[0].data.meas.get_counts(), ours.result()[0].data.meas.get_counts()
    assert sum(v for k, v in b.items() if k not in ("000", "111")) > 50  # noisy outcomes
    assert _tv(a, b, 20000) < 0.02
    aer_evs = AerEstimatorV2.from_backend(target).run([(isa, obs)]).result()[0].data.evs
    our_evs = EstimatorV2.from_backend(target).run([(isa, obs)]).result()[0].data.evs
    assert our_evs == pytest.approx(aer_evs, abs=1e-9)
    assert abs(our_evs - 1.5) > 0.1


def test_from_backend_keeps_the_callers_options_and_adds_nothing_for_an_ideal_backend() -> None:
    ideal = GenericBackendV2(4, seed=3, noise_info=False)
    sampler = SamplerV2.from_backend(ideal, default_shots=10, options={"rows_per_task": 2})
    assert sampler.options.backend_options == {} and sampler.options.rows_per_task == 2
    assert sampler.default_shots == 10
    noisy = EstimatorV2.from_backend(
        GenericBackendV2(4, seed=3), options={"backend_options": {"method": "density_matrix"}}
    )
    assert noisy.options.backend_options["method"] == "density_matrix"
    assert noisy.options.backend_options["noise_model"] is not None
    mps = SamplerV2.from_backend(AerSimulator(method="matrix_product_state"))
    assert mps.options.backend_options == {"method": "matrix_product_state"}


def test_from_backend_of_something_else_is_one_clear_error() -> None:
    with pytest.raises(UserError, match=r"from_backend takes an AerSimulator or a Qiskit backend"):
        SamplerV2.from_backend("ibm_brisbane")


def test_from_backend_with_mode_gives_the_same_counts(tmp_path: object) -> None:
    """The noise model travels in the job's options (mode=): the same counts as here."""
    from qshpc import LocalClient

    backend = GenericBackendV2(4, seed=3)
    measured, _, _ = _ghz_for(backend)
    here = SamplerV2.from_backend(backend, seed=4).run([(measured, None, 500)]).result()
    job = SamplerV2.from_backend(backend, seed=4, mode=LocalClient(workers=0)).run(
        [(measured, None, 500)]
    )
    there = job.result()
    assert np.array_equal(here[0].data.meas.array, there[0].data.meas.array)


def _switch_circuit(target: str, nested: bool = False) -> QuantumCircuit:
    from qiskit.circuit.classical import expr

    qc = QuantumCircuit(3, 3)
    qc.h(0)
    qc.measure(0, 0)
    qc.x(2)
    qc.measure(2, 2)
    on = {
        "expr": expr.bit_or(qc.clbits[0], qc.clbits[2]),
        "register": qc.cregs[0],
        "lift": expr.lift(qc.cregs[0]),
    }[target]
    values: dict[str, tuple[int | bool, int | bool]] = {
        "expr": (True, False),
        "register": (5, 4),
        "lift": (5, 4),
    }
    hit, miss = values[target]

    def body() -> None:
        with qc.switch(on) as case:
            with case(hit):
                qc.x(1)
            with case(miss):
                qc.id(1)

    if nested:
        with qc.if_test((qc.clbits[2], 1)):
            body()
    else:
        body()
    qc.measure(1, 1)
    return qc


@pytest.mark.parametrize("nested", [False, True])
def test_a_switch_on_an_expression_is_refused_before_any_task(nested: bool) -> None:
    """`with qc.switch(expr.bit_or(c[0], c[2]))`: Aer's compiler cannot run it; every task of the
    PUB failed with `AerError: jump condition does not support <class '...Binary'>` (under
    `mpiexec -n 3`: FAILED, 2 failed attempts). Refused with the fix before anything runs."""
    from qshpc.aer import Sampler

    qc = _switch_circuit("expr", nested)
    with pytest.raises(PubError, match=r"PUB 0: .*switch on a classical expression \(Binary"):
        SamplerV2(seed=1).run([qc])
    with pytest.raises(UserError, match=r"switch on a ClassicalRegister or a clbit"):
        Sampler().run(qc)


@pytest.mark.parametrize("target", ["register", "lift"])
def test_a_switch_on_a_register_still_runs(target: str) -> None:
    """The switch targets Aer runs (a register, `expr.lift` of one) are not refused: bit 1
    copies bit 0, as Aer's own SamplerV2 gives."""
    qc = _switch_circuit(target)
    counts = SamplerV2(seed=1).run([(qc, None, 400)]).result()[0].data.c.get_counts()
    aer = AerSamplerV2(seed=1).run([(qc, None, 400)]).result()[0].data.c.get_counts()
    assert set(counts) == set(aer) == {"100", "111"}


def test_default_precision_set_on_the_options_after_construction_counts() -> None:
    """`estimator.options.default_precision = 0.05` (Aer's EstimatorV2 reads it at each run)
    was ignored: stds 0.0 and exact values, where Aer gave stds 0.05. Now it counts, as the
    constructor's `default_precision=0.05` does, with the same noise for the same seed."""
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    ours = EstimatorV2(seed=3)
    ours.options.default_precision = 0.05
    assert ours.default_precision == 0.05
    got = ours.run([(qc, ["ZZ", "XX", "ZI"])]).result()[0]
    aer = AerEstimatorV2()
    aer.options.default_precision = 0.05
    want = aer.run([(qc, ["ZZ", "XX", "ZI"])]).result()[0]
    assert np.all(got.data.stds == 0.05) and np.all(want.data.stds == 0.05)
    assert got.metadata["target_precision"] == want.metadata["target_precision"] == 0.05
    same = EstimatorV2(seed=3, default_precision=0.05).run([(qc, ["ZZ", "XX", "ZI"])]).result()
    assert np.array_equal(got.data.evs, same[0].data.evs)
    assert EstimatorV2(options={"default_precision": 0.02}).default_precision == 0.02
    ours.options.default_precision = -1.0
    with pytest.raises(PubError, match="default_precision must be a finite non-negative"):
        ours.run([(qc, "ZZ")])


@pytest.mark.parametrize(
    "value",
    [np.array(3.0), np.array(7, dtype=np.int32), np.array(1 + 2j), np.array("ab"), np.array(True)],
    ids=["f64", "i32", "c128", "str", "bool"],
)
def test_a_zero_dimensional_array_comes_back_as_one(value: np.ndarray, tmp_path: Path) -> None:
    """`save_result({"energy": result[0].data.evs})` of a one-observable PUB (evs is a 0-d
    array) came back as `np.float64(3.0)`, a numpy scalar, not the array saved (h5py reads a
    scalar dataset so); arrays of other shapes came back as themselves."""
    with h5py.File(tmp_path / "n.h5", "w") as f:
        write_native(f, "v", {"e": value})
    with h5py.File(tmp_path / "n.h5", "r") as f:
        back = read_native(f["v"], False, "n.h5")["e"]
    assert type(back) is np.ndarray and back.shape == () and back.dtype == value.dtype
    assert back == value


def test_the_evs_of_a_one_observable_pub_saved_alone_stay_an_array(tmp_path: Path) -> None:
    qc = QuantumCircuit(1)
    qc.h(0)
    evs = EstimatorV2().run([(qc, "X")]).result()[0].data.evs
    assert type(evs) is np.ndarray and evs.shape == ()
    with h5py.File(tmp_path / "n.h5", "w") as f:
        write_native(f, "v", {"energy": evs, "all": [evs, evs]})
    with h5py.File(tmp_path / "n.h5", "r") as f:
        back = read_native(f["v"], False, "n.h5")
    for got in (back["energy"], *back["all"]):
        assert type(got) is np.ndarray and got.shape == () and float(got) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "value",
    [np.array(3.0), np.array("ab"), np.arange(6.0).reshape(2, 3)[:, ::2]],
    ids=["f64", "str", "strided"],
)
def test_a_zero_dimensional_array_in_a_blob_keeps_its_shape(value: np.ndarray) -> None:
    """The blob encoding (sets, big containers, and numpy strings, which HDF5 cannot hold)
    packed `np.ascontiguousarray(arr)`, which is 1-d at least: `np.array("ab")` came back as
    `array(['ab'])`, shape (1,)."""
    from qshpc.store import decode_blob, encode_blob

    back = decode_blob(encode_blob({"v": value}))["v"]
    assert back.shape == value.shape and back.dtype == value.dtype
    np.testing.assert_array_equal(back, value)


class _Solver:
    def __init__(self, k: int) -> None:
        self.k = k

    @distribute_task()
    def scale(self, x: int) -> int:
        return self.k * x


def test_a_task_defined_in_a_class_binds_like_a_method() -> None:
    """`@distribute_task()` on a method, called as `Solver(3).scale(4)`: quantum-serverless's
    wrapper was a plain function, so it bound like a method and got the instance first; qshpc's
    task object did not bind: `TypeError: ... missing a required argument: 'x'`."""
    assert get(_Solver(3).scale(4)) == 12
    assert get(_Solver.scale(_Solver(2), 5)) == 10  # on the class: the task itself
    assert isinstance(_Solver.scale, DistributedTask)
    with pytest.raises(
        TypeError, match=r"do not fit .*scale\(self, x.*missing a required argument: .x."
    ):
        _Solver(3).scale()


def test_an_observable_not_mapped_onto_a_transpiled_circuit_names_apply_layout() -> None:
    """The most common slip with ISA circuits: `transpile(qc, backend=...)` makes 7 qubits of
    3 and the observable stays on 3. Qiskit's words name the widths only; the fix is named."""
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    isa = transpile(qc, backend=GenericBackendV2(7, seed=1), seed_transpiler=1)
    with pytest.raises(
        PubError,
        match=r"^PUB 0: The number of qubits of the circuit \(7\) does not match the number of "
        r"qubits of the \(\)-th observable \(3\); the circuit was transpiled .*"
        r"observable\.apply_layout\(circuit\.layout\)$",
    ):
        EstimatorV2().run([(isa, SparsePauliOp("ZZZ"))])
    mapped = SparsePauliOp("ZZZ").apply_layout(isa.layout)
    assert EstimatorV2().run([(isa, mapped)]).result()[0].data.evs == pytest.approx(0.0)
    wide = QuantumCircuit(4)  # no layout: Qiskit's words alone
    with pytest.raises(PubError, match=r"observable \(3\)\.$"):
        EstimatorV2().run([(wide, "ZZZ")])


def test_get_of_a_generator_names_the_fix() -> None:
    """`get(f(x) for x in xs)` is refused (as Ray does); the message now says to pass a list."""
    with pytest.raises(UserError, match=r"got generator \(.*pass a list, get\(list\(refs\)\)\)$"):
        get(_Solver.scale(_Solver(1), x) for x in range(2))
    with pytest.raises(UserError, match=r"got int$"):
        get(5)


def test_run_of_a_file_name_says_how_to_run_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`LocalClient().run("prog.py")` reads the string as an uploaded program's title
    (quantum-serverless's meaning): the refusal named upload only; it now names the
    Program that runs the file. Nothing starts."""
    from qshpc import LocalClient

    (tmp_path / "prog.py").write_text("print(1)\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        UserError,
        match=r"no program titled 'prog.py' was uploaded .* to run the file prog.py, pass "
        r"Program\(title='prog', entrypoint='prog.py', working_dir='.*'\)$",
    ):
        LocalClient(workers=1).run("prog.py")
    with pytest.raises(UserError, match=r"or pass the Program itself$"):
        LocalClient(workers=1).run("no_such_title")


@distribute_task()
async def _async_square(x: int) -> int:
    import asyncio

    await asyncio.sleep(0)
    return x * x


@distribute_task(target={"env_vars": {"HUNT12A": "on"}})
async def _async_env() -> str | None:
    import os

    return os.environ.get("HUNT12A")


def test_an_async_task_is_run_to_its_end() -> None:
    """`@distribute_task() async def f`: `get(f(3))` gave the coroutine object under plain
    `python` (never run, a RuntimeWarning) and failed on a worker (`cannot pickle 'coroutine'
    object`). Each call now runs the coroutine to its end, also where a loop already runs."""
    import asyncio

    assert get([_async_square(i) for i in range(3)]) == [0, 1, 4]
    assert get(_async_env()) == "on"

    async def in_a_loop() -> int:
        return int(get(_async_square(5)))

    assert asyncio.run(in_a_loop()) == 25
