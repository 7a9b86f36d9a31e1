"""Session 10's hunt (hunt10b): the V2 primitives against Aer's, on the ranks and here.

Each test says what happened on main 0ab3ff4.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import job_dir_of, run_cli

pytestmark = [pytest.mark.timeout(240)]


def _measured_with_numpy_metadata():  # type: ignore[no-untyped-def]
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2, 2, name="tagged", metadata={"index": np.int64(3), "arr": np.arange(2)})
    qc.x(0)
    qc.measure([0, 1], [0, 1])
    return qc


def test_numpy_metadata_runs_and_comes_back_as_with_aer() -> None:
    """On 0ab3ff4 a circuit whose metadata held a numpy int (``np.int64(3)``, as from
    enumerating an array) failed every V2 run with ``TypeError: Object of type int64 is
    not JSON serializable``, naming no PUB (QPY writes metadata as JSON); Aer's and
    Qiskit's primitives run it and hand the metadata back. Now the copy that travels
    to the blocks has no metadata, and each PUB result carries the circuit's own."""
    from qiskit_aer.primitives import SamplerV2 as AerSampler

    from qshpc.aer import EstimatorV2, SamplerV2

    qc = _measured_with_numpy_metadata()
    ours = SamplerV2(seed=3).run([qc]).result()[0]
    aers = AerSampler(seed=3).run([qc]).result()[0]
    assert ours.data.c.get_counts() == aers.data.c.get_counts() == {"01": 1024}
    assert ours.metadata["circuit_metadata"] is qc.metadata
    est = EstimatorV2().run([(qc, ["ZI", "IZ"])]).result()[0]
    assert est.data.evs.tolist() == [1.0, -1.0]
    assert est.metadata["circuit_metadata"]["index"] == 3
    cached = SamplerV2(seed=3, options={"cache": True}).run([qc]).result()[0]
    assert np.array_equal(cached.data.c.array, ours.data.c.array)
    assert qc.metadata["index"] == 3  # the user's circuit is left as it was


def test_numpy_metadata_in_the_v1_primitives() -> None:
    """The V1 ``Sampler`` and ``Estimator`` failed alike on 0ab3ff4 (the provenance's
    hash of the circuit's QPY): the same ``TypeError``."""
    from qiskit.quantum_info import SparsePauliOp

    from qshpc.aer import Estimator, Sampler

    qc = _measured_with_numpy_metadata()
    assert Sampler().run(qc).result().quasi_dists[0] == {1: 1.0}
    body = qc.remove_final_measurements(inplace=False)
    assert Estimator().run(body, SparsePauliOp("IZ")).result().values.tolist() == [-1.0]


def test_numpy_metadata_with_mode_is_one_clear_error_before_any_job() -> None:
    """On 0ab3ff4 ``mode=LocalClient(...)`` failed with the same bare TypeError; the job
    stores its PUBs, so now it is a PubError naming the PUB and the fix, before a job exists."""
    from qshpc import LocalClient
    from qshpc.aer import SamplerV2
    from qshpc.primitives import PubError

    good = _measured_with_numpy_metadata()
    good.metadata = {"index": 3}
    with pytest.raises(PubError, match=r"PUB 1: circuit 'tagged' has metadata .* int64") as info:
        SamplerV2(mode=LocalClient(workers=1)).run([good, _measured_with_numpy_metadata()])
    assert "\n" not in str(info.value)
    home = Path(os.environ["QSHPC_HOME"])
    assert not (home / "jobs").exists() or not any((home / "jobs").iterdir())


PROGRAM = """\
import numpy as np
from qiskit import QuantumCircuit
from qshpc import save_result
from qshpc.aer import EstimatorV2, SamplerV2

qc = QuantumCircuit(2, 2, metadata={"index": np.int64(3)})
qc.x(0)
qc.measure([0, 1], [0, 1])
s = SamplerV2(seed=1).run([(qc, np.zeros((6, 0)))]).result()
e = EstimatorV2().run([(qc, "IZ")]).result()
assert s[0].metadata["circuit_metadata"]["index"] == 3
save_result({"counts": s[0].data.c.get_counts(), "ev": float(e[0].data.evs)})
"""


@pytest.mark.mpi
def test_numpy_metadata_on_the_ranks(tmp_path: Path) -> None:
    """The same under ``mpiexec -n 3`` (on 0ab3ff4: the TypeError at ``run``)."""
    from qshpc.store import JobReader

    prog = tmp_path / "meta.py"
    prog.write_text(PROGRAM)
    out = run_cli("run", str(prog), ranks=3, timeout=180)
    assert out.returncode == 0, out.stderr
    with JobReader.open(job_dir_of(Path(os.environ["QSHPC_HOME"]))) as r:
        assert r.result() == {"counts": {"01": 6 * 1024}, "ev": -1.0}


