"""``EstimatorV2``: Qiskit's ``BaseEstimatorV2`` on qshpc's ranks (see :mod:`qshpc.primitives`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from numbers import Real
from typing import Any

from qiskit.primitives import BaseEstimatorV2  # type: ignore[import-untyped]

from qshpc.aer.v2.pubs import PubError
from qshpc.primitives import blocks
from qshpc.primitives.base import PrimitiveSettings, check_mode, run_here_or_spread
from qshpc.primitives.options import Options, block_config, options_from_backend, parse_options


class EstimatorV2(PrimitiveSettings, BaseEstimatorV2):  # type: ignore[misc]
    """Expectation values of PUBs on the ranks (``PrimitiveResult`` of ``PubResult``).

    Values are exact (Aer's ``save_expectation_value`` on the final state) and
    equal ``StatevectorEstimator``'s to 1e-9. With ``precision > 0`` each value
    gets normal noise of standard deviation ``precision`` and ``stds`` is
    ``precision``, as Aer's EstimatorV2 documents; the noise is drawn from the
    seed, the PUB index and the element's index, so it too is reproducible.
    Where the work runs: as for :class:`qshpc.primitives.SamplerV2`.

    Args:
        default_precision: Precision of PUBs that give none (0: exact values).
        seed: Seed of the precision noise (see ``SamplerV2``).
        options: ``backend_options``, ``run_options``, ``optimization_level``,
            ``rows_per_task`` (and Aer's ``default_precision``).
        mode: A qshpc client to run on, or None.
    """

    _seed: Any
    _options: Options
    _mode: Any

    def __init__(
        self,
        *,
        default_precision: float = 0.0,
        seed: Any = None,
        options: Mapping[str, Any] | Options | None = None,
        mode: Any = None,
    ) -> None:
        self._options = parse_options(options)
        if self._options.default_precision is not None and default_precision == 0.0:
            default_precision = self._options.default_precision
        # Kept in the options, where Aer's EstimatorV2 keeps it and reads it at each run:
        # estimator.options.default_precision = 0.05 after construction must count.
        self._options = replace(self._options, default_precision=_checked(default_precision))
        self._seed = seed
        self._mode = check_mode(mode)

    @classmethod
    def from_backend(cls, backend: Any, **kwargs: Any) -> EstimatorV2:
        """A EstimatorV2 that simulates ``backend``'s noise, as Aer's ``EstimatorV2.from_backend``.

        The backend's noise model (``NoiseModel.from_backend``; for an
        ``AerSimulator``, its noise model, method, device and precision) goes into
        ``options["backend_options"]``; an ideal backend adds nothing. With a noise model
        and no ``method``, the method is ``density_matrix``: exact noisy values, as
        Aer's estimator gives.
        Transpile the circuits for ``backend`` first, as with Aer.

        Args:
            backend: A Qiskit backend (``GenericBackendV2``, a fake backend) or an
                ``AerSimulator``.
            **kwargs: The constructor's arguments (``options`` given win over the
                backend's).
        """
        options = options_from_backend(backend, kwargs.pop("options", None), exact_estimator=True)
        return cls(options=options, **kwargs)

    @property
    def default_precision(self) -> float:
        """Precision of PUBs that give none (``options.default_precision``, read at each run)."""
        value = self._options.default_precision
        return 0.0 if value is None else _checked(value)

    def run(self, pubs: Iterable[Any], *, precision: float | None = None) -> Any:
        """Estimate the PUBs; returns a job at once (``job.result()`` is a ``PrimitiveResult``).

        Args:
            pubs: Estimator PUBs: ``(circuit, observables)``, ``(circuit,
                observables, values)``, ``(circuit, observables, values, precision)``
                or ``EstimatorPub``s; observables and values broadcast.
            precision: Precision for PUBs that give none (default: ``default_precision``).

        Raises:
            PubError: A PUB Qiskit refuses (observables on another number of
                qubits, values that do not match the parameters...), a circuit with
                mid-circuit measurements, or one wider than the simulator.
        """
        from qshpc.aer.v2.pubs import estimator_work

        work = estimator_work(pubs, self.default_precision if precision is None else precision)
        config = block_config(self._options, estimator=True)
        if config.noisy and config.method != "density_matrix":
            raise PubError(
                "EstimatorV2 computes exact expectation values, and with a noise model that "
                f"needs Aer's density_matrix method (the {config.method} method follows one "
                "random trajectory: the values are those of one noisy run, not the average); "
                "use options={'backend_options': {'noise_model': ..., 'method': 'density_matrix'}} "
                "or leave 'method' out (density_matrix is then the default)"
            )
        if config.noisy and self._options.backend_options.get("method") in (None, "automatic"):
            _check_automatic_density_matrix(work, self._options.run_options)
        blocks.check_seed(self._seed, self._options.run_options)
        if self._mode is not None:
            from qshpc.primitives.mode import submit_estimator

            return submit_estimator(self, work)
        seed = blocks.resolve_seed(self._seed, self._options.run_options)
        if self._seed is None and self._options.run_options.get("seed_simulator") is not None:
            for w in work:  # the noise Aer's EstimatorV2 draws with that seed
                w.aer_noise = True
        cache = self._options.cache
        return run_here_or_spread(
            "estimator",
            work,
            config,
            lambda wide, task: blocks.inline_estimator(work, seed, config, wide, task),
            lambda workers, wide: blocks.spread_estimator(
                work, seed, config, workers, self._options.rows_per_task, wide, cache
            ),
            blocks.block_task("estimator", cache),
        )


#: Aer's default shots: its automatic method takes density_matrix for a noisy
#: circuit of n qubits only when shots > 2**n (9 qubits at 1024 shots).
_AER_SHOTS = 1024


def _check_automatic_density_matrix(work: Iterable[Any], run_options: Mapping[str, Any]) -> None:
    """Refuse a noisy PUB too wide for the density matrix Aer's ``automatic`` would choose.

    With a noise model and no method (or ``automatic``), Aer's controller takes
    ``density_matrix`` only when ``shots > 2**n``; wider, it averages noisy
    statevector trajectories (sampled values) where exact ones cost 4**n memory
    (13 qubits 1 GiB and 14 s, 15 qubits 16 GiB). The user may name the method.

    Raises:
        PubError: Naming the PUB, its width, the limit and the memory it would take.
    """
    from qshpc.aer.sizing import GIB, active_width, state_bytes

    shots = run_options.get("shots")
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        shots = _AER_SHOTS
    limit = (shots - 1).bit_length() - 1  # the largest n with 2**n < shots
    for w in work:
        width = active_width(w.circuit)
        if width <= limit:
            continue
        size = state_bytes(width, "density_matrix", "double")
        need = f"{size / GIB:,.0f} GiB" if size >= GIB else f"{size / 2**20:,.0f} MiB"
        raise PubError(
            f"PUB {w.index}: EstimatorV2 computes exact expectation values, and with a noise "
            "model and no method it takes Aer's density_matrix method only where Aer's "
            f"automatic method does (at most {limit} qubits at {shots} shots: "
            f"shots > 2**qubits), but circuit {w.circuit.name!r} acts on {width} qubits "
            f"(a density matrix of {need}: memory and time grow as 4**qubits); name it to compute exact "
            "values anyway: options={'backend_options': {'noise_model': ..., "
            "'method': 'density_matrix'}}, or use fewer qubits, or SamplerV2 with the noise "
            "model (sampled counts)"
        )


def _checked(default_precision: Any) -> float:
    """``default_precision`` as a float, refused unless a finite non-negative real number.

    Raises:
        PubError: A bool, a non-number, a negative, NaN or infinite value.
    """
    if isinstance(default_precision, bool) or not isinstance(default_precision, Real):
        raise PubError(f"default_precision must be a real number, got {default_precision!r}")
    value = float(default_precision)
    if not value >= 0 or value == float("inf"):  # NaN too
        raise PubError(
            f"default_precision must be a finite non-negative number, got {default_precision!r}"
        )
    return value


__all__ = ["EstimatorV2"]
