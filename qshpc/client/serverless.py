"""quantum-serverless 0.10.1's client names, over qshpc's clients.

``QuantumServerless(LocalClient())`` (or a ``SlurmClient``, or a list of
clients) keeps a quantum-serverless notebook's flow: ``run``, ``upload``,
``get_job_by_id``, ``get_jobs``, the files API, ``context``, ``providers`` and
``set_provider``, and what the clients have beside (``jobs``, ``job``, ``map``,
``list``/``functions``, ``get``/``function``). Jobs it starts spell their states as quantum-serverless did
(``"DONE"``, ``"ERROR"``), and each also equals qshpc's name
(``"SUCCEEDED"``, ``"FAILED"``). ``LocalProvider()`` is a ``LocalClient``
with those names. Names that only make sense with a gateway or a Ray cluster
(``ServerlessProvider``, ``IBMServerlessProvider``, ``GatewayProvider``,
``Provider``, ``RayProvider``, ``ComputeResource``, the job clients,
``get_auto_discovered_provider``) fail at once with one line naming qshpc's
equivalent. ``docs/quantum-serverless.md`` lists every name.
"""

from __future__ import annotations

import functools
import inspect
import os
import secrets
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qshpc.client.base import GATEWAY_HINT, BaseProvider, gateway_refused
from qshpc.client.job import Job
from qshpc.client.local import LocalClient
from qshpc.errors import QshpcError
from qshpc.jobs.spec import Configuration, Program, QiskitFunction

#: quantum-serverless's exception: catches every qshpc error.
QuantumServerlessException = QshpcError
#: qiskit-serverless's name of it (0.11 on).
QiskitServerlessException = QshpcError


class LocalProvider(LocalClient):
    """quantum-serverless's ``LocalProvider``: a :class:`LocalClient` with its status names.

    Unlike quantum-serverless's, it returns at once (the job runs in the
    background; ``job.result()`` waits) and it never pip-installs a program's
    dependencies into your environment: missing ones are named instead.
    """

    status_names = "serverless"

    def __init__(self, workers: int | None = None) -> None:
        super().__init__(workers)
        self.name = "local-provider"