ODD_NAMES = ["a/b", ".", "..", "a", "a%2Fb", "c-1", "ü"]


def test_register_names_that_are_no_hdf5_names_round_trip(tmp_path: Path) -> None:
    """On 0ab3ff4 a DataBin field (a classical register's name) was an HDF5 member
    name as it was: ``"."`` failed the write (``name already exists``), ``"a/b"`` was
    written as group ``a`` holding ``b`` and read back as a field ``a`` holding a list
    (``result[0].data.a``; no ``"a/b"``). Now the names are escaped as dict keys are."""
    import h5py
    from qiskit.primitives.containers import BitArray, DataBin, PrimitiveResult, SamplerPubResult

    from qshpc.store.encoding_h5 import read_native, write_native

    fields = {
        name: BitArray(np.full((3, 1), i, dtype=np.uint8), 3) for i, name in enumerate(ODD_NAMES)
    }
    result = PrimitiveResult([SamplerPubResult(DataBin(**fields, shape=()), metadata={})])
    path = tmp_path / "r.h5"
    with h5py.File(path, "w") as f:
        write_native(f, "r", result)
    with h5py.File(path) as f:
        back = read_native(f["r"], False, str(path))
    assert list(back[0].data) == ODD_NAMES
    for i, name in enumerate(ODD_NAMES):
        assert back[0].data[name].get_counts() == {format(i, "03b"): 3}


def test_register_names_written_before_the_escape_read_as_they_were(tmp_path: Path) -> None:
    """A data-bin written before the escape (no mark) keeps its member names as they are
    (passes on 0ab3ff4 too: it guards the files written before)."""
    import h5py
    from qiskit.primitives.containers import BitArray, DataBin

    from qshpc.store.encoding_h5 import read_native, write_native

    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as f:
        write_native(f, "d", DataBin(**{"a%2Fb": BitArray(np.ones((2, 1), np.uint8), 1)}))
        d = f["d"]
        if "a%252Fb" in d:  # as 0ab3ff4 wrote it: the name as it is, no mark
            d.move("a%252Fb", "a%2Fb")
            del d.attrs["escaped-names"]
    with h5py.File(path) as f:
        assert list(read_native(f["d"], False, str(path))) == ["a%2Fb"]


ODD_PROGRAM = """\
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qshpc import save_result
from qshpc.aer import SamplerV2

names = ["a/b", ".", "..", "a"]
regs = [ClassicalRegister(1, n) for n in names]
qc = QuantumCircuit(QuantumRegister(4), *regs)
qc.x(0)
qc.x(2)
for i, reg in enumerate(regs):
    qc.measure(i, reg[0])
save_result(SamplerV2(seed=1).run([(qc, None, 5)]).result())
"""


@pytest.mark.mpi
def test_a_saved_result_with_odd_register_names(tmp_path: Path) -> None:
    """On 0ab3ff4 ``save_result`` of such a result ended ``qshpc run`` with exit 1 and
    h5py's traceback (``Unable to synchronously create dataset (name already exists)``)
    as the store compacted; the job said SUCCEEDED, its job.h5 was left uncompacted."""
    from qshpc.store import JobReader

    prog = tmp_path / "odd.py"
    prog.write_text(ODD_PROGRAM)
    out = run_cli("run", str(prog), ranks=2, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    with JobReader.open(job_dir_of(Path(os.environ["QSHPC_HOME"]))) as r:
        data = r.result()[0].data
    assert {name: data[name].get_counts() for name in data} == {
        "a/b": {"1": 5},
        ".": {"0": 5},
        "..": {"1": 5},
        "a": {"0": 5},
    }


def _composite(kind: str):  # type: ignore[no-untyped-def]
    """An instruction (``to_instruction``) that entangles two qubits, then measures,
    resets or fully depolarizes the first: one operation of its own name."""
    from qiskit import QuantumCircuit
    from qiskit_aer.noise import depolarizing_error

    sub = QuantumCircuit(2, 1 if kind == "measure" else 0, name=f"then_{kind}")
    sub.h(0)
    sub.cx(0, 1)
    if kind == "measure":
        sub.measure(0, 0)
    elif kind == "reset":
        sub.reset(0)
    elif kind == "noise":
        sub.append(depolarizing_error(1.0, 1), [1])
    return sub.to_instruction()


def _with(kind: str):  # type: ignore[no-untyped-def]
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2, 2)
    qc.append(_composite(kind), [0, 1], [0] if kind == "measure" else [])
    qc.measure(1, 1)
    return qc


