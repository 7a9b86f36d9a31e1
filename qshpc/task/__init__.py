"""The task layer: what code running inside a task may touch, on any rank, without MPI.

- :mod:`~qshpc.task.context`: ``rank_info``, ``current_task``, ``record_provenance``, the job seed;
- :mod:`~qshpc.task.execute`: run one call and capture its ``Outcome``;
- :mod:`~qshpc.task.coop`: cooperative groups (``together``: shared Aer runs);
- :mod:`~qshpc.task.seeding`: per-task seeds derived from the job seed;
- :mod:`~qshpc.task.payload`: pickling a call's arguments, circuits as QPY.

``qshpc.aer`` and user tasks import from here, never from ``qshpc.runtime``.
"""
