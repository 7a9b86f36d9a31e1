"""Session 11's mends (mend11): items the review of session 10 left.

Each test says what happened on main 8cc329b.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import job_dir_of, run_cli

pytestmark = [pytest.mark.timeout(240)]


# --- 1. custom operations named like standard gates -------------------------------------


def _shadowing_circuits():  # type: ignore[no-untyped-def]
    """Circuits whose custom operations carry a standard gate's name (and a definition)."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Gate, Parameter
    from qiskit.circuit.library import UnitaryGate

    x_def = QuantumCircuit(1)
    x_def.x(0)
    named_h = Gate("h", 1, [])
    named_h.definition = x_def
    a = QuantumCircuit(1, name="gate_h_is_x")
    a.append(named_h, [0])
    yield a

    swap = QuantumCircuit(2, name="cx")
    swap.swap(0, 1)
    b = QuantumCircuit(2, name="to_gate_cx_is_swap")
    b.x(0)
    b.append(swap.to_gate(), [0, 1])
    yield b

    ins = QuantumCircuit(1, name="h")
    ins.x(0)
    c = QuantumCircuit(1, name="to_instruction_h_is_x")
    c.append(ins.to_instruction(), [0])
    yield c

    u = UnitaryGate(np.array([[0.0, 1.0], [1.0, 0.0]]))
    u.name = "h"
    d = QuantumCircuit(1, name="unitary_named_h")
    d.append(u, [0])
    yield d

    inner = QuantumCircuit(2, name="mine")  # holds the impostor one level down
    inner.append(swap.to_gate(), [0, 1])
    inner.h(1)
    e = QuantumCircuit(2, name="nested")
    e.x(0)
    e.append(inner.to_gate(), [0, 1])
    yield e

    t = Parameter("t")
    rz_def = QuantumCircuit(1)
    rz_def.ry(t, 0)
    named_rz = Gate("rz", 1, [t])
    named_rz.definition = rz_def
    f = QuantumCircuit(1, name="gate_rz_is_ry")
    f.append(named_rz, [0])
    yield f.assign_parameters([0.9])


@pytest.mark.parametrize("index", range(6))
def test_custom_gate_named_like_a_standard_gate(index: int) -> None:
    """On 8cc329b a custom gate named like a standard one ran as the standard gate: a
    ``Gate("h")`` defined as X, a ``to_gate()`` named ``cx`` doing a swap, a
    ``to_instruction()`` named ``h``, in the V1 Sampler, SamplerV2 and EstimatorV2 (the
    exact path: ISA by name, and the transpile kept it; Aer ran it by name), e.g.
    {0: 0.5, 1: 0.5} for a circuit whose state is |1>; a ``UnitaryGate`` renamed ``h``
    failed in Aer with ``TypeError: gate(): incompatible function arguments``. Now such an
    operation runs as its definition: the values of ``Statevector``."""
    from qiskit.quantum_info import SparsePauliOp, Statevector

    from qshpc.aer import EstimatorV2, Sampler, SamplerV2

    qc = list(_shadowing_circuits())[index]
    sv = Statevector(qc)
    want = sv.probabilities()
    measured = qc.measure_all(inplace=False)
    dist = Sampler().run(measured).result().quasi_dists[0]
    assert np.allclose([dist.get(k, 0.0) for k in range(len(want))], want), qc.name
    counts = SamplerV2(seed=3).run([measured], shots=400).result()[0].data.meas.get_int_counts()
    got = np.array([counts.get(k, 0) for k in range(len(want))]) / 400
    assert np.allclose(got, want, atol=0.1), (qc.name, counts)
    assert all(want[k] > 1e-9 for k in counts), (qc.name, counts)  # nothing impossible
    obs = [SparsePauliOp("Z" * qc.num_qubits), SparsePauliOp("X" + "I" * (qc.num_qubits - 1))]
    evs = EstimatorV2().run([(qc, obs)]).result()[0].data.evs
    assert np.allclose(evs, [sv.expectation_value(o).real for o in obs]), qc.name


