"""Qiskit 2 primitives on qshpc's ranks: ``SamplerV2`` and ``EstimatorV2``.

Real subclasses of ``qiskit.primitives.BaseSamplerV2``/``BaseEstimatorV2``
returning Qiskit's own result types, so code written for
``StatevectorSampler`` or Aer's primitives runs unchanged. Where the work runs:

* rank 0 of a qshpc program with workers: ``run`` returns at once; each PUB is
  a task, a PUB with many parameter rows one task per block of rows
  (:mod:`qshpc.primitives.blocks`);
* plain ``python``, ``--workers 0``, inside a task: in this process;
* ``mode=LocalClient(...)``/``SlurmClient(...)``: a qshpc job of its own, from
  anywhere (:mod:`qshpc.primitives.mode`).

The kernels live in :mod:`qshpc.aer.v2`; ``qshpc.aer.SamplerV2`` is this class.
Importing this package is cheap: qiskit loads with the classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qshpc._lazy import lazy_exports

if TYPE_CHECKING:
    from qshpc.aer.v2.pubs import PubError
    from qshpc.primitives.estimator import EstimatorV2
    from qshpc.primitives.options import Options
    from qshpc.primitives.sampler import SamplerV2

_EXPORTS = {
    "SamplerV2": "qshpc.primitives.sampler",
    "EstimatorV2": "qshpc.primitives.estimator",
    "Options": "qshpc.primitives.options",
    "PubError": "qshpc.aer.v2.pubs",
}

__getattr__, __dir__ = lazy_exports("qshpc.primitives", _EXPORTS, globals())

__all__ = ["EstimatorV2", "Options", "PubError", "SamplerV2"]
