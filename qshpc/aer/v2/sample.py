"""SamplerV2 kernel: the shots of a block of parameter rows, packed per classical register.

When the circuit's measurements are all final (and at most ``SAMPLE_MAX_QUBITS``
qubits are measured, without a noise model), Aer computes the exact marginal
over the measured qubits once per row (``save_probabilities``, every row of
the block bound in one experiment, shared with other tasks' runs in a
cooperative group) and the shots are drawn here from the PUB's counter-based
stream (:mod:`qshpc.aer.v2.seeds`): no per-shot work in Aer, no bitstrings in
Python. Other circuits are sampled by Aer with ``memory=True`` and the row's
``seed_simulator``.

The output for a block of ``k`` rows is, per register, a ``uint8`` array of
shape ``(k, shots, num_bytes)`` laid out as Qiskit's ``BitArray`` (big-endian
bytes, clbit 0 the least significant bit of the last byte).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from qshpc.aer.engine import bind_dict, run_aer, run_exact
from qshpc.aer.provenance import record_run
from qshpc.aer.v2 import seeds
from qshpc.task.coop import seconds_for_others

if TYPE_CHECKING:
    from qshpc.aer.v2.prepared import Prepared

#: The exact marginal of each of some rows (parameter values, one row each).
Marginals = Callable[[np.ndarray], list[np.ndarray]]

#: Marginal doubles held at once by one Aer run of a block (rows are run in chunks).
MAX_PROBABILITY_DOUBLES = 1 << 24  # 128 MiB


def sample_block(
    prepared: Prepared,
    values: np.ndarray,
    shots: int,
    seed: int,
    pub: int,
    start: int,
    run_options: dict[str, Any] | None = None,
    noisy: bool = False,
    draw: Callable[[], list[np.ndarray]] | None = None,
    path: str | None = None,
) -> list[np.ndarray]:
    """Sample rows ``start .. start + len(values) - 1`` of PUB ``pub``.

    Args:
        prepared: The PUB's circuit on this rank.
        values: Parameter values, shape ``(k, num_parameters)`` in ``circuit.parameters`` order.
        shots: Shots per row.
        seed: The run's seed.
        pub: The PUB's index in the run.
        start: The index of the block's first row in the PUB (flattened).
        run_options: Extra Aer run options (a noise model, say).
        noisy: True when the options change the distribution (Aer samples then).
        draw: What gives the shots instead of this rank's Aer (a distributed run's:
            :mod:`qshpc.aer.v2.split`).
        path: What to record as the way the shots were drawn (provenance).

    Returns:
        Per register of ``prepared.registers``, ``uint8`` of shape ``(k, shots, num_bytes)``.
    """
    begin = time.perf_counter()
    not_ours = seconds_for_others()
    if draw is not None:
        out = draw()
    elif prepared.exact_sampling and not noisy:
        out = _from_marginals(prepared, values, shots, seed, pub, start, run_options)
        path = path or "marginal"
    else:
        out = _from_aer(prepared, values, shots, seed, pub, start, run_options)
        path = path or "aer"
    record_run(
        seed=seed,
        simulator=prepared.spec.as_dict(),
        circuit_hashes=[prepared.key],
        wall_s=time.perf_counter() - begin - (seconds_for_others() - not_ours),
        shots=shots,
        primitive=f"SamplerV2 ({path})",
    )
    return out


def _from_marginals(
    prepared: Prepared,
    values: np.ndarray,
    shots: int,
    seed: int,
    pub: int,
    start: int,
    run_options: dict[str, Any] | None,
) -> list[np.ndarray]:
    if not prepared.plan.qubits or not len(values):
        return draw_from_marginals(prepared, values, shots, seed, pub, start, lambda v: [])
    experiment, same = prepared.probabilities_experiment()
    return draw_from_marginals(
        prepared,
        values,
        shots,
        seed,
        pub,
        start,
        lambda rows: _marginals(prepared, experiment, same, rows, run_options),
    )


def draw_from_marginals(
    prepared: Prepared,
    values: np.ndarray,
    shots: int,
    seed: int,
    pub: int,
    start: int,
    marginals: Marginals,
) -> list[np.ndarray]:
    """Draw each row's shots from its exact marginal (``marginals(rows)``, one array per row)
    with the PUB's counter-based stream: the same shots wherever the marginals were computed."""
    rows = len(values)
    regs = prepared.registers
    out = [np.zeros((rows, shots, r.num_bytes), dtype=np.uint8) for r in regs]
    m = len(prepared.plan.qubits)
    if m == 0 or rows == 0:  # nothing measured: every register reads 0
        return out
    tables = prepared.tables()
    chunk = max(1, MAX_PROBABILITY_DOUBLES >> m)
    for lo in range(0, rows, chunk):
        hi = min(rows, lo + chunk)
        probs = marginals(values[lo:hi])
        draws = seeds.uniforms(seed, pub, seeds.SHOTS, (start + lo) * shots, (hi - lo) * shots)
        draws = draws.reshape(hi - lo, shots)
        outcomes = np.empty((hi - lo, shots), dtype=np.int64)
        last = (1 << m) - 1
        for i in range(hi - lo):
            cdf = np.cumsum(probs[i])
            found = np.searchsorted(cdf, draws[i] * cdf[-1], side="right")
            np.minimum(found, last, out=outcomes[i])
        for arr, table in zip(out, tables, strict=True):
            arr[lo:hi] = table[outcomes]
    return out


