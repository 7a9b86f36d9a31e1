"""Session 12's review12: what the review of mend12a/mend12b found.

Each test says what happened on main 8076006.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qshpc.program.refs import fresh

pytestmark = pytest.mark.timeout(120)


def _shared_parameter_circuit() -> Any:
    from qiskit import QuantumCircuit
    from qiskit.circuit import AnnotatedOperation, ControlModifier, Parameter
    from qiskit.circuit.library import RXGate

    t = Parameter("t")
    qc = QuantumCircuit(2, 1, name="shared", global_phase=t, metadata={"k": [1]})
    qc.rz(t, 1)  # t is in the table through this gate too
    qc.x(0)
    qc.append(AnnotatedOperation(RXGate(t), ControlModifier(1)), [0, 1])
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.rz(t, 0)
        qc.append(AnnotatedOperation(RXGate(2 * t), ControlModifier(1)), [0, 1])
    return qc


def test_a_loaded_annotated_operation_binds_when_another_gate_uses_its_parameter() -> None:
    """On 8076006 the QPY repair rebuilt the table only when an annotated operation's
    parameter was missing from ``parameters``; with ``rz(t)`` beside it, ``t`` was
    there, the annotated operation's use of it was not, and ``assign_parameters``
    left it unbound: a circuit from ``--arguments`` bound by the program failed in
    Aer ('circuits have parameters but parameter_binds is not specified')."""
    from qshpc.store import _qpy

    qc = _shared_parameter_circuit()
    loaded = _qpy.load(_qpy.dump(qc))[0]
    assert loaded == qc and loaded.name == "shared" and loaded.metadata == {"k": [1]}
    bound = loaded.assign_parameters([0.5])
    assert bound.num_parameters == 0
    assert float(bound.data[2].operation.params[0]) == 0.5
    block = bound.data[4].operation.blocks[0]
    assert [float(i.operation.params[0]) for i in block.data] == [0.5, 1.0]
    assert bound == qc.assign_parameters([0.5])


def test_the_qpy_repair_changes_nothing_else_and_keeps_the_object() -> None:
    """The repair sets the instructions again in place: the loaded circuit itself,
    its layout, registers, vars and phase as QPY loaded them."""
    import io

    from qiskit import QuantumCircuit, qpy, transpile
    from qiskit.circuit import AnnotatedOperation, ControlModifier, Parameter
    from qiskit.circuit.library import RXGate
    from qiskit.providers.fake_provider import GenericBackendV2

    from qshpc.store._qpy import with_annotated_parameters

    src = QuantumCircuit(3, 1)
    src.h(0)
    src.cx(0, 2)
    tq = transpile(src, GenericBackendV2(5), seed_transpiler=1)
    tq.append(AnnotatedOperation(RXGate(Parameter("t")), ControlModifier(1)), [0, 1])
    buf = io.BytesIO()
    qpy.dump(tq, buf)
    raw = qpy.load(io.BytesIO(buf.getvalue()))[0]
    layout, qregs, phase = raw.layout, list(raw.qregs), raw.global_phase
    out = with_annotated_parameters(raw)
    assert out is raw and out.layout is layout and list(out.qregs) == qregs
    assert out.global_phase == phase and [p.name for p in out.parameters] == ["t"]


def test_get_copies_keep_what_the_result_shares_shared() -> None:
    """On 8076006 ``get`` of ``[inner, inner]`` gave two lists (a change to one did not
    show in the other), unlike pickle, Ray's get, and the task's own value."""
    inner = [1, 2]
    out = fresh({"a": [inner, inner], "b": inner})
    out["a"][0].append(3)
    assert out["a"][1] == [1, 2, 3] and out["b"] is out["a"][0]
    assert inner == [1, 2]


class _Slotted(dict):  # type: ignore[type-arg]
    __slots__ = ("x",)


class _Child(_Slotted):
    pass


class _Stateful(dict):  # type: ignore[type-arg]
    def __getstate__(self) -> dict[str, Any]:
        return {"cache": None}


def test_get_copies_of_dict_subclasses_are_what_pickle_gives() -> None:
    """On 8076006 a dict subclass whose base class has ``__slots__`` lost the slot's
    value in ``get``'s copy, and one with its own ``__getstate__`` kept what that
    leaves out: both now go through pickle."""
    import pickle

    c = _Child(k=1)
    c.x = 5
    c.y = 2
    got = fresh(c)
    assert type(got) is _Child and got == {"k": 1} and got.x == 5 and got.y == 2
    s = _Stateful(k=1)
    s.cache = 7
    assert fresh(s).cache is None is pickle.loads(pickle.dumps(s)).cache


def test_a_plain_nested_result_is_still_copied_without_pickle() -> None:
    """The memo keeps the fast path: lists and dicts of numbers are copied as such."""
    value = {"a": [1.0, 2.0], "b": [[1, 2], (3, 4)], "n": np.arange(3.0)}
    out = fresh(value)
    assert out == {k: v for k, v in value.items() if k != "n"} | {"n": out["n"]}
    assert out["a"] is not value["a"] and out["b"][0] is not value["b"][0]
    assert out["n"] is not value["n"] and out["n"].tolist() == [0.0, 1.0, 2.0]


BY_VALUE = """\
from dataclasses import dataclass
import numpy as np
from qshpc import distribute_task, get, put

