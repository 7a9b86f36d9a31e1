"""Custom operations that carry a standard gate's name, run as what they are.

Aer runs an operation by its name, and Qiskit's transpiler leaves an
operation whose name its target holds as it is (and translates others by
name through the equivalence library). A custom gate named like a standard
one (``Gate("h", 1, [])`` with a definition, ``QuantumCircuit(name="cx")``'s
``to_gate()``, a ``UnitaryGate`` renamed ``"h"``) was run as the standard gate
by both, so SamplerV2, EstimatorV2 and the V1 primitives returned the
standard gate's results where ``Statevector`` applies the custom definition.

:func:`unshadow` replaces each such operation by its definition (inside other
custom operations' definitions and control-flow bodies too), so the rest of
the Aer layer reads and runs only operations that are what their names say.
Standard gates are recognized by their class, not their name: an operation
with the name of one of Qiskit's standard gates is that gate when its base
class is the gate's class; an operation with another name Aer or the
transpiler resolves by name (Aer's basis beyond the standard gates, the
high-level synthesis plugins' names) is a custom one when its class is
Qiskit's plain ``Gate``/``Instruction``/``ControlledGate`` or a class of the
user's own and it has a definition (Qiskit's and Aer's plain instructions of
such names, ``kraus`` or ``roerror``, have none).

Cost: one pass over the circuit's operations that are not standard gates in
its Rust data (``map_nonstandard_ops`` of a shallow copy: 0.02 ms for a
random 12-qubit depth-12 circuit of 75 operations, 0.09 ms once transpiled to
rz/sx/x/cx, 700 operations; walking every operation as a Python object took
0.03 and 1.0 ms); a circuit without such an operation comes back as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qshpc.errors import UserError

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

#: Aer's (0.17, 0.18) operation names beyond Qiskit's standard gates, which Aer runs by
#: name (checked against Aer's basis by tests/faults/test_hunt11_mend11.py), and the names the
#: exact analysis reads as they are.
_BY_NAME = frozenset(
    {
        "barrier",
        "box",
        "break_loop",
        "continue_loop",
        "cu2",
        "diagonal",
        "for_loop",
        "if_else",
        "initialize",
        "kraus",
        "mcp",
        "mcphase",
        "mcr",
        "mcrx",
        "mcry",
        "mcrz",
        "mcswap",
        "mcsx",
        "mcu",
        "mcu1",
        "mcu2",
        "mcu3",
        "mcx",
        "mcx_gray",
        "mcy",
        "mcz",
        "multiplexer",
        "pauli",
        "qerror_loc",
        "quantum_channel",
        "roerror",
        "save_amplitudes",
        "save_amplitudes_sq",
        "save_clifford",
        "save_density_matrix",
        "save_expval",
        "save_expval_var",
        "save_matrix_product_state",
        "save_probabilities",
        "save_probabilities_dict",
        "save_stabilizer",
        "save_state",
        "save_statevector",
        "save_statevector_dict",
        "save_superop",
        "save_unitary",
        "set_density_matrix",
        "set_matrix_product_state",
        "set_stabilizer",
        "set_statevector",
        "set_superop",
        "set_unitary",
        "store",
        "superop",
        "switch_case",
        "unitary",
        "while_loop",
    }
)


class ShadowedGateError(UserError, ValueError):
    """A custom operation with a standard gate's name and no definition (bad input)."""


class _Tables:
    """What recognizes a standard gate: its classes, per name (read once)."""

    def __init__(self) -> None:
        from qiskit.circuit import ControlledGate, Gate, Instruction  # type: ignore[import-untyped]
        from qiskit.circuit.library import (  # type: ignore[import-untyped]
            get_standard_gate_name_mapping,
        )

        #: standard name -> the gate's base class
        self.standard: dict[str, type] = {}
        #: class -> the name its standard gate has (singleton classes and base classes)
        self.name_of: dict[type, str] = {}
        for name, op in get_standard_gate_name_mapping().items():
            self.standard[name] = op.base_class
            self.name_of[type(op)] = name
            self.name_of[op.base_class] = name
        self.plain = (Gate, Instruction, ControlledGate)
        self.plugins: frozenset[str] | None = None

    def by_name(self, name: str) -> bool:
        """True when Aer or the transpiler resolves ``name`` by name (not a standard gate's)."""
        if name in _BY_NAME:
            return True
        if self.plugins is None:
            from qiskit.transpiler.passes.synthesis.plugin import (  # type: ignore[import-untyped]
                HighLevelSynthesisPluginManager,
            )

            self.plugins = frozenset(HighLevelSynthesisPluginManager().plugins_by_op)
        return name in self.plugins

    def custom(self, op: Any) -> bool:
        """True when ``op``'s class is a plain Qiskit one or the user's own."""
        cls = getattr(op, "base_class", None) or type(op)  # singletons' classes have no module
        module = getattr(cls, "__module__", None) or ""
        return cls in self.plain or not module.startswith(("qiskit.", "qiskit_aer."))


