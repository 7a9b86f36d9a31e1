"""An interrupt (Ctrl-C, or a signal handler that raises) landing while a circuit is written.

Qiskit's QPY writer (Rust) reads ``circuit.metadata`` and ``circuit.layout``
(Python properties); an exception raised in them is dropped, and the circuit is
written without its metadata (it then fails to load: a ``JSONDecodeError`` on the
worker) or without its layout. A ``KeyboardInterrupt`` is the one exception those
reads raise, and only asynchronously, so these tests raise it there with a trace
function (a signal cannot be made to land on one bytecode): the same exception at
the same point as a real one.
"""

from __future__ import annotations

import io
import pickle
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import CodeType, FrameType
from typing import Any

import pytest

from qshpc.store import _qpy
from qshpc.task import payload


def _circuit(meta: dict[str, Any] | None = None) -> Any:
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2, metadata=meta or {})
    qc.rz(0.25, 0)
    qc.cx(0, 1)
    return qc


def _with_layout() -> Any:
    from qiskit import QuantumCircuit, transpile
    from qiskit.transpiler import CouplingMap

    qc = QuantumCircuit(3, metadata={"theta": 0.5})
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(0, 2)
    qc.measure_all()
    out = transpile(qc, coupling_map=CouplingMap.from_line(5), basis_gates=["cx", "rz", "sx", "x"],
                    seed_transpiler=1)  # fmt: skip
    assert out.layout is not None
    return out


@contextmanager
def _interrupt_in(code: CodeType, times: int = 1) -> Iterator[list[int]]:
    """Raise KeyboardInterrupt when ``code`` starts (the first ``times`` times)."""
    hits = [0]

    def tracer(frame: FrameType, event: str, arg: Any) -> Callable[..., Any] | None:
        if event == "call" and frame.f_code is code and hits[0] < times:
            hits[0] += 1
            raise KeyboardInterrupt("alarm")
        return None

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        yield hits
    finally:
        sys.settrace(old)


def _getter(name: str) -> CodeType:
    from qiskit import QuantumCircuit

    code: CodeType = getattr(QuantumCircuit, name).fget.__code__
    return code


def test_an_interrupt_while_qiskit_reads_the_metadata_reaches_the_program() -> None:
    qc = _circuit({"shots": 100})
    with _interrupt_in(_getter("metadata")) as hits, pytest.raises(KeyboardInterrupt):
        # Before: no exception, and the payload's circuit failed to load on the worker
        # ("Expecting value: line 1 column 1 (char 0)"); the interrupt was gone.
        payload.dumps(((qc, 1), {}))
    assert hits[0] == 1
    (back, n), _ = pickle.loads(payload.dumps(((qc, 1), {})))  # the next call is whole
    assert back == qc and back.metadata == {"shots": 100} and n == 1


def test_an_interrupt_while_qiskit_reads_the_layout_reaches_the_program() -> None:
    from qiskit import qpy

    out = _with_layout()
    with _interrupt_in(_getter("layout")) as hits, pytest.raises(KeyboardInterrupt):
        _qpy.dump(out)  # before: written without its layout, silently
    assert hits[0] == 1
    with _interrupt_in(_getter("layout")), pytest.raises(KeyboardInterrupt):
        _qpy.dump([_circuit(), out, _circuit({"a": [1, 2]})])  # one circuit of a list
    back = qpy.load(io.BytesIO(_qpy.dump([_circuit(), out, _circuit({"a": [1, 2]})])))
    assert back[1].layout == out.layout and back[2].metadata == {"a": [1, 2]}


def test_circuits_written_whole_pass_the_check() -> None:
    """No false alarm: every kind of circuit, alone and in lists, with and without metadata."""
    from qiskit import QuantumCircuit

    empty = QuantumCircuit()
    named = QuantumCircuit(1, name="x" * 300, global_phase=0.5, metadata={"k": "}" * 5})
    for value in (empty, named, _circuit(), _with_layout(), [empty, _with_layout(), named]):
        data = _qpy.dump(value)
        assert _qpy._whole(value, data)


def test_an_interrupt_at_any_opcode_of_a_dump_leaves_the_next_one_right() -> None:
    """The reused pickler (review51 F2's suspect): an interrupt at each of ``dumps``'s own
    opcodes, its clean-up included, then a dump of other values: they come back as given."""
    qc = _circuit()
    value = ((qc, [1.5, "a"]), {"k": qc})
    code = payload.dumps.__code__
    n = 0
    while True:
        n += 1
        seen = [0]

        def tracer(
            frame: FrameType, event: str, arg: Any, n: int = n, seen: list[int] = seen
        ) -> Any:
            if frame.f_code is not code:
                return None
            frame.f_trace_opcodes = True
            if event == "opcode":
                seen[0] += 1
                if seen[0] == n:
                    raise KeyboardInterrupt("alarm")
            return tracer

        sys.settrace(tracer)
        try:
            payload.dumps(value)
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        if seen[0] < n:  # went through without an interrupt: every opcode was tried
            break
        other = ((_circuit({"i": n}), n), {})
        (back, i), _ = pickle.loads(payload.dumps(other))
        assert i == n and back.metadata == {"i": n}, f"after an interrupt at opcode {n}"
    assert n > 20
