"""The in-rank runtime: what runs inside each MPI rank of a job (only place importing mpi4py).

- :mod:`~qshpc.runtime.start`: rank start-up under mpiexec/srun;
- :mod:`~qshpc.runtime.rank0`: rank 0's lifecycle (store, program, drain, finalize);
- :mod:`~qshpc.runtime.program_main`: running the program file as ``__main__``;
- :mod:`~qshpc.runtime.dispatcher`: rank 0's dispatcher (the MPI ``Backend``);
- :mod:`~qshpc.runtime.worker`, :mod:`~qshpc.runtime.batchrun`,
  :mod:`~qshpc.runtime.results`, :mod:`~qshpc.runtime.sender`: the worker loop;
- :mod:`~qshpc.runtime.mpi`: MPI start-up and message tags;
- :mod:`~qshpc.runtime.scheduler` (what the runtime asks of Slurm, passed in), :mod:`~qshpc.runtime.logtee`, :mod:`~qshpc.runtime.gctune`.
"""
