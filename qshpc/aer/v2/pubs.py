"""PUBs as work: coerced and checked on rank 0, flattened, cut into blocks, reassembled.

Everything a bad PUB can be blamed for is raised here, before any task runs,
as a :class:`PubError` (a ``ValueError`` and a ``TypeError``, as Qiskit's own
coercion raises, and a qshpc ``UserError``): Qiskit's words where Qiskit has
them, prefixed with the PUB's index.

A sampler PUB is flattened to ``values`` of shape ``(size, num_parameters)``
(row ``r`` is the ``r``-th element of its broadcast shape in C order); an
estimator PUB to its parameter rows plus, for each element of the broadcast
shape, the parameter row and observable it pairs.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from qshpc.aer.circuits import (
    aer_runnable,
    prepare_exact,
    sendable,
    unstorable_metadata,
    without_idle_reads,
)
from qshpc.errors import UserError

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]


class PubError(UserError, ValueError, TypeError):
    """A PUB that cannot run: raised before any task starts."""


@dataclass
class SamplerWork:
    """One sampler PUB, flattened.

    Attributes:
        index: The PUB's index in the run.
        circuit: Its circuit.
        values: ``(size, num_parameters)`` parameter values in ``circuit.parameters`` order.
        shape: The PUB's shape.
        shots: Shots per row.
        runnable: ``circuit`` unshadowed (:func:`qshpc.aer.circuits.aer_runnable`), for
            analyses on this process (``prepare_exact(runnable, unshadowed=True)``).
    """

    index: int
    circuit: QuantumCircuit
    values: np.ndarray
    shape: tuple[int, ...]
    shots: int
    runnable: QuantumCircuit = field(repr=False)

    @property
    def size(self) -> int:
        """Rows (elements of the shape)."""
        return len(self.values)


@dataclass
class EstimatorWork:
    """One estimator PUB, flattened.

    Attributes:
        index: The PUB's index in the run.
        circuit: Its circuit.
        values: ``(rows, num_parameters)``: the parameter rows, flattened.
        shape: The broadcast shape of parameters and observables.
        observables: The observables array flattened: labels and coefficients of each.
        elem_row: For each element of ``shape`` (C order), its parameter row.
        elem_obs: For each element, its observable.
        precision: The PUB's target precision.
        pshape: The shape of the parameter values.
        oshape: The shape of the observables array.
        given: The observables as given (``observables`` are them read on the state after
            the final measurements, see :func:`_dephased`); what ``mode=`` stores, since
            an observable all of whose terms a measurement zeroes is no ``ObservablesArray``.
        aer_noise: Draw the ``precision`` noise as Aer's EstimatorV2 does
            (``default_rng(seed).normal(evs, precision)`` per PUB): set when the seed is
            Aer's ``run_options["seed_simulator"]``, so the values equal Aer's.
    """

    index: int
    circuit: QuantumCircuit
    values: np.ndarray
    shape: tuple[int, ...]
    observables: list[tuple[list[str], np.ndarray]]
    elem_row: np.ndarray
    elem_obs: np.ndarray
    precision: float
    pshape: tuple[int, ...] = ()
    oshape: tuple[int, ...] = ()
    given: list[tuple[list[str], np.ndarray]] | None = None
    aer_noise: bool = False
    _order: np.ndarray | None = field(default=None, repr=False)

    @property
    def rows(self) -> int:
        """Parameter rows."""
        return len(self.values)

    def elements_of(self, start: int, stop: int) -> np.ndarray:
        """Indices (into the flattened shape) of the elements of rows ``start .. stop - 1``."""
        if self._order is None:
            self._order = np.argsort(self.elem_row, kind="stable")
        ordered = self.elem_row[self._order]
        lo, hi = np.searchsorted(ordered, [start, stop])
        picked: np.ndarray = np.sort(self._order[lo:hi])
        return picked


def _coerce_all(kind: str, pubs: Any, coerce: Any) -> list[Any]:
    try:
        items = [] if isinstance(pubs, (str, bytes)) else list(pubs)
    except TypeError:
        items = None
    if items is None or isinstance(pubs, (str, bytes)):
        raise PubError(
            f"{kind}.run takes an iterable of PUBs, got {type(pubs).__name__}: "
            f"wrap a single PUB in a list, like run([pub])"
        )
    out = []
    for i, pub in enumerate(items):
        try:
            out.append(coerce(pub))
        except (ValueError, TypeError) as exc:
            hint = _layout_hint(pub, exc)
            text = f"{str(exc).rstrip('.')}{hint}" if hint else str(exc)
            raise PubError(f"PUB {i}: {text}") from exc
    return out


def _layout_hint(pub: Any, exc: Exception) -> str:
    """The fix when observables on the circuit's own qubits meet a transpiled circuit.

    ``transpile(qc, backend=...)`` widens the circuit to the backend's qubits and
    records a layout; an observable written for ``qc`` must be mapped with
    ``observable.apply_layout(isa.layout)`` (Qiskit's message names the widths only).
    """
    if "does not match the number of qubits of the" not in str(exc):
        return ""
    circuit = getattr(pub, "circuit", None)
    if circuit is None and isinstance(pub, (tuple, list)) and pub:
        circuit = pub[0]
    layout = getattr(circuit, "layout", None)
    if layout is None:
        return ""
    return (
        "; the circuit was transpiled onto a backend's qubits (it has a layout): map each "
        "observable onto them with observable.apply_layout(circuit.layout)"
    )


def sampler_work(pubs: Any, shots: int, noisy: bool = False) -> list[SamplerWork]:
    """Coerce sampler PUBs (``SamplerPub.coerce``) and check them.

    Measurements of qubits nothing else acts on (``measure_all()`` after transpiling
    onto a device) are dropped: their clbits read 0, as they would
    (:func:`qshpc.aer.circuits.without_idle_reads`); not when ``noisy`` (a readout
    error reads 1 off ``|0>`` too).

    Raises:
        PubError: A PUB Qiskit refuses (a circuit without classical registers gets
            Qiskit's UserWarning and an empty ``DataBin``, as with Aer's SamplerV2).
    """
    from qiskit.primitives.containers.sampler_pub import SamplerPub  # type: ignore[import-untyped]

    coerced = _coerce_all("SamplerV2", pubs, lambda p: SamplerPub.coerce(p, shots))
    work = []
    sendable_form: dict[int, QuantumCircuit] = {}  # one copy per circuit object of the call
    for i, pub in enumerate(coerced):
        circuit = sendable_form.get(id(pub.circuit))
        if circuit is None:
            circuit = _without_annotated_boxes(pub.circuit)
            if not noisy:
                circuit = without_idle_reads(circuit)
            sendable_form[id(pub.circuit)] = circuit
        if len(circuit.cregs) == 0:  # Qiskit's and Aer's samplers warn and give DataBin()
            warnings.warn(
                f"The {i}-th pub's circuit has no output classical registers and so the "
                "result will be empty. Did you mean to add measurement instructions?",
                UserWarning,
                stacklevel=3,  # the caller of SamplerV2.run
            )
        runnable = _check_runnable(circuit, i)
        _check_register_names(circuit, i)
        values = _flat_values(pub.parameter_values, circuit, i)
        work.append(SamplerWork(i, circuit, values, tuple(pub.shape), int(pub.shots), runnable))
    return work


def estimator_work(pubs: Any, precision: float) -> list[EstimatorWork]:
    """Coerce estimator PUBs (``EstimatorPub.coerce``) and check them.

    Raises:
        PubError: A PUB Qiskit refuses, or a circuit with mid-circuit measurements,
            resets or classical control.
    """
    from qiskit.primitives.containers.estimator_pub import EstimatorPub  # type: ignore[import-untyped]

    coerced = _coerce_all("EstimatorV2", pubs, lambda p: EstimatorPub.coerce(p, precision))
    work = []
    sendable_form: dict[int, QuantumCircuit] = {}  # one copy per circuit object of the call
    for i, pub in enumerate(coerced):
        circuit = sendable_form.get(id(pub.circuit))
        if circuit is None:
            circuit = _without_idle_resets(_without_annotated_boxes(pub.circuit))
            sendable_form[id(pub.circuit)] = circuit
        if not math.isfinite(pub.precision):  # Qiskit's check (>= 0) lets NaN and infinity by
            raise PubError(
                f"PUB {i}: precision must be a finite non-negative number, got {pub.precision} "
                "(the values would be NaN or infinite)"
            )
        runnable = _check_runnable(circuit, i)
        plan = prepare_exact(runnable, unshadowed=True)
        if not plan.exact:
            raise PubError(
                f"PUB {i}: expectation values need the circuit's final state, but {plan.reason}; "
                "remove it (final measurements are fine: the qubits they measure are read "
                "as collapsed, as Aer's EstimatorV2 reads them)"
            )
        measured = _measured_qubits(runnable)
        values = _flat_values(pub.parameter_values, circuit, i)
        shape = tuple(pub.shape)
        pshape = tuple(pub.parameter_values.shape)
        oshape = tuple(pub.observables.shape)
        elem_row = _broadcast_index(pshape, shape)
        elem_obs = _broadcast_index(oshape, shape)
        given = [_terms(obs, circuit.num_qubits) for obs in _flat_observables(pub.observables)]
        observables = [_dephased(terms, measured) for terms in given]
        work.append(
            EstimatorWork(
                i,
                circuit,
                values,
                shape,
                observables,
                elem_row,
                elem_obs,
                float(pub.precision),
                pshape,
                oshape,
                given,
            )
        )
    return work


def _without_annotated_boxes(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` with its boxes opened when one carries annotations, else ``circuit``.

    The circuit travels as QPY (to the workers, into a ``mode=`` job), and QPY cannot
    write an annotation without its serializer (``QpyError: No configured annotation
    serializer could handle ...``, even under plain ``python``). To an ideal simulator
    a box is its body (:func:`qshpc.aer.circuits.unbox`), annotations included.
    """
    from qshpc.aer.circuits import unbox

    if not _has_annotated_box(circuit):
        return circuit
    opened = unbox(circuit)
    opened.metadata = circuit.metadata
    return opened


def _has_annotated_box(circuit: QuantumCircuit) -> bool:
    from qshpc.aer.circuits import CONTROL_FLOW

    if CONTROL_FLOW.isdisjoint(circuit.count_ops()):  # no box anywhere: no Python walk
        return False
    for inst in circuit.data:
        op = inst.operation
        if op.name == "box" and getattr(op, "annotations", None):
            return True
        if any(_has_annotated_box(block) for block in getattr(op, "blocks", ())):
            return True
    return False


def _without_idle_resets(circuit: QuantumCircuit) -> QuantumCircuit:
    """``circuit`` without the resets of qubits that no earlier operation acted on.

    Such a reset (``qc.reset(range(n))`` opening a circuit, as written for devices)
    leaves the qubit in ``|0>``, where it already is: it is no operation, and Aer's
    EstimatorV2 and ``StatevectorEstimator`` give the exact values. A reset after
    other operations on its qubit stays (the final state is then a mixture: refused).
    """
    from qiskit.circuit import Reset  # type: ignore[import-untyped]

    if "reset" not in circuit.count_ops():
        return circuit
    used: set[Any] = set()
    idle: list[int] = []
    for pos, inst in enumerate(circuit.data):
        if isinstance(inst.operation, Reset) and inst.qubits[0] not in used:
            idle.append(pos)
        elif inst.operation.name not in ("barrier", "delay"):
            used.update(inst.qubits)
    if not idle:
        return circuit
    out = circuit.copy()
    for pos in reversed(idle):  # last first, so earlier positions stay valid
        del out.data[pos]
    return out


def _check_runnable(circuit: QuantumCircuit, index: int) -> QuantumCircuit:
    """``circuit`` unshadowed (:func:`qshpc.aer.circuits.aer_runnable`), or a PubError."""
    runnable, reason = aer_runnable(circuit)
    if reason is not None:
        raise PubError(f"PUB {index}: circuit {circuit.name!r} cannot run on Aer: {reason}")
    return runnable


def _check_register_names(circuit: QuantumCircuit, index: int) -> None:
    """Refuse registers that cannot be fields of the result's ``DataBin`` (``shape``, ``keys``...).

    Qiskit's samplers fail on them too, but after every shot was drawn; here nothing has run.
    """
    from qiskit.primitives.containers import DataBin  # type: ignore[import-untyped]

    bad: list[str] = []
    why: list[str] = []
    for creg in circuit.cregs:
        try:
            DataBin(**{creg.name: None}, shape=())
        except (TypeError, ValueError) as exc:
            bad.append(creg.name)
            why.append(str(exc))
    if len(bad) == 1:
        raise PubError(
            f"PUB {index}: the classical register {bad[0]!r} cannot be a field of the "
            f"result's DataBin ({why[0]}); rename the register"
        )
    if bad:  # every one, as Qiskit lists them: one rename each, not one run each
        raise PubError(
            f"PUB {index}: the classical registers {', '.join(map(repr, bad))} cannot be "
            f"fields of the result's DataBin (cannot assign with these field names: {bad}); "
            "rename the registers"
        )


def _flat_values(bindings: Any, circuit: QuantumCircuit, index: int) -> np.ndarray:
    size = int(math.prod(bindings.shape))
    params = list(circuit.parameters)
    if not params:
        return np.zeros((size, 0))
    flat: np.ndarray = np.asarray(bindings.as_array(params), dtype=float).reshape(size, len(params))
    bad = ~np.isfinite(flat)
    if bad.any():  # Aer binds NaN without a word and returns counts of a made-up state
        row, col = (int(x) for x in np.argwhere(bad)[0])
        where = np.unravel_index(row, tuple(bindings.shape)) if bindings.shape else ()
        raise PubError(
            f"PUB {index}: parameter {params[col].name} is {flat[row, col]} at index "
            f"{tuple(int(w) for w in where)} of the parameter values ({int(bad.sum())} value(s) "
            "are NaN or infinite): Qiskit refuses to bind them; give finite values"
        )
    return flat


def _broadcast_index(shape: tuple[int, ...], full: tuple[int, ...]) -> np.ndarray:
    size = int(math.prod(shape))
    index = np.arange(size, dtype=np.int64).reshape(shape)
    out: np.ndarray = np.broadcast_to(index, full).ravel().copy()
    return out


def _flat_observables(observables: Any) -> list[Any]:
    """The elements of an ``ObservablesArray`` in C order (``SparseObservable``s when available)."""
    if hasattr(observables, "sparse_observables_array"):
        return list(observables.sparse_observables_array().ravel())
    flat = observables.ravel()
    return [flat[i] for i in range(flat.size)]


def _terms(observable: Any, num_qubits: int) -> tuple[list[str], np.ndarray]:
    """Pauli labels and real coefficients of an ``ObservablesArray`` element.

    Projector terms (``0``, ``1``, ``+``, ``-``, ``r``, ``l``) are expanded into Paulis.
    """
    sparse = observable
    if not hasattr(sparse, "as_paulis"):  # a dict {label: coeff} (Qiskit < 2.1)
        labels = [str(k) for k in sparse]
        return labels, np.array([float(np.real(v)) for v in sparse.values()])
    paulis = sparse.as_paulis().simplify()
    labels = []
    coeffs: list[float] = []
    for text, qubits, coeff in paulis.to_sparse_list():
        chars = ["I"] * num_qubits
        for letter, q in zip(text, qubits, strict=True):
            chars[num_qubits - 1 - q] = letter
        labels.append("".join(chars))
        coeffs.append(float(np.real(coeff)))
    if not labels:  # the zero observable
        return ["I" * num_qubits], np.zeros(1)
    return labels, np.array(coeffs)


def _measured_qubits(circuit: QuantumCircuit) -> list[int]:
    """Indices of the qubits a (final) measurement of ``circuit`` reads, boxes opened."""
    from qshpc.aer.circuits import unbox

    ops = circuit.count_ops()
    if "measure" not in ops and "box" not in ops:
        return []
    opened = unbox(circuit)
    index = {q: i for i, q in enumerate(opened.qubits)}
    return sorted(
        {index[inst.qubits[0]] for inst in opened.data if inst.operation.name == "measure"}
    )


def _dephased(
    terms: tuple[list[str], np.ndarray], measured: Sequence[int]
) -> tuple[list[str], np.ndarray]:
    """The terms' values on the state after the final measurements of ``measured`` qubits.

    A measurement collapses its qubit: the state that follows is the mixture of the
    outcomes, on which a Pauli with X or Y on a measured qubit reads 0 and one with
    I or Z there reads as before. Aer's EstimatorV2 saves the expectation values after
    the measurements (averaged over its shots: ``<ZI>`` of a measured Bell pair comes back
    as about 0.002, ``<XX>`` as 0.0); these are the exact values its shots estimate.
    ``StatevectorEstimator`` refuses such circuits.
    """
    labels, coeffs = terms
    if not measured:
        return terms
    width = len(labels[0]) if labels else 0
    at = [width - 1 - q for q in measured]
    keep = [j for j, lb in enumerate(labels) if all(lb[a] in "IZ" for a in at)]
    if len(keep) == len(labels):
        return terms
    if not keep:
        return ["I" * width], np.zeros(1)
    return [labels[j] for j in keep], coeffs[keep]


def cut(
    sizes: Sequence[int],
    workers: int,
    per_block: int | None = None,
    caps: Sequence[int] | None = None,
) -> list[tuple[int, int, int]]:
    """Blocks ``(pub, start, stop)`` of rows: one per PUB, large PUBs cut so every worker gets work.

    Args:
        sizes: Rows of each PUB.
        workers: Worker ranks (0: one block per PUB, run here).
        per_block: The most rows in a block (None: the total over 4 blocks per worker).
        caps: Per PUB, the most rows a block may hold (memory), or None.
    """
    total = sum(sizes)
    if per_block is None:
        per_block = max(1, -(-total // (4 * workers))) if workers > 0 else max(1, total)
    blocks = []
    for pub, size in enumerate(sizes):
        most = min(per_block, caps[pub]) if caps is not None else per_block
        if size <= most:
            blocks.append((pub, 0, size))
            continue
        count = -(-size // most)
        bounds = [size * k // count for k in range(count + 1)]
        blocks.extend((pub, lo, hi) for lo, hi in itertools.pairwise(bounds))
    return blocks


def memory_cap(measured_qubits: int, budget_doubles: int = 1 << 24) -> int:
    """The most rows whose exact marginals (``2**measured`` doubles each) fit ``budget_doubles``."""
    return max(1, budget_doubles >> max(0, measured_qubits))


__all__ = [
    "EstimatorWork",
    "PubError",
    "SamplerWork",
    "cut",
    "estimator_work",
    "memory_cap",
    "sampler_work",
    "sendable",
    "unstorable_metadata",
]
