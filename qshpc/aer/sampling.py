"""Shots drawn from exact probabilities, seeded per experiment.

When a sampled circuit's measurements are all final, its outcome distribution
is the marginal of the final state over the measured qubits. Drawing the shots
here from that marginal (numpy, seeded by the run's seed and the experiment's
position in the call) rather than inside Aer makes a task's counts depend on
its own seed only: Aer seeds the experiments of one run as ``seed + 2113 * i``,
so the same circuit would draw differently alone and in a shared run. It also
lets the simulations of many tasks share one Aer run (:mod:`qshpc.task.coop`).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import numpy as np

from qshpc.aer.circuits import register_keys

if TYPE_CHECKING:
    from qshpc.aer.circuits import ExactPlan

#: Measured qubits up to which shots are drawn from the marginal here (a
#: marginal of 2**20 doubles is 8 MiB); wider ones are sampled by Aer.
SAMPLE_MAX_QUBITS = 20


def draw_seed() -> int:
    """A fresh seed in ``[0, 2**63)`` for a run that was given none (it is recorded)."""
    return secrets.randbits(63)


def sample_marginal(
    probabilities: np.ndarray, plan: ExactPlan, shots: int, seed: int, position: int
) -> dict[int, int]:
    """Draw ``shots`` outcomes from a marginal; returns ``{register value: count}``.

    Args:
        probabilities: The marginal over ``plan.qubits`` (length ``2**len(plan.qubits)``).
        plan: From :func:`qshpc.aer.circuits.prepare_exact`.
        shots: Positive number of shots.
        seed: The run's seed.
        position: The experiment's position in the call (so that the experiments
            of one call draw independently).
    """
    probs = np.asarray(probabilities, dtype=float).ravel()
    cdf = np.cumsum(probs)
    rng = np.random.default_rng([seed, position])
    drawn = np.searchsorted(cdf, rng.random(shots) * cdf[-1], side="right")
    np.minimum(drawn, probs.size - 1, out=drawn)
    values, counts = np.unique(drawn, return_counts=True)
    return dict(zip(register_keys(values, plan), counts.tolist(), strict=True))


__all__ = ["SAMPLE_MAX_QUBITS", "draw_seed", "sample_marginal"]