class QuantumServerless:
    """quantum-serverless's client object over qshpc clients.

    Args:
        providers: A qshpc client (``LocalClient()``, ``SlurmClient(...)``,
            ``LocalProvider()``) or a list of them; the last is selected.
            None: ``LocalClient()``.

    Raises:
        UserError: A provider that is not a qshpc client.
    """

    def __init__(self, providers: BaseProvider | list[BaseProvider] | None = None) -> None:
        if providers is None:
            providers = [LocalClient()]
        elif not isinstance(providers, list):
            providers = [providers]
        for p in providers:
            _check_provider(p)
        if not providers:
            raise QuantumServerlessException("QuantumServerless needs at least one client")
        self._providers: list[BaseProvider] = providers
        self._selected: BaseProvider = providers[-1]

    def __repr__(self) -> str:
        names = ", ".join(p.name for p in self._providers)
        return f"<QuantumServerless | providers [{names}]>"

    @property
    def job_client(self) -> BaseProvider:
        """The selected client (quantum-serverless's job client)."""
        return self._selected

    def _mark(self, job: Job) -> Job:
        job.status_names = "serverless"
        return job

    def run(
        self,
        program: Program | str,
        arguments: dict[str, Any] | None = None,
        config: Configuration | None = None,
    ) -> Job:
        """Start ``program`` (or an uploaded program's title) on the selected client."""
        return self._mark(self._selected.run(program, arguments, config))

    run_program = run

    def upload(self, program: Program) -> str | QiskitFunction:
        """Record ``program`` for ``run(title)``; return its title (a QiskitFunction: itself, bound)."""
        return self._selected.upload(program)

    def get_job_by_id(self, job_id: str) -> Job:
        """The job with this id."""
        return self._mark(self._selected.get_job_by_id(job_id))

    def get_jobs(self, **kwargs: Any) -> list[Job]:
        """Jobs in the store, newest first (``limit``, ``offset``, ``status``)."""
        return [self._mark(j) for j in self._selected.get_jobs(**kwargs)]

    def get_programs(self, **kwargs: Any) -> list[Program]:
        """The uploaded programs."""
        return self._selected.get_programs(**kwargs)

    def files(self, function: Any = None, provider: Any = None) -> list[str]:
        """Names of the files in the data folder (``function``: see :class:`BaseProvider`)."""
        return self._selected.files(function, provider)

    def file_upload(self, file: str, function: Any = None, provider: Any = None) -> str:
        """Copy a local file into the data folder."""
        return self._selected.file_upload(file, function, provider)

    def file_download(self, file: str, *args: Any, **kwargs: Any) -> str:
        """Copy a file of the data folder to ``download_location``; return the name written."""
        return self._selected.file_download(file, *args, **kwargs)

    def file_delete(self, file: str, function: Any = None, provider: Any = None) -> str:
        """Remove a file from the data folder."""
        return self._selected.file_delete(file, function, provider)

    def context(self, provider: str | BaseProvider | None = None, **kwargs: Any) -> Any:
        """``with serverless.context():`` runs its block as is (tasks need no context in qshpc)."""
        chosen = self._find(provider) if provider is not None else self._selected
        return chosen.context(**kwargs)

    def provider(self, provider: str | BaseProvider, **kwargs: Any) -> Any:
        """The context of another provider (as :meth:`context`)."""
        return self.context(provider=provider, **kwargs)

    def add_provider(self, provider: BaseProvider) -> QuantumServerless:
        """Add a client to the list."""
        _check_provider(provider)
        self._providers.append(provider)
        return self

    def set_provider(self, provider: str | int | BaseProvider) -> QuantumServerless:
        """Select a client by index, name or identity."""
        self._selected = self._find(provider)
        return self

    def providers(self) -> list[BaseProvider]:
        """The clients."""
        return self._providers

    def widget(self) -> Any:
        """A table of the jobs in the store."""
        return self._selected.widget()

    # -- what LocalClient/SlurmClient have beside (qiskit-serverless's names, qshpc's) --
    def jobs(self, *args: Any, **kwargs: Any) -> list[Job]:
        """Jobs in the store, newest first (``status``/``state``, ``limit``, ``offset``,
        ``function``), as the selected client's ``jobs``."""
        return [self._mark(j) for j in self._selected.jobs(*args, **kwargs)]  # type: ignore[attr-defined]

    def job(self, job_id: str) -> Job:
        """The job with this id (qiskit-serverless's name of :meth:`get_job_by_id`)."""
        return self.get_job_by_id(job_id)

    def map(self, *args: Any, **kwargs: Any) -> list[Job]:
        """One job per argument set, as the selected client's ``map``."""
        return [self._mark(j) for j in self._selected.map(*args, **kwargs)]  # type: ignore[attr-defined]

    def download(self, file: str, download_location: str = "./") -> str:
        """The deprecated name of :meth:`file_download`."""
        return self.file_download(file, None, download_location)

    def functions(self, **kwargs: Any) -> list[QiskitFunction]:
        """The uploaded programs as ``QiskitFunction``s bound to the selected client."""
        return self._selected.functions(**kwargs)

    def function(self, title: str, provider: str | None = None) -> QiskitFunction | None:
        """The uploaded program titled ``title`` (or ``"provider/title"``), or None."""
        return self._selected.function(title, provider)

    def get_compute_resources(self) -> list[Any]:
        """Refused, as on the clients: the job's resources are its MPI ranks."""
        return self._selected.get_compute_resources()

    def create_compute_resource(self, resource: Any) -> int:
        """Refused, as on the clients."""
        return self._selected.create_compute_resource(resource)

    def delete_compute_resource(self, resource: Any) -> int:
        """Refused, as on the clients."""
        return self._selected.delete_compute_resource(resource)

    def _find(self, provider: str | int | BaseProvider) -> BaseProvider:
        if isinstance(provider, BaseProvider):
            _check_provider(provider)
            return provider
        if isinstance(provider, int) and not isinstance(provider, bool):
            if not 0 <= provider < len(self._providers):
                raise QuantumServerlessException(
                    f"provider index {provider} is out of range: {len(self._providers)} available"
                )
            return self._providers[provider]
        names = [p.name for p in self._providers]
        if provider in names:
            return self._providers[names.index(provider)]
        raise QuantumServerlessException(f"{provider!r} is not in the providers {names}")

    # last: ``list`` is a method from here on in the class body
    list = functions
    get = function