def test_a_measurement_inside_an_instruction_is_not_taken_for_a_final_state() -> None:
    """On 0ab3ff4 a measurement, reset or noise channel inside a composite instruction
    was not seen (``count_ops`` shows the instruction's name): the exact path took one
    simulated branch for the distribution. ``SamplerV2(seed=1)`` gave ``{'00': 2000}``
    for a Bell pair whose first qubit an instruction measures (seed 2: ``{'10': 2000}``,
    an outcome that cannot happen), ``EstimatorV2`` ``<Z1> = +-1`` (exact: 0), the V1
    ``Sampler`` the "exact" ``{2: 1.0}``. Aer's primitives refuse such a circuit
    (``unknown instruction``). Now they are sampled by Aer, shot by shot, and the
    estimators refuse them, naming the instruction."""
    from qshpc.aer import Estimator, EstimatorV2, Sampler, SamplerV2
    from qshpc.primitives import PubError

    for seed in (1, 2):
        counts = SamplerV2(seed=seed).run([(_with("measure"), None, 2000)]).result()[0]
        got = counts.data.c.get_counts()
        assert set(got) == {"00", "11"} and min(got.values()) > 800, got
    reset = SamplerV2(seed=1).run([(_with("reset"), None, 2000)]).result()[0].data.c
    assert min(reset.get_counts().values()) > 800  # qubit 1 is mixed: '00' and '10'
    noise = SamplerV2(seed=1).run([(_with("noise"), None, 2000)]).result()[0].data.c
    assert len(noise.get_counts()) == 2 and min(noise.get_counts().values()) > 800
    body = _with("measure").remove_final_measurements(inplace=False)
    with pytest.raises(PubError, match="'then_measure' operation holding a 'measure'"):
        EstimatorV2().run([(body, "ZI")])
    v1 = Sampler().run(_with("measure")).result().quasi_dists[0]
    assert set(v1) == {0, 3}, v1
    from qiskit.quantum_info import SparsePauliOp

    from qshpc.errors import UserError

    with pytest.raises(UserError, match="'then_reset' operation holding a 'reset'"):
        Estimator().run(
            _with("reset").remove_final_measurements(inplace=False), SparsePauliOp("ZI")
        )


def test_a_unitary_instruction_stays_exact() -> None:
    """An instruction of gates alone is still computed exactly (no sampling, no refusal)."""
    from qiskit import QuantumCircuit

    from qshpc.aer import EstimatorV2, Sampler

    sub = QuantumCircuit(2, name="bell_block")
    sub.h(0)
    sub.cx(0, 1)
    qc = QuantumCircuit(2)
    qc.append(sub.to_instruction(), [0, 1])
    assert abs(float(EstimatorV2().run([(qc, "ZI")]).result()[0].data.evs)) < 1e-12
    dist = Sampler().run(qc.measure_all(inplace=False)).result().quasi_dists[0]
    assert dist.shots is None and set(dist) == {0, 3}


COMPOSITE_PROGRAM = """\
from qiskit import QuantumCircuit
from qshpc import save_result
from qshpc.aer import SamplerV2

sub = QuantumCircuit(2, 1, name="then_measure")
sub.h(0)
sub.cx(0, 1)
sub.measure(0, 0)
qc = QuantumCircuit(2, 2)
qc.append(sub.to_instruction(), [0, 1], [0])
qc.measure(1, 1)
result = SamplerV2(seed=1, options={"rows_per_task": 2}).run([(qc, [[]] * 6, 400)]).result()
save_result(result[0].data.c.get_counts())
"""


@pytest.mark.mpi
def test_a_measurement_inside_an_instruction_on_the_ranks(tmp_path: Path) -> None:
    """The same on the workers (``mpiexec -n 3``, 3 blocks): on 0ab3ff4 each row's
    shots were all of one branch."""
    from qshpc.store import JobReader

    prog = tmp_path / "composite.py"
    prog.write_text(COMPOSITE_PROGRAM)
    out = run_cli("run", str(prog), ranks=3, timeout=180)
    assert out.returncode == 0, out.stderr
    with JobReader.open(job_dir_of(Path(os.environ["QSHPC_HOME"]))) as r:
        counts = r.result()
    assert set(counts) == {"00", "11"} and min(counts.values()) > 900, counts


