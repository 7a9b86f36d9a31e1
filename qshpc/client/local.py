"""``LocalClient``: runs programs on this machine's MPI ranks (the embedded local default).

Each job is a ``qshpc run ENTRY --job-dir JOB_DIR`` child process; ``map`` starts
a background driver that runs an array's elements ``parallel`` at a time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qshpc import _timeline, settings
from qshpc.client.base import BaseProvider, page_jobs
from qshpc.client.job import Job, discard_note, list_jobs, open_job
from qshpc.errors import StoreError, UserError
from qshpc.jobs.arrays import (
    array_folder,
    array_meta,
    check_arguments_list,
    ensure_arrays_root,
)
from qshpc.jobs.paths import ensure_jobs_root, mark_terminal, new_job_id, read_override
from qshpc.jobs.spec import (
    Configuration,
    Program,
    create_program_job,
    plan_program_job,
    write_program_job,
)

if TYPE_CHECKING:
    from qshpc.notebook.display import JobList

#: qshpc.cli.nosite.BOOT (a string: the client does not import the CLI).
NOSITE_BOOT = "import sys;sys.path.append(sys.argv.pop(1));from qshpc.cli.nosite import main;main()"


def _launch(
    entry: str,
    working_dir: str,
    env_vars: dict[str, str],
    job_path: Path,
    workers: int | None,
    writing: bool = False,
    cache: dict[str, Any] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``qshpc run ENTRY --job-dir JOB_PATH`` (launcher log in ``logs/launcher.out``);
    return it and its end note (:func:`end_note`).

    ``writing``: this process writes the job's store meanwhile; rank 0 waits for it
    (:func:`qshpc.jobs.prepare.await_job`). ``cache``: the job meta's ``cache`` entry;
    when on, the ranks are told so (``QSHPC_CACHE_JOB``): the workers know it before
    rank 0 reads the job, and may put off their imports
    (:func:`qshpc.runtime.start.preload_deferred`), as with ``qshpc run --cache``.
    """
    folder = _folder(working_dir)
    entry = _as_typed(entry, folder)
    env = {**os.environ, **env_vars}
    # `python -m qshpc run ...` without `site` until it needs more than qshpc, the
    # ranks' mpiexec started first, as this process wrote it (qshpc.cli.nosite,
    # qshpc.launch.early): the ranks start 0.03-0.15 s sooner on 2 cores (the more
    # the machine is loaded, the more).
    cmd = [sys.executable, "-S", "-c", NOSITE_BOOT, str(Path(__file__).resolve().parents[2])]
    if cache and cache.get("enabled"):  # (before the ranks' command: no fork server then)
        env[settings.CACHE_JOB.name] = "1"
    ranks, workers = _early_ranks(entry, job_path, workers, env)
    if ranks:
        cmd += ["--ranks", str(len(ranks)), *ranks]
    cmd += ["run", entry, "--job-dir", str(job_path)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    env.pop(settings.LAUNCH_END.name, None)
    note = end_note()
    if note:  # rank 0 writes the job's end there once the store is final (Job.result)
        env[settings.LAUNCH_END.name] = note
    if writing:
        env[settings.AWAIT_JOB.name] = str(os.getpid())
    log = _open_log(job_path / "logs" / "launcher.out")
    # A session of its own: the job outlives what happens to this process's group
    # (a notebook's kernel interrupt or restart signals the kernel's whole group), as a
    # job on quantum-serverless's gateway does; Job.stop() cancels it.
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        os.close(log)
    return proc, note


def _as_typed(entry: str, folder: Path) -> str:
    """The program as the ranks' command names it: its path in ``folder`` (the ranks' cwd),
    so that its ``sys.argv[0]`` is ``io.py`` as under qiskit-serverless's ``python io.py``
    (review38 F10: the absolute path); absolute when it is elsewhere."""
    path = Path(entry)
    if path.is_absolute() and path.is_relative_to(folder.absolute()):
        given = str(path.relative_to(folder.absolute()))
        if given != "." and not given.startswith("-"):
            return given
    return entry


def _open_log(path: Path) -> int:
    """Open a launcher's log for appending: a FIFO or device put there is refused, never
    blocked on (as the ranks' logs: :func:`qshpc.store.seal.open_append`)."""
    from qshpc.store import perms
    from qshpc.store.seal import open_append

    try:
        return open_append(path, perms.file_mode())
    except OSError as exc:
        raise UserError(
            f"cannot write the log {path}: {exc.strerror or exc}; remove what is there "
            "(qshpc makes this file itself) and run again"
        ) from None


def _early_ranks(
    entry: str, job_path: Path, workers: int | None, env: dict[str, str]
) -> tuple[list[str], int | None]:
    """The ranks' command for the launcher to start first (:func:`early_command`), or [];
    and the worker ranks to tell it (those the command starts)."""
    from qshpc.launch.local import default_workers, early_command
    from qshpc.submit.slurm import task_env

    if task_env(env) is not None:  # in a Slurm job: the launcher sets its launcher up
        return [], workers
    n = default_workers() if workers is None else workers
    ranks = early_command(entry, job_path, n, env)
    return ranks, (n if ranks else workers)


def end_note() -> str:
    """A new empty file of this user's (0600) for the launcher's end note, or "".

    The launcher this client starts hands it to rank 0 as its own note
    (:class:`qshpc.launch.local._EndNote`): rank 0 writes the job's end there once
    the store is final, so :meth:`Job.result` can return before the ranks, mpiexec
    and the launcher have exited (0.1-0.15 s of teardown on 2 cores). The name
    carries this process's pid: a later launcher sweeps it once this process is gone.
    """
    import tempfile

    try:
        fd, path = tempfile.mkstemp(prefix=f"qshpc-end-{os.getpid()}-")
    except OSError:  # no usable temporary folder: result() waits for the launcher
        return ""
    os.close(fd)
    return path


def _make_job_dir(job_path: Path) -> None:
    """Make the job's folder and its ``logs``; a read-only or full store is one error naming
    the folder (hunt23b: ``client.run`` was an OSError traceback), and leaves nothing."""
    from qshpc.store import perms

    try:
        perms.make_dir(job_path)
        (job_path / "logs").mkdir(mode=perms.dir_mode(), exist_ok=True)
    except OSError as exc:
        shutil.rmtree(job_path, ignore_errors=True)  # a new job's: nothing else is in it
        where = job_path.parent
        raise StoreError(
            f"cannot create the job folder {job_path}: {exc.strerror or exc}. Check that "
            f"{where} is writable and that its file system has free space (df -h {where})"
        ) from None


def _start_then_write(
    prog: Program,
    arguments: dict[str, Any] | None,
    workers: int | None,
    job_path: Path,
    meta: dict[str, Any],
    span: _timeline.Span,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the job's ranks, then write its store while they start (rank 0 waits for it).

    Writing the job (an h5py import, the arguments' circuits as QPY, the file's
    fsync: 0.1-0.5 s) and starting the ranks (Python, MPI, qiskit: about 1 s)
    overlap instead of following each other. The job is whole on disk before this
    returns, as before. When writing fails (arguments that cannot be stored, a full
    disk) the folder goes, the launcher is stopped and the error is raised:
    rank 0 never runs anything. ``span``: this ``run``'s timeline (its steps are
    added, then written with ``QSHPC_TIMELINE=1`` as the job's
    ``logs/timeline-client.json``).
    """
    _make_job_dir(job_path)
    try:
        proc, note = _launch(
            str(prog.path()), prog.working_dir, prog.env_vars, job_path, workers, writing=True,
            cache=meta.get("cache"),
        )  # fmt: skip
    except BaseException:
        shutil.rmtree(job_path, ignore_errors=True)
        raise
    span.mark("launcher started")
    try:
        write_program_job(job_path, meta, arguments)
    except BaseException:
        shutil.rmtree(job_path, ignore_errors=True)  # rank 0 stops waiting: nothing runs
        proc.kill()
        proc.wait()
        discard_note(note)
        raise
    span.mark("job written")
    span.write(job_path / "logs", "client")
    return proc, note


def _drive_local_array(spec_json: str) -> None:
    """Run the elements of a ``LocalClient.map`` array, ``parallel`` at a time, in order.

    An element cancelled while queued is skipped; one that fails does not stop the rest.
    """
    spec = json.loads(spec_json)
    pending = [Path(d) for d in spec["job_dirs"]]
    running: list[Job] = []
    while pending or running:
        for job in list(running):
            if job._process is not None and job._process.poll() is not None:
                try:
                    job.wait(timeout=30)  # records a launcher that died before finalizing
                except Exception as exc:  # the next element runs regardless
                    print(f"element {job.job_dir.name}: {exc}", flush=True)
                running.remove(job)
        while pending and len(running) < int(spec["parallel"]):
            job_path = pending.pop(0)
            if read_override(job_path):  # cancelled while queued
                continue
            try:
                proc, note = _launch(
                    spec["program"], spec["working_dir"], spec["env"], job_path, spec["workers"],
                    cache=spec.get("cache"),
                )  # fmt: skip
            except (OSError, UserError) as exc:
                mark_terminal(job_path, "FAILED", f"could not start the element: {exc}")
                continue
            running.append(Job(job_path, proc, end_note=note))
        time.sleep(0.2)


def with_cache(
    program: Program,
    cache: bool,
    cache_dir: str | os.PathLike[str] | None,
    check: bool = True,
) -> Program:
    """``program`` as a client that uses the cache runs it; its cache folder checked now
    (and created; not with ``check=False``, for a dry run).

    Raises:
        UserError: The cache folder is unsafe or cannot be created (docs/cache.md).
    """
    import dataclasses

    if cache or cache_dir is not None:
        program = dataclasses.replace(
            program,
            cache=True,
            cache_dir=os.fspath(cache_dir) if cache_dir is not None else program.cache_dir,
        )
    if program.cache and check:
        from qshpc.cache.folder import CacheUnusable
        from qshpc.cache.store import CacheDir

        try:
            CacheDir(program.cache_dir)
        except CacheUnusable:  # run without the cache: its first cached call says so (review30 F7)
            pass
    return program


class LocalClient(BaseProvider):
    """Runs programs on this machine's MPI ranks (the embedded local default).

    It is also a quantum-serverless provider (:class:`~qshpc.client.base.BaseProvider`):
    ``upload``, ``get_job_by_id``, ``get_jobs``, the files API...

    Args:
        workers: Worker ranks (default: one per core); 0 runs tasks in the program's process.
        cache: Use the result cache across jobs for every program this client
            runs (as ``Program(..., cache=True)``; see docs/cache.md).
        cache_dir: The cache folder (default ``$QSHPC_CACHE_DIR``, else
            ``$QSHPC_HOME/cache``); implies ``cache=True``.
    """

    def __init__(
        self,
        workers: int | None = None,
        cache: bool = False,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 0
        ):
            raise UserError(f"workers must be a whole number >= 0, got {workers!r}")
        if workers is not None:
            from qshpc.launch.workers import check

            check(workers, "LocalClient")
        super().__init__("local")
        self.workers = workers
        self.cache = cache
        self.cache_dir = cache_dir

    def _program(self, program: Program | str) -> Program:
        """``program`` (or the uploaded one of that title), as this client runs it (cache)."""
        return with_cache(super()._program(program), self.cache, self.cache_dir)

    def run(
        self,
        program: Program | str,
        arguments: dict[str, Any] | None = None,
        config: Configuration | None = None,
        *,
        seed: int | None = None,
        job_dir: str | os.PathLike[str] | None = None,
    ) -> Job:
        """Start ``program`` with ``arguments``; return its :class:`Job` at once (state QUEUED/RUNNING).

        Args:
            program: A :class:`Program` (``QiskitPattern``), or the title of an uploaded one.
            arguments: The program's ``get_arguments()``.
            config: quantum-serverless's ``Configuration``: ``workers`` sets the worker ranks.
            seed: The job seed (every task's seed derives from it).
            job_dir: Where the job lives (default ``$QSHPC_HOME/jobs/<id>``).
        """
        span = _timeline.Span("run")
        prog = self._program(program)
        workers = self.workers
        if config is not None:
            config.check()
            if config.workers is not None:
                from qshpc.launch.workers import check

                check(config.workers, "Configuration")
                workers = config.workers
        job_path, meta = plan_program_job(prog, arguments, seed, job_dir)
        if job_path.exists():  # a folder of the caller's: as it always was, job first
            write_program_job(job_path, meta, arguments)
            proc, note = _launch(
                str(prog.path()), prog.working_dir, prog.env_vars, job_path, workers,
                cache=meta.get("cache"),
            )  # fmt: skip
            return self._mark(Job(job_path, proc, end_note=note))
        span.mark("job planned")
        proc, note = _start_then_write(prog, arguments, workers, job_path, meta, span)
        return self._mark(Job(job_path, proc, end_note=note))

    def map(
        self,
        program: Program,
        arguments_list: Sequence[dict[str, Any] | None],
        seed: int | None = None,
        parallel: int = 1,
    ) -> list[Job]:
        """Run ``program`` once per argument set, ``parallel`` at a time; return the jobs at once.

        Every element is a job of its own (``JOBS/<array_id>-<i>``) whose meta
        holds ``array_id``, ``array_index`` and ``array_size``; all get the same
        ``seed``. A background driver starts them in order: one that fails
        never stops the others. ``qshpc list --array ARRAY_ID`` shows them.

        Raises:
            UserError: An empty list, an argument set that is not a dict, a bad program.
        """
        check_arguments_list(arguments_list)
        program = self._program(program)
        if not isinstance(parallel, int) or parallel < 1:
            raise UserError(f"parallel must be a whole number >= 1, got {parallel!r}")
        array_id = new_job_id()
        folder = array_folder(array_id)
        paths = _make_array(program, arguments_list, seed, array_id, folder)
        spec = {
            "program": str(program.path()),
            "working_dir": str(_folder(program.working_dir).resolve()),
            "env": dict(program.env_vars),
            "workers": self.workers,
            "cache": program.cache_meta(),
            "parallel": parallel,
            "job_dirs": [str(p) for p in paths],
        }
        log = _open_log(folder / "driver.out")
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from qshpc.client.local import _drive_local_array as d; d(sys.argv[1])",
                json.dumps(spec),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # as _launch: a kernel interrupt leaves the array running
        )
        os.close(log)
        from qshpc.client.job import read_infos
        from qshpc.notebook.display import JobList

        return JobList((Job(p) for p in paths), infos=read_infos)

    def __repr__(self) -> str:
        workers = "one per core" if self.workers is None else str(self.workers)
        return f"<LocalClient | workers {workers}>"

    def jobs(
        self,
        state: str | None = None,
        *,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        function: Any = None,
    ) -> JobList[Job]:
        """Jobs in the store, newest first.

        qiskit-serverless's keywords work too: ``status`` (= ``state``), ``limit``,
        ``offset``, ``function`` (a program or title: its jobs only).
        """
        jobs = list_jobs(state if status is None else status)
        for j in jobs:
            self._mark(j)
        return page_jobs(jobs, limit, offset, function)

    def job(self, job_id: str) -> Job:
        """The job with this id."""
        return self._mark(open_job(job_id))


def _make_array(
    program: Program,
    arguments_list: Sequence[dict[str, Any] | None],
    seed: int | None,
    array_id: str,
    folder: Path,
) -> list[Path]:
    """Make an array's element jobs and its shared ``folder`` (with ``array.json``).

    Whatever fails removes what was made here. review23 F3: a team member whose
    ``arrays/`` folder could not be written got a raw ``PermissionError`` and left the
    elements' folders in ``jobs/``, QUEUED for good, with no driver to start them.

    Raises:
        UserError: A folder or file could not be made (its path, and the fix).
    """
    from qshpc.store import perms

    size = len(arguments_list)
    paths: list[Path] = []
    made = False
    try:
        ensure_arrays_root()
        for i, arguments in enumerate(arguments_list):
            meta = {"id": f"{array_id}-{i}", **array_meta(array_id, i, size)}
            paths.append(
                create_program_job(program, arguments, seed, ensure_jobs_root() / meta["id"], meta)
            )
        perms.make_dir(folder)
        made = True
        elements = [p.name for p in paths]
        record = {"array_id": array_id, "title": program.title, "elements": elements}
        # never through a FIFO or link there (hunt22c); the umask's mode, as before
        perms.write_atomic(
            folder / "array.json", (json.dumps(record, indent=1) + "\n").encode(), 0o666
        )
    except BaseException as exc:
        for d in [*paths, *([folder] if made else [])]:
            shutil.rmtree(d, ignore_errors=True)
        if isinstance(exc, OSError):
            raise perms.store_write_error(exc, "make the array's folders") from None
        raise
    return paths


def _folder(working_dir: str) -> Path:
    """A program's working folder, ``~`` expanded (``~nosuchuser``: a UserError)."""
    from qshpc.jobs.prepare import expand_home

    return expand_home(working_dir, "working_dir")
