"""Session 16 hunt (parity16): researchers' programs on the current code, real Aer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("qiskit_aer")


def _wide_isa(measure: bool):  # type: ignore[no-untyped-def]
    from qiskit import QuantumCircuit, transpile
    from qiskit.providers.fake_provider import GenericBackendV2

    qc = QuantumCircuit(5)
    qc.h(0)
    for i in range(4):
        qc.cx(i, i + 1)
    if measure:
        qc.measure_all()
    backend = GenericBackendV2(127, seed=1)
    return transpile(qc, backend, optimization_level=1, seed_transpiler=1)


def test_a_127_qubit_isa_circuit_on_5_qubits_is_sized_as_5() -> None:
    from qshpc.aer.sizing import active_width, estimate_for_circuits

    isa = _wide_isa(measure=True)
    assert isa.num_qubits == 127
    assert active_width(isa) == 5
    assert estimate_for_circuits([isa]).num_qubits == 5


def test_sampler_v2_runs_a_127_qubit_isa_circuit() -> None:
    from qshpc.aer import SamplerV2

    counts = SamplerV2().run([_wide_isa(measure=True)], shots=200).result()[0].data.meas
    assert set(counts.get_counts()) <= {"00000", "11111"}
    assert counts.num_shots == 200


def test_estimator_v2_runs_a_127_qubit_isa_circuit() -> None:
    from qiskit.quantum_info import SparsePauliOp

    from qshpc.aer import EstimatorV2

    isa = _wide_isa(measure=False)
    obs = [SparsePauliOp(p).apply_layout(isa.layout) for p in ("ZZIII", "XXXXX", "ZIIII")]
    evs = EstimatorV2().run([(isa, obs)]).result()[0].data.evs
    assert evs == pytest.approx([1.0, 1.0, 0.0], abs=1e-9)


ECHO = """\
from qshpc import distribute_task, get, get_arguments, save_result


@distribute_task()
def echo(x):
    return x


args = get_arguments()
save_result({"main": args, "task": dict(zip(args, get([echo(v) for v in args.values()])))})
"""


def _objects() -> dict[str, Any]:
    import numpy as np
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter
    from qiskit.primitives.containers import BindingsArray, ObservablesArray
    from qiskit.quantum_info import PTM, Chi, Choi, Kraus, Stinespring, SuperOp
    from qiskit_aer import AerSimulator
    from qiskit_aer import quantum_info as aqi

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.save_statevector()
    qc.measure_all()
    result = AerSimulator().run(qc, shots=20, seed_simulator=3).result()
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    k = [np.sqrt(0.7) * np.eye(2), np.sqrt(0.3) * np.array([[0, 1], [1, 0]])]
    a, b = Parameter("a"), Parameter("b")
    return {
        "result": result,
        "aer_sv": aqi.AerStatevector(bell),
        "aer_dm": aqi.AerDensityMatrix(bell),
        "kraus": Kraus(k),
        "kraus2": Kraus((k, [np.eye(2), np.zeros((2, 2))])),
        "choi": Choi(Kraus(k)),
        "superop": SuperOp(Kraus(k)),
        "ptm": PTM(Kraus(k)),
        "chi": Chi(Kraus(k)),
        "stinespring": Stinespring(Kraus(k)),
        "bindings": BindingsArray({(a, b): np.arange(12.0).reshape(2, 3, 2)}),
        "observables": ObservablesArray([[{"ZZ": 1.0, "XI": -0.5}], [{"YY": 0.25}]]),
    }


def _same(got: Any, want: Any) -> bool:
    import numpy as np

    if type(got) is not type(want):
        return False
    if type(want).__name__ == "Result":
        return bool(
            got.get_counts() == want.get_counts()
            and got.get_statevector() == want.get_statevector()
            and got.backend_name == want.backend_name
            and got.job_id == want.job_id
        )
    if type(want).__name__ == "BindingsArray":
        return (
            got.shape == want.shape
            and all(np.array_equal(got.data[key], want.data[key]) for key in want.data)
            and list(got.data) == list(want.data)
        )
    if type(want).__name__ == "ObservablesArray":
        return bool(got.shape == want.shape and got.tolist() == want.tolist())
    if type(want).__name__ in ("Kraus", "Stinespring"):
        return bool(
            str(got._data) == str(want._data)  # the same operators, not only the same channel
            and got.input_dims() == want.input_dims()
            and got.output_dims() == want.output_dims()
        )
    return bool(got == want)


def test_results_channels_aer_states_and_containers_round_trip_typed(tmp_path: Path) -> None:
    """A backend Result, Aer's AerStatevector/AerDensityMatrix, the quantum channels and
    the V2 containers: pickled (job.result() refused them) or, Aer's, not storable."""
    from qshpc import LocalClient, Program, QuantumServerless
    from qshpc.store import decode_blob, encode_blob, to_jsonable
    from qshpc.store.qiskit_objects import typed_parts

    objects = _objects()
    for key, value in objects.items():
        assert typed_parts(value) is not None, key  # typed, never pickled
        assert _same(decode_blob(encode_blob(value)), value), key
    (tmp_path / "echo.py").write_text(ECHO)
    serverless = QuantumServerless(LocalClient(workers=1))
    job = serverless.run(
        Program(title="echo16b", entrypoint="echo.py", working_dir=str(tmp_path)), objects
    )
    result = job.result()  # nothing pickled: no allow_pickle needed
    for where in ("main", "task"):
        for key, value in objects.items():
            assert _same(result[where][key], value), (where, key)
    plain = to_jsonable(objects)  # `qshpc result --json` reads them too
    assert plain["kraus"]["type"] == "Kraus" and plain["result"]["type"] == "Result"