_tables: _Tables | None = None
#: id(operation) -> (the operation, whether it must change)
_Memo = dict[int, tuple[Any, bool]]


def _get_tables() -> _Tables:
    global _tables
    if _tables is None:
        _tables = _Tables()
    return _tables


def _impostor(op: Any, tables: _Tables) -> bool:
    """True when ``op`` has a name Aer or the transpiler reads by name but is not that operation."""
    name = op.name
    base = tables.standard.get(name)
    if base is not None:
        return op.base_class is not base
    # Qiskit's and Aer's own plain instructions of such names (a ``Kraus``'s "kraus", a
    # ``ReadoutError``'s "roerror") have no definition: Aer runs them as they are.
    return tables.by_name(name) and tables.custom(op) and _definition(op) is not None


def nonstandard_operations(circuit: QuantumCircuit) -> list[Any]:
    """The operations of ``circuit`` that are not plainly one of Qiskit's standard gates
    (barriers, control flow, library and custom gates; not their bodies)."""
    return _suspects(circuit, _get_tables())


def _suspects(circuit: QuantumCircuit, tables: _Tables) -> list[Any]:
    """The operations of ``circuit`` that are not plainly a standard gate of their name."""
    name_of = tables.name_of.get
    out: list[Any] = []

    def look(op: Any) -> None:
        if name_of(type(op)) != op.name:
            out.append(op)

    data = getattr(circuit, "_data", None)
    shallow = _shallow_copy(data)
    if shallow is not None:
        # Qiskit 2.x: only operations that are no standard gate in its Rust data reach
        # Python (standard instructions such as measure do too); a transpiled circuit of
        # 700 operations is looked at in ~0.09 ms, against ~1 ms when every operation
        # is built as a Python object. On a shallow copy: the callback's result replaces
        # the operation, and the caller's circuit must stay as it is.
        def keep(op: Any) -> Any:
            look(op)
            return op

        shallow.map_nonstandard_ops(keep)
        return out
    foreach = getattr(data, "foreach_op", None)
    if foreach is not None:  # pragma: no cover - Qiskit 1.x: no CircuitInstruction built
        foreach(look)
    else:  # pragma: no cover - other Qiskit versions
        for inst in circuit.data:
            look(inst.operation)
    return out


def _shallow_copy(data: Any) -> Any:
    """A copy of a circuit's Rust data sharing its operations, or None (not Qiskit 2.x)."""
    if data is None or not hasattr(data, "map_nonstandard_ops"):
        return None
    try:
        return data.copy(copy_instructions=False)
    except TypeError:  # pragma: no cover - another signature
        return None


def _needs_change(op: Any, tables: _Tables, memo: _Memo) -> bool:
    """True when ``op`` is an impostor or holds one (in its definition or its bodies)."""
    key = id(op)
    hit = memo.get(key)
    if hit is not None:
        return hit[1]
    if tables.name_of.get(type(op)) == op.name:
        return False  # a standard gate
    memo[key] = (op, False)  # a definition that holds itself: no loop
    if _impostor(op, tables):
        result = True
    elif _annotated(op):  # a modifier (control, inverse, power) of another operation
        result = _needs_change(op.base_op, tables, memo)
    elif getattr(op, "blocks", ()):
        result = any(_holds_impostor(block, tables, memo) for block in op.blocks)
    elif tables.custom(op):
        try:
            definition = op.definition
        except Exception:  # a definition that needs bound parameters: the transpile says
            definition = None
        result = definition is not None and _holds_impostor(definition, tables, memo)
    else:
        result = False
    memo[key] = (op, result)  # ``op`` held: its id is not reused while the memo lives
    return result


