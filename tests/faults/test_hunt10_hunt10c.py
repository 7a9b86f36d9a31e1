"""Session 10's hunt (hunt10c): common Qiskit objects stored typed, not pickled.

On main b4a6c60 a ``SparsePauliOp``, ``Statevector``, ``DensityMatrix``,
``Operator``, ``Pauli``, ``Parameter``/``ParameterExpression``, V1
``SamplerResult``/``EstimatorResult`` or ``NoiseModel`` a program saved (or a
task returned) was stored pickled: ``job.result()`` and ``qshpc result`` refused it
without ``allow_pickle=True`` (quantum-serverless 0.10.1's JSON encoder round-tripped
most of them), and a cache entry holding one was a pickle only its owner loads.
Now they are stored as data (:mod:`qshpc.store.qiskit_objects`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import msgpack
import numpy as np
import pytest

from qshpc import open_job
from qshpc.errors import SchemaVersionError, StoreError, UserError
from qshpc.store import JobReader
from qshpc.store.encoding_blob import (
    EXT_QISKIT_OBJECT,
    PickleRefusedError,
    decode_blob,
    encode_blob,
)
from qshpc.store.encoding_h5 import read_native, write_native
from qshpc.store.jsonable import to_jsonable
from tests.conftest import job_dir_of, run_cli, run_program

pytestmark = [pytest.mark.timeout(240)]

qiskit = pytest.importorskip("qiskit")


def _values() -> dict[str, Any]:
    from qiskit.circuit import Parameter, ParameterVector
    from qiskit.primitives import EstimatorResult, SamplerResult
    from qiskit.quantum_info import (
        DensityMatrix,
        Operator,
        Pauli,
        SparsePauliOp,
        Statevector,
        random_unitary,
    )
    from qiskit.result import QuasiDistribution

    import qshpc.aer.results as qr

    a, b = Parameter("a"), Parameter("b")
    out: dict[str, Any] = {
        "sparse_pauli_op": SparsePauliOp(["XZ", "YY", "II"], [1 + 2j, -0.5, 0.25j]),
        "sparse_pauli_op_params": SparsePauliOp(["XZ", "YY"], [1 + 2j, 2 * a * b - 1]),
        "pauli": Pauli("-iXZ"),
        "statevector": Statevector.from_label("0+1"),
        "statevector_qutrit": Statevector(np.ones(6) / np.sqrt(6), dims=(2, 3)),
        "density_matrix": DensityMatrix.from_label("01"),
        "operator": Operator(random_unitary(4, seed=7)),
        "operator_dims": Operator(np.eye(6), input_dims=(2, 3), output_dims=(3, 2)),
        "parameter": a,
        "expression": 2 * a * b - 0.5,
        "vector_element": ParameterVector("v", 3)[2],
        "sampler_result": SamplerResult(
            [QuasiDistribution({0: 0.5, 3: 0.5}, shots=100), QuasiDistribution({1: 1.0})],
            [{"shots": 100}, {}],
        ),
        "estimator_result": EstimatorResult(np.array([0.5, -1.0]), [{}, {"variance": 0.1}]),
        "qshpc_sampler_result": qr.SamplerResult(
            [qr.QuasiDistribution({0: 0.25, 1: 0.75}, shots=8)], [{"shots": 8}]
        ),
        "qshpc_estimator_result": qr.EstimatorResult(np.array([1.0]), [{}]),
    }
    try:
        from qiskit_aer.noise import NoiseModel, depolarizing_error, pauli_error
    except ImportError:
        return out
    model = NoiseModel(basis_gates=["sx", "x", "rz", "cx"])
    model.add_all_qubit_quantum_error(depolarizing_error(0.01, 1), ["x", "sx"])
    model.add_quantum_error(pauli_error([("XX", 0.1), ("II", 0.9)]), ["cx"], [0, 1])
    out["noise_model"] = model
    return out


def _same(x: Any, y: Any) -> bool:
    """Same class and values (``==`` where the class has it)."""
    if type(x) is not type(y):
        return False
    name = type(x).__name__
    if name == "SamplerResult":
        return (
            x.quasi_dists == y.quasi_dists
            and x.metadata == y.metadata
            and all(
                type(p) is type(q) and vars(p) == vars(q)
                for p, q in zip(x.quasi_dists, y.quasi_dists, strict=True)
            )
        )
    if name == "EstimatorResult":
        return bool(np.array_equal(x.values, y.values)) and x.metadata == y.metadata
    if name == "SparsePauliOp" and x.coeffs.dtype.hasobject:
        return bool(x.paulis == y.paulis) and all(
            p == q for p, q in zip(x.coeffs, y.coeffs, strict=True)
        )
    return bool(x == y)


def _h5_round_trip(value: Any, tmp_path: Path, allow_pickle: bool = False) -> Any:
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        write_native(f, "v", value)
    with h5py.File(path, "r") as f:
        return read_native(f["v"], allow_pickle, str(path))


@pytest.mark.parametrize("name", sorted(_values()))
def test_each_kind_round_trips_without_pickle(name: str, tmp_path: Path) -> None:
    """On b4a6c60 each was pickled: reading it back without allow_pickle raised."""
    value = _values()[name]
    assert _same(_h5_round_trip(value, tmp_path), value)
    body = encode_blob(value)
    assert _same(decode_blob(body), value)
    assert b"\x80\x05" not in body[:3]  # and no pickle inside the blob
    json.dumps(to_jsonable(value))


def test_a_dict_of_them_round_trips_in_both_encodings(tmp_path: Path) -> None:
    values = _values()
    for back in (_h5_round_trip(values, tmp_path), decode_blob(encode_blob(values))):
        assert set(back) == set(values)
        for key, value in values.items():
            assert _same(back[key], value), key


def test_what_cannot_be_typed_is_still_pickled_and_refused(tmp_path: Path) -> None:
    """QPY drops a complex coefficient of an expression (``1j*a`` loads as ``a``): such
    an expression is pickled, as before, not stored wrong; inside a SparsePauliOp only
    the expression is pickled. A NoiseModel with custom noise passes stays pickled."""
    from qiskit.circuit import Parameter
    from qiskit.quantum_info import SparsePauliOp

    a = Parameter("a")
    for value in (1j * a, SparsePauliOp(["X", "Z"], [1.0, 1j * a])):
        with pytest.raises(PickleRefusedError):
            decode_blob(encode_blob(value))
        with pytest.raises(PickleRefusedError):
            _h5_round_trip(value, tmp_path)
        assert _same(decode_blob(encode_blob(value), allow_pickle=True), value)
        assert _same(_h5_round_trip(value, tmp_path, allow_pickle=True), value)


def test_a_noise_model_from_dict_cannot_give_back_stays_pickled(tmp_path: Path) -> None:
    """qiskit-aer's from_dict reads no complex matrix back: an amplitude-damping error
    (kraus) was typed, then unreadable (h5: bare ValueError; blob: 'corrupt'). Now
    such a model is pickled, as before."""
    noise = pytest.importorskip("qiskit_aer.noise")
    model = noise.NoiseModel()
    model.add_all_qubit_quantum_error(noise.amplitude_damping_error(0.1), ["x"])
    with pytest.raises(PickleRefusedError):
        _h5_round_trip(model, tmp_path)
    assert _h5_round_trip(model, tmp_path, allow_pickle=True) == model
    assert decode_blob(encode_blob(model), allow_pickle=True) == model


def test_a_v1_sampler_result_of_other_distributions_stays_pickled() -> None:
    """A SamplerResult holding plain dicts could not be saved (SerializationError:
    vars()), and Qiskit's holding qshpc.aer's QuasiDistribution came back holding
    Qiskit's. Both are pickled now, as before, and read back as they were."""
    from qiskit.primitives import SamplerResult

    import qshpc.aer.results as qr

    for dist in ({0: 1.0}, qr.QuasiDistribution({0: 1.0}, shots=4)):
        value = SamplerResult([dist], [{}])
        with pytest.raises(PickleRefusedError):
            decode_blob(encode_blob(value))
        back = decode_blob(encode_blob(value), allow_pickle=True)
        assert type(back.quasi_dists[0]) is type(dist) and back.quasi_dists == [dist]


