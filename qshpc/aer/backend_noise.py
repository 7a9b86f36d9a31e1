"""What Aer's ``from_backend`` takes from a backend: its noise model (and an AerSimulator's settings)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qshpc.errors import UserError


def backend_options_of(backend: Any, spec_keys: Sequence[str]) -> dict[str, Any]:
    """The ``backend_options`` that simulate ``backend`` as ``AerSimulator.from_backend`` does.

    A backend gives its ``NoiseModel.from_backend`` (nothing for an ideal one); an
    ``AerSimulator`` its noise model and those of ``spec_keys`` (method, device,
    precision) it sets to other than Aer's defaults (else the ranks choose them).

    Raises:
        UserError: ``backend`` is neither an ``AerSimulator`` nor a backend
            ``NoiseModel.from_backend`` reads.
    """
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel

    found: dict[str, Any] = {}
    if isinstance(backend, AerSimulator):
        sim = backend.options
        if getattr(sim, "noise_model", None) is not None:
            found["noise_model"] = sim.noise_model
        defaults = AerSimulator._default_options()
        for key in spec_keys:
            value = getattr(sim, key, None)
            if value is not None and value != getattr(defaults, key, None):
                found[key] = value
        return found
    try:
        model = NoiseModel.from_backend(backend)
    except Exception as exc:
        raise UserError(
            f"from_backend takes an AerSimulator or a Qiskit backend (BackendV2, such as "
            f"GenericBackendV2(5) or a fake backend) to read a noise model from; "
            f"{type(backend).__name__} gave {type(exc).__name__}: {exc}"
        ) from None
    if not model.is_ideal():
        found["noise_model"] = model
    return found