def _check_provider(p: object) -> None:
    if not isinstance(p, BaseProvider):
        raise gateway_refused(f"QuantumServerless({type(p).__name__})")


class _Refused:
    """A quantum-serverless class that needs a gateway or Ray: constructing it fails at once."""

    _what = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise gateway_refused(f"{self._what or type(self).__name__}(...)")


class ServerlessProvider(_Refused, BaseProvider):
    """Refused: quantum-serverless's gateway provider."""


class Provider(_Refused, BaseProvider):
    """Refused: the deprecated name of ServerlessProvider."""


class GatewayProvider(_Refused, BaseProvider):
    """Refused: the gateway provider of older quantum-serverless (the seed notebook's)."""


class IBMServerlessProvider(_Refused, BaseProvider):
    """Refused: IBM's hosted gateway."""

    @staticmethod
    def save_account(
        token: str | None = None, name: str | None = None, overwrite: bool = False
    ) -> None:
        """Refused: there is no account to save."""
        raise gateway_refused("IBMServerlessProvider.save_account")


class RayProvider(_Refused, BaseProvider):
    """Refused: a Ray cluster's job server."""


class ServerlessClient(_Refused, BaseProvider):
    """Refused: qiskit-serverless's gateway client (0.11 on)."""


class IBMServerlessClient(_Refused, BaseProvider):
    """Refused: qiskit-serverless's client of IBM's hosted gateway (0.11 on)."""


class RayClient(_Refused, BaseProvider):
    """Refused: qiskit-serverless's client of a Ray cluster (0.11 on)."""


class ComputeResource(_Refused):
    """Refused: a Ray cluster address (qshpc's compute resources are MPI ranks)."""


class BaseJobClient(_Refused):
    """Refused: quantum-serverless's job clients are internal; use the client's methods."""


class RayJobClient(_Refused):
    """Refused: Ray's job server client."""


class GatewayJobClient(_Refused):
    """Refused: the gateway's job client."""


class LocalJobClient(_Refused):
    """Refused: use LocalClient (its jobs are in the store, ``get_jobs``)."""


def get_auto_discovered_provider(manager_address: str, token: str | None = None) -> None:
    """Refused: there is no manager to discover providers from."""
    raise gateway_refused("get_auto_discovered_provider()")


_ENTRYPOINT = """\
# Written by qshpc.distribute_qiskit_pattern: runs {name}(**arguments).
import cloudpickle

from qshpc import get_arguments, save_result

try:
    with open({pickle!r}, "rb") as file:
        function = cloudpickle.load(file)
except ModuleNotFoundError as error:
    raise ModuleNotFoundError(
        f"{{error}}: {name} needs it, and this job does not see the folder that holds it; "
        "pass distribute_qiskit_function(working_dir=...) that folder, or put it on PYTHONPATH",
        name=error.name,
    ) from None

result = function(**get_arguments())
if result is not None:
    save_result(result)
"""


def caller_folder() -> str | None:
    """The folder this Python process imports its own modules from: the first entry of
    ``sys.path`` (the script's folder under ``python script.py``; the current folder
    under ``python -c``, ``-m``, a notebook or the prompt); None where there is none
    (``python -P``, a zip)."""
    if sys.flags.safe_path or not sys.path:
        return None
    folder = Path(sys.path[0] or ".").resolve()
    return str(folder) if folder.is_dir() else None


def caller_path_env() -> dict[str, str]:
    """``env_vars`` that let a job import what the caller imports from its own folder
    (:func:`caller_folder`): ``PYTHONPATH`` as here with that folder last; {} when it
    is on it already or there is none.

    A function the decorators ship by value names the caller's own modules
    (``from helpers import f``) by reference; its job runs in a folder of its own, and
    found them on Slurm only when submitted from their folder (a ``python -m`` start
    there) and never under LocalClient (review31 F3).
    """
    folder = caller_folder()
    current = os.environ.get("PYTHONPATH", "")
    entries = [e for e in current.split(os.pathsep) if e]
    if folder is None or folder in entries:
        return {}
    return {"PYTHONPATH": os.pathsep.join([*entries, folder])}


