"""qshpc: run Qiskit serverless-style programs on MPI ranks and Slurm clusters.

The program API (``get_arguments``, ``save_result``, ``update_status``,
``distribute_task``, ``get``, ``put``, ``wait``) and the clients (``Program``,
``LocalClient``, ``SlurmClient``, ``Job``, ``open_job``) are imported lazily, so
``import qshpc`` stays cheap: qiskit, Aer, h5py, mpi4py and submitit load only
when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qshpc._lazy import lazy_exports
from qshpc._version import __version__

_EXPORTS = {
    "get_arguments": "qshpc.program.api",
    "save_result": "qshpc.program.api",
    "update_status": "qshpc.program.api",
    "distribute_task": "qshpc.program.api",
    "get": "qshpc.program.api",
    "put": "qshpc.program.api",
    "wait": "qshpc.program.api",
    "get_refs_by_status": "qshpc.program.api",
    "as_completed": "qshpc.program.api",
    "DistributedTask": "qshpc.program.api",
    "TaskRef": "qshpc.program.refs",
    "ObjectRef": "qshpc.program.refs",
    "Target": "qshpc.program.resources",
    "Program": "qshpc.jobs.spec",
    "LocalClient": "qshpc.client.local",
    "SlurmClient": "qshpc.client.slurm",
    "Job": "qshpc.client.job",
    "open_job": "qshpc.client.job",
    "list_jobs": "qshpc.client.job",
    "save_arguments": "qshpc.store",
    "load_arguments": "qshpc.store",
    "QshpcError": "qshpc.errors",
    "UserError": "qshpc.errors",
    "TaskError": "qshpc.errors",
    "ResourceError": "qshpc.errors",
    "JobFailedError": "qshpc.errors",
    "SerializationError": "qshpc.errors",
    "current_task": "qshpc.task.context",
    "rank_info": "qshpc.task.context",
}

if TYPE_CHECKING:
    from qshpc.client.job import Job, list_jobs, open_job
    from qshpc.client.local import LocalClient
    from qshpc.client.slurm import SlurmClient
    from qshpc.errors import (
        JobFailedError,
        QshpcError,
        ResourceError,
        SerializationError,
        TaskError,
        UserError,
    )
    from qshpc.jobs.spec import Program
    from qshpc.program.api import (
        DistributedTask,
        distribute_task,
        get,
        get_arguments,
        put,
        save_result,
        update_status,
        wait,
    )
    from qshpc.program.refs import ObjectRef, TaskRef
    from qshpc.program.resources import Target
    from qshpc.store import load_arguments, save_arguments
    from qshpc.task.context import current_task, rank_info


__getattr__, __dir__ = lazy_exports("qshpc", _EXPORTS, globals())


__all__ = [
    "DistributedTask",
    "Job",
    "JobFailedError",
    "LocalClient",
    "ObjectRef",
    "Program",
    "QshpcError",
    "ResourceError",
    "SerializationError",
    "SlurmClient",
    "Target",
    "TaskError",
    "TaskRef",
    "UserError",
    "__version__",
    "current_task",
    "distribute_task",
    "get",
    "get_arguments",
    "list_jobs",
    "load_arguments",
    "open_job",
    "put",
    "rank_info",
    "save_arguments",
    "save_result",
    "update_status",
    "wait",
]