def test_custom_gate_named_like_a_standard_gate_in_a_body() -> None:
    """The same inside a control-flow body (sampled, not exact): on 8cc329b the ``if``
    applied an H where the custom ``h`` is an X (SamplerV2: {1: 97, 3: 103})."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Gate

    from qshpc.aer import Sampler, SamplerV2

    x_def = QuantumCircuit(1)
    x_def.x(0)
    named_h = Gate("h", 1, [])
    named_h.definition = x_def
    qc = QuantumCircuit(2, 2)
    qc.x(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.append(named_h, [1])
    qc.measure(1, 1)
    counts = SamplerV2(seed=1).run([qc], shots=200).result()[0].data.c.get_int_counts()
    assert counts == {3: 200}
    dist = Sampler().run(qc, shots=200, seed=1).result().quasi_dists[0]
    assert dict(dist) == {3: 1.0}


def test_custom_gate_named_like_a_standard_gate_without_definition() -> None:
    """``Gate("h", 1, [])`` with no definition: nothing says what it does but a name that
    means another gate. On 8cc329b it ran as an H; now it is refused, naming it (SamplerV2
    names the PUB before any task runs)."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Gate

    from qshpc.aer import EstimatorV2, Sampler, SamplerV2
    from qshpc.errors import UserError

    qc = QuantumCircuit(1, name="opaque_h")
    qc.append(Gate("h", 1, []), [0])
    qc.measure_all()
    with pytest.raises(UserError, match=r"'h' \(Gate\) has the name of Qiskit's 'h'"):
        Sampler().run(qc).result()
    with pytest.raises(UserError, match=r"PUB 0: circuit 'opaque_h' cannot run on Aer: .*'h'"):
        SamplerV2().run([qc]).result()
    with pytest.raises(UserError, match=r"PUB 0: circuit 'opaque_h' cannot run on Aer: .*'h'"):
        EstimatorV2().run([(qc.remove_final_measurements(inplace=False), "Z")]).result()


SHADOW_PROGRAM = """\
from qiskit import QuantumCircuit
from qshpc import distribute_task, get, save_result
from qshpc.aer import EstimatorV2, Sampler, SamplerV2
from qiskit.quantum_info import SparsePauliOp

swap = QuantumCircuit(2, name="cx")
swap.swap(0, 1)
qc = QuantumCircuit(2)
qc.x(0)
qc.append(swap.to_gate(), [0, 1])
m = qc.measure_all(inplace=False)

@distribute_task()
def v1(circuit):
    return dict(Sampler().run(circuit).result().quasi_dists[0])

v2 = SamplerV2(seed=5).run([m], shots=100).result()[0].data.meas.get_int_counts()
ev = EstimatorV2().run([(qc, [SparsePauliOp("ZI"), SparsePauliOp("IZ")])]).result()[0].data.evs.tolist()
save_result({"v1": get(v1(m)), "v2": v2, "ev": ev})
"""


@pytest.mark.mpi
def test_custom_gate_named_like_a_standard_gate_on_the_ranks(tmp_path: Path) -> None:
    """The same in a program under ``mpiexec -n 3`` (a task, and V2 spread over the workers
    through QPY): on 8cc329b the task's V1 Sampler gave {3: 1.0} where the state is |01>."""
    from qshpc.store import JobReader

    prog = tmp_path / "shadow.py"
    prog.write_text(SHADOW_PROGRAM)
    out = run_cli("run", str(prog), ranks=3, timeout=180)
    assert out.returncode == 0, out.stderr
    with JobReader.open(job_dir_of(Path(os.environ["QSHPC_HOME"]))) as r:
        got = r.result()
    assert got["v1"] == {2: 1.0}
    assert got["v2"] == {2: 100}
    assert np.allclose(got["ev"], [-1.0, 1.0])