FRACTION = """\
from qshpc import distribute_task, get, save_result


@distribute_task(target={"cpu": 0.5, "gpu": 0.25})
def square(x):
    return x * x


save_result({"squares": get([square(i) for i in range(4)]), "cpu": square.target.cpu})
"""


def test_ray_style_fractional_cpu_and_gpu_round_up_to_a_rank_s_share(tmp_path: Path) -> None:
    """``target={"cpu": 0.5, "gpu": 0.25}`` (Ray's num_cpus float) was refused: "cpu=0.5
    must be >= 1; gpu=0.25 must be a whole number"."""
    from qshpc import LocalClient, Program, QuantumServerless, Target
    from qshpc.errors import ResourceError

    assert (Target(cpu=0.5, gpu=0.25).cpu, Target(cpu=0.5, gpu=0.25).gpu) == (1, 1)
    assert Target.from_dict({"cpu": 1.5}).cpu == 2 and Target(cpu=2.0).cpu == 2
    for bad in ({"cpu": 0}, {"cpu": -0.5}, {"gpu": -0.25}, {"ranks": 1.5}):
        with pytest.raises(ResourceError, match="bad task target"):
            Target.from_dict(bad)
    (tmp_path / "frac.py").write_text(FRACTION)
    job = QuantumServerless(LocalClient(workers=1)).run(
        Program(title="frac16b", entrypoint="frac.py", working_dir=str(tmp_path))
    )
    assert job.result() == {"squares": [0, 1, 4, 9], "cpu": 1}


VQE = """\
import numpy as np
from qiskit import QuantumCircuit, transpile
from qiskit.circuit.library import efficient_su2
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.quantum_info import SparsePauliOp, Kraus, Operator
from qiskit.primitives.containers import BindingsArray
from qiskit_aer.noise import NoiseModel, depolarizing_error
from qshpc import distribute_task, get, get_arguments, save_result, put
from qshpc.aer import EstimatorV2, SamplerV2

backend = GenericBackendV2(60, seed=7)
ansatz = efficient_su2(4, reps=1)
isa = transpile(ansatz, backend, optimization_level=1, seed_transpiler=7)
ham = SparsePauliOp.from_list([("ZZII", 1.0), ("IZZI", 0.5), ("XIIX", -0.3)]).apply_layout(isa.layout)

@distribute_task(target={"cpu": 0.5})
def energies(circuit, obs, params):
    return EstimatorV2().run([(circuit, obs, params)]).result()[0].data.evs

rng = np.random.default_rng(1)
sweeps = [rng.uniform(0, np.pi, (5, isa.num_parameters)) for _ in range(3)]
evs = get([energies(isa, ham, p) for p in sweeps])

noise = NoiseModel(); noise.add_all_qubit_quantum_error(depolarizing_error(0.01, 2), ["cx"])
@distribute_task()
def sample(circuits, noise):
    res = SamplerV2(options={"backend_options": {"noise_model": noise}}).run(circuits, shots=256).result()
    return [r.data.meas.get_counts() for r in res]

batch = []
for n in (2, 3, 4):
    qc = QuantumCircuit(n); qc.h(0); [qc.cx(i, i + 1) for i in range(n - 1)]; qc.measure_all()
    batch.append(transpile(qc, backend, optimization_level=1, seed_transpiler=n))
counts = get(sample(batch, noise))
big = put(np.arange(2_000_000, dtype=np.float64))

@distribute_task()
def total(arr):
    return float(arr.sum())

s = get(total(big))
save_result({
    "evs": [np.asarray(e) for e in evs],
    "counts": counts,
    "nested": {"ham": ham, "ops": [Operator(np.eye(2)), Kraus([np.eye(2)])],
               "bind": BindingsArray({tuple(isa.parameters): sweeps[0]})},
    "sum": s,
})
"""


def test_a_vqe_sweep_a_noisy_isa_batch_put_and_nested_qiskit_results(tmp_path: Path) -> None:
    """A researcher's program: Estimator sweeps of an ansatz transpiled onto a 60-qubit
    device, a noisy Sampler batch of ISA circuits, a big array through put, and nested
    Qiskit objects saved: runs on 2 workers and reads back typed, nothing pickled."""
    import numpy as np

    from qshpc import LocalClient, Program, QuantumServerless

    (tmp_path / "vqe.py").write_text(VQE)
    job = QuantumServerless(LocalClient(workers=2)).run(
        Program(title="vqe16b", entrypoint="vqe.py", working_dir=str(tmp_path))
    )
    result = job.result()
    assert [np.shape(e) for e in result["evs"]] == [(5,)] * 3
    assert all(-1.8 <= float(v) <= 1.8 for e in result["evs"] for v in e)
    assert [sum(c.values()) for c in result["counts"]] == [256] * 3
    assert result["sum"] == float(np.arange(2_000_000).sum())
    nested = result["nested"]
    assert [type(o).__name__ for o in nested["ops"]] == ["Operator", "Kraus"]
    assert type(nested["bind"]).__name__ == "BindingsArray" and nested["bind"].shape == (5,)
    assert type(nested["ham"]).__name__ == "SparsePauliOp" and nested["ham"].num_qubits == 60
