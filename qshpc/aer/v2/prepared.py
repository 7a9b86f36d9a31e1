"""One analysed circuit per rank and key: final measurements, ISA form, packing tables.

A PUB's circuit reaches a worker as QPY bytes with their SHA-256 (its key).
The first block of that circuit on a rank loads it, splits off its final
measurements (:func:`qshpc.aer.circuits.prepare_exact`), transpiles it with
this rank's cached pass manager when it is not already ISA for Aer, and builds
the tables that turn a measured outcome into packed bits per classical
register. Later blocks on the rank reuse all of it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from qshpc.aer.binding import bindable
from qshpc.aer.circuits import ExactPlan, prepare_exact, unbox
from qshpc.aer.engine import NO_PROBABILITIES, physical_qubits
from qshpc.aer.isa import basis, is_isa
from qshpc.aer.isa import reset_caches as _reset_isa
from qshpc.aer.sampling import SAMPLE_MAX_QUBITS
from qshpc.aer.shadowed import unshadow
from qshpc.aer.simulator import SimSpec, check_width, transpile_for

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

_CACHE_SIZE = 64

_lock = threading.Lock()
_cache: OrderedDict[tuple[SimSpec, int, str], Prepared] = OrderedDict()


def key_of(qpy: bytes) -> str:
    """The key of a circuit: SHA-256 of its QPY bytes."""
    return hashlib.sha256(qpy).hexdigest()


@dataclass(frozen=True)
class Register:
    """A classical register of the circuit and where its bits come from.

    Attributes:
        name: The register's name (the ``DataBin`` field).
        num_bits: Its size.
        clbits: Index in ``circuit.clbits`` of each of its bits (bit 0 first).
        sources: For each bit, the position in the exact marginal of the qubit
            measured into it last, or -1 (no final measurement writes it: 0).
    """

    name: str
    num_bits: int
    clbits: tuple[int, ...]
    sources: tuple[int, ...]

    @property
    def num_bytes(self) -> int:
        """Bytes per shot in a ``BitArray`` of this register."""
        return (self.num_bits + 7) // 8


@dataclass
class Prepared:
    """A circuit analysed for this rank's simulator.

    Attributes:
        key: SHA-256 of the circuit's QPY.
        circuit: The circuit as the user gave it.
        plan: Its final measurements split off (see ``prepare_exact``).
        registers: Its classical registers, in circuit order.
        spec: This rank's simulator spec.
        level: Preset pass manager level for circuits that are not ISA.
        isa: True when Aer runs ``runnable`` as it is.
        runnable: ``circuit`` with custom operations named like standard gates
            replaced by their definitions (:func:`qshpc.aer.shadowed.unshadow`;
            ``circuit`` itself when it has none).
    """

    key: str
    circuit: QuantumCircuit
    plan: ExactPlan
    registers: tuple[Register, ...]
    spec: SimSpec
    level: int
    isa: bool
    runnable: QuantumCircuit
    _parts: dict[str, Any] = field(default_factory=dict)
    _lock: Any = field(default_factory=threading.RLock)

    @property
    def exact_sampling(self) -> bool:
        """True when shots can be drawn from the exact marginal of the final state.

        Not with Aer's ``extended_stabilizer`` method: it saves no probabilities (Aer's
        SamplerV2 samples it, so does qshpc's: each shot from Aer).
        """
        return (
            self.plan.exact
            and len(self.plan.qubits) <= SAMPLE_MAX_QUBITS
            and self.spec.method not in NO_PROBABILITIES
        )

    def body(self) -> QuantumCircuit:
        """The circuit without final measurements, in the form Aer runs (shared: copy to change)."""
        return self._part("body", self._make_body)

    def probabilities_experiment(self) -> tuple[QuantumCircuit, tuple[Any, ...]]:
        """The body with ``save_probabilities`` of the measured qubits, and its merge key."""
        return self._part("probs", self._make_probs)  # type: ignore[no-any-return]

    def full(self) -> QuantumCircuit:
        """The whole circuit (measurements kept) in the form Aer runs."""
        return self._part("full", self._make_full)

    def tables(self) -> list[np.ndarray]:
        """Per register, packed bits (``2**m`` rows, ``num_bytes`` columns) of each marginal index."""
        return self._part("tables", self._make_tables)  # type: ignore[no-any-return]

    def physical(self, transpiled: QuantumCircuit, virtual: Any) -> list[int]:
        """Positions in ``transpiled`` (a form from :meth:`body`) of the input circuit's qubits
        ``virtual``.

        An ISA circuit runs as it is: its qubits are the positions, whatever ``layout``
        it carries (a user's transpile onto a device's coupling map leaves one; Qiskit's
        and Aer's primitives read the circuit's qubits as they are, and so do we). Only
        a circuit this rank transpiled is mapped through the layout its transpile made.
        """
        if self.isa:
            return list(virtual)
        return physical_qubits(transpiled, list(virtual))

    def _part(self, name: str, make: Any) -> Any:
        with self._lock:
            value = self._parts.get(name)
            if value is None:
                value = self._parts[name] = make()
            return value

    def _isa_form(self, circuit: QuantumCircuit, suffix: str) -> QuantumCircuit:
        if self.isa:
            check_width([circuit], self.spec)
            return bindable(circuit)
        return transpile_for([circuit], self.spec, self.level, [f"{self.key}:{suffix}"])[0]

    def _make_body(self) -> QuantumCircuit:
        body = self.plan.circuit
        if body is None:
            raise ValueError(
                f"circuit {self.circuit.name!r} has no unitary body: {self.plan.reason}"
            )
        return self._isa_form(body, "body")

    def _make_probs(self) -> tuple[QuantumCircuit, tuple[Any, ...]]:
        from qiskit_aer.library import SaveProbabilities

        experiment = self.body().copy()
        qubits = self.physical(experiment, self.plan.qubits)
        experiment.append(SaveProbabilities(len(qubits)), [experiment.qubits[q] for q in qubits])
        return experiment, (self.key, self.level, "v2-probabilities", tuple(qubits))

    def _make_full(self) -> QuantumCircuit:
        return self._isa_form(self.runnable, "full")

    def _make_tables(self) -> list[np.ndarray]:
        m = len(self.plan.qubits)
        index = np.arange(1 << m, dtype=np.int64)
        tables = []
        for reg in self.registers:
            width = reg.num_bytes * 8
            bits = np.zeros((index.size, width), dtype=np.uint8)
            for j, source in enumerate(reg.sources):
                if source >= 0:
                    bits[:, width - 1 - j] = (index >> source) & 1
            tables.append(np.packbits(bits, axis=1))
        return tables


def _registers(circuit: QuantumCircuit, plan: ExactPlan) -> tuple[Register, ...]:
    position: dict[int, int] = {}
    for pos, mask in enumerate(plan.clbit_masks):
        clbit = 0
        while mask:
            if mask & 1:
                position[clbit] = pos
            mask >>= 1
            clbit += 1
    out = []
    for creg in circuit.cregs:
        clbits = tuple(circuit.find_bit(bit).index for bit in creg)
        sources = tuple(position.get(c, -1) for c in clbits)
        out.append(Register(creg.name, len(creg), clbits, sources))
    return tuple(out)


def prepare(key: str, circuit: QuantumCircuit | bytes, spec: SimSpec, level: int) -> Prepared:
    """The :class:`Prepared` circuit for ``key`` on this rank (built on first use).

    Args:
        key: The circuit's key (:func:`key_of` its QPY).
        circuit: The circuit, or its QPY bytes (loaded only on a miss; bytes that
            name the circuit they were dumped from, ``.circuit``, are not loaded).
        spec: This rank's simulator spec.
        level: Preset pass manager level for circuits that are not ISA.
    """
    ident = (spec, level, key)
    with _lock:
        hit = _cache.get(ident)
        if hit is not None:
            _cache.move_to_end(ident)
            return hit
    if isinstance(circuit, bytes):
        own = getattr(circuit, "circuit", None)  # the process that dumped them: its circuit
        if own is not None:
            circuit = own
        else:
            from qshpc.store import _qpy

            circuit = _qpy.load(circuit)[0]
            own = None
    else:
        own = circuit
    if own is not None:
        # The caller's object: it may be edited after this run, and the cache must keep
        # what ``key`` says (a later run of the original content hits this entry).
        circuit = own.copy()
    circuit = unbox(circuit)  # Aer runs no box: its body (the same bits)
    runnable = unshadow(circuit)  # Aer runs an operation by its name: not a custom one's
    plan = prepare_exact(runnable, unshadowed=True)
    registers = _registers(circuit, plan)
    isa = is_isa(runnable, spec)
    prepared = Prepared(key, circuit, plan, registers, spec, level, isa, runnable)
    with _lock:
        _cache[ident] = prepared
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return prepared


def reset_caches() -> None:
    """Forget every prepared circuit (for tests)."""
    with _lock:
        _cache.clear()
    _reset_isa()


__all__ = ["Prepared", "Register", "basis", "is_isa", "key_of", "prepare", "reset_caches"]
