"""The clients: ``LocalClient`` and ``SlurmClient`` start jobs; ``Job`` reads one back.

Modules:

- :mod:`~qshpc.client.job`: ``Job``, ``open_job``, ``list_jobs`` (the store, and Slurm's view);
- :mod:`~qshpc.client.logread`: ``LogReader``, the one reader of a job's logs;
- :mod:`~qshpc.client.local`: ``LocalClient`` (``qshpc run`` child processes, local arrays);
- :mod:`~qshpc.client.slurm`: ``SlurmClient`` (``qshpc.submit``).

The program spec (``Program``) and job creation live a layer down, in
:mod:`qshpc.jobs.spec`, because ``qshpc.submit`` uses them too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qshpc._lazy import lazy_exports

if TYPE_CHECKING:
    from qshpc.client.job import Job, list_jobs, open_job
    from qshpc.client.local import LocalClient
    from qshpc.client.slurm import SlurmClient
    from qshpc.jobs.spec import Program

_EXPORTS = {
    "Job": "qshpc.client.job",
    "open_job": "qshpc.client.job",
    "list_jobs": "qshpc.client.job",
    "LocalClient": "qshpc.client.local",
    "SlurmClient": "qshpc.client.slurm",
    "Program": "qshpc.jobs.spec",
}

__getattr__, __dir__ = lazy_exports("qshpc.client", _EXPORTS, globals())

__all__ = ["Job", "LocalClient", "Program", "SlurmClient", "list_jobs", "open_job"]
