"""Session 12's mend12a: correctness leftovers of session 11 (results, get, QPY, fold).

Each test says what happened on main 7186ba2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qshpc import distribute_task, get, put
from qshpc.program import backend
from qshpc.program.backend import InlineBackend
from qshpc.program.refs import fresh
from qshpc.runtime.results import writeable

pytestmark = pytest.mark.timeout(120)


@distribute_task()
def parts(a: Any) -> dict[str, Any]:
    """Returns slices of its placed (read-only on a worker) array, nested."""
    return {"x": a[1:3], "t": (a[::2], [a[:1]])}


def test_slices_of_a_placed_array_nested_in_a_result_come_back_writeable() -> None:
    """On 7186ba2 a task's result holding slices of its ``put`` array came back
    read-only with workers (pickle keeps the flag) and writeable with one rank."""
    from tests.unit.test_dispatcher import ranks

    with ranks(1) as r:
        out = get(r.call(parts, r.d.put(np.arange(6.0))), timeout=60)
    arrays = [out["x"], out["t"][0], out["t"][1][0]]
    assert all(a.flags.writeable for a in arrays)
    assert [a.tolist() for a in arrays] == [[1.0, 2.0], [0.0, 2.0, 4.0], [0.0]]


def test_writeable_copies_only_a_value_holding_a_read_only_array() -> None:
    """What rank 0 gives the program for a call it ran itself (``QSHPC_ROOT_WORKS``)."""
    ro = np.arange(4.0)
    ro.flags.writeable = False
    plain = {"a": np.zeros(2), "b": [1, 2]}
    assert writeable(plain) is plain  # nothing to change: no copy
    got = writeable({"a": ro[:2], "same": [ro, ro]})
    assert got["a"].flags.writeable and got["a"].tolist() == [0.0, 1.0]
    assert got["same"][0] is got["same"][1]  # shared as in the task's result
    assert ro.flags.writeable is False  # the task's own array is left as it was


ROOT_WORKS = """\
import time
import numpy as np
from qshpc import distribute_task, get, put
from qshpc.task import context

@distribute_task()
def part(a):
    time.sleep(0.05)
    return context.rank_info().rank, {"s": a[:2]}

