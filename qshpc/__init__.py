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

__version__ = "0.1.0"

_EXPORTS = {
    "get_arguments": "qshpc.program",
    "save_result": "qshpc.program",
    "update_status": "qshpc.program",
    "distribute_task": "qshpc.program",
    "get": "qshpc.program",
    "put": "qshpc.program",
    "wait": "qshpc.program",
    "DistributedTask": "qshpc.program",
    "TaskRef": "qshpc.refs",
    "ObjectRef": "qshpc.refs",
    "Target": "qshpc.resources",
    "Program": "qshpc.client",
    "LocalClient": "qshpc.client",
    "SlurmClient": "qshpc.client",
    "Job": "qshpc.client",
    "open_job": "qshpc.client",
    "save_arguments": "qshpc.store",
    "load_arguments": "qshpc.store",
    "QshpcError": "qshpc.errors",
    "UserError": "qshpc.errors",
    "TaskError": "qshpc.errors",
    "ResourceError": "qshpc.errors",
    "JobFailedError": "qshpc.errors",
    "SerializationError": "qshpc.errors",
    "current_task": "qshpc.runtime.context",
    "rank_info": "qshpc.runtime.context",
}

if TYPE_CHECKING:
    from qshpc.client import Job, LocalClient, Program, SlurmClient, open_job
    from qshpc.errors import (
        JobFailedError,
        QshpcError,
        ResourceError,
        SerializationError,
        TaskError,
        UserError,
    )
    from qshpc.program import (
        DistributedTask,
        distribute_task,
        get,
        get_arguments,
        put,
        save_result,
        update_status,
        wait,
    )
    from qshpc.refs import ObjectRef, TaskRef
    from qshpc.resources import Target
    from qshpc.runtime.context import current_task, rank_info
    from qshpc.store import load_arguments, save_arguments


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
    "load_arguments",
    "open_job",
    "put",
    "rank_info",
    "save_arguments",
    "save_result",
    "update_status",
    "wait",
]
