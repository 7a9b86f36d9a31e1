"""A program to run (``Program``) and the QUEUED job created for it, shared by every client.

Mirrors quantum-serverless's ``Program(title=..., entrypoint=..., working_dir=...)``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qshpc import settings
from qshpc._version import __version__
from qshpc.errors import UserError
from qshpc.jobs.paths import ensure_jobs_root, new_job_id


@dataclass
class Program:
    """A program: an entrypoint file inside a working directory.

    Attributes:
        title: A human title, shown by ``qshpc list``.
        entrypoint: The program file, relative to ``working_dir``.
        working_dir: The folder the program runs in (staged for Slurm jobs).
        description: Free text.
        env_vars: Environment variables set for the program.
        cache: Use the result cache across jobs for every task of the program
            (a task's own ``cache=`` wins; see docs/cache.md).
        cache_dir: The cache folder (default ``$QSHPC_CACHE_DIR``, else
            ``$QSHPC_HOME/cache``; on shared storage for Slurm jobs).
    """

    title: str
    entrypoint: str
    working_dir: str = "./"
    description: str = ""
    env_vars: dict[str, str] = field(default_factory=dict)
    cache: bool = False
    cache_dir: str | None = None

    def cache_meta(self) -> dict[str, Any] | None:
        """The job meta's ``cache`` entry (None when the program does not ask for the cache)."""
        if not self.cache and self.cache_dir is None:
            return None
        folder = str(Path(self.cache_dir).expanduser().absolute()) if self.cache_dir else None
        return {"enabled": bool(self.cache or self.cache_dir), "dir": folder}

    def path(self) -> Path:
        """The entrypoint's path, checked.

        Raises:
            UserError: The working dir or the entrypoint does not exist.
        """
        wd = Path(self.working_dir).expanduser()
        if not wd.is_dir():
            raise UserError(f"working_dir {wd} of program {self.title!r} is not a directory")
        p = wd / self.entrypoint
        if not p.is_file():
            raise UserError(
                f"entrypoint {self.entrypoint!r} of program {self.title!r} not found in {wd.resolve()}"
            )
        return p.resolve()


def create_program_job(
    program: Program,
    arguments: dict[str, Any] | None,
    seed: int | None,
    job_dir: str | os.PathLike[str] | None,
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Create a QUEUED job in the store for ``program`` (shared by the local and Slurm clients)."""
    from qshpc.jobs.prepare import check_program
    from qshpc.store import create_job

    settings.check()  # every setting the ranks read: say it now, not when the job runs
    entry = program.path()
    check_program(entry)
    if arguments is not None and not isinstance(arguments, dict):
        raise UserError(f"arguments must be a dict, got {type(arguments).__name__}")
    job_id = new_job_id()
    path = Path(job_dir).resolve() if job_dir else ensure_jobs_root() / job_id
    meta = {
        "id": job_id,
        "title": program.title,
        "entrypoint": str(entry),
        "working_dir": str(Path(program.working_dir).resolve()),
        "created": time.time(),
        "seed": seed,
        "qshpc_version": __version__,
        "description": program.description,
        **(extra_meta or {}),
    }
    cache = program.cache_meta()
    if cache is not None:
        meta["cache"] = cache
    create_job(path, meta, arguments or {})
    from qshpc.store import perms

    (path / "logs").mkdir(mode=perms.dir_mode(), exist_ok=True)
    return path