def test_an_operation_no_rank_can_run_is_refused_before_any_task() -> None:
    """On 0ab3ff4 a PUB with an operation Aer does not run and nothing can transpile
    (``Gate("mystery", 2, [])``) failed on the worker that met it, after the other
    blocks ran: ``TaskError(TranspilerError): task 1 (qshpc.SamplerV2) failed on rank 2
    ...: HighLevelSynthesis is unable to synthesize "mystery"`` with a remote traceback
    (plain python: the TranspilerError at ``result()``), naming no PUB. Aer:
    ``AerError: 'unknown instruction: mystery'`` at ``result()``. Now a PubError at ``run``."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Gate
    from qiskit.quantum_info import random_clifford

    from qshpc.aer import EstimatorV2, SamplerV2
    from qshpc.primitives import PubError

    good = QuantumCircuit(2)
    good.h(0)
    good.append(random_clifford(2, seed=1), [0, 1])  # no Gate, synthesized by a plugin
    opaque = QuantumCircuit(2, name="device_circuit")
    opaque.append(Gate("mystery", 2, []), [0, 1])
    want = r"PUB 1: circuit 'device_circuit' cannot run on Aer: its operation 'mystery' \(Gate\)"
    with pytest.raises(PubError, match=want):
        SamplerV2().run([good.measure_all(inplace=False), opaque.measure_all(inplace=False)])
    with pytest.raises(PubError, match=want):
        EstimatorV2().run([(good, "ZZ"), (opaque, "ZZ")])
    assert len(EstimatorV2().run([(good, "ZZ")]).result()) == 1


def test_a_gate_the_session_equivalence_library_translates_is_not_refused() -> None:
    """A device gate given its meaning by ``SessionEquivalenceLibrary.add_equivalence``
    (no definition) transpiles in that process, as with Aer's primitives; 02291c9's
    check refused it ('no definition') at run()."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Gate
    from qiskit.circuit.equivalence_library import SessionEquivalenceLibrary

    from qshpc.aer import SamplerV2

    gate = Gate("hunt10b_session_gate", 1, [])
    meaning = QuantumCircuit(1)
    meaning.x(0)
    SessionEquivalenceLibrary.add_equivalence(gate, meaning)
    qc = QuantumCircuit(1)
    qc.append(gate, [0])
    qc.measure_all()
    counts = SamplerV2().run([qc], shots=8).result()[0].data.meas.get_counts()
    assert counts == {"1": 8}


def test_a_circuit_edited_after_its_run_does_not_change_later_runs() -> None:
    """On 0ab3ff4 each process kept the circuit object it was given under the key of
    its content (the SHA-256 of its QPY), and built the form Aer samples from that
    object later: edit the circuit after its run, and a later run of the same content
    (built anew) got the edited circuit. Here ``X; measure`` then, with a noise model
    (Aer samples), ``{'0': 1017, '1': 7}`` instead of mostly ``'1'``."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import CircuitInstruction
    from qiskit.circuit.library import XGate
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    from qshpc.aer import SamplerV2

    def build() -> QuantumCircuit:
        qc = QuantumCircuit(1, 1, name="flip")
        qc.x(0)
        qc.measure(0, 0)
        return qc

    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.01, 1), ["x"])
    first = build()
    assert SamplerV2(seed=1).run([first]).result()[0].data.c.get_counts() == {"1": 1024}
    first.data.insert(0, CircuitInstruction(XGate(), (first.qubits[0],)))  # now X X measure
    noisy = SamplerV2(seed=1, options={"backend_options": {"noise_model": noise}})
    counts = noisy.run([build()]).result()[0].data.c.get_counts()
    assert counts.get("1", 0) > 1000, counts
    edited = noisy.run([first]).result()[0].data.c.get_counts()
    assert edited.get("0", 0) > 1000, edited


def test_a_precision_that_is_nan_or_infinite_is_refused() -> None:
    """On 0ab3ff4 (as in Aer's and Qiskit's estimators, whose check is ``>= 0``) a NaN
    precision returned ``stds`` of NaN and an infinite one ``evs`` of ``-inf``, without
    a word. Now a PubError names the PUB (or ``default_precision``)."""
    from qiskit import QuantumCircuit

    from qshpc.aer import EstimatorV2
    from qshpc.primitives import PubError

    qc = QuantumCircuit(1)
    qc.h(0)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(PubError, match=r"PUB 1: precision must be a finite non-negative"):
            EstimatorV2().run([(qc, "X"), (qc, "X", None, bad)])
        with pytest.raises(PubError, match=r"PUB 0: precision must be a finite"):
            EstimatorV2().run([(qc, "X")], precision=bad)
        with pytest.raises(PubError, match="default_precision must be a finite non-negative"):
            EstimatorV2(default_precision=bad)
    assert float(EstimatorV2().run([(qc, "X", None, 0.0)]).result()[0].data.evs) == 1.0
