"""Submitting qshpc jobs to Slurm through submitit (which runs ``sbatch``).

``submit`` creates the job in the store (state QUEUED), stages the program's
working directory into ``JOB_DIR/program/``, and hands submitit
``qshpc.submit.task.run_task`` to run in every task of an
``srun --mpi=pmi2`` step; submitit's folder is ``JOB_DIR/slurm/``. The Slurm
job id goes to ``JOB_DIR/slurm_job_id`` (known only after ``sbatch``), where
:func:`qshpc.jobs.resolve_job_dir` and ``Job.info()`` find it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qshpc import settings
from qshpc.errors import ResourceError, UserError
from qshpc.jobs.paths import (
    RESUBMITTED_FILE,
    SLURM_CLUSTER_FILE,
    SLURM_ID_FILE,
    SLURM_STATE_FILE,
    STATUS_OVERRIDE,
    ensure_jobs_root,
    job_ref,
    jobs_root,
    new_job_id,
    note_slurm_id,
    qshpc_home,
    read_slurm_id,
    read_small,
)
from qshpc.jobs.requirements import check_requirements
from qshpc.submit import slurm
from qshpc.submit.config import merge_overrides
from qshpc.submit.resources import SlurmResources, safe_job_name
from qshpc.submit.sbatch import executor_parameters, render
from qshpc.submit.staging import check_entry_staged, check_size, stage, warn_size

if TYPE_CHECKING:
    from qshpc.jobs.spec import Program

STAGED_DIR = "program"
SUBMITIT_DIR = "slurm"
#: The program's env_vars as submitted, for ``--resume`` (in SUBMITIT_DIR, mode 0600).
ENV_FILE = "env_vars.json"
ARRAY_FILE = "array.json"


@dataclass
class Submission:
    """What ``submit`` did (or, for a dry run, would do).

    Attributes:
        job_id: The qshpc job id.
        slurm_job_id: Slurm's job id (None for a dry run).
        job_dir: The job directory.
        script: The batch script submitted (or that would be).
    """

    job_id: str
    slurm_job_id: str | None
    job_dir: Path
    script: str

    def as_dict(self) -> dict[str, Any]:
        """The ids and the job directory, JSON-able."""
        return {
            "job_id": self.job_id,
            "slurm_job_id": self.slurm_job_id,
            "job_dir": str(self.job_dir),
        }


def submit(
    program: Program,
    arguments: dict[str, Any] | None,
    seed: int | None,
    res: SlurmResources,
    dry_run: bool = False,
    program_args: Sequence[str] = (),
) -> Submission:
    """Submit ``program`` with ``arguments`` as one Slurm job; return at once
    (``program_args``: the program's ``sys.argv[1:]``, ``qshpc submit PROG -- ARGS``).

    Raises:
        ResourceError: Bad resources, or sbatch refused them (its message, and the partitions).
        UserError: A missing or invalid program, a working_dir over 1 GiB, no Slurm here.
    """
    from qshpc.jobs.prepare import check_program

    res.validate()
    settings.check()  # the job's ranks read them: say it now, not when the job runs
    entry = program.path()
    check_program(entry)
    check_requirements(program.dependencies, f"program {program.title!r} (dependencies)")
    src = Path(program.working_dir).expanduser().resolve()
    entrypoint = entry.relative_to(src) if entry.is_relative_to(src) else Path(entry.name)
    job_id = new_job_id()
    job_dir = jobs_root().absolute() / job_id
    if not str(job_dir).isprintable():
        raise UserError(
            f"QSHPC_HOME {qshpc_home()} holds non-printable characters: choose a plain path"
        )
    # Never stage the job store itself (a working_dir that holds $QSHPC_HOME).
    exclude = [qshpc_home().absolute(), jobs_root().absolute(), job_dir]
    check_entry_staged(src, entrypoint, exclude)
    warn_size(src, check_size(src, exclude))
    name = res.name or safe_job_name(program.title)
    params = executor_parameters(res, name, job_dir)
    folder = job_dir / SUBMITIT_DIR
    if dry_run:
        return Submission(job_id, None, job_dir, render(params, folder))
    executor = _executor(folder)
    executor.update_parameters(**params)
    try:
        ensure_jobs_root()  # a team store's missing jobs/ made 3770, as `qshpc run` makes it
        _make_dir(job_dir)
        argv = {"program_args": list(program_args)} if program_args else None
        staged = _create_job(
            program, src, entrypoint, job_dir, exclude, arguments, seed, res, name, argv
        )
        job = _sbatch(executor, staged, job_dir, res, program_args=program_args)
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise
    return _submitted(job_id, job, job_dir, params)


def _submitted(job_id: str, job: Any, job_dir: Path, params: dict[str, Any]) -> Submission:
    """Record sbatch's answer for the job in ``job_dir`` (its Slurm id and cluster) and
    say what was submitted (the batch script submitit wrote)."""
    slurm_id = str(job.job_id)
    with _recording(job_dir, job):
        note_slurm_id(job_dir, read_slurm_id(job_dir))  # a resumed job's first: kept
        _write_private(job_dir / SLURM_ID_FILE, slurm_id + "\n")
        note_slurm_id(job_dir, slurm_id)
        _record_cluster(job_dir)
    folder = job_dir / SUBMITIT_DIR
    text = _script(folder, slurm_id) or render(params, folder)
    return Submission(job_id, slurm_id, job_dir, text)


def _script(folder: Path, slurm_id: str) -> str | None:
    """The batch script submitit wrote for ``slurm_id``, or None (never blocking on a FIFO)."""
    try:
        return read_small(folder / f"{slurm_id}_submission.sh", 1 << 24).decode(errors="replace")
    except (OSError, ValueError):
        return None


@dataclass
class ArraySubmission:
    """What ``submit_array`` did (or, for a dry run, would do).

    Attributes:
        array_id: The qshpc id of the whole array (each element's meta ``array_id``).
        slurm_array_id: Slurm's array job id (None for a dry run); element i is ``<id>_<i>``.
        elements: One :class:`Submission` per element, in argument order.
        script: The batch script submitted (or that would be).
    """

    array_id: str
    slurm_array_id: str | None
    elements: list[Submission]
    script: str

    def as_list(self) -> list[dict[str, Any]]:
        """One JSON-able dict per element: ids, job directory, array id and index."""
        return [
            {**e.as_dict(), "array_id": self.array_id, "array_index": i}
            for i, e in enumerate(self.elements)
        ]


def submit_array(
    program: Program,
    arguments_list: Sequence[dict[str, Any] | None],
    seed: int | None,
    res: SlurmResources,
    dry_run: bool = False,
    program_args: Sequence[str] = (),
) -> ArraySubmission:
    """Submit ``program`` once per argument set, as ONE Slurm job array; return at once.

    Element ``i`` is a job of its own (``JOBS/<array_id>-<i>``: staged program,
    arguments, store) whose meta holds ``array_id``, ``array_index`` and
    ``array_size``; its Slurm id is ``<slurm array id>_<i>``. Every element
    gets the same resources and ``seed``. Elements run and end independently:
    one that fails or times out leaves the others' results alone.

    Raises:
        ResourceError: Bad resources, or sbatch refused them.
        UserError: An empty list, a bad program or argument set, no Slurm here.
    """
    from qshpc.jobs.arrays import (
        array_folder,
        array_meta,
        check_arguments_list,
        ensure_arrays_root,
    )
    from qshpc.jobs.prepare import check_program

    check_arguments_list(arguments_list)
    res.validate()
    settings.check()
    entry = program.path()
    check_program(entry)
    check_requirements(program.dependencies, f"program {program.title!r} (dependencies)")
    src = Path(program.working_dir).expanduser().resolve()
    entrypoint = entry.relative_to(src) if entry.is_relative_to(src) else Path(entry.name)
    array_id = new_job_id()
    folder_root = array_folder(array_id)
    job_dirs = [jobs_root().absolute() / f"{array_id}-{i}" for i in range(len(arguments_list))]
    if not str(folder_root).isprintable() or not str(job_dirs[0]).isprintable():
        raise UserError(
            f"QSHPC_HOME {qshpc_home()} holds non-printable characters: choose a plain path"
        )
    exclude = [qshpc_home().absolute(), jobs_root().absolute(), folder_root, *job_dirs]
    check_entry_staged(src, entrypoint, exclude)
    warn_size(src, check_size(src, exclude), len(job_dirs))
    name = res.name or safe_job_name(program.title)
    params = executor_parameters(res, name, folder_root)
    folder = folder_root / SUBMITIT_DIR
    if dry_run:
        shown = {**params, "map_count": len(job_dirs)}
        subs = [Submission(d.name, None, d, "") for d in job_dirs]
        return ArraySubmission(array_id, None, subs, render(shown, folder))
    executor = _executor(folder)
    executor.update_parameters(**params)
    from qshpc.submit.task import run_task

    made: list[Path] = []
    try:
        ensure_arrays_root()
        ensure_jobs_root()  # (review34 F4: made by _make_dir, a team store's jobs/ was 2750)
        _make_dir(folder_root)
        calls = []
        for i, (job_dir, arguments) in enumerate(zip(job_dirs, arguments_list, strict=True)):
            _make_dir(job_dir)
            made.append(job_dir)
            meta = array_meta(array_id, i, len(job_dirs))
            if program_args:
                meta["program_args"] = list(program_args)
            staged = _create_job(
                program, src, entrypoint, job_dir, exclude, arguments, seed, res, name, meta
            )
            calls.append(_task_call(staged, job_dir, res, program_args))
        with _sbatch_errors(folder), executor.batch():
            jobs = [executor.submit(run_task, *args, **kw) for args, kw in calls]
    except BaseException:
        for d in [*made, folder_root]:
            shutil.rmtree(d, ignore_errors=True)
        raise
    slurm_ids = [str(j.job_id) for j in jobs]  # a batch of one is a plain job: no ``_0``
    slurm_array = slurm_ids[0].split("_")[0]
    for job_dir, sid in zip(job_dirs, slurm_ids, strict=True):
        _write_private(job_dir / SLURM_ID_FILE, sid + "\n")
        note_slurm_id(job_dir, sid)
        _record_cluster(job_dir)
    manifest = {
        "array_id": array_id,
        "slurm_array_id": slurm_array,
        "title": program.title,
        "elements": [d.name for d in job_dirs],
        "slurm_job_ids": slurm_ids,
    }
    _write_private(folder_root / ARRAY_FILE, json.dumps(manifest, indent=1) + "\n")
    text = _script(folder, slurm_array) or render({**params, "map_count": len(jobs)}, folder)
    subs = [Submission(d.name, sid, d, text) for d, sid in zip(job_dirs, slurm_ids, strict=True)]
    return ArraySubmission(array_id, slurm_array, subs, text)


def resubmit(job_dir: Path, overrides: dict[str, Any], dry_run: bool = False) -> Submission:
    """Submit job ``job_dir`` again as a new Slurm job that resumes it (``qshpc submit
    --resume``): its staged program runs with ``--resume``, so only the tasks without a
    stored result run. Resources are the job's recorded ones, with ``overrides``
    (None values do not override) on top: ``--time-min`` after a TIMEOUT, say.

    The caller checks the job has ended (not SUCCEEDED); this checks it was submitted.

    Raises:
        UserError: Not a submitted job (no staged program), or no Slurm here.
        ResourceError: Bad resources, or sbatch refused them.
    """
    from qshpc.jobs.spec import Program as _Program
    from qshpc.store import JobReader

    with JobReader.open(job_dir) as r:
        meta = r.meta()
    staged_dir = job_dir / STAGED_DIR
    entry = str(meta.get("entrypoint") or "")
    recorded = meta.get("slurm_resources")
    if (
        meta.get("scheduler") != "slurm"
        or not staged_dir.is_dir()
        or not isinstance(recorded, dict)
    ):
        raise UserError(
            f"job {job_dir.name} was not submitted with `qshpc submit` (no staged program): "
            f"resume it with `qshpc run {shlex.quote(entry) if entry else 'PROGRAM'} "
            f"--resume {job_ref(job_dir)}`, or from your own batch "
            "script (docs/sbatch.md)"
        )
    _check_staged_own(job_dir, staged_dir)
    values = {k: v for k, v in recorded.items() if k in SlurmResources.field_names()}
    merge_overrides(values, overrides)
    res = SlurmResources.build(values, "--resume's resources")
    name = str(res.name or meta.get("slurm_job_name") or safe_job_name(job_dir.name))
    params = executor_parameters(res, name, job_dir)
    folder = job_dir / SUBMITIT_DIR
    if dry_run:
        return Submission(job_dir.name, None, job_dir, render(params, folder))
    env_vars = _read_env_vars(job_dir)
    staged = _Program(
        title=str(meta.get("title") or job_dir.name),
        entrypoint=str(Path(entry).relative_to(staged_dir))
        if Path(entry).is_relative_to(staged_dir)
        else Path(entry).name,
        working_dir=str(staged_dir),
        env_vars=env_vars,
        cache=bool((meta.get("cache") or {}).get("enabled")),  # the workers' preload (_task_call)
    )
    if not staged.path().is_file():
        raise UserError(
            f"job {job_dir.name}'s staged program {staged.path()} is missing: the job cannot be "
            "resumed on Slurm"
        )
    executor = _executor(folder)
    executor.update_parameters(**params)
    # Before sbatch: a run that starts before the marker is written is newer than it
    # (was: the time after sbatch; a run that started and failed in between showed QUEUED).
    submitted = time.time()
    job = _sbatch(
        executor, staged, job_dir, res, resume=True, program_args=meta.get("program_args") or ()
    )
    marker = {"slurm_job_id": str(job.job_id), "time": submitted}
    with _recording(job_dir, job):
        _write_private(job_dir / RESUBMITTED_FILE, json.dumps(marker))
    for stale in (SLURM_STATE_FILE, STATUS_OVERRIDE):
        # The first Slurm job's end, and the state the store lacked then: the new run's now.
        with contextlib.suppress(OSError):
            (job_dir / stale).unlink()
    return _submitted(job_dir.name, job, job_dir, params)


def _check_staged_own(job_dir: Path, staged_dir: Path) -> None:
    """Refuse to run a staged program another user could have written: the job folder,
    the staged folder and everything in it must be this user's, writable by nobody else
    (in a store shared with the group: by no other member either).

    hunt16: in a store shared by a team (``QSHPC_SHARE_GROUP=1``) ``qshpc submit --resume``
    of another member's job ran their staged program as this user.

    Raises:
        UserError: Naming the file and its owner (or mode), and what to do.
    """
    import stat

    from qshpc.store import perms

    me = os.geteuid()
    # Others write bits; the group's too in a shared store, whose job folders the group
    # may enter (a private store's 0700 job folder keeps everybody else out).
    others = 0o022 if perms.shared() else 0o002
    paths: list[Path] = [job_dir, staged_dir]
    for root, dirs, files in os.walk(staged_dir):  # links are not followed
        paths += [Path(root) / n for n in (*dirs, *files)]
    for path in paths:
        try:
            st = path.lstat()
        except OSError:
            continue  # gone meanwhile: nothing of it runs
        why = None
        if st.st_uid != me:
            why = f"it belongs to uid {st.st_uid}, not to you"
        elif st.st_mode & others and not stat.S_ISLNK(st.st_mode):
            why = (
                f"others can write it (mode {stat.S_IMODE(st.st_mode):04o}; if it is yours "
                f"and unchanged: chmod -R go-w '{staged_dir}')"
            )
        if why:
            from qshpc.text import shown

            raise UserError(
                f"refusing to resume job {shown(job_dir.name)}: its staged program "
                f"{shown(str(path))} could have been written by another user ({why}); qshpc "
                "runs only programs of your own. Submit your own copy of the program instead "
                "(`qshpc submit PROGRAM`)"
            )


@contextlib.contextmanager
def _recording(job_dir: Path, job: Any) -> Iterator[None]:
    """Writing what sbatch answered: an OSError (a full disk) is a StoreError that says the
    Slurm job was submitted (hunt14a: an ``OSError`` traceback, the job unrecorded)."""
    try:
        yield
    except OSError as exc:
        from qshpc.errors import StoreError

        raise StoreError(
            f"Slurm job {job.job_id} was submitted for job {job_dir.name}, but its record "
            f"could not be written in {job_dir} ({exc.strerror or exc}): the job will run, but "
            "`qshpc status` may not show Slurm's view of it; free space (df -h, df -i), or "
            f"`scancel {job.job_id}` and submit again once there is room"
        ) from None


def _make_dir(path: Path) -> None:
    """Create ``path`` with the store's permissions.

    Raises:
        UserError: It cannot be made: its path and the fix (review23 F3: a raw
            ``PermissionError`` in a team's store whose folder a member cannot write).
    """
    from qshpc.store import perms

    try:
        perms.make_dir(path)
    except OSError as exc:
        raise perms.store_write_error(exc, f"make the job's folder {path.name}") from None


def _create_job(
    program: Program,
    src: Path,
    entrypoint: Path,
    job_dir: Path,
    exclude: list[Path],
    arguments: dict[str, Any] | None,
    seed: int | None,
    res: SlurmResources,
    name: str,
    extra_meta: dict[str, Any] | None = None,
) -> Program:
    """Stage ``src`` into ``job_dir/program`` and create the QUEUED job there; return the staged program."""
    from qshpc.jobs.spec import Program as _Program
    from qshpc.jobs.spec import create_program_job

    stage(src, job_dir / STAGED_DIR, exclude)
    staged = _Program(
        title=program.title,
        entrypoint=str(entrypoint),
        working_dir=str(job_dir / STAGED_DIR),
        description=program.description,
        env_vars=dict(program.env_vars),
        cache=program.cache,
        cache_dir=program.cache_dir,
    )
    extra = {
        "id": job_dir.name,
        "scheduler": "slurm",
        "source_working_dir": str(src),
        "slurm_job_name": name,
        "slurm_resources": res.as_meta(),
        "user": os.environ.get("USER", ""),
        **(extra_meta or {}),
    }
    create_program_job(staged, arguments, seed, job_dir, extra_meta=extra)
    if staged.env_vars:
        # For --resume; private, as submitit's pickle of the call beside it (values may
        # be secrets: never in the meta, which `qshpc status --json` prints).
        _make_dir(job_dir / SUBMITIT_DIR)
        _write_private(job_dir / SUBMITIT_DIR / ENV_FILE, json.dumps(staged.env_vars), 0o600)
    return staged


def _read_env_vars(job_dir: Path) -> dict[str, str]:
    """The program's ``env_vars`` as submitted (for ``--resume``); {} when none were.

    Raises:
        UserError: The file is there but cannot be read, or is damaged: the run would go
            without the program's variables (hunt14a: it did, silently).
    """
    path = job_dir / SUBMITIT_DIR / ENV_FILE
    try:
        data = json.loads(read_small(path, 1 << 26))  # env_vars as submitted: up to 64 MiB
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else "not valid JSON"
        raise UserError(
            f"job {job_dir.name}'s env_vars file {path} cannot be read ({why}): the program "
            "would run without its variables. Make it readable (chmod u+r), or remove it to "
            "resume without them"
        ) from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UserError(
            f"job {job_dir.name}'s env_vars file {path} is damaged (not an object of strings): "
            "remove it to resume without the program's variables"
        )
    return {str(k): v for k, v in data.items()}


def _executor(folder: Path) -> Any:
    try:
        import submitit
    except ImportError:  # pragma: no cover - a dependency
        raise UserError("submitit is not installed: pip install submitit") from None
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise UserError(
            "sbatch/srun not found: submit from a Slurm login node (or run locally with `qshpc run`)"
        )
    return submitit.SlurmExecutor(folder=folder)


def _task_call(
    staged: Program, job_dir: Path, res: SlurmResources, program_args: Sequence[str] = ()
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments of ``run_task`` for the job in ``job_dir``."""
    args = (str(job_dir), str(staged.path()), str(job_dir / STAGED_DIR), res.gpus_per_node)
    env = dict(staged.env_vars)
    if res.requeue:
        env[settings.REQUEUE.name] = "1"  # rank 0 requeues on Slurm's time-limit warning
    cache = staged.cache_meta()
    if cache is not None and cache["enabled"]:
        env[settings.CACHE_JOB.name] = "1"  # the workers may put off their imports
    kwargs: dict[str, Any] = {"env": env}
    if program_args:
        kwargs["program_args"] = [str(a) for a in program_args]
    return args, kwargs


@contextlib.contextmanager
def _sbatch_errors(folder: Path) -> Iterator[None]:
    """Turn sbatch's refusal into a ResourceError that says what to do; keep submitit's
    ``folder`` and the pickles it writes there as private as the store (:func:`_keep_private`)."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    _make_dir(folder)
    noise = io.StringIO()
    try:
        with contextlib.redirect_stderr(noise):  # submitit prints sbatch's stderr itself
            yield
    except (FailedJobError, FailedSubmissionError) as exc:
        raise ResourceError(_explain(str(exc) or noise.getvalue())) from None
    except OSError as exc:
        raise UserError(f"cannot run sbatch: {exc}") from None
    _keep_private(folder)


def _keep_private(folder: Path) -> None:
    """Give the pickles submitit wrote in ``folder`` the store's file mode.

    hunt22c: submitit made ``folder`` and its pickles with the umask's modes: 0775 and 0664
    under a umask of 002. In a team's store, whose job folders the group may enter, any
    member could then replace or rewrite the call a queued Slurm job of yours unpickles:
    their code ran as you. ``folder`` is now made first with the store's mode (0700, or
    0750 shared), and the pickles get 0600 (0640) once submitit returns. (While sbatch
    runs, the pickle submitit wrote before it still has the umask's mode: a member must
    rewrite it within that call; the umask itself is left alone, as Slurm hands it on to
    the job's processes.)
    """
    from qshpc.store import perms

    me = os.geteuid()
    with contextlib.suppress(OSError):
        for path in folder.glob("*.pkl"):
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_uid == me and st.st_mode & 0o022:
                os.chmod(path, perms.file_mode())


def _sbatch(
    executor: Any,
    staged: Program,
    job_dir: Path,
    res: SlurmResources,
    resume: bool = False,
    program_args: Sequence[str] = (),
) -> Any:
    """Submit ``run_task`` for one job (``resume``: it resumes the job, ``--resume``)."""
    from qshpc.submit.task import run_task

    args, kwargs = _task_call(staged, job_dir, res, program_args)
    with _sbatch_errors(Path(executor.folder)):
        if resume:
            return executor.submit(run_task, *args, resume=True, **kwargs)
        return executor.submit(run_task, *args, **kwargs)


def _explain(text: str) -> str:
    """sbatch's refusal, its last lines, and what to do about it where we can tell: a
    partition, an account, a size the nodes do not have (CPUs too: review24 F9, "More
    processors requested than permitted" came bare), or no Slurm configuration found
    (an unset or wrong SLURM_CONF: what ``qshpc doctor`` says for it)."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    msg = "sbatch refused the job:\n    " + "\n    ".join(lines[-6:] or ["(no message)"])
    low = text.lower()
    if any(word in low for word in ("configuration source", "configuration file", "slurm.conf")):
        conf = slurm.conf()
        now = f"it is {conf}" if conf else "it is not set"
        msg += (
            f"\nset SLURM_CONF to your cluster's slurm.conf ({now}), or submit from a login "
            "node of the cluster; `qshpc doctor` checks it"
        )
    elif "partition" in low:
        parts = slurm.partitions()
        known = ", ".join(parts) if parts else "(sinfo did not answer)"
        msg += f"\npartitions on this cluster: {known}; choose one with --partition"
    elif "account" in low or "qos" in low or "association" in low:
        msg += "\nsee your accounts and QOS with `sacctmgr show assoc user=$USER`"
    elif any(word in low for word in ("node configuration", "memory", "gres", "processors", "cpu")):
        msg += "\nask for less (see `sinfo -o '%P %D %c %m %G'`), or check with --dry-run"
    return msg


def _record_cluster(job_dir: Path) -> None:
    """Name the cluster the job id belongs to, beside it: ids are per cluster, and a
    login node of another cluster sharing the file system must not take that id's
    state (or cancel it) for this job's (:func:`qshpc.submit.slurm.other_cluster`)."""
    name = slurm.cluster_name()
    if name:
        _write_private(job_dir / SLURM_CLUSTER_FILE, name + "\n")


def _write_private(path: Path, text: str, mode: int | None = None) -> None:
    from qshpc.store import perms

    perms.write_atomic(path, text.encode(), mode)