def _holds_impostor(circuit: QuantumCircuit, tables: _Tables, memo: _Memo) -> bool:
    return any(_needs_change(op, tables, memo) for op in _suspects(circuit, tables))


def unshadow(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` (itself when nothing needs it) with shadowing operations inlined.

    An operation that has the name of a standard gate (or another name Aer or the
    transpiler read by name) without being it is replaced by its definition, as
    are custom operations whose definitions hold such an operation; control-flow
    bodies are rewritten the same way.

    Raises:
        ShadowedGateError: Such an operation has no definition (nothing says what
            it does but a name that means another gate).
    """
    tables = _get_tables()
    memo: _Memo = {}
    if not _holds_impostor(circuit, tables, memo):
        return circuit
    return _rewrite(circuit, tables, memo, circuit.name)


def shadow_refusal(circuit: QuantumCircuit) -> str | None:
    """Why :func:`unshadow` refuses ``circuit``, or None."""
    return unshadow_or_refusal(circuit)[1]


def unshadow_or_refusal(circuit: QuantumCircuit) -> tuple[QuantumCircuit, str | None]:
    """``(unshadow(circuit), None)``, or ``(circuit, why unshadow refuses it)``.

    One walk of ``circuit`` for both: a caller that checks a circuit and then runs
    it passes the first item on rather than unshadowing again.
    """
    try:
        return unshadow(circuit), None
    except ShadowedGateError as exc:
        # without the "circuit NAME: " it starts with (a name may hold ": " itself)
        return circuit, str(exc).removeprefix(f"circuit {circuit.name!r}: ")


def _rewrite(circuit: QuantumCircuit, tables: _Tables, memo: _Memo, top: str) -> QuantumCircuit:
    out = circuit.copy_empty_like()
    for inst in circuit.data:
        op = inst.operation
        if not _needs_change(op, tables, memo):
            out.append(inst)
        elif getattr(op, "blocks", ()) and not _impostor(op, tables):
            blocks = [_rewrite(block, tables, memo, top) for block in op.blocks]
            out.append(inst.replace(operation=op.replace_blocks(blocks)))
        elif _annotated(op):
            out.append(inst.replace(operation=_annotated_base(op, tables, memo, top)))
        else:
            body = _rewrite(_definition_of(op, top), tables, memo, top)
            out.compose(body, inst.qubits, inst.clbits, inplace=True)
    return out


def _definition_of(op: Any, top: str) -> QuantumCircuit:
    definition = _definition(op)
    if definition is None:
        raise ShadowedGateError(
            f"circuit {top!r}: its operation {op.name!r} ({type(op).__name__}) has "
            f"the name of Qiskit's {op.name!r} but is not that operation, and has no "
            "definition to run instead; give it another name, or a definition "
            "(QuantumCircuit.to_gate() of what it does)"
        )
    return definition


def _annotated(op: Any) -> bool:
    """True for an ``AnnotatedOperation`` (``gate.control(1, annotated=True)``): the
    transpiler synthesizes its base operation by that one's name."""
    return hasattr(op, "base_op") and hasattr(op, "modifiers")


def _annotated_base(op: Any, tables: _Tables, memo: _Memo, top: str) -> Any:
    """``op`` (an annotated operation that needs it) with its base operation replaced by
    one of another name defined as the base's rewritten definition."""
    base = op.base_op
    if _annotated(base):
        new = _annotated_base(base, tables, memo, top)
    else:
        body = _rewrite(_definition_of(base, top), tables, memo, top)
        try:
            new = body.to_gate()
        except Exception:  # a measurement or a reset in it: no gate
            new = body.to_instruction()
        new.name = f"{base.name}_as_defined" if _impostor(base, tables) else base.name
    return type(op)(new, op.modifiers)


def _definition(op: Any) -> QuantumCircuit | None:
    try:
        return op.definition
    except Exception:  # a definition that needs bound parameters
        return None


__all__ = [
    "ShadowedGateError",
    "nonstandard_operations",
    "shadow_refusal",
    "unshadow",
    "unshadow_or_refusal",
]
