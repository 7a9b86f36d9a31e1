"""Options of the V2 primitives, in Aer's shape, and what the blocks need of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from qshpc.errors import UserError

#: Backend options that choose this rank's simulator; other ones go to Aer's ``run``.
SPEC_KEYS = ("method", "device", "precision")
#: Aer options that change the outcome distribution: shots are then sampled by Aer.
NOISY_KEYS = ("noise_model",)
#: Run options the primitives set themselves.
_OWN_RUN_KEYS = ("shots", "parameter_binds", "memory", "seed_simulator")


@dataclass
class Options:
    """Options of ``SamplerV2`` and ``EstimatorV2``, as in qiskit-aer's primitives.

    Attributes:
        backend_options: ``AerSimulator`` options: ``method`` (default
            ``"statevector"``), ``device`` (``"CPU"``, ``"GPU"``, ``"auto"``),
            ``precision`` (``"double"``, ``"single"``) choose each rank's cached
            simulator; the ones that describe the backend (``coupling_map``,
            ``basis_gates``, ``target``, ...) are accepted and change nothing, as
            in Aer's primitives (which do not transpile); any other
            (``noise_model``, ...) is passed to its ``run``.
        run_options: Options for ``AerSimulator.run``; ``seed_simulator`` is the
            seed when the primitive has none (as in Aer).
        optimization_level: Preset pass manager level for circuits that are not ISA.
        rows_per_task: The most parameter rows in one task (None: about four
            tasks per worker for the run's rows).
        default_precision: The estimator's default precision (Aer's option name).
        cache: The result cache for the blocks (qshpc's own): True, every block
            looks up and stores its result (``@distribute_task(cache=True)``; under
            plain ``python`` too); False, never, even in a job run with
            ``--cache``; None (the default), as the job says. The key is the same
            either way (see docs/cache.md).
    """

    backend_options: dict[str, Any] = field(default_factory=dict)
    run_options: dict[str, Any] = field(default_factory=dict)
    optimization_level: int = 1
    rows_per_task: int | None = None
    default_precision: float | None = None
    cache: bool | None = None


def parse_options(options: Mapping[str, Any] | Options | None) -> Options:
    """``Options`` from a dict of Aer's option names (unknown names are refused).

    Raises:
        UserError: An unknown name (the valid ones are listed) or a bad value.
    """
    if options is None:
        return Options()
    if isinstance(options, Options):
        return options
    if not isinstance(options, Mapping):
        raise UserError(f"options must be a dict, got {type(options).__name__}")
    valid = list(Options.__dataclass_fields__)
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise UserError(
            f"unknown option(s) {', '.join(map(repr, unknown))}: use {', '.join(valid)}"
        )
    out = Options(**dict(options))
    for name in ("backend_options", "run_options"):
        if not isinstance(getattr(out, name), Mapping):
            raise UserError(f"options[{name!r}] must be a dict")
        setattr(out, name, dict(getattr(out, name)))
    check_backend_options(out.backend_options)
    noise = out.backend_options.get("noise_model")
    if noise is not None and not (hasattr(noise, "basis_gates") and hasattr(noise, "to_dict")):
        # Aer's primitives fail on it with AttributeError ('str' object has no attribute
        # 'basis_gates'); here it failed in every block, after the run had started.
        raise UserError(
            "options['backend_options']['noise_model'] must be a qiskit_aer NoiseModel "
            f"(NoiseModel.from_backend(backend), ...), got {type(noise).__name__}: {noise!r:.80}"
        )
    if out.optimization_level not in (0, 1, 2, 3):
        raise UserError(f"optimization_level must be 0, 1, 2 or 3, got {out.optimization_level!r}")
    rows = out.rows_per_task
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
        raise UserError(f"rows_per_task must be a positive int or None, got {rows!r}")
    if out.cache is not None and not isinstance(out.cache, bool):
        raise UserError(f"options['cache'] must be True, False or None, got {out.cache!r}")
    return out


@dataclass(frozen=True)
class BlockConfig:
    """What every block task of a run needs to build its simulator and run Aer (picklable).

    Attributes:
        method: Aer method.
        device: ``"CPU"``, ``"GPU"``, ``"auto"`` or None.
        precision: ``"double"`` or ``"single"``.
        level: Preset pass manager level.
        run_options: Extra Aer run options (None when there are none).
        noisy: True when those change the distribution (shots sampled by Aer).
    """

    method: str = "statevector"
    device: str | None = None
    precision: str = "double"
    level: int = 1
    run_options: dict[str, Any] | None = None
    noisy: bool = False


def check_backend_options(backend: Mapping[Any, Any]) -> None:
    """Refuse a backend option ``AerSimulator`` does not have (a misspelled name ran as if unset).

    Aer's primitives raise ``AerError: 'Invalid option ...'`` for it. Valid are
    the names ``AerSimulator(**options)`` takes: its run options and the ones that
    describe the backend (``coupling_map``, ``basis_gates``, ``target``, ...:
    :func:`qshpc.aer.simulator.aer_backend_names`).

    Raises:
        PubError: Naming each such option and the nearest valid names.
    """
    from qshpc.aer.simulator import aer_backend_names, aer_option_names, with_nearest_names
    from qshpc.aer.v2.pubs import PubError

    unknown = [k for k in backend if k not in SPEC_KEYS + NOISY_KEYS]
    if not unknown:
        return
    valid = aer_option_names() | aer_backend_names()
    bad = [k for k in unknown if k not in valid]
    if not bad:
        return
    parts = [with_nearest_names(name) for name in bad]
    raise PubError(
        f"unknown backend option(s) {', '.join(parts)}: options['backend_options'] takes "
        "AerSimulator's options (AerSimulator().options lists them), as Aer's primitives do"
    )


def block_config(options: Options, estimator: bool = False) -> BlockConfig:
    """The :class:`BlockConfig` of a primitive's options.

    ``estimator``: for ``EstimatorV2``, whose values are exact: with a noise model
    and no ``method``, the method is ``density_matrix`` (as ``from_backend`` sets it;
    Aer's EstimatorV2 runs such options as they are).
    """
    from qshpc.aer.simulator import aer_backend_names

    check_backend_options(options.backend_options)  # set after construction too
    # The names that describe the backend change nothing Aer's V2 primitives compute
    # (they do not transpile); Aer's run would read n_qubits as the circuit's width.
    backend = {k: v for k, v in options.backend_options.items() if k not in aer_backend_names()}
    spec = {k: backend.pop(k) for k in SPEC_KEYS if k in backend}
    run = {k: v for k, v in options.run_options.items() if k not in _OWN_RUN_KEYS}
    extra = {**backend, **run}
    noisy = any(extra.get(k) is not None for k in NOISY_KEYS)
    default = "density_matrix" if estimator and noisy else "statevector"
    method = str(spec.get("method", default))
    if method == "automatic" and estimator and noisy:
        method = "density_matrix"  # the one method that gives exact noisy values
    return BlockConfig(
        method=method,
        device=spec.get("device"),
        precision=str(spec.get("precision", "double")),
        level=options.optimization_level,
        run_options=extra or None,
        noisy=noisy,
    )


def for_circuit(config: BlockConfig, circuit: Any) -> BlockConfig:
    """``config`` for one PUB's circuit: ``method="automatic"`` resolved as Aer resolves it.

    ``stabilizer`` for a Clifford circuit (of any width, as Aer's primitives run it),
    else ``statevector`` (:func:`qshpc.aer.isa.automatic_method`); the PUB's blocks
    build that simulator, its width limit applies and its ``simulator_metadata`` names it.
    Any other method is the config as it is.
    """
    if config.method != "automatic":
        return config
    from qshpc.aer.isa import automatic_method

    return replace(config, method=automatic_method(circuit, config.noisy))


def options_from_backend(
    backend: Any, options: Mapping[str, Any] | Options | None, exact_estimator: bool = False
) -> dict[str, Any]:
    """The options of Aer's ``SamplerV2.from_backend``/``EstimatorV2.from_backend``.

    Aer's primitives run on ``AerSimulator.from_backend(backend)``; what changes
    their results is its noise model (Aer does not transpile, so the circuits
    are the user's ISA circuits either way). So the backend's noise model
    (``NoiseModel.from_backend``; an ``AerSimulator``'s own noise model and
    method, device and precision where not Aer's defaults) goes into
    ``backend_options``; options the caller gives win. ``exact_estimator``: with a noise model and no method,
    use ``density_matrix``, which is what Aer's estimator computes with one.

    Raises:
        UserError: ``backend`` is neither an ``AerSimulator`` nor a backend
            ``NoiseModel.from_backend`` reads.
    """
    from qshpc.aer.backend_noise import backend_options_of

    given = parse_options(options)
    found = backend_options_of(backend, SPEC_KEYS)
    if exact_estimator and "noise_model" in found and "method" not in found:
        found["method"] = "density_matrix"
    given.backend_options = {**found, **given.backend_options}
    return {k: getattr(given, k) for k in Options.__dataclass_fields__}


__all__ = [
    "BlockConfig",
    "Options",
    "block_config",
    "check_backend_options",
    "for_circuit",
    "options_from_backend",
    "parse_options",
]
