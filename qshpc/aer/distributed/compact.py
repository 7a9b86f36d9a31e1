"""A split run's circuits without their idle qubits.

A circuit transpiled for a device keeps the device's width: 127 qubits, of
which its layout uses 32. On one rank Aer drops the idle ones (its
truncation), but a split run cannot: an expectation value saved over every
qubit of the circuit uses them all, and the chunk size and memory were
reckoned from the declared width (10^29 GiB for a 127-qubit statevector).
:func:`compact` keeps the qubits a circuit acts on (and those a saved marginal
reads); an idle qubit is |0>, so a Pauli term reads it as 1 for ``I`` or ``Z``
and 0 for ``X`` or ``Y``. Counts, marginals and expectation values are those of
the whole circuit.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from qshpc.aer.distributed.spec import Save

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]


def compact(
    circuits: list[QuantumCircuit], saves: list[list[Save]]
) -> tuple[list[QuantumCircuit], list[list[Save]]]:
    """Each circuit without the qubits it leaves idle, its saves on the qubits kept.

    A circuit that acts on all its qubits, saves the whole statevector, holds
    control flow or classical variables, is left as it is.
    """
    out_circuits, out_saves, _ = compact_whole(circuits, saves)
    return out_circuits, out_saves


def compact_whole(
    circuits: list[QuantumCircuit], saves: list[list[Save]], reads_zero: bool = True
) -> tuple[list[QuantumCircuit], list[list[Save]], list[bool]]:
    """:func:`compact`, and for each circuit it gives whether every qubit is acted on.

    The flag is :func:`acts_on_all` of the circuit given back, known from the same
    walk in most cases (a circuit with control flow is walked again): ``run_circuits``
    turns Aer's truncation off only when all are True. ``reads_zero`` False (a noise
    model: a readout error reads 1 off ``|0>``) keeps the qubits only measured.
    """
    out_circuits: list[QuantumCircuit] = []
    out_saves: list[list[Save]] = []
    whole: list[bool] = []
    for circuit, row in zip(circuits, saves, strict=True):
        keep, acted = _kept(circuit, row, reads_zero)
        if keep is None:
            out_circuits.append(circuit)
            out_saves.append(row)
            whole.append(acts_on_all(circuit, row) if acted is None else acted)
            continue
        index = {q: j for j, q in enumerate(keep)}
        out_circuits.append(_without_idle(circuit, keep))
        out_saves.append([_moved(save, index) for save in row])
        small = out_circuits[-1]
        whole.append(acts_on_all(small, out_saves[-1]) if acted is None else acted)
    return out_circuits, out_saves, whole


def kept_qubits(circuit: QuantumCircuit, row: list[Save]) -> list[int] | None:
    """The qubit indices to keep, in order; None to keep the circuit whole.

    A qubit only measured or reset (``measure_all()`` after transpiling) is idle: it
    reads 0 (:func:`qshpc.aer.sizing.active_qubits`); its measurements go with it and
    its clbits read 0.
    """
    return _kept(circuit, row)[0]


def _kept(
    circuit: QuantumCircuit, row: list[Save], reads_zero: bool = True
) -> tuple[list[int] | None, bool | None]:
    """:func:`kept_qubits`, and whether every qubit of the circuit it leads to is acted on
    (None: not known without walking it again, :func:`acts_on_all`)."""
    from qshpc.aer.sizing import active_qubits

    n = int(circuit.num_qubits)
    classical = int(getattr(circuit, "num_vars", 0)) + int(getattr(circuit, "num_stretches", 0))
    if n <= 1 or classical:
        return None, None
    if any(s.kind == "statevector" for s in row):
        return None, True
    if not all(0 <= q < n for s in row for q in s.qubits):
        return None, None  # a qubit out of range: the step says so, as before
    if any(im for s in row for _, _, im in s.paulis):
        return None, None  # not Hermitian: the step refuses it whole, whatever it reads
    activity = active_qubits(circuit)
    if activity.acts_on_all:  # the usual case: every qubit acted on, nothing to drop
        return None, True
    if activity.control_flow:
        return None, None
    used = set(activity.qubits).union(q for s in row if s.kind == "probabilities" for q in s.qubits)
    if not reads_zero:
        data = circuit.data
        used.update(circuit.find_bit(data[pos].qubits[0]).index for pos in activity.idle_reads)
    if len(used) >= n:  # (a save reads the idle ones: their reads stay, they read 0)
        return None, True
    # (an observable on idle qubits only keeps none of them: it is a constant, _moved;
    # only a save may then act on the one qubit left: acts_on_all walks it)
    return (sorted(used), True) if used else ([0], None)


def acts_on_all(circuit: QuantumCircuit, row: list[Save]) -> bool:
    """True when an operation or a save of ``row`` acts on every qubit of ``circuit``.

    Aer crashed (SIGSEGV, review22) on a qubit nothing acts on when its truncation is
    off; with it on, it drops such qubits and the chunks no longer fit. A circuit that
    :func:`compact` left whole (control flow, ...) may still have one.
    """
    n = int(circuit.num_qubits)
    touched: set[int] = set()
    for s in row:
        if s.kind == "statevector":
            return True
        if s.kind == "probabilities":
            touched.update(s.qubits)
        else:  # the step saves each term on the qubits it does not read as I
            width = len(s.qubits)
            touched.update(
                s.qubits[k] for label, _, _ in s.paulis for k in range(width)
                if len(label) == width and label[width - 1 - k] != "I"
            )  # fmt: skip
    for inst in circuit.data:
        if len(touched) >= n:
            return True
        if inst.name != "barrier":
            touched.update(circuit.find_bit(q).index for q in inst.qubits)
    return len(touched) >= n


def _without_idle(circuit: QuantumCircuit, keep: list[int]) -> QuantumCircuit:
    """``circuit`` on the qubits ``keep`` (its classical bits and registers as they are)."""
    from qiskit import QuantumCircuit
    from qiskit.circuit import Barrier  # type: ignore[import-untyped]

    new = QuantumCircuit(
        len(keep), name=circuit.name, global_phase=circuit.global_phase,
        metadata=dict(circuit.metadata or {}),
    )  # fmt: skip
    new.add_bits(circuit.clbits)
    for creg in circuit.cregs:
        new.add_register(creg)
    where = {circuit.qubits[q]: new.qubits[j] for j, q in enumerate(keep)}
    for inst in circuit.data:
        qargs = [where[q] for q in inst.qubits if q in where]
        if len(qargs) != len(inst.qubits):  # a barrier also (or only) over idle qubits
            if qargs:
                new.append(Barrier(len(qargs), label=inst.operation.label), qargs)
            continue
        # (0-qubit ones too; _append: the instruction is valid as it is, only its qubits
        # change; append's checks made this loop 2x slower)
        new._append(inst.replace(qubits=tuple(qargs)))
    return new


def _moved(save: Save, index: dict[int, int]) -> Save:
    """``save`` on the kept qubits (``index``: old -> new); terms read idle qubits as |0>."""
    if save.kind != "expectation_value":
        return replace(save, qubits=[index[q] for q in save.qubits])
    width = len(save.qubits)
    kept = [k for k, q in enumerate(save.qubits) if q in index]
    terms: list[tuple[str, float, float]] = []
    for label, re, im in save.paulis:
        idle = {label[width - 1 - k] for k, q in enumerate(save.qubits) if q not in index}
        if idle & {"X", "Y"}:
            continue  # <0|X|0> = <0|Y|0> = 0: the term adds nothing
        terms.append(("".join(label[width - 1 - k] for k in reversed(kept)), re, im))
    if not kept or not terms:  # a constant (the step adds identity terms as one): no qubit
        return replace(save, qubits=[], paulis=[("", sum(t[1] for t in terms), 0.0)])
    return replace(save, qubits=[index[save.qubits[k]] for k in kept], paulis=terms)


__all__ = ["acts_on_all", "compact", "compact_whole", "kept_qubits"]
