"""What every qshpc client offers beyond running: quantum-serverless 0.10.1's provider methods.

``LocalClient`` and ``SlurmClient`` derive from :class:`BaseProvider` (the
name quantum-serverless gave its providers), so a notebook written for a
quantum-serverless provider finds the same methods: ``run`` (a program, or the
title of an uploaded one), ``upload``, ``get_programs``, ``get_job_by_id``,
``get_jobs``, the files API (``files``, ``file_upload``, ``file_download``,
``file_delete``), ``context`` and ``widget``. There is no gateway: uploaded
programs are recorded under ``$QSHPC_HOME/programs``, jobs are the store's,
files live in the data folder (:mod:`qshpc.client.files`).
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qshpc.errors import UserError
from qshpc.jobs.paths import qshpc_home
from qshpc.jobs.spec import Configuration, Program, QiskitFunction

if TYPE_CHECKING:
    from qshpc.client.job import Job
    from qshpc.notebook.display import JobList

#: Where ``upload`` records programs.
PROGRAMS_DIR = "programs"

GATEWAY_HINT = (
    "qshpc has no gateway: use qshpc.LocalClient() to run on this machine's MPI ranks, "
    "or qshpc.SlurmClient(nodes=..., ntasks_per_node=...) to submit to Slurm"
)


def gateway_refused(what: str) -> UserError:
    """The one-line error for a name that needs quantum-serverless's gateway (or Ray)."""
    return UserError(f"{what} needs a quantum-serverless gateway; {GATEWAY_HINT}")