def test_a_distributed_step_takes_no_custom_gate_for_a_standard_one() -> None:
    """``run_circuits`` transpiles to u/cx once in the parent, and a step checks the names:
    on 8cc329b a ``to_gate()`` named ``cx`` doing a swap passed both as a CNOT (Qiskit's
    transpile keeps a name its basis holds). Now the parent's transpile replaces it by its
    definition, and a step refuses one that reaches it (``transpile=False``)."""
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import Operator

    from qshpc.aer.distributed import run, step

    swap = QuantumCircuit(2, name="cx")
    swap.swap(0, 1)
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.append(swap.to_gate(), [0, 1])
    with pytest.raises(ValueError, match=r"has a 'cx' that is not Qiskit's \(Gate\)"):
        step.check_gates([qc])
    ready = run.prepare([qc])
    step.check_gates(ready)
    assert Operator(ready[0]).equiv(Operator(qc))


def test_shadowed_names_cover_aers_basis() -> None:
    """Every name Aer runs beyond Qiskit's standard gates is one ``unshadow`` reads by name."""
    from qiskit.circuit.library import get_standard_gate_name_mapping
    from qiskit_aer import AerSimulator

    from qshpc.aer.shadowed import _BY_NAME

    for method in ("statevector", "density_matrix", "matrix_product_state", "stabilizer"):
        names = set(AerSimulator(method=method).configuration().basis_gates)
        assert names - set(get_standard_gate_name_mapping()) <= _BY_NAME, method


def test_unshadow_leaves_ordinary_circuits_alone() -> None:
    """A circuit of standard gates, library gates and custom gates of their own names comes
    back as the same object (no copy)."""
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import QFTGate, UnitaryGate

    from qshpc.aer.shadowed import unshadow

    sub = QuantumCircuit(2, name="mine")
    sub.h(0)
    sub.cx(0, 1)
    qc = QuantumCircuit(3, 1)
    qc.h(0)
    qc.append(sub.to_gate(), [0, 1])
    qc.append(QFTGate(3), [0, 1, 2])
    qc.append(UnitaryGate(np.eye(2)), [2])
    qc.barrier()
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(2)
    assert unshadow(qc) is qc


# --- 2. operations that cannot be defined before their parameters are bound --------------


def test_hamiltonian_gate_with_a_parameter_time_is_refused_naming_the_pub() -> None:
    """On 8cc329b ``HamiltonianGate(H, t)`` with a ``Parameter`` time passed ``run`` and failed
    at ``job.result()`` with ``TranspilerError: HighLevelSynthesis is unable to synthesize
    "hamiltonian"`` (on the worker that met it, after other blocks ran), naming no PUB; the
    V1 ``Sampler`` alike. Now ``run`` refuses it, naming the PUB, the operation, the
    parameter and the fix; the same circuit with ``t`` bound runs."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter
    from qiskit.circuit.library import HamiltonianGate
    from qiskit.quantum_info import SparsePauliOp, Statevector

    from qshpc.aer import EstimatorV2, Sampler, SamplerV2
    from qshpc.errors import UserError

    t = Parameter("t")
    qc = QuantumCircuit(1, name="evolve")
    qc.append(HamiltonianGate(np.array([[0.0, 1.0], [1.0, 0.0]]), t), [0])
    measured = qc.measure_all(inplace=False)
    fine = QuantumCircuit(1)
    fine.h(0)
    fine.measure_all()
    message = r"PUB 1: circuit 'evolve' cannot run on Aer: its operation 'hamiltonian' .*\(t\)"
    with pytest.raises(UserError, match=message):
        SamplerV2().run([fine, (measured, [[0.3]])], shots=10)
    with pytest.raises(UserError, match=message):
        EstimatorV2().run([(fine.remove_final_measurements(inplace=False), "Z"), (qc, "Z", [0.3])])
    with pytest.raises(UserError, match=r"circuit 'evolve' cannot run on Aer: .*assign_parameters"):
        Sampler().run(measured, [0.3]).result()
    bound = qc.assign_parameters([0.3])
    ev = EstimatorV2().run([(bound, SparsePauliOp("Z"))]).result()[0].data.evs
    assert np.isclose(ev, Statevector(bound).expectation_value(SparsePauliOp("Z")).real)


# --- 3. qshpc result --json of a register named "type" ----------------------------------

TYPE_REGISTER_PROGRAM = """\
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qshpc import save_result
from qshpc.aer import SamplerV2

