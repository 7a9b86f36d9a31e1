"""Session 12's review12: what the review of mend12a/mend12b found.

Each test says what happened on main 8076006.
"""

from __future__ import annotations

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
