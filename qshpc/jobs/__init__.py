"""The job directory: where jobs live, how one is created, and readers that take a directory.

- :mod:`~qshpc.jobs.paths`: ``$QSHPC_HOME``, job ids, finding a job, the status override;
- :mod:`~qshpc.jobs.spec`: ``Program`` and the QUEUED job created for it;
- :mod:`~qshpc.jobs.arrays`: the shared folder and meta of job arrays;
- :mod:`~qshpc.jobs.prepare`: ``RunSpec`` and the checks run before any rank starts;
- :mod:`~qshpc.jobs.endnote`: the note where rank 0 tells the launcher how the job ended;
- :mod:`~qshpc.jobs.postmortem`: which rank died holding which tasks;
- :mod:`~qshpc.jobs.progress`: live progress lines and bars;
- :mod:`~qshpc.jobs.plot`: drawing a saved result.

The store (``job.h5``) is one layer down, in :mod:`qshpc.store`.
"""