def test_an_unknown_kind_or_newer_format_is_refused_clearly(tmp_path: Path) -> None:
    """A user error (exit 2 in the CLI) naming the kind, the format and the fix."""
    assert issubclass(SchemaVersionError, UserError)
    for kind, version in (("sparse-pauli-op", 99), ("quantum-banana", 1)):
        blob = msgpack.packb(
            msgpack.ExtType(EXT_QISKIT_OBJECT, msgpack.packb([kind, version, {}])),
            use_bin_type=True,
        )
        with pytest.raises(SchemaVersionError, match=f"kind {kind!r}, format {version}.*upgrade"):
            decode_blob(blob, source="x.blob")
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        write_native(f, "v", _values()["pauli"])
        f["v"].attrs["format"] = 7
    with h5py.File(path, "r") as f, pytest.raises(SchemaVersionError, match=r"format 7.*upgrade"):
        read_native(f["v"], False, str(path))
    with h5py.File(path, "a") as f:  # a kind this version does not know: not read as a list
        f["v"].attrs["encoding-type"] = "quantum-banana"
    with (
        h5py.File(path, "r") as f,
        pytest.raises(SchemaVersionError, match=r"'quantum-banana'.*upgrade"),
    ):
        read_native(f["v"], False, str(path))


def test_a_parameter_expression_whose_qpy_is_a_number_is_refused_not_allocated() -> None:
    """bytes(n) of a number in a damaged or crafted entry (a group's shared cache) made
    n zero bytes (2**33: 8 GiB) before QPY refused them; now refused as it is met."""
    part = msgpack.packb(["parameter-expression", 1, {"qpy": 2**33}])
    blob = msgpack.packb(msgpack.ExtType(EXT_QISKIT_OBJECT, part), use_bin_type=True)
    with pytest.raises(StoreError, match="not bytes"):
        decode_blob(blob, source="x.blob")