def distribute_qiskit_pattern(
    provider: BaseProvider | QuantumServerless | None = None,
    dependencies: list[str] | None = None,
    working_dir: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Job]]:
    """Turn a function into a program: calling it with keyword arguments starts a job.

    As quantum-serverless's decorator: the function travels by value
    (cloudpickle) with a generated entrypoint, its keyword arguments are the
    job's arguments, and what it returns is the job's result.

    Args:
        provider: The client that runs it (default ``LocalClient()``).
        dependencies: Requirements the program needs (checked, never installed).
        working_dir: Folder for the generated files, the program's folder (default
            ``$QSHPC_HOME/patterns/<name>_<random>``, kept so that the job can be resumed;
            the caller's own folder is then on the job's ``PYTHONPATH``, so that the
            function imports the modules beside the caller: :func:`caller_path_env`).

    Raises:
        QuantumServerlessException: The decorated object is not a function, or it
            was called with positional arguments.
    """
    runner = provider if provider is not None else LocalClient()
    if not isinstance(runner, QuantumServerless):
        _check_provider(runner)

    def decorator(function: Callable[..., Any]) -> Callable[..., Job]:
        if not inspect.isfunction(function):
            raise QuantumServerlessException("distribute_qiskit_pattern decorates functions only")

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Job:
            if args:
                raise QuantumServerlessException(
                    f"{function.__name__} takes named arguments only (the job's arguments): "
                    f"call {function.__name__}(name=value, ...)"
                )
            import cloudpickle

            from qshpc.jobs.paths import qshpc_home

            suffix = secrets.token_hex(4)
            folder = (
                Path(working_dir)
                if working_dir
                else qshpc_home() / "patterns" / f"{function.__name__}_{suffix}"
            )
            folder.mkdir(parents=True, exist_ok=True)
            pickle_name = f"pickle_{suffix}.pkl"
            (folder / pickle_name).write_bytes(cloudpickle.dumps(function))
            entry = f"entrypoint_{suffix}.py"
            (folder / entry).write_text(
                _ENTRYPOINT.format(
                    name=function.__name__, pickle=str((folder / pickle_name).resolve())
                )
            )
            program = Program(
                title=function.__name__,
                entrypoint=entry,
                working_dir=str(folder),
                dependencies=dependencies,
                env_vars={} if working_dir else caller_path_env(),
                description="a function run with qshpc.distribute_qiskit_pattern",
            )
            return runner.run(program, arguments=kwargs)

        return wrapper

    return decorator


def distribute_qiskit_function(
    provider: BaseProvider | QuantumServerless | None = None,
    dependencies: list[str] | None = None,
    working_dir: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Job]]:
    """qiskit-serverless's name (0.11 on) of :func:`distribute_qiskit_pattern`."""
    return distribute_qiskit_pattern(provider, dependencies, working_dir)


def distribute_program(
    provider: BaseProvider | QuantumServerless | None = None,
    dependencies: list[str] | None = None,
    working_dir: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Job]]:
    """The deprecated name of :func:`distribute_qiskit_pattern`."""
    warnings.warn(
        "distribute_program is deprecated: use distribute_qiskit_pattern",
        DeprecationWarning,
        stacklevel=2,
    )
    return distribute_qiskit_pattern(provider, dependencies, working_dir)


__all__ = [
    "GATEWAY_HINT",
    "BaseJobClient",
    "ComputeResource",
    "GatewayJobClient",
    "GatewayProvider",
    "IBMServerlessClient",
    "IBMServerlessProvider",
    "LocalJobClient",
    "LocalProvider",
    "Provider",
    "QiskitServerlessException",
    "QuantumServerless",
    "QuantumServerlessException",
    "RayClient",
    "RayJobClient",
    "RayProvider",
    "ServerlessClient",
    "ServerlessProvider",
    "distribute_program",
    "distribute_qiskit_function",
    "distribute_qiskit_pattern",
    "get_auto_discovered_provider",
]
