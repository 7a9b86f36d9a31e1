"""How much memory a simulation needs, checked before a job runs.

A statevector of n qubits holds 2**n complex amplitudes (16 bytes each in
double precision, 8 in single); a density matrix holds 4**n. Aer needs some
room beyond the state itself (a copy for some operations, buffers, the Python
process), which :data:`OVERHEAD_FACTOR` and :data:`BASE_BYTES` cover.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qshpc.errors import ResourceError, UserError

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

GIB = 1024**3
#: Headroom on top of the state: Aer's buffers and chunk copies.
OVERHEAD_FACTOR = 1.1
#: The Python process with qiskit and qiskit-aer imported (about 300 MB measured).
BASE_BYTES = 512 * 1024**2
#: Bond dimension assumed for matrix_product_state when none is given.
MPS_BOND_DIMENSION = 256

#: Operations that read a qubit's state into a clbit or set it to |0> (:func:`active_qubits`).
_READS = frozenset({"measure", "reset"})
#: Operations that hold circuits of their own (as :data:`qshpc.aer.circuits.CONTROL_FLOW`).
_CONTROL_FLOW = frozenset({"if_else", "while_loop", "for_loop", "switch_case", "box"})

_STATE_EXPONENT = {
    "automatic": 1,
    "statevector": 1,
    "density_matrix": 2,
    "unitary": 2,
    "superop": 4,
}


def state_bytes(
    num_qubits: int,
    method: str = "statevector",
    precision: str = "double",
    bond_dimension: int = MPS_BOND_DIMENSION,
) -> int:
    """Bytes of the simulator's state alone.

    Args:
        num_qubits: Qubits of the widest circuit.
        method: Aer method.
        precision: ``"double"`` (16-byte amplitudes) or ``"single"`` (8-byte).
        bond_dimension: Bond dimension assumed for ``matrix_product_state``.

    Returns:
        Bytes.

    Raises:
        UserError: On a negative qubit count or an unknown method or precision.
    """
    if num_qubits < 0:
        raise UserError(f"num_qubits must be >= 0, got {num_qubits}")
    if precision not in ("double", "single"):
        raise UserError(f"unknown precision {precision!r}; use 'double' or 'single'")
    amp = 16 if precision == "double" else 8
    if method in _STATE_EXPONENT:
        return amp << (_STATE_EXPONENT[method] * num_qubits)
    if method == "matrix_product_state":  # two chi x chi matrices per qubit
        chi = min(bond_dimension, 1 << (num_qubits // 2))
        return amp * 2 * num_qubits * chi * chi
    if method in ("stabilizer", "extended_stabilizer"):
        return 2 * num_qubits * (2 * num_qubits + 1)  # tableau bits, generously in bytes
    raise UserError(f"unknown Aer method {method!r}")


def estimate_memory_bytes(
    num_qubits: int, method: str = "statevector", precision: str = "double"
) -> int:
    """Bytes one rank needs to simulate ``num_qubits`` with ``method``, overhead included.

    Example:
        >>> estimate_memory_bytes(34) // GIB   # 256 GiB state + 10% + 0.5 GiB
        282
    """
    return math.ceil(state_bytes(num_qubits, method, precision) * OVERHEAD_FACTOR) + BASE_BYTES


@dataclass(frozen=True)
class Estimate:
    """Memory estimate for a set of circuits on one rank.

    Attributes:
        bytes: Total bytes, overhead included (the widest circuit decides).
        device: ``"CPU"`` or ``"GPU"`` (where the state lives).
        method: Aer method.
        precision: ``"double"`` or ``"single"``.
        num_qubits: Qubits of the widest circuit.
        state_bytes: Bytes of the state alone.
    """

    bytes: int
    device: str
    method: str
    precision: str = "double"
    num_qubits: int = 0
    state_bytes: int = 0

    @property
    def gib(self) -> float:
        """``bytes`` in GiB."""
        return self.bytes / GIB


@dataclass(frozen=True)
class Activity:
    """What one scan of a circuit found (:func:`active_qubits`).

    Attributes:
        qubits: Indices of the qubits an operation acts on: not a barrier, and not a
            measurement or reset of a qubit nothing else acts on (its *idle reads*).
        num_qubits: The circuit's declared width.
        control_flow: True when the scan met a control-flow operation. The scan stops
            once every qubit is acted on: then only what came before is known.
        idle_reads: Positions in ``circuit.data`` of the idle reads, first first.
    """

    qubits: frozenset[int]
    num_qubits: int
    control_flow: bool = False
    idle_reads: tuple[int, ...] = ()

    @property
    def acts_on_all(self) -> bool:
        """True when every qubit of the circuit is acted on (nothing to drop)."""
        return len(self.qubits) >= self.num_qubits


def active_qubits(circuit: QuantumCircuit) -> Activity:
    """The qubits ``circuit`` acts on, in one walk of its instructions.

    A circuit transpiled onto a 115-qubit device and then ``measure_all()``-ed
    measures 115 qubits and acts on 3: a qubit no operation has touched is
    ``|0>``, its measurement reads 0 and its reset does nothing. Such an *idle
    read* does not make its qubit active, unless it is a measurement into a clbit
    an earlier instruction wrote or read (dropping it would then leave the
    earlier value where the circuit writes 0; a ``store`` counts as writing every
    clbit): that qubit is kept, as the measurement. Qubits inside control-flow
    blocks count as acted on (they are the outer qubits), as do the clbits they
    list. Barriers do not count.
    """
    n = int(circuit.num_qubits)
    data = getattr(circuit, "data", None)
    if data is None:  # not a circuit: only its declared width is known
        return Activity(frozenset(range(n)), n)
    from qiskit.circuit import ControlFlowOp, Measure, Reset  # type: ignore[import-untyped]

    used: set[object] = set()
    reads: list[tuple[int, object]] = []  # (position, qubit) of measurements/resets of idle qubits
    touched: set[object] = set()  # clbits an earlier instruction wrote or read
    control = False
    for pos, inst in enumerate(data):
        name = inst.name  # (not inst.operation: a standard gate's object is built on each call)
        if name == "barrier":
            continue
        if name in _READS and isinstance(inst.operation, (Measure, Reset)):
            qubit = inst.qubits[0]  # (Qiskit's own: not a custom operation of that name)
            if qubit not in used and touched.isdisjoint(inst.clbits):
                reads.append((pos, qubit))
                touched.update(inst.clbits)
                continue
        elif name in _CONTROL_FLOW and isinstance(inst.operation, ControlFlowOp):
            control = True  # (a block's bits are the operation's: its clbits list them)
        elif name == "store":  # writes a clbit it does not list in its clbits: any of them
            touched.update(circuit.clbits)
        if inst.clbits:
            touched.update(inst.clbits)
        used.update(inst.qubits)
        if len(used) >= n:
            return Activity(frozenset(range(n)), n, control)
    idle = tuple(pos for pos, q in reads if q not in used)
    return Activity(frozenset(circuit.find_bit(q).index for q in used), n, control, idle)


def active_width(circuit: QuantumCircuit, reads_zero: bool = True) -> int:
    """The qubits ``circuit`` acts on: its width as a simulation (:func:`active_qubits`).

    A circuit transpiled onto a 127-qubit device keeps all 127 qubits but acts on
    the few its layout chose; Aer drops the idle ones (its truncation), so a
    127-qubit ISA circuit using 5 qubits is a 5-qubit simulation. A qubit only
    measured (``measure_all()`` after transpiling) reads 0: it does not count
    either, the runs drop those measurements
    (:func:`qshpc.aer.circuits.without_idle_reads`); unless ``reads_zero`` is False
    (a noise model: a readout error reads 1 off ``|0>`` too, the measurements stay).
    """
    n = int(circuit.num_qubits)
    data = getattr(circuit, "data", None)
    if n <= 1 or data is None:
        return n
    activity = active_qubits(circuit)
    if reads_zero or not activity.idle_reads:
        return len(activity.qubits)
    return len(activity.qubits) + len({data[pos].qubits[0] for pos in activity.idle_reads})


def estimate_for_circuits(
    circuits: QuantumCircuit | Iterable[QuantumCircuit],
    method: str = "statevector",
    precision: str = "double",
    device: str = "CPU",
) -> Estimate:
    """Estimate the memory one rank needs for these circuits (run one at a time).

    Args:
        circuits: A circuit or several, sized by the qubits they act on
            (:func:`active_width`), not their declared width.
        method: Aer method.
        precision: ``"double"`` or ``"single"``.
        device: ``"CPU"`` or ``"GPU"``.

    Returns:
        An :class:`Estimate` for the widest circuit.
    """
    items = [circuits] if hasattr(circuits, "num_qubits") else list(circuits)
    n = max((active_width(c) for c in items), default=0)
    state = state_bytes(n, method, precision)
    total = estimate_memory_bytes(n, method, precision)
    return Estimate(total, device.upper(), method, precision, n, state)


def check_fits(
    circuits: QuantumCircuit | Iterable[QuantumCircuit],
    mem_gb: float,
    method: str = "statevector",
    precision: str = "double",
    device: str = "CPU",
) -> Estimate:
    """Raise :class:`ResourceError` when the circuits cannot fit in ``mem_gb`` per rank.

    Args:
        circuits: A circuit or several.
        mem_gb: Memory the job asked for per rank, in GiB (``--mem-gb``).
        method: Aer method.
        precision: ``"double"`` or ``"single"``.
        device: ``"CPU"`` or ``"GPU"``.

    Returns:
        The :class:`Estimate` when it fits.

    Raises:
        ResourceError: With the estimate and what to change, when it does not fit.
    """
    est = estimate_for_circuits(circuits, method, precision, device)
    if est.bytes <= mem_gb * GIB:
        return est
    need = math.ceil(est.gib)
    hints = [f"ask for --mem-gb >= {need}"]
    if precision == "double" and method in _STATE_EXPONENT:
        single = estimate_for_circuits(circuits, method, "single", device)
        fits = "" if single.bytes <= mem_gb * GIB else f" (still {math.ceil(single.gib)} GiB)"
        hints.append(f"use precision='single'{fits}")
    if method != "matrix_product_state":
        hints.append("or method='matrix_product_state'")
    raise ResourceError(
        f"a {est.num_qubits}-qubit {method} needs {est.state_bytes / GIB:.1f} GiB "
        f"({precision} precision; {est.gib:.1f} GiB with simulator overhead), "
        f"the job asked for {mem_gb:g} GiB per rank; " + ", ".join(hints)
    )


__all__ = [
    "BASE_BYTES",
    "GIB",
    "OVERHEAD_FACTOR",
    "Activity",
    "Estimate",
    "active_qubits",
    "active_width",
    "check_fits",
    "estimate_for_circuits",
    "estimate_memory_bytes",
    "state_bytes",
]