odd = QuantumCircuit(QuantumRegister(1), ClassicalRegister(1, "type"))
odd.x(0)
odd.measure(0, 0)
plain = QuantumCircuit(1, 1)
plain.measure(0, 0)
save_result(SamplerV2(seed=1).run([odd, plain], shots=10).result())
"""


def test_result_json_of_a_register_named_type(tmp_path: Path) -> None:
    """On 8cc329b ``qshpc result --json`` of a SamplerV2 result whose register is named
    ``type`` printed ``{"type": {"type": "BitArray", ...}, "shape": []}``: the register
    overwrote the DataBin's ``"type"`` and no ``"DataBin"`` was left. Now such a bin holds
    its fields under ``"fields"``; a bin of ordinary registers keeps them beside its keys."""
    import json

    prog = tmp_path / "odd.py"
    prog.write_text(TYPE_REGISTER_PROGRAM)
    out = run_cli("run", str(prog), "--workers", "0")
    assert out.returncode == 0, out.stderr
    res = run_cli("result", str(job_dir_of(Path(os.environ["QSHPC_HOME"]))), "--json")
    assert res.returncode == 0, res.stderr
    pubs = json.loads(res.stdout)["pubs"]
    odd, plain = pubs[0]["data"], pubs[1]["data"]
    assert odd["type"] == "DataBin" and odd["shape"] == []
    assert odd["fields"]["type"]["type"] == "BitArray"
    assert odd["fields"]["type"]["counts"] == [{"1": 10}]
    assert plain["type"] == "DataBin" and "fields" not in plain
    assert plain["c"]["counts"] == [{"0": 10}]


# --- 4. job ids after os.fork -------------------------------------------------------------


def _child_ids(count: int) -> tuple[str, list[str]]:
    """The parent's last id and the first id of each of ``count`` forked children."""
    from qshpc.jobs.paths import new_job_id

    parent = new_job_id()
    pipes = []
    for _ in range(count):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: one id, then out without running the parent's atexit
            try:
                os.write(write, new_job_id().encode())
            finally:
                os._exit(0)
        os.close(write)
        pipes.append((pid, read))
    ids = []
    for pid, read in pipes:
        ids.append(os.read(read, 64).decode())
        os.close(read)
        os.waitpid(pid, 0)
    return parent, ids


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_forked_children_do_not_continue_the_parents_job_ids() -> None:
    """On 8cc329b a forked child kept the parent's last id: its first id of that second was
    ``P + 1 + draw % 65536``, as was the parent's next and every other child's (a pool of
    k children making jobs: k^2/131072 odds of two equal ids, and the job created second
    was refused). Now each child starts its own sequence (a draw below 2**23, as any
    process): 8 children all within 65536 above the parent's id is then (1/128)**8."""
    for _ in range(5):
        parent, ids = _child_ids(8)
        stamps = {i[:16] for i in ids}
        if stamps == {parent[:16]}:
            break  # all in the parent's second (else: the second turned, again)
    else:
        pytest.skip("the clock's second turned during each try")
    last = int(parent[16:], 16)
    assert not all(last < int(i[16:], 16) <= last + (1 << 16) for i in ids), (parent, ids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_fork_while_another_thread_makes_a_job_id_does_not_hang_the_child() -> None:
    """A thread inside ``new_job_id`` when another forks (injected: the lock held): on
    8cc329b the child's first ``new_job_id`` waited for that lock forever. Now the child
    has a lock of its own."""
    import signal

    from qshpc.jobs import paths

    paths._ID_LOCK.acquire()  # another thread in new_job_id at the fork
    try:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                signal.alarm(10)  # the deadlock guard
                os.write(write, paths.new_job_id().encode())
            finally:
                os._exit(0)
    finally:
        paths._ID_LOCK.release()
    os.close(write)
    got = os.read(read, 64).decode()
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and got, (status, got)
