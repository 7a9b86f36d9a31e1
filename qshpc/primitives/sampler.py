"""``SamplerV2``: Qiskit's ``BaseSamplerV2`` on qshpc's ranks (see :mod:`qshpc.primitives`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from numbers import Integral
from typing import Any

from qiskit.primitives import BaseSamplerV2  # type: ignore[import-untyped]

from qshpc.aer.v2.pubs import PubError
from qshpc.primitives import blocks
from qshpc.primitives.base import PrimitiveSettings, check_mode, run_here_or_spread
from qshpc.primitives.options import Options, block_config, options_from_backend, parse_options


class SamplerV2(PrimitiveSettings, BaseSamplerV2):  # type: ignore[misc]
    """Samples PUBs on the ranks; results are Qiskit's own (``PrimitiveResult`` of ``SamplerPubResult``).

    Inside a program (rank 0 of ``qshpc run``/``submit``) ``run`` returns at once
    and every PUB becomes one task, large PUBs one task per block of rows.
    Under plain ``python`` or inside a task the work runs in this process. With
    ``mode=LocalClient(...)`` or ``mode=SlurmClient(...)``, ``run`` starts a qshpc
    job on that client instead, from anywhere.

    Args:
        default_shots: Shots for PUBs that give none (and ``run`` without ``shots``).
        seed: Seed of the shots (an int, or a numpy Generator to draw one from).
            None: the job seed (``--seed``) or the task's seed, else a fresh one;
            the seed used is in ``result.metadata["seed"]``.
        options: Aer's option names: ``backend_options``, ``run_options``, and
            qshpc's ``optimization_level`` and ``rows_per_task`` (see :class:`Options`).
        mode: A qshpc client to run on (``LocalClient(...)``, ``SlurmClient(...)``),
            or None to run on the ranks of the program calling it.

    Example:
        >>> from qiskit import QuantumCircuit
        >>> qc = QuantumCircuit(2); _ = qc.h(0); _ = qc.cx(0, 1); qc.measure_all()
        >>> counts = SamplerV2(seed=7).run([qc]).result()[0].data.meas.get_counts()
        >>> sorted(counts)
        ['00', '11']
    """

    _default_shots: int
    _seed: Any
    _options: Options
    _mode: Any

    def __init__(
        self,
        *,
        default_shots: int = 1024,
        seed: Any = None,
        options: Mapping[str, Any] | Options | None = None,
        mode: Any = None,
    ) -> None:
        if isinstance(default_shots, bool) or not isinstance(default_shots, Integral):
            raise PubError(f"default_shots must be a positive int, got {default_shots!r}")
        if default_shots < 1:
            raise PubError(f"default_shots must be a positive int, got {default_shots!r}")
        self._default_shots = int(default_shots)
        self._seed = seed
        self._options = parse_options(options)
        self._mode = check_mode(mode)

    @classmethod
    def from_backend(cls, backend: Any, **kwargs: Any) -> SamplerV2:
        """A SamplerV2 that simulates ``backend``'s noise, as Aer's ``SamplerV2.from_backend``.

        The backend's noise model (``NoiseModel.from_backend``; for an
        ``AerSimulator``, its noise model, method, device and precision) goes into
        ``options["backend_options"]``; an ideal backend adds nothing.
        Transpile the circuits for ``backend`` first, as with Aer.

        Args:
            backend: A Qiskit backend (``GenericBackendV2``, a fake backend) or an
                ``AerSimulator``.
            **kwargs: The constructor's arguments (``options`` given win over the
                backend's).
        """
        options = options_from_backend(backend, kwargs.pop("options", None))
        return cls(options=options, **kwargs)

    @property
    def default_shots(self) -> int:
        """Shots for PUBs that give none."""
        return self._default_shots

    def run(self, pubs: Iterable[Any], *, shots: int | None = None) -> Any:
        """Sample the PUBs; returns a job at once (``job.result()`` is a ``PrimitiveResult``).

        Args:
            pubs: Sampler PUBs: circuits, ``(circuit,)``, ``(circuit, values)``,
                ``(circuit, values, shots)`` or ``SamplerPub``s.
            shots: Shots for PUBs that give none (default: ``default_shots``).

        Raises:
            PubError: A PUB Qiskit refuses, or a circuit wider than the simulator:
                before any task runs. A circuit without classical registers gets
                Qiskit's UserWarning and an empty ``DataBin`` of the PUB's shape, as
                with Aer's and Qiskit's samplers.
        """
        from qshpc.aer.v2.pubs import sampler_work

        config = block_config(self._options)
        work = sampler_work(pubs, self._default_shots if shots is None else shots, config.noisy)
        blocks.check_seed(self._seed, self._options.run_options)
        if self._mode is not None:
            from qshpc.primitives.mode import submit_sampler

            return submit_sampler(self, work)
        seed = blocks.resolve_seed(self._seed, self._options.run_options)
        cache = self._options.cache
        return run_here_or_spread(
            "sampler",
            work,
            config,
            lambda wide, task: blocks.inline_sampler(work, seed, config, wide, task),
            lambda workers, wide: blocks.spread_sampler(
                work, seed, config, workers, self._options.rows_per_task, wide, cache
            ),
            blocks.block_task("sampler", cache),
        )


__all__ = ["SamplerV2"]
