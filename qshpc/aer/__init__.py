"""The Aer layer: V1-shaped ``Sampler``, sweeps, per-rank simulators, sizing, seeds.

This is the only qshpc package that imports ``qiskit_aer``, and it does so
lazily: ``import qshpc.aer`` is cheap; qiskit and qiskit-aer load on first use.

Public names:
    Sampler: ``Sampler().run(circuit).result().quasi_dists[0]`` as in Qiskit's V1.
    Estimator: V1-shaped exact expectation values.
    SamplerV2, EstimatorV2: Qiskit 2 primitives spread over the ranks (:mod:`qshpc.primitives`).
    run_sweep: A parametrized circuit at many points, as one Aer batch.
    QuasiDistribution, SamplerResult, EstimatorResult: the result types.
    estimate_memory_bytes, estimate_for_circuits, check_fits, Estimate: sizing.
    get_simulator, get_pass_manager, sim_spec, SimSpec: this rank's cached objects.
    resolve_device, gpu_count: device choice (``QSHPC_AER_DEVICE``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qshpc._lazy import lazy_exports

if TYPE_CHECKING:
    from qshpc.aer.device import gpu_count, resolve_device
    from qshpc.aer.results import EstimatorResult, QuasiDistribution, SamplerResult
    from qshpc.aer.sampler import Sampler
    from qshpc.aer.simulator import SimSpec, get_pass_manager, get_simulator, sim_spec
    from qshpc.aer.sizing import Estimate, check_fits, estimate_for_circuits, estimate_memory_bytes
    from qshpc.aer.sweep import Estimator, run_sweep

# SamplerV2/EstimatorV2 live a layer up (qshpc.primitives: they send tasks through the
# program API); they are named here, by string, so that `qshpc.aer.SamplerV2` works.
# Nothing in this package imports them.
_EXPORTS = {
    "Sampler": "qshpc.aer.sampler",
    "Estimator": "qshpc.aer.sweep",
    "SamplerV2": "qshpc.primitives.sampler",
    "EstimatorV2": "qshpc.primitives.estimator",
    "run_sweep": "qshpc.aer.sweep",
    "QuasiDistribution": "qshpc.aer.results",
    "SamplerResult": "qshpc.aer.results",
    "EstimatorResult": "qshpc.aer.results",
    "Estimate": "qshpc.aer.sizing",
    "check_fits": "qshpc.aer.sizing",
    "estimate_for_circuits": "qshpc.aer.sizing",
    "estimate_memory_bytes": "qshpc.aer.sizing",
    "SimSpec": "qshpc.aer.simulator",
    "get_pass_manager": "qshpc.aer.simulator",
    "get_simulator": "qshpc.aer.simulator",
    "sim_spec": "qshpc.aer.simulator",
    "gpu_count": "qshpc.aer.device",
    "resolve_device": "qshpc.aer.device",
}


__getattr__, __dir__ = lazy_exports("qshpc.aer", _EXPORTS, globals())


def reset_caches() -> None:
    """Drop cached simulators, pass managers, device facts and warnings (for tests)."""
    from qshpc.aer import device, isa, simulator

    simulator.reset_caches()
    isa.reset_caches()
    device.reset_caches()


__all__ = [
    "Estimate",
    "Estimator",
    "EstimatorResult",
    "EstimatorV2",
    "QuasiDistribution",
    "Sampler",
    "SamplerResult",
    "SamplerV2",
    "SimSpec",
    "check_fits",
    "estimate_for_circuits",
    "estimate_memory_bytes",
    "get_pass_manager",
    "get_simulator",
    "gpu_count",
    "reset_caches",
    "resolve_device",
    "run_sweep",
    "sim_spec",
]