class BaseProvider:
    """The quantum-serverless provider interface (the base of qshpc's clients).

    ``BaseProvider(name)`` alone runs nothing (as in quantum-serverless, where a
    provider without a compute resource could not run): use ``LocalClient`` or
    ``SlurmClient``. A ``host``, ``token`` or ``compute_resource`` (a gateway or
    a Ray cluster) is refused at once.

    Args:
        name: The provider's name (``QuantumServerless.set_provider(name)``).
    """

    #: ``Job.status()`` spells states as qshpc does ("SUCCEEDED") or as
    #: quantum-serverless 0.10.1 did ("DONE"); each equals the other's name.
    status_names = "qshpc"

    def __init__(
        self,
        name: str | None = None,
        host: str | None = None,
        token: str | None = None,
        compute_resource: Any = None,
        available_compute_resources: Any = None,
    ) -> None:
        if host is not None or token is not None or compute_resource is not None:
            raise gateway_refused("BaseProvider(host=..., token=..., compute_resource=...)")
        self.name = name or "provider"

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.name}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, BaseProvider)
            and type(other) is type(self)
            and other.name == self.name
        )

    __hash__ = object.__hash__

    @classmethod
    def from_dict(cls, dictionary: dict[str, Any]) -> BaseProvider:
        """Build a provider from keyword arguments (quantum-serverless's ``from_dict``)."""
        return cls(**dictionary)

    # -- running ----------------------------------------------------------------
    def run(
        self,
        program: Program | str,
        arguments: dict[str, Any] | None = None,
        config: Configuration | None = None,
    ) -> Job:
        """Start ``program`` (or the uploaded program of that title); return its job at once."""
        raise UserError(
            f"{self!r} runs nothing by itself; use qshpc.LocalClient() or qshpc.SlurmClient(...)"
        )

    def run_program(
        self,
        program: Program | str,
        arguments: dict[str, Any] | None = None,
        config: Configuration | None = None,
    ) -> Job:
        """The name older quantum-serverless notebooks used for :meth:`run`."""
        return self.run(program, arguments, config)

    def job_client(self) -> BaseProvider:
        """quantum-serverless's job client: the client itself."""
        return self

    @contextlib.contextmanager
    def context(self, **kwargs: Any) -> Iterator[BaseProvider]:
        """``with client.context():`` as quantum-serverless's Ray context: tasks need none.

        Outside a job, distributed tasks run in this process; inside one
        (``qshpc run``), on the job's worker ranks. Nothing is started or stopped.
        """
        yield self

    def _mark(self, job: Job) -> Job:
        job.status_names = self.status_names
        return job

    # -- programs -----------------------------------------------------------------
    def upload(self, program: Program) -> str | QiskitFunction:
        """Record ``program`` so that ``run(title)`` starts it later; return its title.

        A ``QiskitFunction`` (qiskit-serverless's name) gives the uploaded function
        bound to this client instead, as qiskit-serverless's ``upload`` did
        (``client.upload(function).run(**arguments)``).

        The record keeps absolute paths; the folder itself is not copied.

        Raises:
            UserError: Not a Program, or its entrypoint does not exist.
        """
        if not isinstance(program, Program):
            raise UserError(f"upload takes a Program (QiskitPattern), got {type(program).__name__}")
        entry = program.path()
        record = {
            "title": program.title,
            "entrypoint": entry.name,
            "working_dir": str(entry.parent),
            "env_vars": dict(program.env_vars),
            "dependencies": list(program.dependencies or []),
            "description": program.description,
            "version": program.version,
            "tags": list(program.tags or []),
            "cache": program.cache,
            "cache_dir": program.cache_dir,
        }
        folder = qshpc_home() / PROGRAMS_DIR
        from qshpc.store import perms

        path = folder / _record_name(program.title)
        try:  # hunt21b: through one fixed "<title>.tmp", where a FIFO hung it (two uploads raced)
            folder.parent.mkdir(parents=True, exist_ok=True)  # a read-only store: a line, not
            perms.make_dir(folder)  # an OSError traceback (hunt23b)
            perms.write_atomic(path, (json.dumps(record, indent=1) + "\n").encode(), 0o666)
        except OSError as exc:
            raise UserError(
                f"cannot record the program in {folder}: {exc.strerror or exc}"
            ) from None
        if isinstance(program, QiskitFunction):
            bound = self.function(program.title)
            if bound is not None:
                return bound
        return program.title

    def get_programs(self, **kwargs: Any) -> list[Program]:
        """The uploaded programs, by title."""
        from qshpc.store import seal

        folder = qshpc_home() / PROGRAMS_DIR
        if not folder.is_dir():
            return []
        programs = []
        for f in sorted(folder.glob("*.json")):
            try:
                programs.append(_read_record(f))
            except seal.NotRegular as exc:  # a FIFO there made this wait for a writer for good
                _warn(f"{exc}: left out of the uploaded programs")
            except (OSError, ValueError, TypeError, AttributeError, KeyError):
                continue  # damaged: client.run(title) says so
        return sorted(programs, key=lambda p: p.title)

    def _program(self, program: Program | str) -> Program:
        """``program`` itself, or the uploaded program titled so.

        A Program without an entrypoint names the uploaded one by its title, as
        quantum-serverless's ``run`` took one (``run_existing``).
        """
        bare = isinstance(program, Program)  # one without an entrypoint: the uploaded one
        if isinstance(program, Program):
            if program.entrypoint:
                return program
            program = program.title
        if not isinstance(program, str):
            raise UserError(
                f"run takes a Program (QiskitPattern) or an uploaded program's title, "
                f"got {type(program).__name__}"
            )
        path = qshpc_home() / PROGRAMS_DIR / _record_name(program)
        try:
            return _read_record(path)
        except FileNotFoundError:
            titles = [p.title for p in self.get_programs()]
            fix = "give the Program an entrypoint" if bare else "pass the Program itself"
            if not bare and program.endswith(".py") and Path(program).is_file():
                stem = Path(program).stem
                fix = (
                    f"to run the file {program}, pass "
                    f"Program(title={stem!r}, entrypoint={Path(program).name!r}, "
                    f"working_dir={str(Path(program).resolve().parent)!r})"
                )
            raise UserError(
                f"no program titled {program!r} was uploaded (uploaded: {titles or 'none'}); "
                f"call client.upload(program) first, or {fix}"
            ) from None
        except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
            # damaged, or not written by qshpc: a JSONDecodeError, AttributeError or
            # TypeError traceback on 28d9727 (hunt13c)
            raise UserError(
                f"the record of the uploaded program {program!r}, {path}, cannot be read "
                f"({type(exc).__name__}: {exc}): upload the program again "
                "(client.upload(program)), or pass the Program itself"
            ) from None

    # -- jobs ----------------------------------------------------------------------
    def get_job_by_id(self, job_id: str) -> Job:
        """The job with this id (or job directory, or Slurm id).

        Raises:
            JobNotFoundError: No such job.
        """
        from qshpc.client.job import open_job

        return self._mark(open_job(job_id))

    def get_jobs(self, **kwargs: Any) -> list[Job]:
        """Jobs in the store, newest first: ``limit`` (default all), ``offset`` and ``status`` filter."""
        from qshpc.client.job import list_jobs

        limit = _count(kwargs.get("limit"), "limit")
        offset = _count(kwargs.get("offset"), "offset") or 0
        jobs = list_jobs(kwargs.get("status"))[offset:]
        if limit is not None:
            jobs = jobs[:limit]
        return [self._mark(j) for j in jobs]

    # -- files ---------------------------------------------------------------------
    # qiskit-serverless 0.18 took ``provider=``, 0.20 on the function: ``files(function)``,
    # ``file_upload(path, function)``, ``file_download(name, function, ...)``,
    # ``file_delete(name, function)``. qshpc's data folder is one per user: the
    # function is checked (a QiskitFunction or its title) and names the same folder.
    def files(self, function: Any = None, provider: Any = None) -> list[str]:
        """Names of the files in the data folder (see :mod:`qshpc.client.files`)."""
        from qshpc.client import files

        files.check_function(function)
        files.check_function(provider, "provider")
        return files.list_files()

    def file_upload(self, file: str, function: Any = None, provider: Any = None) -> str:
        """Copy a local file into the data folder; return its name there."""
        from qshpc.client import files

        files.check_function(function)
        files.check_function(provider, "provider")
        return files.upload(file)

    def file_download(self, file: str, *args: Any, **kwargs: Any) -> str:
        """Copy a file of the data folder to ``download_location``; return the name written.

        Takes ``(file, function, target_name=None, download_location="./")`` (qiskit-serverless
        0.20 on) or ``(file, target_name=None, download_location="./", provider=None)`` (earlier).
        """
        from qshpc.client import files

        target_name, download_location = files.download_args(args, kwargs)
        return files.download(file, target_name, download_location)

    def download(self, file: str, download_location: str = "./") -> str:
        """The deprecated name of :meth:`file_download`."""
        return self.file_download(file, None, download_location)

    def file_delete(self, file: str, function: Any = None, provider: Any = None) -> str:
        """Remove a file from the data folder."""
        from qshpc.client import files

        files.check_function(function)
        files.check_function(provider, "provider")
        return files.delete(file)

    # -- what only a gateway had --------------------------------------------------------
    def get_compute_resources(self) -> list[Any]:
        """Refused: qshpc's resources are the job's MPI ranks (``qshpc.rank_info()``)."""
        raise gateway_refused("get_compute_resources()")

    def create_compute_resource(self, resource: Any) -> int:
        """Refused: ask Slurm for resources with ``SlurmClient(nodes=..., ...)``."""
        raise gateway_refused("create_compute_resource()")

    def delete_compute_resource(self, resource: Any) -> int:
        """Refused: there is no compute resource to delete."""
        raise gateway_refused("delete_compute_resource()")

    def widget(self) -> Any:
        """A table of the jobs in the store (an ipywidgets HTML widget; the HTML text without it)."""
        from qshpc.text import html_escape as escape

        rows = []
        for j in self.get_jobs(limit=50):
            try:
                meta = j.info()
            except Exception:
                continue
            rows.append(
                f"<tr><td>{escape(j.job_id)}</td><td>{escape(str(meta.get('title', '')))}</td>"
                f"<td>{escape(str(meta.get('state', '')))}</td></tr>"
            )
        html = (
            "<table><tr><th>job</th><th>title</th><th>state</th></tr>" + "".join(rows) + "</table>"
        )
        try:
            import ipywidgets
        except ImportError:
            return html
        return ipywidgets.HTML(html)

    # -- qiskit-serverless 0.11+'s names for uploaded programs (last: ``list`` is a method) --
    def functions(self, **kwargs: Any) -> builtins.list[QiskitFunction]:
        """The uploaded programs as ``QiskitFunction``s bound to this client (``f.run(**args)``)."""
        return [
            QiskitFunction(**{**asdict(p), "job_client": self}) for p in self.get_programs(**kwargs)
        ]

    def function(self, title: str, provider: str | None = None) -> QiskitFunction | None:
        """The uploaded program titled ``title`` (bound to this client), or None.

        ``"provider/title"`` names it too, as in qiskit-serverless (``upload`` keeps
        the title without its provider: ``get("prov/fn")`` was None).
        """
        if "/" in title:
            title = title.partition("/")[2]
        return {f.title: f for f in self.functions()}.get(title)

    list = functions
    get = function


