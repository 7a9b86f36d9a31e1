"""A program to run (``Program``) and the QUEUED job created for it, shared by every client.

Mirrors quantum-serverless's ``QiskitPattern(title=..., entrypoint=..., working_dir=...)``
and its ``Configuration``.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from qshpc import settings
from qshpc._version import __version__
from qshpc.errors import UserError
from qshpc.jobs.paths import ensure_jobs_root, new_job_id


@dataclass
class Program:
    """A program: an entrypoint file inside a working directory.

    The fields and their order are quantum-serverless 0.10.1's ``QiskitPattern``
    (``qshpc.QiskitPattern`` is this class).

    Attributes:
        title: A human title, shown by ``qshpc list``; ``client.run(title)`` runs
            an uploaded program by it.
        entrypoint: The program file, relative to ``working_dir``.
        working_dir: The folder the program runs in (staged for Slurm jobs).
        env_vars: Environment variables set for the program.
        dependencies: Requirements (pip strings) the program needs: checked
            when it runs, never installed (install them in the job's environment).
        description: Free text.
        version: Free text.
        tags: Free text labels.
        raw_data: What quantum-serverless's gateway returned about the program (kept as given).
        cache: Use the result cache across jobs for every task of the program
            (a task's own ``cache=`` wins; see docs/cache.md).
        cache_dir: The cache folder (default ``$QSHPC_CACHE_DIR``, else
            ``$QSHPC_HOME/cache``; on shared storage for Slurm jobs).
    """

    title: str
    entrypoint: str | None = None
    working_dir: str = "./"
    env_vars: dict[str, str] = field(default_factory=dict)
    dependencies: list[str] | None = None
    description: str = ""
    version: str | None = None
    tags: list[str] | None = None
    raw_data: dict[str, Any] | None = None
    cache: bool = False
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        self.env_vars = dict(self.env_vars or {})
        self.description = self.description or ""
        self.working_dir = self.working_dir or "./"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Program:
        """quantum-serverless's ``QiskitPattern.from_json``: unknown keys are left out."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def cache_meta(self) -> dict[str, Any] | None:
        """The job meta's ``cache`` entry (None when the program does not ask for the cache)."""
        if not self.cache and self.cache_dir is None:
            return None
        from qshpc.jobs.prepare import expand_home

        folder = (
            str(expand_home(self.cache_dir, "the cache folder").absolute())
            if self.cache_dir
            else None
        )
        return {"enabled": bool(self.cache or self.cache_dir), "dir": folder}

    def path(self) -> Path:
        """The entrypoint's path, checked.

        Raises:
            UserError: No entrypoint, or the working dir or the entrypoint does not exist.
        """
        if not self.entrypoint:
            raise UserError(
                f"program {self.title!r} has no entrypoint: give entrypoint='file.py', or run "
                "an uploaded program by its title"
            )
        from qshpc.jobs.prepare import expand_home

        wd = expand_home(self.working_dir, "working_dir")
        if not wd.is_absolute():
            from qshpc.jobs.prepare import check_cwd

            check_cwd()  # a removed one: a FileNotFoundError traceback on c590a0b
        if not wd.is_dir():
            raise UserError(f"working_dir {wd} of program {self.title!r} is not a directory")
        p = wd / self.entrypoint
        if not p.is_file():
            raise UserError(
                f"entrypoint {self.entrypoint!r} of program {self.title!r} not found in {wd.resolve()}"
            )
        return p.resolve()


#: quantum-serverless 0.10.1's name of :class:`Program`.
QiskitPattern = Program


@dataclass
class QiskitFunction(Program):
    """qiskit-serverless's name of a program (0.11 on): a :class:`Program` that can ``run`` itself.

    ``client.list()`` and ``client.get(title)`` give uploaded programs bound to
    the client, so ``function.run(name=value, ..., config=...)`` starts a job
    with those keyword arguments, as in qiskit-serverless.

    Attributes:
        provider: The provider part of a ``"provider/title"`` title (kept, unused).
        image: A custom Docker image: refused (qshpc runs the entrypoint in this
            Python environment).
        job_client: The client ``run`` starts jobs on (set by ``list``/``get``).
        validate: Accepted (qiskit-serverless validated nothing either).
        schema: Accepted, unused.
        type: ``"GENERIC"``, as qiskit-serverless's functions with an entrypoint.
    """

    provider: str | None = None
    image: str | None = None
    job_client: Any = field(default=None, repr=False, compare=False)
    type: str = "GENERIC"
    validate: bool = True
    schema: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if "/" in self.title:
            head, _, rest = self.title.partition("/")
            if "/" in rest or (self.provider is not None and self.provider != head):
                raise UserError(
                    f"QiskitFunction title {self.title!r}: give 'title' or 'provider/title' "
                    "with the same provider as provider="
                )
            self.provider, self.title = head, rest
        if self.image:
            raise UserError(
                f"QiskitFunction(image={self.image!r}) runs a Docker image on a "
                "qiskit-serverless gateway; qshpc runs the program in this Python "
                "environment: give entrypoint='file.py' and working_dir= instead"
            )

    def run(self, **kwargs: Any) -> Any:
        """Start the program with ``kwargs`` as its arguments (``config=`` is the Configuration).

        Raises:
            UserError: No client: it was not given by ``client.list()``/``client.get()``.
        """
        if self.job_client is None:
            raise UserError(
                f"QiskitFunction {self.title!r} has no client to run on: upload it "
                "(client.upload(function)), then client.get(title).run(...), or "
                "client.run(function, arguments={...})"
            )
        config = kwargs.pop("config", None)
        return self.job_client.run(self.title, arguments=kwargs, config=config)

    def get_jobs(self) -> Any:
        """The jobs of this program's title on its client, newest first."""
        if self.job_client is None:
            raise UserError(f"QiskitFunction {self.title!r} has no client (see run)")
        return [j for j in self.job_client.get_jobs() if j.info().get("title") == self.title]

    jobs = get_jobs


@dataclass
class Configuration:
    """quantum-serverless's run configuration, on qshpc's clients.

    Attributes:
        workers: Worker ranks of the run (``LocalClient``), or tasks besides rank 0
            spread over the nodes (``SlurmClient``); None: the client's own.
        min_workers: Accepted; a qshpc job's ranks are fixed, so it is unused.
        max_workers: Accepted; unused (see ``min_workers``).
        auto_scaling: Must be False: MPI ranks do not scale while a job runs.
        python_version: ``"py39"``, ``"py310"``...: must name this Python (qshpc
            runs the program with the interpreter of the job's environment).
    """

    workers: int | None = None
    min_workers: int | None = None
    max_workers: int | None = None
    auto_scaling: bool | None = False
    python_version: str | None = ""
    PYTHON_V3_9: ClassVar[str] = "py39"
    PYTHON_V3_10: ClassVar[str] = "py310"

    def check(self) -> None:
        """Refuse what a qshpc job cannot honour, in one line.

        Raises:
            UserError: ``auto_scaling``, a bad ``workers``, another Python's version.
        """
        if self.auto_scaling:
            raise UserError(
                "Configuration(auto_scaling=True): a qshpc job's MPI ranks are fixed when it "
                "starts; give workers=N instead"
            )
        w = self.workers
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 0):
            raise UserError(f"Configuration(workers={w!r}): a whole number >= 0")
        here = f"py{sys.version_info.major}{sys.version_info.minor}"
        if self.python_version and self.python_version != here:
            raise UserError(
                f"Configuration(python_version={self.python_version!r}): jobs run with this "
                f"environment's Python ({here}); leave python_version out"
            )


def create_program_job(
    program: Program,
    arguments: dict[str, Any] | None,
    seed: int | None,
    job_dir: str | os.PathLike[str] | None,
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Create a QUEUED job in the store for ``program`` (shared by the local and Slurm clients)."""
    path, meta = plan_program_job(program, arguments, seed, job_dir, extra_meta)
    write_program_job(path, meta, arguments)
    return path


def plan_program_job(
    program: Program,
    arguments: dict[str, Any] | None,
    seed: int | None,
    job_dir: str | os.PathLike[str] | None,
    extra_meta: dict[str, Any] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Every check of :func:`create_program_job` that writes nothing; where the job goes and its meta.

    Raises:
        UserError: A bad program, dependencies, arguments or ``QSHPC_*`` setting.
    """
    from qshpc.jobs.prepare import check_program, expand_home

    settings.check()  # every setting the ranks read: say it now, not when the job runs
    entry = program.path()
    check_program(entry)
    if program.dependencies:
        from qshpc.jobs.requirements import check_requirements

        check_requirements(list(program.dependencies), f"program {program.title!r} (dependencies)")
    if arguments is not None and not isinstance(arguments, dict):
        raise UserError(f"arguments must be a dict, got {type(arguments).__name__}")
    job_id = new_job_id()
    path = expand_home(job_dir, "job_dir").resolve() if job_dir else ensure_jobs_root() / job_id
    meta = {
        "id": job_id,
        "title": program.title,
        "entrypoint": str(entry),
        "working_dir": str(expand_home(program.working_dir, "working_dir").resolve()),
        "created": time.time(),
        "seed": seed,
        "qshpc_version": __version__,
        "description": program.description,
        **(extra_meta or {}),
    }
    cache = program.cache_meta()
    if cache is not None:
        meta["cache"] = cache
    return path, meta


def write_program_job(path: Path, meta: dict[str, Any], arguments: dict[str, Any] | None) -> None:
    """Write the job :func:`plan_program_job` planned (its store and ``logs`` folder)."""
    from qshpc.store import create_job, perms

    create_job(path, meta, arguments or {})
    (path / "logs").mkdir(mode=perms.dir_mode(), exist_ok=True)