def _marginals(
    prepared: Prepared,
    experiment: Any,
    same: tuple[Any, ...],
    values: np.ndarray,
    run_options: dict[str, Any] | None,
) -> list[np.ndarray]:
    """The exact marginal of each row (one Aer experiment binds every row)."""
    rows = len(values)
    bind = bind_dict(prepared.circuit, experiment, values.tolist()) if experiment.parameters else {}
    outputs = rows if bind else 1
    data, _ = run_exact(prepared.spec, [experiment], [bind], outputs, run_options, [same])
    if len(data) != outputs or any("probabilities" not in d for d in data):
        raise RuntimeError(
            f"Aer returned {len(data)} results for {outputs} rows of circuit "
            f"{prepared.circuit.name!r}: a parameter it did not bind?"
        )
    probs = [np.asarray(d["probabilities"], dtype=float) for d in data]
    return probs if bind else probs * rows


def _from_aer(
    prepared: Prepared,
    values: np.ndarray,
    shots: int,
    seed: int,
    pub: int,
    start: int,
    run_options: dict[str, Any] | None,
) -> list[np.ndarray]:
    """Aer samples every row itself (``memory=True``), seeded per row."""
    rows = len(values)
    regs = prepared.registers
    out = [np.zeros((rows, shots, r.num_bytes), dtype=np.uint8) for r in regs]
    if rows == 0:
        return out
    full = prepared.full()
    bind = bind_dict(prepared.circuit, full, values.tolist()) if full.parameters else {}
    options = {**(run_options or {}), "memory": True}
    # Aer seeds experiment i of a run as seed + 2113*i: row r gets aer_seed(seed, pub, r).
    first = seeds.aer_seed(seed, pub, start)
    if bind:
        result = run_aer(prepared.spec, [full], shots, first, [bind], options)
    else:
        result = run_aer(prepared.spec, [full] * rows, shots, first, [{}] * rows, options)
    return pack_memories(
        prepared, [result.data(i).get("memory", ["0x0"] * shots) for i in range(rows)], shots
    )


def pack_memories(prepared: Prepared, memories: list[list[str]], shots: int) -> list[np.ndarray]:
    """Per register, ``uint8 (rows, shots, bytes)`` from Aer's hex memory of each row."""
    regs = prepared.registers
    out = [np.zeros((len(memories), shots, r.num_bytes), dtype=np.uint8) for r in regs]
    for i, memory in enumerate(memories):
        values_i = _memory_values(memory, prepared.circuit.num_clbits)
        for arr, reg in zip(out, regs, strict=True):
            arr[i] = _pack(values_i, reg.clbits, reg.num_bytes)
    return out


def _memory_values(memory: list[str], num_clbits: int) -> list[int] | np.ndarray:
    """Aer's hex memory as ints (an int64 array when the clbits fit)."""
    if num_clbits <= 62:
        return np.array([int(h, 16) for h in memory], dtype=np.int64)
    return [int(h, 16) for h in memory]


def _pack(values: list[int] | np.ndarray, clbits: tuple[int, ...], num_bytes: int) -> np.ndarray:
    """Packed bits of one register from whole-memory integers (one row of shots)."""
    width = num_bytes * 8
    bits = np.zeros((len(values), width), dtype=np.uint8)
    for j, clbit in enumerate(clbits):
        if isinstance(values, np.ndarray):
            bits[:, width - 1 - j] = (values >> clbit) & 1
        else:
            bits[:, width - 1 - j] = [(v >> clbit) & 1 for v in values]
    packed: np.ndarray = np.packbits(bits, axis=1)
    return packed


__all__ = [
    "MAX_PROBABILITY_DOUBLES",
    "Marginals",
    "draw_from_marginals",
    "pack_memories",
    "sample_block",
]
