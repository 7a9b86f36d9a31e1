"""The built-in qshpc program behind ``SamplerV2(mode=client)`` and ``EstimatorV2(mode=client)``.

It reads the PUBs stored as the job's arguments, runs the primitive on the
job's ranks and saves its ``PrimitiveResult`` (typed, in the job store).
"""

from qshpc.primitives.builtin import main

main()