def test_json_forms_are_data() -> None:
    values = _values()
    plain = json.loads(json.dumps(to_jsonable(values)))
    assert plain["sparse_pauli_op"] == {
        "type": "SparsePauliOp",
        "labels": ["XZ", "YY", "II"],
        "coeffs": [[1.0, 2.0], [-0.5, 0.0], [0.0, 0.25]],
    }
    assert plain["pauli"] == {"type": "Pauli", "label": "-iXZ"}
    assert plain["statevector_qutrit"]["dims"] == [2, 3]
    assert plain["parameter"]["name"] == "a" and plain["parameter"]["type"] == "Parameter"
    assert plain["expression"]["parameters"] == ["a", "b"]
    assert plain["sampler_result"]["quasi_dists"] == [{"0": 0.5, "3": 0.5}, {"1": 1.0}]
    assert plain["estimator_result"]["values"] == [0.5, -1.0]
    if "noise_model" in plain:
        assert plain["noise_model"]["noise_model"]["errors"]


def test_the_cache_keeps_them_typed_not_pickled() -> None:
    """On b4a6c60 a cache entry of one was form 'pickle', loaded by its owner only."""
    from qshpc.cache.body import encode

    for name, value in _values().items():
        entry = encode(value)
        assert entry.form == "blob", name
        assert _same(decode_blob(entry.body, allow_pickle=False), value), name


def test_a_cached_typed_parameter_is_rebound_to_the_calls_own() -> None:
    """A hit holding a typed Parameter (no QPY in its body) is still walked by rebind."""
    from types import SimpleNamespace

    from qiskit.circuit import Parameter

    from qshpc.cache.body import encode
    from qshpc.cache.rebind import rebind_hit

    old, mine = Parameter("θ"), Parameter("θ")
    entry = encode({"p": old})
    value = decode_blob(entry.body)
    hit = SimpleNamespace(  # a Hit's parts that rebind_hit reads (load: a lazy hit's decode)
        blob=entry.body,
        header=SimpleNamespace(form=entry.form),
        value=value,
        load=lambda: value,
    )
    back = rebind_hit(hit, (mine,), None)["p"]
    assert back == mine and back.uuid == mine.uuid != old.uuid


