"""Random streams of the V2 primitives, keyed so that any cut into blocks draws the same.

Every PUB owns counter-based streams (numpy's ``Philox``), keyed by the run's
seed, the PUB's index and a purpose. Row ``r`` of a PUB sampled with ``S``
shots takes the draws ``r*S`` to ``(r+1)*S - 1`` of the PUB's shot stream, so
its shots depend on the seed, the PUB index and the row index alone: a block
of rows starting at row ``a`` jumps to draw ``a*S`` and reads on. Philox jumps
in O(1), so a block pays one key derivation, not one generator per row.

Circuits that Aer must sample itself (mid-circuit measurements, a noise model)
get Aer's ``seed_simulator``: Aer seeds the experiments of one run as
``seed + 2113*i``, so a block that starts at row ``a`` passes
``base + 2113*a`` and row ``r`` always gets ``base + 2113*r``.
"""

from __future__ import annotations

import numpy as np

#: Purposes: the streams of one PUB never overlap.
SHOTS, NOISE, AER = 1, 2, 3
#: Aer's seed step between the experiments of one run (AerSimulator, 0.13 - 0.18).
AER_SEED_STEP = 2113
_AER_BASE_BITS = 48  # base + 2113 * rows stays far below 2**63


def _key(seed: int, pub: int, purpose: int) -> np.ndarray:
    state: np.ndarray = np.random.SeedSequence([seed, pub, purpose]).generate_state(2, np.uint64)
    return state


def uniforms(seed: int, pub: int, purpose: int, start: int, count: int) -> np.ndarray:
    """Draws ``start`` to ``start + count - 1`` of a PUB's stream, as doubles in [0, 1).

    Args:
        seed: The run's seed (non-negative).
        pub: The PUB's index in the run.
        purpose: :data:`SHOTS` or :data:`NOISE`.
        start: The first draw.
        count: How many.
    """
    bits = np.random.Philox(key=_key(seed, pub, purpose))
    quads, rest = divmod(start, 4)  # Philox jumps in blocks of 4 draws
    if quads:
        bits.advance(quads)
    if rest:
        bits.random_raw(rest)
    out: np.ndarray = np.random.Generator(bits).random(count)
    return out


def aer_seed(seed: int, pub: int, row: int) -> int:
    """``seed_simulator`` for an Aer run whose first experiment is row ``row`` of PUB ``pub``."""
    state = np.random.SeedSequence([seed, pub, AER]).generate_state(1, np.uint64)
    base = int(state[0]) >> (64 - _AER_BASE_BITS)
    return base + AER_SEED_STEP * row


__all__ = ["AER", "AER_SEED_STEP", "NOISE", "SHOTS", "aer_seed", "uniforms"]