ref = put(np.arange(6.0))
out = get([part(ref) for _ in range(24)])
print("OUT", sorted({r for r, _ in out}), all(d["s"].flags.writeable for _, d in out))
"""


@pytest.mark.mpi
def test_calls_rank0_runs_itself_give_writeable_slices_too(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """``QSHPC_ROOT_WORKS=1`` under ``mpiexec -n 2``: rank 0 runs calls with read-only
    views of placed arrays, as workers do; on 7186ba2 their slices reached the program
    read-only (``OUT [0, 1] False``)."""
    from tests.conftest import run_cli

    prog = tmp_path / "prog.py"
    prog.write_text(ROOT_WORKS)
    out = run_cli("run", str(prog), ranks=2, timeout=100, env={"QSHPC_ROOT_WORKS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OUT [0, 1] True" in out.stdout


@distribute_task()
def box() -> dict[str, list[int]]:
    return {"k": [1, 2]}


@distribute_task()
def length(d: dict[str, list[int]]) -> int:
    return len(d["k"])


@pytest.mark.parametrize("workers", [0, 2])
def test_each_get_is_a_copy_of_its_own(workers: int) -> None:
    """Ray's ``get`` deserializes a result each time. On 7186ba2 every ``get(ref)``
    gave the same object: ``get(r)["k"].append(3)`` showed in the next ``get(r)``
    and in a task the reference was passed to (``length(r)`` gave 3), on any rank count."""
    from tests.unit.test_dispatcher import ranks

    def check(call: Any) -> None:
        ref = call(box)
        first = get(ref, timeout=60)
        first["k"].append(3)
        assert get(ref) == {"k": [1, 2]} and get(ref) is not first
        assert get([ref, ref])[0] == {"k": [1, 2]}
        assert get(call(length, ref), timeout=60) == 2  # the task gets the result as returned
        assert ref.result() is ref.result()  # the future's own result: one object

    if workers == 0:
        inline = InlineBackend()
        backend.activate(inline)
        try:
            check(lambda f, *a: f(*a))
        finally:
            backend.activate(None)
    else:
        with ranks(workers) as r:
            check(r.call)


def test_fresh_copies_qshpc_s_quasi_distribution_as_its_items_and_attributes() -> None:
    """Without pickle (``__qshpc_plain_dict__``): what ``get`` gives of a Sampler's result is
    the same class, values and attributes, and shares nothing a program can change."""
    from qshpc.aer.results import QuasiDistribution
    from qshpc.program.refs import _shallow_copy

    q = QuasiDistribution({i: 1 / 300 for i in range(300)}, shots=1000)
    q.stddev_upper_bound = 0.5  # set by hand: kept (pickle's rebuild would compute it again)
    assert _shallow_copy(q) is not None  # the copy, not the pickle route
    c = fresh(q)
    assert type(c) is QuasiDistribution and c == q and c is not q and vars(c) == vars(q)
    c[0] = 9.0
    c.shots = 1
    assert q[0] == 1 / 300 and q.shots == 1000
    odd = QuasiDistribution({0: [0.5]})  # a value that is not immutable: pickled, still a copy
    assert _shallow_copy(odd) is None
    o2 = fresh(odd)
    assert o2 == odd and o2[0] is not odd[0]


class Point:
    def __init__(self, x: list[int]) -> None:
        self.x = x


def test_fresh_keeps_types_and_copies_what_it_can() -> None:
    from qiskit.result import QuasiDistribution

    q = QuasiDistribution({0: 0.25, 3: 0.75}, shots=100)
    c = fresh(q)
    assert type(c) is QuasiDistribution and c == q and c is not q and c.shots == 100
    assert c.stddev_upper_bound == q.stddev_upper_bound
    arr = np.arange(3)
    assert fresh(arr) is not arr and fresh(arr).tolist() == [0, 1, 2]
    nested = {"a": [1, {"b": (2, [3])}], "s": "x"}
    n2 = fresh(nested)
    assert n2 == nested and n2["a"][1]["b"][1] is not nested["a"][1]["b"][1]
    p = Point([1])
    p2 = fresh(p)
    assert type(p2) is Point and p2.x == [1] and p2.x is not p.x
    gen = (i for i in range(2))  # neither pickled nor deep-copied: as it is
    assert fresh(gen) is gen
    assert fresh(1.5) == 1.5 and fresh(None) is None


def test_a_placed_object_is_still_a_copy_per_get() -> None:
    inline = InlineBackend()
    backend.activate(inline)
    try:
        ref = put({"k": [1]})
        get(ref)["k"].append(2)
        assert get(ref) == {"k": [1]}
    finally:
        backend.activate(None)


def _annotated() -> Any:
    from qiskit import QuantumCircuit
    from qiskit.circuit import AnnotatedOperation, ControlModifier, Parameter
    from qiskit.circuit.library import RXGate

    qc = QuantumCircuit(2, name="ann")
    qc.x(0)
    qc.append(AnnotatedOperation(RXGate(Parameter("t")), ControlModifier(1)), [0, 1])
    return qc


def test_qpy_keeps_an_annotated_operations_parameters_in_the_circuits_table() -> None:
    """QPY (Qiskit 2.6) loaded ``AnnotatedOperation(RXGate(t), ControlModifier(1))``
    with ``t`` in its base gate but not in the circuit's ``parameters``: on 7186ba2
    ``assign_parameters`` of such a loaded circuit raised, and its cache key differed
    from the original's (the key's fixed-UUID parameters come from that table)."""
    from qshpc.cache.keys import value_digest
    from qshpc.store import _qpy

    qc = _annotated()
    loaded = _qpy.load(_qpy.dump(qc))[0]
    assert [p.name for p in loaded.parameters] == ["t"]
    assert loaded == qc and loaded.name == "ann"
    bound = loaded.assign_parameters([0.5])
    assert bound.num_parameters == 0
    assert float(bound.data[1].operation.params[0]) == 0.5
    assert value_digest(loaded) == value_digest(qc)
    plain = _qpy.load(_qpy.dump(qc.assign_parameters([0.5])))[0]  # nothing to rebuild
    assert plain.num_parameters == 0


def test_qpy_keeps_them_inside_control_flow_blocks_too() -> None:
    """The same loss in an ``if_test`` block: the block's and the circuit's tables."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import AnnotatedOperation, ControlModifier, Parameter
    from qiskit.circuit.library import RXGate

    from qshpc.store import _qpy

    qc = QuantumCircuit(2, 1)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.append(AnnotatedOperation(RXGate(Parameter("t")), ControlModifier(1)), [0, 1])
    loaded = _qpy.load(_qpy.dump(qc))[0]
    assert [p.name for p in loaded.parameters] == ["t"] and loaded == qc
    assert loaded.assign_parameters([0.5]).num_parameters == 0


ANNOTATED_PROGRAM = """\
import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import AnnotatedOperation, ControlModifier, Parameter
from qiskit.circuit.library import RXGate
from qiskit.quantum_info import SparsePauliOp
from qshpc import get_arguments
from qshpc.aer import EstimatorV2, SamplerV2

qc = get_arguments().get("c")
if qc is None:
    qc = QuantumCircuit(2)
    qc.x(0)
    qc.append(AnnotatedOperation(RXGate(Parameter("t")), ControlModifier(1)), [0, 1])
print("PARAMS", [p.name for p in qc.parameters])
m = qc.measure_all(inplace=False)
s = SamplerV2(default_shots=100, seed=3).run([(m, [[np.pi], [0.0]])]).result()
e = EstimatorV2().run([(qc, SparsePauliOp("ZI"), [[np.pi], [0.0]])]).result()
print("OUT", s[0].data.meas.get_counts(0), s[0].data.meas.get_counts(1), e[0].data.evs.tolist())
"""


