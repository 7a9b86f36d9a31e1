"""The local launcher: ``qshpc run`` starting the ranks itself (the mpiexec parent).

See :mod:`qshpc.launch.local`. Slurm jobs start through :mod:`qshpc.submit`
instead; both end in :mod:`qshpc.runtime` on every rank.
"""