PROGRAM = """\
import numpy as np
from qiskit.circuit import Parameter
from qiskit.primitives import EstimatorResult, SamplerResult
from qiskit.quantum_info import Pauli, SparsePauliOp, Statevector
from qiskit.result import QuasiDistribution
from qshpc import distribute_task, get, save_result

theta = Parameter("theta")

@distribute_task()
def observable(i):
    return SparsePauliOp(["ZZ", "XI"], [1.0 + i, 0.5j])

save_result({
    "ops": get([observable(i) for i in range(3)]),
    "state": Statevector.from_label("0+"),
    "pauli": Pauli("-Y"),
    "theta": theta,
    "expr": 2 * theta + 1,
    "sampler": SamplerResult([QuasiDistribution({0: 0.5, 3: 0.5}, shots=64)], [{"shots": 64}]),
    "estimator": EstimatorResult(np.array([0.25]), [{}]),
    "theta_uuid": str(theta.uuid),
})
"""


@pytest.mark.mpi
def test_a_program_saving_them_reads_back_without_pickle(qshpc_home: Path, tmp_path: Path) -> None:
    """On b4a6c60 ``open_job(...).result()`` raised 'contains pickled data' and
    ``qshpc result`` refused; now they come back as the program saved them."""
    import uuid

    from qiskit.quantum_info import Pauli, SparsePauliOp, Statevector

    job = run_program(qshpc_home, tmp_path / "typed.py", PROGRAM, ranks=3, timeout=180)
    res = job.result()
    assert res["ops"] == [SparsePauliOp(["ZZ", "XI"], [1.0 + i, 0.5j]) for i in range(3)]
    assert res["state"] == Statevector.from_label("0+")
    assert res["pauli"] == Pauli("-Y")
    theta = res["theta"]
    assert theta.name == "theta" and theta.uuid == uuid.UUID(res["theta_uuid"])
    assert res["expr"] == 2 * theta + 1
    assert res["sampler"].quasi_dists == [{0: 0.5, 3: 0.5}]
    assert res["sampler"].quasi_dists[0].shots == 64
    assert res["estimator"].values.tolist() == [0.25]
    with JobReader.open(job_dir_of(qshpc_home)) as reader:  # task results in the store
        tasks = reader.tasks()
        assert len(tasks) == 3
        for task in tasks:
            assert type(reader.task_result(task["task_id"])) is SparsePauliOp
    printed = run_cli("result", str(job_dir_of(qshpc_home)), "--json")
    assert printed.returncode == 0, printed.stderr
    plain = json.loads(printed.stdout)
    assert plain["pauli"] == {"type": "Pauli", "label": "-Y"}
    assert plain["ops"][0]["labels"] == ["ZZ", "XI"]
    assert plain["sampler"]["quasi_dists"] == [{"0": 0.5, "3": 0.5}]


@pytest.mark.mpi
def test_cached_task_results_of_them_are_blobs_a_rerun_reads(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """On b4a6c60 the cache entry of a task returning a SparsePauliOp was a pickle
    (form 'pickle': loaded by its owner only); now a plain blob, and the rerun's hits
    give back the same operators."""
    from qiskit.quantum_info import SparsePauliOp

    from qshpc.cache.entry import unpack

    prog = tmp_path / "typed.py"
    prog.write_text(PROGRAM)
    cache = tmp_path / "cache"
    for _ in range(2):
        out = run_cli("run", str(prog), "--cache", "--cache-dir", str(cache), ranks=3, timeout=180)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "3 from the cache" in out.stdout + out.stderr
    entries = [p for p in cache.rglob("*") if p.is_file() and len(p.name) == 64]
    assert len(entries) == 3
    for path in entries:
        header, _ = unpack(path.read_bytes(), None, str(path))
        assert header.form == "blob", path
    res = open_job(job_dir_of(qshpc_home)).result()
    assert res["ops"] == [SparsePauliOp(["ZZ", "XI"], [1.0 + i, 0.5j]) for i in range(3)]
