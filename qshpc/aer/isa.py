"""Which circuits Aer runs as they are, and the form every other one is run in.

A circuit whose every operation is one this rank's simulator executes (its
basis gates, measurements, barriers, delays, resets; inside control-flow
bodies as well) is *ISA* for Aer: it runs as it is, the way Qiskit's V2
primitives take ISA circuits, and its qubits are the positions (a layout a
user's own transpile left on it is not read). Only the other circuits go
through this rank's preset pass manager. On small circuits the pass manager
costs more than the simulation (0.35-0.6 ms against 0.3-0.5 ms on two qubits),
and the exact distribution is the same either way.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qshpc.aer.binding import bindable
from qshpc.aer.circuits import CONTROL_FLOW, unbox
from qshpc.aer.shadowed import unshadow
from qshpc.aer.simulator import SimSpec, check_level, check_width, get_simulator, transpile_for

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

#: Operations Aer runs besides its basis gates.
_ALWAYS = frozenset({"measure", "barrier", "delay", "reset"})

_lock = threading.Lock()
_basis: dict[SimSpec, frozenset[str]] = {}


def basis(spec: SimSpec) -> frozenset[str]:
    """Operation names Aer runs without transpiling, for ``spec``'s simulator."""
    names = _basis.get(spec)
    if names is None:
        config = get_simulator(spec).configuration()
        with _lock:
            names = _basis[spec] = frozenset(config.basis_gates) | _ALWAYS
    return names


def is_isa(circuit: QuantumCircuit, spec: SimSpec) -> bool:
    """True when Aer runs every operation of ``circuit`` as it is (control-flow bodies too)."""
    return _runs_as_is(circuit, basis(spec))


def _runs_as_is(circuit: QuantumCircuit, names: frozenset[str]) -> bool:
    ops = circuit.count_ops()
    if not names.issuperset(ops):
        return False
    if CONTROL_FLOW.isdisjoint(ops):
        return True
    for inst in circuit.data:
        for block in getattr(inst.operation, "blocks", ()):
            if not _runs_as_is(block, names):
                return False
    return True


def automatic_method(circuit: QuantumCircuit, noisy: bool = False) -> str:
    """The method Aer's ``method="automatic"`` picks for ``circuit``, as a concrete name.

    As Aer's controller: ``stabilizer`` when every operation is one the stabilizer
    method runs (Clifford gates, an ``rz`` only by a bound multiple of pi/2,
    measurements, resets, control flow of those) and there is no noise model;
    otherwise ``statevector`` (where Aer would take ``density_matrix`` for a noisy
    circuit of fewer qubits than log2(shots), or ``matrix_product_state`` for one
    too wide for the memory, qshpc keeps the statevector: sampled by Aer, or split
    over ranks, or refused with what to change). Boxes count as their bodies and
    custom gates named like standard ones as their definitions.
    """
    if not noisy and _clifford(unbox(unshadow(circuit)), basis(stabilizer_spec())):
        return "stabilizer"
    return "statevector"


def stabilizer_spec() -> SimSpec:
    """This rank's stabilizer simulator spec (its basis is what :func:`automatic_method` reads)."""
    from qshpc.aer.simulator import sim_spec

    return sim_spec("stabilizer", "CPU")


def _clifford(circuit: QuantumCircuit, names: frozenset[str]) -> bool:
    if not _runs_as_is(circuit, names):
        return False
    for inst in circuit.data:
        op = inst.operation
        if non_clifford_rz(op):
            return False
        for block in getattr(op, "blocks", ()):
            if not _clifford(block, names):
                return False
    return True


def non_clifford_rz(op: Any) -> bool:
    """True for an ``rz`` the stabilizer method refuses: not by a bound multiple of pi/2
    (a parameter counts: Clifford or not, row by row)."""
    if op.name != "rz":
        return False
    import math

    try:
        turns = float(op.params[0]) / (math.pi / 2)
    except (TypeError, ValueError):
        return True
    return abs(turns - round(turns)) > 1e-10


