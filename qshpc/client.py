"""The Python client: ``Program``, ``LocalClient``, ``SlurmClient``, ``Job``, ``open_job``.

Mirrors quantum-serverless's notebook flow::

    program = Program(title="...", entrypoint="program_4.py", working_dir="./examples/")
    job = LocalClient(workers=2).run(program, arguments={"circuits": circuits})
    job.status()   # 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELED'
    job.result()   # waits, returns what the program passed to save_result
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qshpc.errors import JobFailedError, JobNotFoundError, NoResultError, UserError
from qshpc.jobs import (
    jobs_root,
    mark_terminal,
    new_job_id,
    qshpc_home,
    read_override,
    resolve_job_dir,
)

TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED")


@dataclass
class Program:
    """A program: an entrypoint file inside a working directory.

    Attributes:
        title: A human title, shown by ``qshpc list``.
        entrypoint: The program file, relative to ``working_dir``.
        working_dir: The folder the program runs in (staged for Slurm jobs).
        description: Free text.
        env_vars: Environment variables set for the program.
    """

    title: str
    entrypoint: str
    working_dir: str = "./"
    description: str = ""
    env_vars: dict[str, str] = field(default_factory=dict)

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


class Job:
    """A job in the store, local or on Slurm.

    Args:
        job_dir: The job directory.
        process: The local launcher process, when this client started it.
    """

    def __init__(self, job_dir: Path, process: subprocess.Popen[bytes] | None = None) -> None:
        self.job_dir = Path(job_dir)
        self._process = process
        self._meta: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"<Job | {self.job_id}>"

    @property
    def job_id(self) -> str:
        """The qshpc job id."""
        return str(self.info().get("id", self.job_dir.name))

    def info(self) -> dict[str, Any]:
        """Everything the store knows about the job (and Slurm's view when it is a Slurm job)."""
        from qshpc.store import JobReader

        with JobReader.open(self.job_dir) as r:
            meta = r.meta()
        meta["job_dir"] = str(self.job_dir)
        if not meta.get("slurm_job_id"):
            marker = self.job_dir / "slurm_job_id"  # written by qshpc.submit after sbatch
            if marker.is_file():
                meta["slurm_job_id"] = marker.read_text().strip()
        state = meta.get("state")
        if state not in TERMINAL:
            self._reconcile(meta)
        elif state != "SUCCEEDED" and meta.get("slurm_job_id"):
            from qshpc.submit.state import reconcile_slurm

            reconcile_slurm(self.job_dir, meta)  # Slurm may explain it (TIMEOUT, OUT_OF_MEMORY...)
        self._meta = meta
        return meta

    def _reconcile(self, meta: dict[str, Any]) -> None:
        """A job whose ranks are gone without finalizing: take the best known terminal state."""
        slurm = meta.get("slurm_job_id")
        if slurm:
            from qshpc.submit.state import reconcile_slurm

            reconcile_slurm(self.job_dir, meta)  # reads the override too
            return
        override = read_override(self.job_dir)
        if override:
            meta["state"] = override["state"]
            meta["error"] = override.get("error")
            return
        if self._process is not None:
            if self._process.poll() is None:
                return
        elif meta.get("state") == "RUNNING" and not _rank0_alive(meta):
            pass
        else:
            return
        # The launcher exited (or rank 0 is gone): read the store once more.
        from qshpc.store import JobReader

        with JobReader.open(self.job_dir) as r:
            fresh = r.meta()
        if fresh.get("state") in TERMINAL:
            meta.update(fresh)
            return
        from qshpc.postmortem import describe
        from qshpc.store import recover

        finished = {t["task_id"] for t in self.tasks()}
        why = describe(self.job_dir, fresh, finished)
        mark_terminal(self.job_dir, "FAILED", why)
        recover(self.job_dir)  # job.h5 alone now holds every committed record
        meta["state"], meta["error"] = "FAILED", why

    def status(self) -> str:
        """The job's state: QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELED."""
        return str(self.info().get("state"))

    def status_text(self) -> str:
        """The state with the sub-status (``RUNNING: sampling batch 3/10``) and Slurm's raw state."""
        m = self.info()
        text = str(m.get("state"))
        if m.get("sub_status") and text == "RUNNING":
            text += f": {m['sub_status']}"
        if m.get("slurm_state"):
            text += f" (slurm: {m['slurm_state']})"
        return text

    def done(self) -> bool:
        """True when the job reached a terminal state."""
        return self.status() in TERMINAL

    def wait(self, timeout: float | None = None, poll: float = 0.2) -> str:
        """Wait until the job ends; return its state.

        Raises:
            TimeoutError: Still running after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        while True:
            state = self.status()
            if state in TERMINAL:
                if self._process is not None:
                    self._process.wait()
                return state
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {self.job_id} still {state} after {timeout} s: wait longer "
                    f"(qshpc wait {self.job_id} --timeout S), or see `qshpc status {self.job_id}`"
                )
            time.sleep(delay)
            delay = min(poll * 5, delay * 1.5)

    def result(self, timeout: float | None = None, allow_pickle: bool = False) -> Any:
        """Wait for the job and return what the program passed to ``save_result``.

        Returns None when the program never called ``save_result``.

        Raises:
            JobFailedError: The job ended FAILED or CANCELED (the message holds its error).
            TimeoutError: Not finished within ``timeout`` seconds.
        """
        state = self.wait(timeout)
        from qshpc.store import JobReader

        with JobReader.open(self.job_dir) as r:
            try:
                return r.result(allow_pickle=allow_pickle)
            except NoResultError:
                if state != "SUCCEEDED":
                    raise JobFailedError(
                        f"job {self.job_id} ended {state}: {self.error_message() or 'no error text'}"
                    ) from None
                return None

    def error_message(self) -> str | None:
        """The error text of a FAILED or CANCELED job (None otherwise)."""
        err = self.info().get("error")
        return str(err) if err else None

    def tasks(self) -> list[dict[str, Any]]:
        """One dict per task attempt (id, function, state, rank, host, times, error)."""
        from qshpc.store import JobReader

        with JobReader.open(self.job_dir) as r:
            return r.tasks()

    def logs(self, rank: int | None = None) -> str:
        """The logs written so far (all ranks, or one), readable while the job runs."""
        files = sorted((self.job_dir / "logs").glob("rank-*.out"), key=_rank_of)
        extra = sorted((self.job_dir / "logs").glob("slurm-*"))
        parts = []
        for f in files + extra:
            if rank is not None and _rank_of(f) != rank:
                continue
            text = f.read_text(errors="replace")
            parts.append(text if rank is not None else f"==> {f.name} <==\n{text}")
        return "\n".join(parts)

    def stop(self) -> bool:
        """Cancel the job (SIGTERM to a local run, scancel for Slurm); finished results are kept.

        Returns:
            True when a running job was asked to stop.
        """
        meta = self.info()
        if meta.get("state") in TERMINAL:
            return False
        if meta.get("slurm_job_id"):
            from qshpc.submit.slurm import cancel

            slurm_id = str(meta["slurm_job_id"])
            cancel(slurm_id)
            if meta.get("state") == "QUEUED" and "_" in slurm_id:
                # Slurm splits a pending array element off to cancel it, and its
                # accounting may never list it: record the cancel here.
                mark_terminal(self.job_dir, "CANCELED", "cancelled (scancel) before it started")
            return True
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            return True
        pid = _rank0_pid(meta)
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
                return True
            except ProcessLookupError:
                pass
        mark_terminal(self.job_dir, "CANCELED", "cancelled before it started")
        return True

    cancel = stop

    def plot(self, out: str | None = None) -> Any:
        """Draw the saved result (see ``qshpc plot``)."""
        from qshpc.plot import plot_job

        return plot_job(self, out)


def _rank_of(p: Path) -> int:
    try:
        return int(p.stem.split("-")[1])
    except (IndexError, ValueError):
        return 10**9


def _rank0_pid(meta: dict[str, Any]) -> int | None:
    import socket

    ranks = meta.get("ranks") or []
    if ranks and ranks[0].get("host") == socket.gethostname():
        return int(ranks[0]["pid"])
    return None


def _rank0_alive(meta: dict[str, Any]) -> bool:
    pid = _rank0_pid(meta)
    if pid is None:
        return True  # another host: cannot tell from here
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def open_job(job: str | os.PathLike[str]) -> Job:
    """Return the :class:`Job` for a job id, a job directory, or a Slurm job id (``123``, ``123_4``).

    Raises:
        JobNotFoundError: No such job.
    """
    try:
        return Job(resolve_job_dir(job))
    except JobNotFoundError:
        text = os.fspath(job)
        if re.fullmatch(r"\d+_\d+", text) and jobs_root().is_dir():  # a Slurm array element
            for d in jobs_root().iterdir():
                marker = d / "slurm_job_id"
                if marker.is_file() and marker.read_text().strip() == text:
                    return Job(d)
        raise


ARRAYS_DIR = "arrays"


def array_folder(array_id: str) -> Path:
    """The folder shared by the elements of one array (``$QSHPC_HOME/arrays/<array_id>``)."""
    return qshpc_home().absolute() / ARRAYS_DIR / array_id


def drop_array_if_gone(job_dir: Path) -> bool:
    """Remove the folder of ``job_dir``'s array once no element folder of it is left.

    ``qshpc rm`` and ``qshpc gc`` call this after removing a job folder, so that
    an array's shared folder (its manifest, Slurm's submission files, a local
    array's driver log) goes with its last element.

    Returns:
        True when the array folder was removed.
    """
    import shutil

    match = re.fullmatch(r"(.+)-\d+", job_dir.name)
    if match is None:
        return False
    folder = array_folder(match.group(1))
    try:
        elements = json.loads((folder / "array.json").read_text())["elements"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if job_dir.name not in elements or any((job_dir.parent / e).exists() for e in elements):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return True


def array_meta(array_id: str, index: int, size: int) -> dict[str, Any]:
    """The meta keys of element ``index`` of an array of ``size`` jobs."""
    return {"array_id": array_id, "array_index": index, "array_size": size}


def check_arguments_list(arguments_list: Any) -> None:
    """Refuse an argument list for ``map`` that is empty, not a list, or holds a non-dict.

    Raises:
        UserError: What is wrong, and which element.
    """
    if isinstance(arguments_list, (str, bytes, dict)) or not isinstance(arguments_list, Sequence):
        raise UserError(
            f"arguments_list must be a list of argument dicts, got {type(arguments_list).__name__}"
        )
    if not arguments_list:
        raise UserError("arguments_list is empty: give one argument dict per element")
    for i, a in enumerate(arguments_list):
        if a is not None and not isinstance(a, dict):
            raise UserError(f"arguments_list[{i}] must be a dict (or None), got {type(a).__name__}")


def _launch(
    entry: str,
    working_dir: str,
    env_vars: dict[str, str],
    job_path: Path,
    workers: int | None,
) -> subprocess.Popen[bytes]:
    """Start ``qshpc run ENTRY --job-dir JOB_PATH`` (launcher log in ``logs/launcher.out``)."""
    cmd = [sys.executable, "-m", "qshpc", "run", entry, "--job-dir", str(job_path)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    env = {**os.environ, **env_vars}
    log = open(job_path / "logs" / "launcher.out", "ab")
    proc = subprocess.Popen(
        cmd, cwd=Path(working_dir), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    return proc


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
                proc = _launch(
                    spec["program"], spec["working_dir"], spec["env"], job_path, spec["workers"]
                )
            except OSError as exc:
                mark_terminal(job_path, "FAILED", f"could not start the element: {exc}")
                continue
            running.append(Job(job_path, proc))
        time.sleep(0.2)


def list_jobs(state: str | None = None) -> list[Job]:
    """Jobs under ``$QSHPC_HOME/jobs``, newest first (optionally only one state)."""
    root = jobs_root()
    if not root.is_dir():
        return []
    jobs = [Job(d) for d in sorted(root.iterdir(), reverse=True) if (d / "job.h5").is_file()]
    if state:
        jobs = [j for j in jobs if _safe_state(j) == state.upper()]
    return jobs


def _safe_state(job: Job) -> str:
    try:
        return job.status()
    except Exception:
        return "UNREADABLE"


class LocalClient:
    """Runs programs on this machine's MPI ranks (the embedded local default).

    Args:
        workers: Worker ranks (default: one per core); 0 runs tasks in the program's process.
    """

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and (not isinstance(workers, int) or workers < 0):
            raise UserError(f"workers must be a whole number >= 0, got {workers!r}")
        self.workers = workers

    def run(
        self,
        program: Program,
        arguments: dict[str, Any] | None = None,
        seed: int | None = None,
        job_dir: str | os.PathLike[str] | None = None,
    ) -> Job:
        """Start ``program`` with ``arguments``; return its :class:`Job` at once (state QUEUED/RUNNING)."""
        job_path = create_program_job(program, arguments, seed, job_dir)
        proc = _launch(
            str(program.path()), program.working_dir, program.env_vars, job_path, self.workers
        )
        return Job(job_path, proc)

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
        if not isinstance(parallel, int) or parallel < 1:
            raise UserError(f"parallel must be a whole number >= 1, got {parallel!r}")
        array_id = new_job_id()
        size = len(arguments_list)
        paths: list[Path] = []
        try:
            for i, arguments in enumerate(arguments_list):
                meta = {"id": f"{array_id}-{i}", **array_meta(array_id, i, size)}
                paths.append(
                    create_program_job(program, arguments, seed, jobs_root() / meta["id"], meta)
                )
        except BaseException:
            import shutil

            for d in paths:
                shutil.rmtree(d, ignore_errors=True)
            raise
        folder = array_folder(array_id)
        from qshpc.store import perms

        perms.make_dir(folder.parent)
        perms.make_dir(folder)
        spec = {
            "program": str(program.path()),
            "working_dir": str(Path(program.working_dir).resolve()),
            "env": dict(program.env_vars),
            "workers": self.workers,
            "parallel": parallel,
            "job_dirs": [str(p) for p in paths],
        }
        (folder / "array.json").write_text(
            json.dumps(
                {"array_id": array_id, "title": program.title, "elements": [p.name for p in paths]},
                indent=1,
            )
            + "\n"
        )
        log = open(folder / "driver.out", "ab")
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from qshpc.client import _drive_local_array as d; d(sys.argv[1])",
                json.dumps(spec),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        return [Job(p) for p in paths]

    def jobs(self, state: str | None = None) -> list[Job]:
        """Jobs in the store, newest first."""
        return list_jobs(state)

    def job(self, job_id: str) -> Job:
        """The job with this id."""
        return open_job(job_id)


def create_program_job(
    program: Program,
    arguments: dict[str, Any] | None,
    seed: int | None,
    job_dir: str | os.PathLike[str] | None,
    extra_meta: dict[str, Any] | None = None,
) -> Path:
    """Create a QUEUED job in the store for ``program`` (shared by the local and Slurm clients)."""
    from qshpc import __version__
    from qshpc.runtime.prepare import check_program
    from qshpc.store import create_job

    entry = program.path()
    check_program(entry)
    if arguments is not None and not isinstance(arguments, dict):
        raise UserError(f"arguments must be a dict, got {type(arguments).__name__}")
    job_id = new_job_id()
    path = Path(job_dir).resolve() if job_dir else jobs_root() / job_id
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
    create_job(path, meta, arguments or {})
    from qshpc.store import perms

    (path / "logs").mkdir(mode=perms.dir_mode(), exist_ok=True)
    return path


def SlurmClient(**resources: Any) -> Any:
    """A client that submits programs to Slurm (see :mod:`qshpc.submit`)."""
    from qshpc.submit.client import SlurmClient as _SlurmClient

    return _SlurmClient(**resources)