@dataclass
class Point:
    a: object

@distribute_task()
def part(a):
    return {"s": a[:2]}, Point(a[1:3])

d, p = get(part(put(np.arange(6.0))))
print("OUT", d["s"].flags.writeable, p.a.flags.writeable, type(p).__name__, p.a.tolist())
"""


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 3])
def test_a_result_with_a_class_of_the_program_gives_writeable_slices_too(
    tmp_path: Path, qshpc_home: Path, ranks: int
) -> None:
    """A result holding an instance of a class of the program travels from a worker by
    value (cloudpickle): on 8076006 its slices of a placed array, and every other
    array of that result, came back read-only under ``-n 3`` (``OUT False False``)
    and writeable under ``-n 1``."""
    from tests.conftest import run_cli

    prog = tmp_path / "prog.py"
    prog.write_text(BY_VALUE)
    out = run_cli("run", str(prog), ranks=ranks, timeout=110)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OUT True True Point [1.0, 2.0]" in out.stdout


KILLED_IN_FINALIZE = """\
import os, sys
import numpy as np
from pathlib import Path
from qshpc.store import JobWriter, create_job
import qshpc.store.writer as W

job = Path(sys.argv[1])
create_job(job, {"id": "job", "title": "t", "created": 5.0, "seed": 3}, None)
w = JobWriter.open(job, {"mpi_size": 1})
w.save_result({"x": np.arange(1000.0)})
W.snapshot = lambda *a, **k: os._exit(0)  # the fault: killed after the final commit
w.finalize("SUCCEEDED")
"""


def test_a_later_read_folds_a_writer_killed_in_finalize_and_drops_its_reserve(
    tmp_path: Path,
) -> None:
    """A writer killed in finalize (after the final state's commit, before its fold) left
    ``job.journal``, its lock and its 1 MiB ``job.reserve``; on 8076006 a later read
    folded the journal and kept the reserve for good. It goes now, as finalize's."""
    import os
    import subprocess
    import sys

    from qshpc.client.job import Job

    job = tmp_path / "job"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", KILLED_IN_FINALIZE, str(job)], env=env, check=True)
    assert {"job.journal", "job.reserve"} <= set(os.listdir(job))
    j = Job(job)
    assert j.status() == "SUCCEEDED"
    assert j.result()["x"].tolist() == list(np.arange(1000.0))
    assert sorted(os.listdir(job)) == ["job.h5"]


def test_a_run_waits_for_a_read_that_folds_the_journal_rather_than_refusing(
    tmp_path: Path,
) -> None:
    """On 8076006 a ``qshpc run --resume`` that met a ``qshpc status`` folding the ended
    job's journal (``fold_ended`` holds the job's lock meanwhile) was refused: 'job ...
    is already running (..., `qshpc (folding an ended job's journal)`) ... or cancel
    it'. A run now waits for such a holder (a fold is brief); a second fold does not."""
    import threading
    import time

    from qshpc.store.lock import FOLD_COMMAND, JobLock, JobLockedError

    job = tmp_path / "job"
    job.mkdir()
    fold = JobLock(job, FOLD_COMMAND).acquire()
    with pytest.raises(JobLockedError):
        JobLock(job, FOLD_COMMAND).acquire()  # another read: it leaves the journal be
    timer = threading.Timer(0.6, fold.release)
    timer.start()
    t0 = time.monotonic()
    run = JobLock(job, "qshpc run --resume").acquire()
    try:
        assert 0.4 < time.monotonic() - t0 < 30
    finally:
        run.release()
        timer.join()
    held = JobLock(job, "qshpc run").acquire()  # a run still refuses a run at once
    try:
        with pytest.raises(JobLockedError):
            JobLock(job, "qshpc run --resume").acquire()
    finally:
        held.release()


def test_qshpc_run_resume_waits_for_a_fold_too(tmp_path: Path, qshpc_home: Path) -> None:
    """The launcher's own check (``prepare``: a live holder refuses the run before
    rank 0 takes the lock) refused it the same way on 8076006."""
    import threading

    from qshpc.store.lock import FOLD_COMMAND, JobLock
    from tests.conftest import FAIL, FAIL_AT_END, job_dir_of, run_cli

    prog = tmp_path / "prog.py"
    prog.write_text(
        "import sys\nfrom qshpc import save_result\nsave_result(len(sys.argv))\n" + FAIL_AT_END
    )
    assert run_cli("run", str(prog), env=FAIL).returncode == 1  # FAILED: a job to resume
    job = job_dir_of(qshpc_home)
    fold = JobLock(job, FOLD_COMMAND).acquire()
    timer = threading.Timer(1.0, fold.release)
    timer.start()
    try:
        out = run_cli("run", str(prog), "--resume", job.name)
    finally:
        timer.join()
    assert "already running" not in out.stderr, out.stderr[-2000:]
    assert out.returncode == 0, out.stderr[-2000:]


def test_get_copies_through_pickle_give_writeable_arrays() -> None:
    """On 8076006 ``get``'s copy through pickle kept an array's read-only flag: a
    task's ``np.frombuffer`` array inside an object came read-only under ``-n 1`` and
    writeable under ``-n 3`` (the worker's pickle writes it writeable)."""
    from types import SimpleNamespace

    a = np.frombuffer(b"\0" * 16)
    d, ns = fresh(({"d": a}, SimpleNamespace(a=a, b=a)))
    assert d["d"].flags.writeable and ns.a.flags.writeable and ns.a is ns.b
    assert not a.flags.writeable


FROMBUFFER = """\
import numpy as np
from types import SimpleNamespace
from qshpc import distribute_task, get

@distribute_task()
def make():
    a = np.frombuffer(b"\\0" * 16)
    return {"d": a}, SimpleNamespace(a=a)

d, ns = get(make())
print("OUT", d["d"].flags.writeable, ns.a.flags.writeable)
"""


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 3])
def test_a_read_only_array_a_task_made_comes_writeable_on_every_rank_count(
    tmp_path: Path, qshpc_home: Path, ranks: int
) -> None:
    """On 8076006: ``OUT False False`` under ``-n 1``, ``OUT True True`` under ``-n 3``."""
    from tests.conftest import run_cli

    prog = tmp_path / "prog.py"
    prog.write_text(FROMBUFFER)
    out = run_cli("run", str(prog), ranks=ranks, timeout=110)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OUT True True" in out.stdout
