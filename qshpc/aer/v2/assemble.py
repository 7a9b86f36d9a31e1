"""Qiskit's result types from the blocks' outputs (rank 0).

The blocks of a PUB cover its rows exactly once, so reassembly is a copy of
each block into its rows: the result does not depend on the cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qshpc.aer.v2 import seeds
from qshpc.aer.v2.pubs import EstimatorWork, SamplerWork


def sampler_pub_result(
    work: SamplerWork,
    blocks: Sequence[tuple[int, int, list[np.ndarray]]],
    simulator: dict[str, Any] | None = None,
) -> Any:
    """A ``SamplerPubResult``: one ``BitArray`` per classical register, shaped like the PUB.

    Args:
        work: The PUB.
        blocks: ``(start, stop, arrays)`` per block, arrays per register of shape
            ``(stop - start, shots, num_bytes)``.
        simulator: The ``simulator_metadata`` entry (Aer's primitives carry one).
    """
    from qiskit.primitives.containers import (  # type: ignore[import-untyped]
        BitArray,
        DataBin,
        SamplerPubResult,
    )

    cregs = list(work.circuit.cregs)
    if len(blocks) == 1 and blocks[0][0] == 0 and blocks[0][1] == work.size:
        arrays = list(blocks[0][2])
    else:
        arrays = [
            np.zeros((work.size, work.shots, (len(c) + 7) // 8), dtype=np.uint8) for c in cregs
        ]
        for start, stop, parts in blocks:
            for full, part in zip(arrays, parts, strict=True):
                full[start:stop] = part
    meas = {
        creg.name: BitArray(arr.reshape(work.shape + arr.shape[1:]), len(creg))
        for creg, arr in zip(cregs, arrays, strict=True)
    }
    return SamplerPubResult(
        DataBin(**meas, shape=work.shape),
        metadata={
            "shots": work.shots,
            "circuit_metadata": work.circuit.metadata,
            "simulator_metadata": dict(simulator or {}),
        },
    )


def estimator_pub_result(
    work: EstimatorWork,
    blocks: Sequence[tuple[np.ndarray, np.ndarray]],
    seed: int,
    simulator: dict[str, Any] | None = None,
) -> Any:
    """A ``PubResult`` with ``evs`` and ``stds`` shaped like the PUB's broadcast shape.

    With ``precision > 0`` each value gets normal noise of that standard deviation
    (as Aer's EstimatorV2 documents: ``N(ev, precision)``) drawn from the PUB's
    noise stream at the element's flat index, and ``stds`` is ``precision``; with
    ``work.aer_noise`` (the seed is Aer's ``seed_simulator``) the noise is Aer's
    EstimatorV2's own draws, ``default_rng(seed).normal(evs, precision)``.

    Args:
        work: The PUB.
        blocks: ``(element indices, values)`` per block.
        seed: The run's seed.
        simulator: The ``simulator_metadata`` entry (Aer's primitives carry one).
    """
    from qiskit.primitives.containers import DataBin, PubResult

    size = len(work.elem_row)
    evs = np.zeros(size)
    for elements, values in blocks:
        evs[elements] = values
    if work.precision > 0 and work.aer_noise:  # Aer's draws: its values, to the last bit
        drawn = np.random.default_rng(seed).normal(evs.reshape(work.shape), work.precision)
        evs = np.asarray(drawn, dtype=float)  # a float for a PUB of shape ()
    elif work.precision > 0:
        from scipy.special import ndtri  # type: ignore[import-untyped]

        u = seeds.uniforms(seed, work.index, seeds.NOISE, 0, size)
        evs = evs + work.precision * ndtri(np.clip(u, 2.0**-60, None))
    shaped = evs.reshape(work.shape)
    stds = np.full(work.shape, work.precision)
    return PubResult(
        DataBin(evs=shaped, stds=stds, shape=work.shape),
        metadata={
            "target_precision": work.precision,
            "circuit_metadata": work.circuit.metadata,
            "simulator_metadata": dict(simulator or {}),
        },
    )


def simulator_metadata(
    method: str, precision: str, device: str | None, noisy: bool, blocks: int
) -> dict[str, Any]:
    """A PUB result's ``simulator_metadata``: how it was simulated, in JSON types.

    Aer's primitives put the metadata of their one Aer run there (timings, memory);
    a qshpc PUB ran as ``blocks`` tasks on the ranks (their timings are in
    ``qshpc status``/``qshpc report``), so this holds the simulator each of them built.
    """
    out: dict[str, Any] = {"method": method, "precision": precision, "blocks": blocks}
    if device is not None:
        out["device"] = device
    if noisy:
        out["noise"] = True
    return out


def primitive_result(pub_results: list[Any], seed: int) -> Any:
    """A ``PrimitiveResult`` with ``metadata = {"version": 2, "seed": seed}``."""
    from qiskit.primitives.containers import PrimitiveResult

    return PrimitiveResult(pub_results, metadata={"version": 2, "seed": seed})


__all__ = [
    "estimator_pub_result",
    "primitive_result",
    "sampler_pub_result",
    "simulator_metadata",
]