#: The most bytes of an uploaded program's record read (its env_vars: as ``qshpc submit``'s).
_RECORD_MAX = 1 << 26


def _read_record(path: Path) -> Program:
    """The uploaded program recorded in ``path``.

    Raises:
        NotRegular: A FIFO, a socket or a device there (never opened for reading).
        OSError, ValueError, TypeError, AttributeError, KeyError: Unreadable or damaged.
    """
    from qshpc.jobs.paths import read_small

    return Program.from_json(json.loads(read_small(path, _RECORD_MAX)))


def _warn(message: str) -> None:
    import warnings

    from qshpc.errors import QshpcWarning

    warnings.warn(message, QshpcWarning, stacklevel=3)


def _record_name(title: str) -> str:
    """The record's file name for ``title`` (a digest: any title is safe as a file name)."""
    return hashlib.sha256(title.encode()).hexdigest()[:24] + ".json"


def page_jobs(jobs: JobList[Job], limit: Any, offset: Any, function: Any) -> JobList[Job]:
    """``jobs`` of ``function`` (a Program or title; None: all), from ``offset``, at most ``limit``."""
    from qshpc.notebook.display import JobList

    first = _count(offset, "offset", "jobs") or 0
    most = _count(limit, "limit", "jobs")
    picked = list(jobs)
    if function is not None:
        title = function.title if isinstance(function, Program) else str(function)
        picked = [j for j in picked if j.info().get("title") == title]
    picked = picked[first:]
    if most is not None:
        picked = picked[:most]
    return JobList(picked, infos=getattr(jobs, "_infos", None))


def _count(value: Any, name: str, what: str = "get_jobs") -> int | None:
    """``get_jobs``'s ``limit`` or ``offset``: None, or a whole number >= 0."""
    import operator

    if value is None:
        return None
    try:
        count = -1 if isinstance(value, bool) else operator.index(value)  # numpy ints too
    except TypeError:
        count = -1
    if count < 0:
        raise UserError(f"{what}: {name} must be a whole number >= 0, got {value!r}")
    return count
