"""One statevector over many MPI ranks: Aer built with MPI, run as its own step.

The PyPI qiskit-aer has no MPI. ``make install-aer-mpi`` (or
``python -m qshpc.aer.distributed.build``) builds the same version from its
source distribution with MPI and installs it *beside* the PyPI one, in a
prefix of its own (:mod:`qshpc.aer.distributed.install`). Only the processes
of a distributed step load it: an MPI Aer calls ``MPI_Init_thread`` when it is
imported and distributes over ``MPI_COMM_WORLD``, so in every other process
(rank 0, workers, plain Python) the PyPI Aer stays what ``import qiskit_aer``
finds.

A distributed run is a step of k fresh processes with a world of their own
(:mod:`qshpc.aer.distributed.launch`: a nested ``mpiexec`` locally, an
``srun`` job step under Slurm). The parent transpiles the circuits once and
writes them with a JSON spec to a folder (:mod:`qshpc.aer.distributed.spec`);
each rank runs :mod:`qshpc.aer.distributed.step` on it and writes its own
report (host, peak memory), rank 0 the results.

Nothing here is imported by ``import qshpc`` or ``import qshpc.aer``.
"""
