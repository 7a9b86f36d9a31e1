"""V1-shaped result types: QuasiDistribution, SamplerResult, a finished job.

These are plain Python (a dict subclass and dataclasses) so a stored result
reads back without importing qiskit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class QuasiDistribution(dict[int, float]):
    """A V1 quasi-probability distribution: ``{register value: probability}``.

    Keys are the integer value of the measured classical bits (clbit 0 is the
    least significant bit), as in ``qiskit.result.QuasiDistribution``.

    Attributes:
        shots: Shots behind the values, or None for exact probabilities.
        stddev_upper_bound: ``sqrt(1 / shots)`` when sampled, else None.
    """

    #: Its items and ``__dict__`` are the whole of it: ``get`` copies it as such (0.03 ms
    #: for 2,044 values, against 0.5 ms through pickle; :func:`qshpc.program.refs.fresh`).
    __qshpc_plain_dict__ = True

    def __init__(self, data: dict[int, float] | None = None, shots: int | None = None) -> None:
        """Build from a mapping of register values to probabilities.

        Args:
            data: ``{int: float}``.
            shots: Number of shots the values came from (None when exact).
        """
        super().__init__(data or {})
        self.shots = shots
        self.stddev_upper_bound: float | None = math.sqrt(1.0 / shots) if shots else None

    def binary_probabilities(self, num_bits: int | None = None) -> dict[str, float]:
        """The distribution keyed by bitstrings (clbit 0 rightmost).

        Args:
            num_bits: Width of the bitstrings; defaults to the widest key.

        Returns:
            ``{"0101": p, ...}``.
        """
        if num_bits is None:
            num_bits = max((k.bit_length() for k in self), default=1) or 1
        return {format(k, f"0{num_bits}b"): v for k, v in self.items()}

    def hex_probabilities(self) -> dict[str, float]:
        """The distribution keyed by hex strings (``"0x5"``)."""
        return {hex(k): v for k, v in self.items()}

    def nearest_probability_distribution(self) -> QuasiDistribution:
        """The closest probability distribution (here values are already non-negative).

        Returns:
            A copy normalized to sum to 1.
        """
        total = sum(v for v in self.values() if v > 0)
        data = {k: v / total for k, v in self.items() if v > 0} if total else {}
        return QuasiDistribution(data, shots=self.shots)

    def __reduce__(self) -> tuple[Any, ...]:
        return (QuasiDistribution, (dict(self), self.shots))

    def __repr__(self) -> str:
        # As qiskit's QuasiDistribution: the dict. A saved result read back holds this type
        # (stored typed since session 14) and the seed notebook shows ``job.result()``'s dicts.
        return dict.__repr__(self)


@dataclass(frozen=True)
class SamplerResult:
    """What ``Sampler.run(...).result()`` returns, as in Qiskit's V1 primitives.

    Attributes:
        quasi_dists: One distribution per circuit (per parameter set), in input order.
        metadata: One dict per circuit: ``{}`` when exact, ``{"shots": N}`` when
            sampled, plus a ``"note"`` when an exact request had to be sampled.
    """

    quasi_dists: list[QuasiDistribution]
    metadata: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_experiments(self) -> int:
        """Number of distributions."""
        return len(self.quasi_dists)


@dataclass(frozen=True)
class EstimatorResult:
    """What ``Estimator.run(...).result()`` returns, as in Qiskit's V1 primitives.

    Attributes:
        values: One expectation value per (circuit, observable) pair.
        metadata: One dict per pair.
    """

    values: Any  # numpy.ndarray
    metadata: list[dict[str, Any]] = field(default_factory=list)


class DoneJob(Generic[T]):
    """A job that has already run (qshpc's primitives run synchronously).

    It offers the calls programs make on V1 primitive jobs.
    """

    def __init__(self, result: T, job_id: str = "") -> None:
        """Wrap a finished result."""
        self._result = result
        self._job_id = job_id

    def result(self) -> T:
        """The result."""
        return self._result

    def status(self) -> str:
        """Always ``"DONE"``."""
        return "DONE"

    def done(self) -> bool:
        """Always True."""
        return True

    def job_id(self) -> str:
        """An id for logs."""
        return self._job_id


__all__ = ["DoneJob", "EstimatorResult", "QuasiDistribution", "SamplerResult"]
