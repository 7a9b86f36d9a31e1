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
    "UsageError": "qshpc.errors",
    "TaskError": "qshpc.errors",
    "ResourceError": "qshpc.errors",
    "JobFailedError": "qshpc.errors",
    "SerializationError": "qshpc.errors",
    "current_task": "qshpc.task.context",
    "rank_info": "qshpc.task.context",
    "JobNotFoundError": "qshpc.errors",
    "data_dir": "qshpc.jobs.paths",
}

# quantum-serverless 0.10.1's names (docs/quantum-serverless.md lists each, with its status).
_EXPORTS["QiskitPattern"] = "qshpc.jobs.spec"
_EXPORTS["QiskitFunction"] = "qshpc.jobs.spec"  # qiskit-serverless 0.11 on
_EXPORTS["Configuration"] = "qshpc.jobs.spec"
for _name in (
    "BaseJobClient", "ComputeResource", "GatewayJobClient", "GatewayProvider",
    "IBMServerlessProvider", "LocalJobClient", "LocalProvider", "Provider", "QuantumServerless",
    "RayJobClient", "RayProvider", "ServerlessProvider", "distribute_program",
    "distribute_qiskit_pattern", "get_auto_discovered_provider", "QuantumServerlessException",
    # qiskit-serverless 0.11 on
    "QiskitServerlessException", "ServerlessClient", "IBMServerlessClient", "RayClient",
    "distribute_qiskit_function",
):  # fmt: skip
    _EXPORTS[_name] = "qshpc.client.serverless"
_EXPORTS["BaseProvider"] = "qshpc.client.base"
for _name in (
    "CircuitMeta", "QiskitObjectsDecoder", "QiskitObjectsEncoder", "circuit_deserializer",
    "circuit_serializer", "fetch_execution_meta", "register_all_serializers", "remote",
    "service_deserializer", "service_serializer",
):  # fmt: skip
    _EXPORTS[_name] = "qshpc.program.compat"
_EXPORTS["parallel_transpile"] = "qshpc.program.library"
for _name in (
    "get_logger",
    "get_provider_logger",
    "ServerlessError",
    "send_error",
    "is_running_in_serverless",
    "is_trial",
):  # fmt: skip  (qiskit-serverless 0.18 on)
    _EXPORTS[_name] = "qshpc.program.serverless"
del _name

if TYPE_CHECKING:
    from qshpc.client.base import BaseProvider
    from qshpc.client.job import Job, list_jobs, open_job
    from qshpc.client.local import LocalClient
    from qshpc.client.serverless import (
        BaseJobClient,
        ComputeResource,
        GatewayJobClient,
        GatewayProvider,
        IBMServerlessClient,
        IBMServerlessProvider,
        LocalJobClient,
        LocalProvider,
        Provider,
        QiskitServerlessException,
        QuantumServerless,
        QuantumServerlessException,
        RayClient,
        RayJobClient,
        RayProvider,
        ServerlessClient,
        ServerlessProvider,
        distribute_program,
        distribute_qiskit_function,
        distribute_qiskit_pattern,
        get_auto_discovered_provider,
    )
    from qshpc.client.slurm import SlurmClient
    from qshpc.errors import (
        JobFailedError,
        JobNotFoundError,
        QshpcError,
        ResourceError,
        SerializationError,
        TaskError,
        UsageError,
        UserError,
    )
    from qshpc.jobs.paths import data_dir
    from qshpc.jobs.spec import Configuration, Program, QiskitFunction, QiskitPattern
    from qshpc.program.api import (
        DistributedTask,
        as_completed,
        distribute_task,
        get,
        get_arguments,
        get_refs_by_status,
        put,
        save_result,
        update_status,
        wait,
    )
    from qshpc.program.compat import (
        CircuitMeta,
        QiskitObjectsDecoder,
        QiskitObjectsEncoder,
        circuit_deserializer,
        circuit_serializer,
        fetch_execution_meta,
        register_all_serializers,
        remote,
        service_deserializer,
        service_serializer,
    )
    from qshpc.program.library import parallel_transpile
    from qshpc.program.refs import ObjectRef, TaskRef
    from qshpc.program.resources import Target
    from qshpc.program.serverless import (
        ServerlessError,
        get_logger,
        get_provider_logger,
        is_running_in_serverless,
        is_trial,
        send_error,
    )
    from qshpc.store import load_arguments, save_arguments
    from qshpc.task.context import current_task, rank_info


__getattr__, __dir__ = lazy_exports("qshpc", _EXPORTS, globals())


__all__ = [
    "BaseJobClient",
    "BaseProvider",
    "CircuitMeta",
    "ComputeResource",
    "Configuration",
    "DistributedTask",
    "GatewayJobClient",
    "GatewayProvider",
    "IBMServerlessClient",
    "IBMServerlessProvider",
    "Job",
    "JobFailedError",
    "JobNotFoundError",
    "LocalClient",
    "LocalJobClient",
    "LocalProvider",
    "ObjectRef",
    "Program",
    "Provider",
    "QiskitFunction",
    "QiskitObjectsDecoder",
    "QiskitObjectsEncoder",
    "QiskitPattern",
    "QiskitServerlessException",
    "QshpcError",
    "QuantumServerless",
    "QuantumServerlessException",
    "RayClient",
    "RayJobClient",
    "RayProvider",
    "ResourceError",
    "SerializationError",
    "ServerlessClient",
    "ServerlessError",
    "ServerlessProvider",
    "SlurmClient",
    "Target",
    "TaskError",
    "TaskRef",
    "UsageError",
    "UserError",
    "__version__",
    "as_completed",
    "circuit_deserializer",
    "circuit_serializer",
    "current_task",
    "data_dir",
    "distribute_program",
    "distribute_qiskit_function",
    "distribute_qiskit_pattern",
    "distribute_task",
    "fetch_execution_meta",
    "get",
    "get_arguments",
    "get_auto_discovered_provider",
    "get_logger",
    "get_provider_logger",
    "get_refs_by_status",
    "is_running_in_serverless",
    "is_trial",
    "list_jobs",
    "load_arguments",
    "open_job",
    "parallel_transpile",
    "put",
    "rank_info",
    "register_all_serializers",
    "remote",
    "save_arguments",
    "save_result",
    "send_error",
    "service_deserializer",
    "service_serializer",
    "update_status",
    "wait",
]
