"""Checks and job creation done once, before any rank runs the program."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qshpc import settings
from qshpc.errors import DamagedStoreError, UserError
from qshpc.jobs.paths import (
    JOB_FILE,
    ensure_jobs_root,
    job_ref,
    new_job_id,
    note_job_id,
    resolve_job_dir,
    small_store,
)


@dataclass
class RunSpec:
    """What ``qshpc run`` was asked to do.

    Attributes:
        program: The program file.
        arguments_file: An arguments file (.h5 from ``save_arguments`` or .json).
        job_dir: Where the job directory goes (default ``$QSHPC_HOME/jobs/<id>``).
        title: A title for the job (default: the program's file name).
        seed: The job seed (per-task seeds derive from it).
        resume: A job id or directory whose stored task results are reused.
        program_args: ``sys.argv[1:]`` for the program.
        cache: Use the result cache for every task (None: as the job was
            created, else off; a task's own ``cache=`` wins).
        cache_dir: The cache folder (None: as the job was created, else
            ``$QSHPC_CACHE_DIR`` or ``$QSHPC_HOME/cache``).
        job_id: The id of the job to create (default: a fresh one). The local
            launcher picks it and rank 0 creates the job (``--job-id``, hidden).
        argv0: The program's ``sys.argv[0]`` (default: ``program`` as given, as plain
            ``python PROGRAM`` shows it; a Slurm job's: its path in the staged folder).
    """

    program: Path
    arguments_file: Path | None = None
    job_dir: Path | None = None
    title: str | None = None
    seed: int | None = None
    resume: str | None = None
    program_args: list[str] = field(default_factory=list)
    cache: bool | None = None
    cache_dir: Path | None = None
    job_id: str | None = None
    argv0: str | None = None

    def __post_init__(self) -> None:
        """``~`` and ``~user`` expanded in ``job_dir`` and ``resume``, as in ``--cache-dir``
        (mend20: ``--job-dir '~/x'`` made a folder named ``~`` in the cwd, and
        ``--resume '~nosuchuser/x'`` was a RuntimeError traceback).

        A resumed job runs with its own arguments, seed and title: ``--resume`` with any of
        them is refused, as ``qshpc submit --resume`` does (review24 F4: they were dropped
        without a word, and the old results read as the new arguments').

        Raises:
            UserError: ``~user`` of no such user; ``--resume`` with ``--arguments``,
                ``--seed`` or ``--title``.
        """
        if self.resume is not None:
            given = [
                name
                for name, value in (
                    ("--arguments", self.arguments_file),
                    ("--seed", self.seed),
                    ("--title", self.title),
                )
                if value is not None
            ]
            if given:
                raise UserError(
                    f"--resume runs the job's own program, arguments, seed and title: leave out "
                    f"{', '.join(given)} (to run with other ones, start a new job)"
                )
        if self.job_dir is not None:
            self.job_dir = expand_home(self.job_dir, "--job-dir")
        if self.resume is not None and self.resume.startswith("~"):
            self.resume = str(expand_home(self.resume, "--resume"))

    def program_argv(self) -> list[str]:
        """The program's ``sys.argv`` on every rank: ``['io.py', 'a', 'b']`` for ``qshpc run
        io.py -- a b``, as ``python io.py a b`` gives (review38 F10: the workers' tasks saw
        qshpc's own, ``['.../qshpc/__main__.py', 'run', 'io.py', '--job-dir', ...]``)."""
        return [self.argv0 or str(self.program), *self.program_args]

    def cache_meta(self) -> dict[str, Any] | None:
        """The job meta's ``cache`` entry for what was asked (None: nothing asked)."""
        if self.cache is None and self.cache_dir is None:
            return None
        return {
            "enabled": bool(self.cache) if self.cache is not None else self.cache_dir is not None,
            "dir": str(expand_home(self.cache_dir, "the cache folder").absolute())
            if self.cache_dir
            else None,
        }


def expand_home(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded.

    mend19: ``~nosuchuser/x`` (a quoted ``~``, a mistyped login) raised RuntimeError:
    a traceback from ``qshpc submit``, ``Program.path`` and the jobs' cache folder.

    Raises:
        UserError: ``~user`` of no such user, naming ``what`` (``--working-dir``, say).
    """
    try:
        return Path(path).expanduser()
    except RuntimeError:
        raise UserError(
            f"{what} {os.fspath(path)!r} starts with the home folder of a user that does not "
            "exist here: write the folder out in full (or ~/... for your own)"
        ) from None


def check_program(program: Path) -> None:
    """Refuse a program that is missing, unreadable, or not valid Python.

    Raises:
        UserError: With the path, and the line of a syntax error.
    """
    check_utf8(program, "program file")
    if not program.exists():
        raise UserError(
            f"program file {program} does not exist: check the path (cwd is {Path.cwd()})"
        )
    if program.is_dir():
        raise UserError(f"program {program} is a directory: give the .py file to run")
    if program.suffix.lower() == ".ipynb":  # review24 F8: its JSON ran as Python (NameError)
        raise UserError(
            f"program {program} is a Jupyter notebook: run it in Jupyter (qshpc.LocalClient or "
            f"SlurmClient there), or export its code with jupyter nbconvert --to script {program}"
        )
    if not program.is_file():  # a FIFO or a device would block the read below
        raise UserError(f"program {program} is not a regular file: give the .py file to run")
    try:
        with program.open("rb") as fh:
            source = fh.read(1 << 20)
            if b"\0" not in source:  # (a 1 GB file of zeros is not read whole: review35 F9)
                source += fh.read()
    except OSError as exc:
        raise UserError(f"program file {program} cannot be read: {exc.strerror}") from None
    if _compiled(program, source):
        raise UserError(
            f"program {program} is compiled Python (a .pyc file): a job runs its program from "
            "the source; give the .py file it was compiled from"
        )
    if b"\0" in source:  # review35 F9: "a syntax error at line None: ... null bytes"
        raise UserError(
            f"program {program} holds NUL bytes: it is not Python source (a binary, or a "
            "damaged or truncated file?): give the .py file to run"
        )
    try:
        compile(source, str(program), "exec")
    except SyntaxError as exc:
        raise UserError(
            f"program {program} has a syntax error at line {exc.lineno}: {exc.msg}\n"
            f"    {(exc.text or '').rstrip()}"
        ) from None
    except ValueError as exc:
        raise UserError(f"program {program} cannot be compiled: {exc}") from None


def _compiled(program: Path, source: bytes) -> bool:
    """Whether ``program`` is a ``.pyc`` (by its name, or by its header: a version's
    2-byte magic number, ``\\r\\n``, then flags with zero bytes), not source.

    review25 F8: it was refused as "a syntax error at line None: source code
    string cannot contain null bytes"."""
    if program.suffix.lower() in (".pyc", ".pyo"):
        return True
    return source[2:4] == b"\r\n" and b"\0" in source[4:16]


def check_cwd() -> None:
    """Refuse to run a new job (or a program given by a relative path) from a working directory
    that was removed (the job runs in it; on c590a0b: a FileNotFoundError traceback).

    Raises:
        UserError: Saying so, and to ``cd`` to a folder that exists.
    """
    try:
        os.getcwd()
    except FileNotFoundError:
        raise UserError(
            "the working directory was removed (the job would run in it): cd to a folder "
            "that exists (os.chdir in a notebook) and try again"
        ) from None


def check_utf8(path: Path, what: str) -> None:
    """Refuse a path that is not valid UTF-8 (the job store keeps paths as UTF-8 text).

    Raises:
        UserError: Naming the path's bytes and what to do.
    """
    try:
        str(path.absolute()).encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(
            f"{what} {os.fsencode(path.absolute())!r} is not valid UTF-8: the job store "
            "records paths as UTF-8 text; rename it (or the folder holding it)"
        ) from None


def check_arguments_file(path: Path) -> None:
    """Refuse an arguments path that is missing or not a regular file (before reading it).

    Raises:
        UserError: With the path and what to give instead.
    """
    if not path.exists():
        raise UserError(
            f"arguments file {path} does not exist: check the path (cwd is {Path.cwd()})"
        )
    if path.is_dir():
        raise UserError(
            f"arguments file {path} is a directory: give the .h5 file from "
            "qshpc.save_arguments, or a .json file"
        )
    if not path.is_file():
        raise UserError(f"arguments file {path} is not a regular file: give a .h5 or .json file")


def load_arguments_file(path: Path, raw_qpy: bool = False) -> dict[str, Any]:
    """Load an arguments file (.h5 or .json), pickled values only from a file that is the user's.

    Values qshpc cannot store natively (a ``SparsePauliOp``, a user's class) are
    pickled by ``save_arguments``, and unpickling runs code: such a file is
    loaded only when this user owns it and nobody else can write it.
    ``raw_qpy``: circuits stay QPY bytes (see :func:`qshpc.store.load_arguments`).

    Raises:
        UserError: Pickled values in a file others can write, with what to do.
    """
    from qshpc.store import load_arguments, perms
    from qshpc.store.encoding_blob import PickleRefusedError

    try:
        return load_arguments(path, allow_pickle=perms.private_file(path), raw_qpy=raw_qpy)
    except PickleRefusedError as exc:
        # Which file or folder (on 3986114 the line did not say: a user whose own project
        # folder was 0775, group-writable, looked for another user's write in vain).
        what = f"here a {exc.what}" if exc.what else "e.g. an instance of your own class"
        raise UserError(
            f"arguments file {path} holds pickled values (objects stored by pickle, {what}), "
            "and it is not yours alone: "
            f"{perms.why_not_private(path)}, and unpickling runs code. If you "
            "trust it, copy it into a folder of your own that only you can write (chmod go-w), "
            "or pass those values as circuits, arrays, numbers, strings, lists or dicts"
        ) from None


_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def plan_job(spec: RunSpec) -> tuple[Path, str | None]:
    """Every check that needs no store, and where the job goes.

    The local launcher runs this before it starts any rank (so bad input fails
    at once, without MPI); rank 0 runs it again in :func:`prepare_job`.

    Returns:
        ``(job directory, id of the job to create)``; the id is None when the
        job exists already (``--resume``, or created by a client or ``qshpc submit``).

    Raises:
        UserError: Bad program, a missing arguments file, a job to resume that does
            not exist, a job directory in use, or a bad ``QSHPC_*`` setting the ranks read.
    """
    settings.check()  # every setting the ranks read, before any of them starts work
    if not spec.program.is_absolute():
        check_cwd()
    check_program(spec.program)
    if spec.resume:
        return resolve_job_dir(spec.resume), None
    if spec.job_dir is not None:  # (below it is resolved: a link in it is seen here only)
        from qshpc.store.trust import check_links

        check_links(spec.job_dir, "--job-dir")
    if spec.job_id is None and spec.job_dir is not None and (spec.job_dir / JOB_FILE).is_file():
        from qshpc.store.trust import check_job_folder

        check_job_folder(spec.job_dir)
        return spec.job_dir.resolve(), None  # created by a client or `qshpc submit`
    if spec.job_id is None and spec.job_dir is not None and settings.AWAIT_JOB.get() is not None:
        from qshpc.store.trust import check_new_job_folder

        check_new_job_folder(spec.job_dir)
        return spec.job_dir.resolve(), None  # its client writes it now (see await_job)
    if spec.arguments_file is not None:
        check_arguments_file(spec.arguments_file)
    if spec.job_id is not None and not _JOB_ID.fullmatch(spec.job_id):
        raise UserError(
            f"job id {spec.job_id!r} is not one qshpc makes: letters, digits, '.', '_' and '-'"
        )
    check_cwd()  # a new job records it, and runs in it
    job_id = spec.job_id or new_job_id()
    job_dir = (spec.job_dir or ensure_jobs_root() / job_id).resolve()
    check_utf8(job_dir, "job directory")
    check_utf8(Path.cwd(), "working directory")
    check_job_dir(job_dir)
    return job_dir, job_id


def prepare_job(spec: RunSpec) -> Path:
    """Create (or reopen) the job directory; return it. Run once, before MPI ranks start work.

    Raises:
        UserError: What :func:`plan_job` refuses, or an arguments file that cannot be loaded.
    """
    from qshpc._version import __version__
    from qshpc.store import create_job

    job_dir, job_id = plan_job(spec)
    if job_id is None:
        await_job(job_dir)
        return job_dir
    arguments: dict[str, Any] = {}
    if spec.arguments_file is not None:
        with modules_beside(spec.program):
            arguments = load_arguments_file(spec.arguments_file, raw_qpy=True)
        check_circuits(arguments, spec.arguments_file)
    meta = {
        "id": job_id,
        "title": spec.title or spec.program.name,
        "entrypoint": str(spec.program.resolve()),
        "working_dir": str(Path.cwd()),
        "created": time.time(),
        "seed": spec.seed,
        "qshpc_version": __version__,
        "argv": [str(spec.program), *spec.program_args],
        "user": os.environ.get("USER", ""),
        "python": sys.version.split()[0],
    }
    cache = spec.cache_meta()
    if cache is not None:
        meta["cache"] = cache
    create_job(job_dir, meta, arguments)
    note_job_id(job_dir, job_id)  # a --job-dir folder: sorted and found without a store read
    _made[job_dir] = _file_identity(job_dir)
    _created.add(job_dir)
    return job_dir


@contextmanager
def modules_beside(program: Path) -> Iterator[None]:
    """While the arguments (or a stored result: :meth:`qshpc.client.job.Job.result`) load:
    the program's folder last on ``sys.path``.

    An argument pickled from a class of a module beside the program (``from
    mything import Config`` in the script that saved it) names that module; the
    program's folder goes first on the path only when the program starts, so
    the load failed ("No module named 'mything'") whenever the command ran from
    another folder. Last, not first: a file of the user's named like a library
    qshpc loads meanwhile (``h5py.py``, ``logging.py``) is not taken for it.
    """
    folder = str(program.resolve().parent)
    added = folder not in sys.path
    if added:
        sys.path.append(folder)
    hidden = _hide_others(folder)
    try:
        yield
    finally:
        sys.modules.update(hidden)  # (what loaded keeps the folder's own modules)
        if added and folder in sys.path:
            sys.path.remove(folder)


def _hide_others(folder: str) -> dict[str, Any]:
    """Modules this process imported from another folder of the user's under a name a module
    in ``folder`` has, taken out of ``sys.modules`` for the load (the caller puts them back).

    Two jobs' results read in one process (a notebook comparing runs), each job with its own
    ``helpers.py`` beside its program: the second job's values were built from the first
    job's module (review33 F4: "Can't get attribute 'Point' on <module 'helpers' from
    .../A/helpers.py>", or silently the other class). A library's module (site-packages, the
    standard library) is never hidden, nor one imported from ``folder`` itself.
    """
    import sysconfig

    here = os.path.realpath(folder)
    try:
        entries = os.listdir(here)
    except OSError:
        return {}
    libs = tuple(
        os.path.join(os.path.realpath(p), "")
        for k, p in sysconfig.get_paths().items()
        if k in ("stdlib", "platstdlib", "purelib", "platlib") and p
    )
    hidden: dict[str, Any] = {}
    for entry in entries:
        name = entry[:-3] if entry.endswith(".py") else entry
        if not name.isidentifier():
            continue
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        if module is None or not isinstance(file, str):
            continue
        real = os.path.realpath(file)
        if real.startswith(libs) or real.startswith(os.path.join(here, "")):
            continue
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            hidden[key] = sys.modules.pop(key)
    return hidden


def await_job(job_dir: Path) -> None:
    """Wait for the store of a job that its client writes while the ranks start.

    ``LocalClient.run`` starts ``qshpc run`` first and writes the job meanwhile
    (its arguments: an h5py import, the circuits' QPY, an fsync), so that the
    ranks' start-up hides that work; it names itself in ``QSHPC_AWAIT_JOB``.
    Rank 0 then waits here for ``job.h5``, which appears whole (written aside,
    then renamed). Without the variable, or once the file is there, this returns at once.

    Raises:
        UserError: The client removed the job folder (writing it failed: it says
            why itself) or ended without writing it; nothing was run.
    """
    pid = settings.AWAIT_JOB.get()
    os.environ.pop(settings.AWAIT_JOB.name, None)  # the program's children are not awaited
    if pid is None:
        return
    from qshpc.store.lock import pid_alive

    sleep = 0.0
    while not (job_dir / JOB_FILE).is_file():
        if not job_dir.is_dir() or not pid_alive(pid):
            if (job_dir / JOB_FILE).is_file():
                return
            raise UserError(
                f"job {job_dir.name}: the client that started it (pid {pid}) did not write "
                "it (it failed, or ended first); nothing was run"
            )
        sleep = min(_AWAIT_SLEEP_S, sleep * 2 or 2e-4)
        time.sleep(sleep)


_AWAIT_SLEEP_S = 0.005

#: Jobs this process created, with their job.h5's identity right after (see claim_job).
_made: dict[Path, tuple[int, ...] | None] = {}
#: Jobs this process created (not a client's, not a --resume): see :func:`never_started`.
_created: set[Path] = set()


def never_started(
    job_dir: Path,
    exc: BaseException,
    locked: bool = True,
    before_removal: Callable[[], None] | None = None,
) -> str | None:
    """The disk filled before the job's program started: record the job FAILED, or remove it.

    Recorded FAILED beside the store (a few hundred bytes), or it would stay QUEUED, a
    job that never runs and that ``qshpc rm`` refuses (on 8cc329b). On a file system out
    of inodes not even that file can be made (hunt13c: the job stayed QUEUED for good,
    the error saying "resume the job"): a job this process created itself, which ran
    nothing, is removed then, as when its store could not be created.

    Args:
        job_dir: The job.
        exc: Why it could not start.
        locked: This run holds the job's lock. Without it only a job this process created
            is touched: another run may hold the job (a --resume whose lock could not be
            taken must not mark FAILED a job that runs, nor replace an ended job's error).
        before_removal: Called right before the folder is removed: rank 0 stops its
            workers there and waits until they ended (review50 F4: a worker that opened
            its log while the folder was removed left ``logs/rank-N.out`` behind).

    Returns:
        The error to show instead of ``exc``'s when the job's folder was removed, else None.
    """
    from qshpc.jobs.paths import mark_terminal
    from qshpc.store.space import disk_full

    if not disk_full(exc) or not (locked or job_dir in _created):
        return None
    try:
        mark_terminal(job_dir, "FAILED", str(exc))
        return None
    except OSError:
        pass
    if job_dir not in _created:
        return None  # not ours to remove (a client's job, a resumed one): it stays QUEUED
    import shutil

    if before_removal is not None:
        before_removal()
    release_claim()
    shutil.rmtree(job_dir, ignore_errors=True)
    if job_dir.exists():
        return None
    _created.discard(job_dir)
    what = str(exc).split("; ")[0]
    return (
        f"{what}; nothing had run, so the job's folder {job_dir} was removed: free space "
        "(df -h) or files (df -i), then run again"
    )


def _file_identity(job_dir: Path) -> tuple[int, ...] | None:
    """What changes when anything rewrites or writes ``job.h5``: device, inode, size, times.

    None when there is no job.h5 or a journal exists beside it (a writer opened the job).
    """
    from qshpc.store.layout import JOURNAL_FILE

    try:
        st = os.stat(job_dir / JOB_FILE)
    except OSError:
        return None
    if os.path.lexists(job_dir / JOURNAL_FILE):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def check_circuits(arguments: Any, path: Path) -> None:
    """Decode the circuits an arguments file holds as QPY bytes (a bad file fails here, nothing
    created), keeping them for the program's read of its arguments.

    The job then stores the file's QPY bytes as they are: one decode in all,
    instead of a decode here, an encode into the job and a decode again when
    the program starts (about 60 ms of rank 0's start for 512 small circuits).

    Raises:
        UserError: Naming the file, when its circuits cannot be read.
    """
    from qshpc.store import _qpy
    from qshpc.store.encoding_h5 import QPYBytes

    stack = [arguments]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        elif isinstance(value, QPYBytes):
            try:
                circuits = _qpy.load(value.data)
            except Exception as exc:
                raise UserError(
                    f"cannot load arguments from {path}: its circuits cannot be read (QPY: "
                    f"{exc}); save them again with qshpc.save_arguments"
                ) from None
            if not value.is_list and not circuits:
                raise UserError(
                    f"cannot load arguments from {path}: a circuit was expected and its QPY "
                    "data holds none; save them again with qshpc.save_arguments"
                )
            _qpy.remember(value.data, circuits)


#: Set by ``qshpc run``'s own launcher for its mpiexec; rank 0 records it in its
#: run's entry, so the launcher knows which run in the store is the one it started.
LAUNCH_TOKEN = settings.LAUNCH_TOKEN.name

_held: list[Any] = []  # the JobLock this process holds (rank 0 of a run)


def check_job_dir(job_dir: Path) -> None:
    """Refuse a new job's folder that exists and is not an empty folder, or lies in another job.

    Raises:
        UserError: What it is, and to choose another ``--job-dir``.
    """
    from qshpc.store.perms import check_path_room
    from qshpc.text import shown

    check_path_room(job_dir)  # before any stat: a path over PATH_MAX raised ENAMETOOLONG there
    where = shown(job_dir)
    if job_dir.exists() and not job_dir.is_dir():
        raise UserError(f"job directory {where} is a file, not a folder: choose another --job-dir")
    try:
        if job_dir.exists() and any(job_dir.iterdir()):
            raise UserError(
                f"job directory {where} exists and is not empty: choose another --job-dir"
            )
    except PermissionError:
        raise UserError(f"job directory {where} cannot be read: choose another --job-dir") from None
    from qshpc.store.perms import check_own_job_dir
    from qshpc.store.trust import check_new_job_folder

    check_own_job_dir(job_dir)
    check_new_job_folder(job_dir)
    for parent in job_dir.parents:
        if (parent / JOB_FILE).is_file():
            raise UserError(
                f"job directory {where} is inside the folder of job {shown(parent)} (qshpc rm "
                "of that job would remove it too): choose another --job-dir"
            )


def check_claimable(spec: RunSpec, job_dir: Path) -> None:
    """Refuse at once a run the job's lock would refuse, or a resume of a damaged job (the
    launcher, before mpiexec).

    A new run of a job that already ran is refused by rank 0 (:func:`claim_job`,
    the same line and exit code 2): reading the store here would cost the
    launcher an h5py import on the way to every run of a job created beforehand
    (``LocalClient.run``, ``qshpc submit``), 0.2-0.3 s on 2 cores.

    Raises:
        JobLockedError: A live run holds the job.
        UserError: ``--resume`` of a job whose store is damaged.
    """
    from qshpc.store.lock import JobLock, holder_alive

    holder = holder_alive(job_dir, runs_only=True)  # a fold: claim_job's lock waits
    if holder is not None:
        from qshpc.store.lock import JobLockedError

        raise JobLockedError(JobLock(job_dir)._refusal(holder), holder)
    if spec.resume:
        check_resume(spec, job_dir, _check_readable(job_dir))


def _check_readable(job_dir: Path) -> dict[str, Any]:
    """Refuse to resume a job whose store is damaged (:func:`resume_refusal`); its meta
    otherwise."""
    from qshpc.store import JobReader

    try:
        with JobReader.open(job_dir) as r:
            meta = r.meta()
            if meta.get("state") == "SUCCEEDED":
                # review52 F12: "nothing to resume (`qshpc result J`)", and `qshpc result J`
                # then said the result was lost: checked whole first, as `qshpc status` does;
                # a bigger store, its result's bytes (what `qshpc result` reads) alone
                if small_store(job_dir):
                    r.verify()
                else:
                    r.check_result()
    except DamagedStoreError as exc:
        raise resume_refusal(job_dir, exc) from None
    check_resumed_program(meta, job_dir)
    return meta


def resume_refusal(job_dir: Path, exc: DamagedStoreError) -> UserError:
    """The refusal of ``qshpc run --resume`` (with PROGRAM or without) of a job whose store
    is damaged: what is damaged, what is readable, and the way on
    (:func:`qshpc.store.reader.resume_refused`, the one text of it)."""
    from qshpc.store.reader import resume_refused

    return UserError(str(resume_refused(job_dir, exc)))


def check_resumed_program(meta: Mapping[str, Any], job_dir: Path) -> None:
    """Refuse to resume a job whose recorded program (its ``entrypoint``, what a resume
    runs) another user owns or could replace, and that changed since the job was made
    (review35 F3: it ran as the user; review39 F3: not when unchanged).

    Raises:
        UserError: Who owns or can write it, and the fix.
    """
    from qshpc.store.trust import check_program
    from qshpc.text import shown

    entry = meta.get("entrypoint")
    if entry:
        made = meta.get("created")
        made = float(made) if isinstance(made, (int, float)) else None
        check_program(Path(str(entry)), shown(meta.get("id") or job_dir.name), made)


def check_resume(spec: RunSpec, job_dir: Path, meta: Mapping[str, Any]) -> None:
    """Refuse a resume that cannot run right, before a run is recorded; give ``spec`` the
    job's recorded program arguments when it has none.

    review38 F1: a resume of a SUCCEEDED job ran it again (with no ``sys.argv``) and, when
    that run failed, its saved result was gone; a resume never took the arguments given
    after ``--`` when the job was made. review35 F5: a resume whose program file was
    moved failed in rank 0 with a traceback, recorded as a new FAILED run.

    Raises:
        UserError: The job SUCCEEDED; its program file is gone; other program
            arguments than the recorded ones were given; the folder's ``job.h5`` holds
            another job than the one the folder was made for.
    """
    from qshpc.jobs.paths import other_job
    from qshpc.text import shown

    jid = shown(meta.get("id") or job_dir.name)
    if other := other_job(job_dir, meta.get("id")):
        raise UserError(  # review53 N1: it went on with the other job's store, silently
            f"cannot resume the job in {shown(job_dir)}: {other[0]}; a resume would go on with "
            f"job {jid}'s store; nothing was run. Resume job {jid} from the folder it was made "
            f"in, or start a new job; to take this folder as job {jid}'s, {other[1]}"
        )
    ref = job_ref(job_dir)
    if meta.get("state") == "SUCCEEDED":
        raise UserError(
            f"job {jid} already SUCCEEDED: nothing to resume (`qshpc result {ref}`); "
            "to run it again, start a new job (without --resume)"
        )
    entry = meta.get("entrypoint")
    if isinstance(entry, str) and entry and not Path(entry).is_file():
        raise UserError(
            f"job {jid} was made for {shown(entry)}, which no longer exists: move or copy "
            "it back there, or start a new job (without --resume); nothing was run"
        )
    _take_recorded_argv0(spec, meta)
    recorded = recorded_program_args(meta)
    if recorded is None:
        return
    if not spec.program_args:
        spec.program_args = recorded
    elif list(spec.program_args) != recorded:
        import shlex

        was = shown(shlex.join(recorded)) if recorded else "none"
        raise UserError(
            "--resume runs the job's own program, arguments, seed and title: leave out the "
            f"program's arguments after -- (job {jid}'s: {was}; to run with other ones, "
            "start a new job)"
        )


def _take_recorded_argv0(spec: RunSpec, meta: Mapping[str, Any]) -> None:
    """Give a resume the ``sys.argv[0]`` the job's first run saw (``prog.py``), where it
    names the same file from this folder (review40 F8: a resume without PROGRAM ran with
    the recorded absolute path, and one result mixed the two forms). Nothing where the
    caller set it (``qshpc submit``'s staged path) or it names no such file from here."""
    argv = meta.get("argv")
    if spec.argv0 is not None or not isinstance(argv, list) or not argv:
        return
    first = argv[0]
    if not isinstance(first, str) or not first:
        return
    try:
        same = os.path.samefile(first, spec.program)
    except (OSError, ValueError):
        return
    if same:
        spec.argv0 = first


def recorded_program_args(meta: Mapping[str, Any]) -> list[str] | None:
    """The program arguments (``sys.argv[1:]``) a job was made with, or None when its store
    does not say (a job made before they were recorded)."""
    args = meta.get("program_args")  # qshpc submit's
    if isinstance(args, list):
        return [str(a) for a in args]
    argv = meta.get("argv")  # qshpc run's and the clients': [program, *args]
    if isinstance(argv, list) and argv:
        return [str(a) for a in argv[1:]]
    return None


def _check_fresh(job_dir: Path) -> None:
    from qshpc.store import JobReader
    from qshpc.text import shown

    with JobReader.open(job_dir) as r:
        meta = r.meta()
    if meta.get("runs") or meta.get("state") != "QUEUED":
        jid = shown(meta.get("id", job_dir.name))
        raise UserError(
            f"job directory {shown(job_dir)} holds job {jid}, which already ran "
            f"({shown(meta.get('state'))}): resume it with `qshpc run PROGRAM --resume {job_ref(job_dir)}`, "
            "or choose another --job-dir"
        )


def claim_job(spec: RunSpec, job_dir: Path, batch: Mapping[str, str] | None = None) -> None:
    """Rank 0: take the job's lock (one writer per job) and check the job may run.

    Held until :func:`release_claim` (or the process ends: a dead holder's lock
    is taken over by the next run).

    Args:
        spec: The run.
        job_dir: The job.
        batch: The batch system's record of this run (``Scheduler.run_record()``),
            so that the lock names the Slurm job and a requeued run takes its
            previous run's lock over.

    Raises:
        JobLockedError: Another live run holds the job: one line naming it.
        UserError: ``--job-dir`` names a job that already ran; a resume
            :func:`check_resume` refuses.
    """
    from qshpc.store.lock import JobLock

    command = "qshpc run --resume" if spec.resume else "qshpc run"
    lock = JobLock(job_dir, command, batch).acquire()
    try:
        # A job this process just created is fresh unless another run opened it between its
        # creation and this lock: every run rewrites job.h5 (a new inode) before anything
        # else, so an unchanged file proves it without reading it back (~15 ms of rank 0).
        made = _made.pop(job_dir, None)
        if not spec.resume and (made is None or made != _file_identity(job_dir)):
            _check_fresh(job_dir)
        if spec.resume:  # under the lock: no other run ends the job meanwhile
            check_resume(spec, job_dir, _check_readable(job_dir))
    except BaseException:
        lock.release()
        raise
    _held.append(lock)
    import atexit

    atexit.register(release_claim)
    _note_slurm_ids(job_dir, batch)
    if spec.resume:
        _take_slurm_id(job_dir, batch)


def _batch_slurm_id(batch: Mapping[str, str] | None) -> str | None:
    """The Slurm job id of this run (``123_4`` for an array task), or None outside Slurm."""
    from qshpc.store.lock import slurm_run_id

    return slurm_run_id(batch)


def _note_slurm_ids(job_dir: Path, batch: Mapping[str, str] | None) -> None:
    """Under Slurm: keep the job's Slurm ids, the one it was submitted as and this run's,
    so that each finds it (review24 F3: a run of one's own sbatch script recorded none,
    so ``qshpc status SLURM_ID`` said "no job"). Not the current-id file, which makes
    ``qshpc status`` ask Slurm for the job's state: that stays ``qshpc submit``'s."""
    here = _batch_slurm_id(batch)
    if here is None:
        return
    from qshpc.jobs.paths import note_slurm_id, read_slurm_id

    note_slurm_id(job_dir, read_slurm_id(job_dir))
    note_slurm_id(job_dir, here)


def _take_slurm_id(job_dir: Path, batch: Mapping[str, str] | None) -> None:
    """A job resumed in another Slurm job than the one it names: it names this one now.

    Its first Slurm job (``qshpc submit``'s) and that job's recorded end no longer say
    anything about it (hunt12d: ``qshpc status`` showed ``RUNNING (slurm: CANCELLED)``
    and the first job's id while a ``--resume`` in a new Slurm job ran).
    """
    from qshpc.jobs.paths import (
        SLURM_CLUSTER_FILE,
        SLURM_ID_FILE,
        SLURM_STATE_FILE,
        read_slurm_cluster,
        read_slurm_id,
    )

    batch = batch or {}
    here = _batch_slurm_id(batch)
    path = job_dir / SLURM_ID_FILE
    named = read_slurm_id(job_dir)
    if named is None:
        return  # not a submitted job (or a damaged file): nothing names a Slurm job
    cluster = batch.get("SLURM_CLUSTER_NAME") or ""
    recorded = read_slurm_cluster(job_dir) or ""
    if not here or (named == here and (not cluster or not recorded or cluster == recorded)):
        return
    try:
        _replace_small(path, here)
        if cluster:
            _replace_small(job_dir / SLURM_CLUSTER_FILE, cluster)
        else:
            (job_dir / SLURM_CLUSTER_FILE).unlink(missing_ok=True)
        (job_dir / SLURM_STATE_FILE).unlink(missing_ok=True)
    except OSError:
        pass


def _replace_small(path: Path, text: str) -> None:
    """Write ``text`` and a newline to ``path`` atomically (a temporary file renamed; hunt22c:
    the temporary name was this process's pid, opened with ``O_TRUNC``: a FIFO there hung the
    start of a requeued job, a link there was written through)."""
    from qshpc.store import perms

    perms.write_atomic(path, (text + "\n").encode(), 0o600)


def held_claim() -> Any:
    """The JobLock this process holds, or None."""
    return _held[-1] if _held else None


def release_claim() -> None:
    """Give up the job's lock (call before leaving with ``os._exit``)."""
    while _held:
        _held.pop().release()
