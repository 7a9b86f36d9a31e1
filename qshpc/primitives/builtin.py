"""The built-in program's body: run a primitive call stored as the job's arguments.

``programs/primitive_job.py`` (the program ``mode=`` clients start) calls
:func:`main`: it decodes the PUBs (:mod:`qshpc.primitives.arguments`), runs the
same primitive on the job's ranks (rank 0 spreads the blocks over the
workers) and saves its ``PrimitiveResult``, stored typed in the job store.
"""

from __future__ import annotations

from typing import Any

from qshpc.primitives.arguments import decode
from qshpc.primitives.estimator import EstimatorV2
from qshpc.primitives.options import Options
from qshpc.primitives.sampler import SamplerV2
from qshpc.program.api import get_arguments, save_result


def main() -> None:
    """The built-in program: run the stored call on this job's ranks, save the result."""
    args = get_arguments()
    name, pubs, keywords = decode(args)
    options = Options(**args.get("options") or {})
    if name == "SamplerV2":
        primitive: Any = SamplerV2(seed=args.get("seed"), options=options, **keywords)
    else:
        primitive = EstimatorV2(seed=args.get("seed"), options=options, **keywords)
    save_result(primitive.run(pubs).result())


__all__ = ["main"]
