"""Kernels of the V2 primitives: the work of one block of PUB rows, on this rank.

:mod:`qshpc.primitives` (``SamplerV2``, ``EstimatorV2``) coerces and checks
the PUBs on rank 0, cuts them into blocks of parameter rows and sends one task
per block; a task calls the kernels here. They depend only on this rank's
simulator and pass manager and on the seeds they are given, never on which
other blocks exist, so a result is bit-identical for any cut and any number of
ranks.

Modules:
    seeds: counter-based random streams keyed by (seed, PUB index, purpose).
    prepared: one analysed (and, when needed, transpiled) circuit per rank and key.
    sample: shots of a block of rows, as packed bits per classical register.
    estimate: exact expectation values of a block of rows.
"""