def untranspilable(circuit: QuantumCircuit, spec: SimSpec) -> str | None:
    """Why neither Aer nor the pass manager can run an operation of ``circuit``, or None.

    An operation Aer does not run, with no definition, no synthesis plugin and no
    entry in the session equivalence library
    (``Gate("mystery", 2, [])``, a placeholder for a device's gate) fails the
    transpile on every rank that meets it (``HighLevelSynthesis is unable to
    synthesize "mystery"``), after other blocks ran. Only names outside Aer's basis
    and Qiskit's standard gates are looked at (most circuits: one ``count_ops``); an
    operation named like a standard gate that is not it and has no definition is
    :func:`qshpc.aer.circuits.aer_refusal`'s.
    """
    from qshpc.aer.circuits import standard_gate_names

    known = basis(spec)
    standard = standard_gate_names()
    names = {
        n
        for n in circuit.count_ops()
        if n not in known and n not in standard and n not in CONTROL_FLOW
    }
    if not names:
        return None
    plugins: frozenset[str] | None = None
    for inst in circuit.data:
        op = inst.operation
        if op.name not in names:
            continue
        if plugins is None:
            from qiskit.transpiler.passes.synthesis.plugin import (  # type: ignore[import-untyped]
                HighLevelSynthesisPluginManager,
            )

            plugins = frozenset(HighLevelSynthesisPluginManager().plugins_by_op)
        try:
            defined = (
                op.name in plugins
                or getattr(op, "definition", True) is not None
                or _in_session_library(op)
            )
        except Exception:  # a definition that needs bound parameters: the transpile says
            defined = True
        if defined:
            names.discard(op.name)  # synthesized, or defined (or no instruction at all)
            if not names:
                return None
            continue
        return (
            f"its operation {op.name!r} ({type(op).__name__}) is no gate Aer runs and has no "
            "definition to transpile it into gates Aer runs; give it one (a Gate subclass "
            "with _define, or QuantumCircuit.to_gate() of its circuit)"
        )
    return None


def _in_session_library(op: Any) -> bool:
    """True when Qiskit's session equivalence library translates ``op``.

    A program may give a device's gate its meaning there instead of a definition
    (``SessionEquivalenceLibrary.add_equivalence``): the transpile in that process
    translates it, as it does for Aer's own primitives.
    """
    from qiskit.circuit.equivalence_library import (  # type: ignore[import-untyped]
        SessionEquivalenceLibrary,
    )

    return bool(SessionEquivalenceLibrary.has_entry(op))


def aer_forms(
    circuits: Sequence[QuantumCircuit],
    spec: SimSpec,
    optimization_level: int = 1,
    keys: Sequence[str | None] | None = None,
    *,
    unshadowed: bool = False,
) -> list[tuple[QuantumCircuit, bool]]:
    """Each circuit in the form this rank's simulator runs, and whether it was transpiled.

    An ISA circuit is checked for width and comes back as it is (or with its
    unbindable parametrized operations decomposed: :func:`bindable`), not
    copied: a caller that appends to it must own it. The others are
    transpiled together (:func:`transpile_for`, its cache by ``keys``
    included) and come back as fresh copies; only their qubits are mapped
    through the layout the transpile made (``engine.physical_qubits``). Custom
    operations named like standard gates are replaced by their definitions
    (:func:`qshpc.aer.shadowed.unshadow`: Aer and the transpiler would read them
    as the standard gates) and boxes by their bodies
    (:func:`qshpc.aer.circuits.unbox`) first.

    Args:
        circuits: The circuits.
        spec: This rank's simulator spec.
        optimization_level: Preset pass manager level for the circuits that are not ISA.
        keys: Optional content keys, one per circuit (see :func:`transpile_for`).
        unshadowed: True when the circuits are already ``unshadow``'s forms
            (:func:`qshpc.aer.circuits.aer_runnable`, or bodies ``prepare_exact`` made
            of them): they are not walked again.
    """
    check_level(optimization_level)  # refused alike whether or not a circuit needs it
    # Aer runs no box: its body; and runs an operation by its name: not a custom one's
    circuits = [unbox(circuit if unshadowed else unshadow(circuit)) for circuit in circuits]
    as_is = [is_isa(circuit, spec) for circuit in circuits]
    isa = [circuit for circuit, flag in zip(circuits, as_is, strict=True) if flag]
    if isa:
        check_width(isa, spec)
    others = [circuit for circuit, flag in zip(circuits, as_is, strict=True) if not flag]
    todo = [i for i, flag in enumerate(as_is) if not flag]
    transpiled = iter(
        transpile_for(
            others, spec, optimization_level, [keys[i] for i in todo] if keys is not None else None
        )
    )
    return [
        (bindable(circuit), False) if flag else (next(transpiled), True)
        for circuit, flag in zip(circuits, as_is, strict=True)
    ]


def reset_caches() -> None:
    """Forget the simulators' basis sets (for tests)."""
    with _lock:
        _basis.clear()


__all__ = [
    "aer_forms",
    "automatic_method",
    "basis",
    "is_isa",
    "non_clifford_rz",
    "reset_caches",
    "stabilizer_spec",
    "untranspilable",
]