@pytest.mark.mpi
@pytest.mark.parametrize("from_args", [False, True])
def test_a_pub_with_an_annotated_operation_runs_on_workers(
    tmp_path: Path, qshpc_home: Path, from_args: bool
) -> None:
    """On 7186ba2 under ``mpiexec -n 3`` such a PUB with values failed on its worker
    (``circuit 'circuit-41' has 0 parameters (); got 1 values``), and a circuit from
    ``--arguments`` had no parameters in the program, on any rank count."""
    from qshpc.store import save_arguments
    from tests.conftest import run_cli

    prog = tmp_path / "ann.py"
    prog.write_text(ANNOTATED_PROGRAM)
    argv = ["run", str(prog)]
    if from_args:
        save_arguments(tmp_path / "args.h5", {"c": _annotated()})
        argv += ["--arguments", str(tmp_path / "args.h5")]
    out = run_cli(*argv, ranks=3, timeout=110)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "PARAMS ['t']" in out.stdout
    assert "OUT {'11': 100} {'01': 100} [-1.0, 1.0]" in out.stdout


def _ended_with_no_room_to_fold(mnt: Path) -> Path:
    """A SUCCEEDED job whose final fold had no room: ``job.journal`` stays beside ``job.h5``."""
    import os

    from qshpc.store import JobWriter, create_job

    job = mnt / "job"
    create_job(job, {"id": "job", "title": "t", "created": 5.0, "seed": 3}, None)
    w = JobWriter.open(job, {"mpi_size": 1})
    w.save_result({"x": np.arange(50_000.0)})  # 400 kB: the copy of job.h5 needs that room
    st = os.statvfs(job)
    with open(mnt / "filler", "wb") as f:  # 64 kB left: the final state's commit fits
        f.write(b"\0" * (st.f_bavail * st.f_frsize - 64 * 1024))
    w.finalize("SUCCEEDED")
    w.close()
    assert (job / "job.journal").exists()
    return job


def _plain_h5py(job: Path) -> tuple[Any, bool]:
    import h5py

    with h5py.File(job / "job.h5", "r", locking=False) as f:
        return f.attrs.get("state"), "result" in f


@pytest.mark.skipif(
    not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() != 0,
    reason="mounting a tmpfs needs root",
)
def test_an_ended_jobs_journal_is_folded_by_a_later_read_once_there_is_room(
    tmp_path: Path,
) -> None:
    """On 7186ba2 a SUCCEEDED job whose final fold had no room kept ``job.journal`` for
    good: qshpc's readers were right, plain h5py saw no state and no ``/result``. A
    later ``qshpc status``/``result`` (``Job.info``) now folds it once there is room,
    under the job's lock; with no room, or while a run holds the lock, it stays."""

    from qshpc.client.job import Job
    from qshpc.store.lock import JobLock
    from tests.conftest import tmpfs
    from tests.faults.test_disk_full import grow

    with tmpfs(tmp_path / "disk", "size=3m") as mnt:
        job = _ended_with_no_room_to_fold(mnt)
        assert _plain_h5py(job) == (None, False)
        assert Job(job).info()["state"] == "SUCCEEDED"  # still no room: nothing changes
        assert (job / "job.journal").exists() and not (job / "job.h5.tmp").exists()
        grow(mnt)
        with JobLock(job, "qshpc run --resume"):  # a run holds the job: left to it
            assert Job(job).info()["state"] == "SUCCEEDED"
            assert (job / "job.journal").exists()
        assert Job(job).result()["x"].shape == (50_000,)
        assert not (job / "job.journal").exists()
        state, has_result = _plain_h5py(job)
        assert state == "SUCCEEDED" and has_result
        assert sorted(p.name for p in job.iterdir()) == ["job.h5"]


@distribute_task()
def slow() -> int:
    import time

    time.sleep(0.3)
    return 1


def test_with_no_worker_a_timeout_bounds_the_wait_not_the_call() -> None:
    """Kept as it was (docs/program-api.md): with no worker rank a call runs at the call,
    so ``get(ref, timeout=...)`` finds it done and gives its result, however long it
    took; with workers the same ``get`` raises TimeoutError."""
    import time

    from qshpc import wait
    from tests.unit.test_dispatcher import ranks

    inline = InlineBackend()
    backend.activate(inline)
    try:
        t0 = time.monotonic()
        ref = slow()
        assert time.monotonic() - t0 >= 0.3  # the call itself took the time
        assert get(ref, timeout=0.01) == 1
        assert wait([ref], timeout=0.01)[0] == [ref]
    finally:
        backend.activate(None)
    with ranks(1) as r:
        with pytest.raises(TimeoutError):
            get(r.call(slow), timeout=0.01)
