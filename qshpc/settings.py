"""Every ``QSHPC_*`` environment variable: declared once here, parsed when it is used.

Nothing is parsed at import: ``QSHPC_CHECKPOINT_S=abc python -c "from qshpc import get"``
works, and the bad value is reported where it is read, as a
:class:`SettingError` (a :class:`~qshpc.errors.UserError`: exit code 2 from the
CLI) naming the variable, its value, what it takes and the default. ``qshpc run``
and ``qshpc submit`` check every setting the ranks read before a job starts
(:func:`check`), so a bad value never surfaces half-way through a job.

An empty value counts as unset (the default applies), except for
``QSHPC_PRELOAD``, where empty turns preloading off.

``docs/settings.md`` holds the table of every variable; ``tests/unit/test_settings.py``
checks it against :data:`ALL` and against the variables the code mentions.
The ``QSHPC_SLURM_<NAME>`` family (Slurm site defaults) is read here too
(:func:`slurm_defaults`) and typed against ``SlurmResources`` by
:mod:`qshpc.submit.config`. This module imports nothing of qshpc but errors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from qshpc.errors import UserError

T = TypeVar("T")


class SettingError(UserError):
    """A ``QSHPC_*`` environment variable holds a value qshpc cannot use."""


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable: its name, default, parser, and its line in the docs.

    Attributes:
        name: The variable, e.g. ``QSHPC_CHECKPOINT_S``.
        default: The value when the variable is unset (or empty).
        parse: Text to value; raises ValueError for a bad value.
        takes: What a good value looks like (for errors and the docs).
        doc: What it does (one sentence for the docs table).
        read_by: Who reads it: ``CLI``, ``rank 0``, ``workers``, ``every rank``, ...
        shown_default: The default as the docs show it.
        empty_is_value: An empty value is parsed (instead of meaning unset).
        runtime: Read inside the ranks of a job (checked before the job starts).
    """

    name: str
    default: T
    parse: Callable[[str], T]
    takes: str
    doc: str
    read_by: str
    shown_default: str
    empty_is_value: bool = False
    runtime: bool = False

    def get(self, environ: Mapping[str, str] | None = None) -> T:
        """The value now (read from ``environ``, default ``os.environ``, at each call).

        Raises:
            SettingError: The value cannot be parsed; the message names the variable and the fix.
        """
        env = os.environ if environ is None else environ
        text = env.get(self.name)
        if text is None or (not text.strip() and not self.empty_is_value):
            return self.default
        try:
            return self.parse(text.strip())
        except ValueError:
            raise SettingError(self.problem(text)) from None

    def problem(self, text: str) -> str:
        """The error message for the bad value ``text``."""
        return (
            f"environment variable {self.name}={text!r} is not valid: it takes {self.takes}. "
            f"Set it to such a value, or unset it for the default ({self.shown_default})"
        )


def _seconds(minimum: float, strict: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(text)
        if value < minimum or (strict and value == minimum):
            raise ValueError(text)
        return value

    return parse


def _whole(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum or (maximum is not None and value > maximum):
            raise ValueError(text)
        return value

    return parse


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(text)


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        for option in options:
            if text.lower() == option.lower():
                return option
        raise ValueError(text)

    return parse


def _path(text: str) -> Path | None:
    return Path(text)


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _gc(text: str) -> int | None:
    if text.lower() == "default":
        return None
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _distribute(text: str) -> str | int:
    low = text.lower()
    if low in ("auto", "never", "always"):
        return low
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


ALL: dict[str, Setting[Any]] = {}


def _declare(setting: Setting[T]) -> Setting[T]:
    ALL[setting.name] = setting
    return setting


# -- where jobs live ----------------------------------------------------------
HOME: Setting[Path | None] = _declare(
    Setting("QSHPC_HOME", None, _path, "a folder path",
            "the store (jobs/, arrays/) and config.toml; on shared storage for Slurm jobs",
            "CLI, clients, every rank", "~/.qshpc"))  # fmt: skip
SHARE_GROUP: Setting[bool] = _declare(
    Setting("QSHPC_SHARE_GROUP", False, _flag, "1 or 0 (true/false, yes/no, on/off)",
            "job folders 0750 and files 0640, so your group can read jobs (else 0700/0600)",
            "CLI, clients, rank 0", "0", runtime=True))  # fmt: skip
CACHE_DIR: Setting[Path | None] = _declare(
    Setting("QSHPC_CACHE_DIR", None, _path, "a folder path",
            "the result cache's folder ([the cache](cache.md)); on shared storage for Slurm jobs",
            "CLI, clients, every rank", "$QSHPC_HOME/cache", runtime=True))  # fmt: skip
READ_TIMEOUT_S: Setting[float] = _declare(
    Setting("QSHPC_READ_TIMEOUT_S", 10.0, _seconds(0.0, strict=True),
            "a number of seconds > 0, such as 10",
            "time limit for reading a job file without an integrity seal (an older qshpc's, or a "
            "damaged one) in a child process, plus 1 s per 50 MB; past it the job is DAMAGED",
            "CLI, clients, rank 0", "10"))  # fmt: skip
DATA: Setting[Path | None] = _declare(
    Setting("QSHPC_DATA", None, _path, "a folder path",
            "the data folder of the files API (client.files(), qshpc.data_dir()); shared storage",
            "clients, every rank", "$QSHPC_HOME/data"))  # fmt: skip
ARGUMENTS: Setting[Path | None] = _declare(
    Setting("QSHPC_ARGUMENTS", None, _path, "the path of a .h5 or .json arguments file",
            "arguments for `get_arguments()` under plain `python program.py`",
            "the program (plain python)", "none"))  # fmt: skip
ARGUMENTS_JSON_MAX: Setting[int] = _declare(
    Setting("QSHPC_ARGUMENTS_JSON_MAX", 256 << 20, _whole(1),
            "a whole number of bytes >= 1, such as 268435456",
            "the largest JSON arguments file (`--arguments`, `QSHPC_ARGUMENTS`) read: it is read "
            "whole, and reading it takes about 4 times its size in memory; larger arguments go "
            "in a .h5 file (`qshpc.save_arguments`), or in a file the program reads itself",
            "rank 0, the program (plain python)", "268435456 (256 MiB)",
            runtime=True))  # fmt: skip
# -- the runtime ----------------------------------------------------------------
CHECKPOINT_S: Setting[float] = _declare(
    Setting("QSHPC_CHECKPOINT_S", 30.0, _seconds(0.0), "a number of seconds >= 0, such as 30",
            "least seconds between folds of the journal into job.h5 while a job runs",
            "rank 0", "30", runtime=True))  # fmt: skip
RESULT_MEMORY_MAX: Setting[int] = _declare(
    Setting("QSHPC_RESULT_MEMORY_MAX", 8 << 20, _whole(65536),
            "a whole number of bytes >= 65536, such as 8388608",
            "a task result whose encoding in the job's store is larger than this stays on rank 0 "
            "only in the store once written there, and each `get` reads it back (so rank 0 holds "
            "no more results than the program keeps); smaller results stay in memory, as does "
            "one the store would not give back as it was (a `bytearray`, an object held twice, "
            "a `defaultdict`: [store](store.md#what-comes-back))",
            "rank 0", "8388608 (8 MiB)", runtime=True))  # fmt: skip
RESULT_MEMORY_TOTAL: Setting[int] = _declare(
    Setting("QSHPC_RESULT_MEMORY_TOTAL", 256 << 20, _whole(0), "a whole number of bytes >= 0, "
            "such as 268435456", "task results over 64 KiB encoded (16 KiB at `--resume`) that "
            "rank 0 holds in memory, in all: past this, each further one stays only in the "
            "store, as one over `QSHPC_RESULT_MEMORY_MAX` does, and each `get` reads it back; a "
            "result the program dropped (its reference gone) no longer counts. A resume loads "
            "the results it may reuse up to this much; the others are checked when the call "
            "would reuse one", "rank 0", "268435456 (256 MiB)", runtime=True))  # fmt: skip
STATUS_VERIFY_MAX: Setting[int] = _declare(
    Setting("QSHPC_STATUS_VERIFY_MAX", 256 << 20, _whole(0),
            "a whole number of bytes >= 0, such as 268435456",
            "`qshpc status` checks every byte of a job's store this size or smaller (about 0.15 s "
            "for 256 MiB), and only its records and counters of a bigger one (`--verify` checks "
            "any); 0: never", "qshpc status", "268435456 (256 MiB)"))  # fmt: skip
DRAIN_S: Setting[float] = _declare(
    Setting("QSHPC_DRAIN_S", 60.0, _seconds(0.0), "a number of seconds >= 0, such as 60",
            "at the end of a job that did not succeed, how long rank 0 waits for calls in flight",
            "rank 0", "60", runtime=True))  # fmt: skip
EXIT_GRACE_S: Setting[float] = _declare(
    Setting("QSHPC_EXIT_GRACE_S", 10.0, _seconds(0.0), "a number of seconds >= 0, such as 10",
            "how long a rank that is done waits for threads the program or a task started "
            "and left running before it exits without them (and says so)",
            "every rank", "10", runtime=True))  # fmt: skip
HEARTBEAT_S: Setting[float] = _declare(
    Setting("QSHPC_HEARTBEAT_S", 1.0, _seconds(0.0, strict=True), "a number of seconds > 0, such as 1",
            "seconds between a worker's heartbeats to rank 0",
            "workers", "1", runtime=True))  # fmt: skip
WORKER_TIMEOUT_S: Setting[float] = _declare(
    Setting("QSHPC_WORKER_TIMEOUT_S", 30.0, _seconds(0.0, strict=True),
            "a number of seconds > 0, such as 30",
            "seconds of silence after which rank 0 declares a worker lost and fails its tasks; "
            "keep it above the longest call that holds the GIL in C code (its heartbeat waits)",
            "rank 0", "30", runtime=True))  # fmt: skip
MPI_START_TIMEOUT_S: Setting[float] = _declare(
    Setting("QSHPC_MPI_START_TIMEOUT_S", 300.0, _seconds(0.0), "a number of seconds >= 0, such as 300",
            "a rank whose MPI has not started (MPI_Init and the ranks' first exchange) after this "
            "long says so, marks the job FAILED and ends instead of hanging until the time limit; "
            "0 waits forever",
            "every rank", "300", runtime=True))  # fmt: skip
IDLE_SLEEP_S: Setting[float | None] = _declare(
    Setting("QSHPC_IDLE_SLEEP_S", None, _seconds(0.0), "a number of seconds >= 0, such as 2e-5",
            "an idle worker's first back-off sleep (default 2e-5 s, 5e-4 s when ranks outnumber cores)",
            "workers", "auto", runtime=True))  # fmt: skip
ROOT_WORKS: Setting[str] = _declare(
    Setting("QSHPC_ROOT_WORKS", "0", _choice("0", "1", "auto"), "0, 1 or auto",
            "rank 0 runs queued calls while the program waits in `get`: never, always, or when "
            "calls take over 2 ms and rank 0 has a core of its own",
            "rank 0", "0", runtime=True))  # fmt: skip
#: Linux's largest pid space (``pid_max`` at most 2**22): more processes cannot run at once.
PID_SPACE = 1 << 22
MAX_WORKERS: Setting[int | None] = _declare(
    Setting("QSHPC_MAX_WORKERS", None, _whole(1, PID_SPACE),
            f"a whole number from 1 to {PID_SPACE}, such as 256",
            "the most worker ranks `qshpc run --workers N` and `LocalClient(workers=N)` start "
            "on this machine; a larger N is refused (a typo such as --workers 100000 forked "
            "that many Pythons)",
            "CLI, clients", "64, or 8 per core where more"))  # fmt: skip
COOP_WIDTH: Setting[int] = _declare(
    Setting("QSHPC_COOP_WIDTH", 16, _whole(1), "a whole number >= 1, such as 16",
            "calls of a worker's cooperative group (shared Aer runs); 1 turns groups off",
            "workers", "16", runtime=True))  # fmt: skip
PRELOAD: Setting[tuple[str, ...]] = _declare(
    Setting("QSHPC_PRELOAD", ("auto",), _names, "auto, or module names, comma separated",
            "modules workers import while rank 0 starts the program (`--cache` with more "
            "ranks than cores: at their first batch); `auto`: qiskit and qiskit_aer as far "
            "as the program's imports use them; empty turns it off",
            "workers", "auto", empty_is_value=True, runtime=True))  # fmt: skip
FORK_SERVER: Setting[bool] = _declare(
    Setting("QSHPC_FORK_SERVER", True, _flag, "1 or 0 (true/false, yes/no, on/off)",
            "the ranks on a host are forks of one process that imported what the "
            "program's tasks need (qiskit, Aer) once, started by `qshpc run`'s own launcher "
            "or, under a user's mpiexec, by local rank 0; 0: each rank imports for itself",
            "`qshpc run` (the mpiexec parent), every rank", "1", runtime=True))  # fmt: skip
GC: Setting[int | None] = _declare(
    Setting("QSHPC_GC", 50_000, _gc, "default, or a whole number > 0 such as 50000",
            "first garbage-collector threshold of every rank after its imports "
            "(`default` keeps Python's own settings)",
            "every rank", "50000", runtime=True))  # fmt: skip
PROFILE_DISPATCHER: Setting[Path | None] = _declare(
    Setting("QSHPC_PROFILE_DISPATCHER", None, _path, "a file path",
            "write a cProfile of rank 0's dispatcher thread to this file (for developers)",
            "rank 0", "none", runtime=True))  # fmt: skip
TIMELINE: Setting[bool] = _declare(
    Setting("QSHPC_TIMELINE", False, _flag, "1 or 0 (true/false, yes/no, on/off)",
            "every process of a job writes when it reached each start-up and end step to "
            "logs/timeline-*.json (for benchmarks/coldstart.py; for developers)",
            "`qshpc run`, every rank and `LocalClient.run`", "0", runtime=True))  # fmt: skip
PROGRESS_S: Setting[float] = _declare(
    Setting("QSHPC_PROGRESS_S", 5.0, _seconds(0.0), "a number of seconds >= 0, such as 5",
            "seconds between `qshpc run`'s progress lines on stderr; 0 turns them off",
            "`qshpc run` (the mpiexec parent)", "5", runtime=True))  # fmt: skip
# -- devices --------------------------------------------------------------------------
AER_DEVICE: Setting[str] = _declare(
    Setting("QSHPC_AER_DEVICE", "auto", _choice("auto", "CPU", "GPU"), "auto, CPU or GPU",
            "the device of every simulator that has no `device=` option ([GPUs](gpus.md))",
            "tasks (the Aer layer)", "auto", runtime=True))  # fmt: skip
AER_MPI: Setting[Path | None] = _declare(
    Setting("QSHPC_AER_MPI", None, _path, "a folder path",
            "prefix of an MPI build of Aer for circuits split over ranks "
            "([distributed](distributed.md)); searched before <checkout>/.aer-mpi and $QSHPC_HOME/aer-mpi; "
            "when set, the only place searched (no build there: an error, doctor FAIL)",
            "tasks (the Aer layer), `qshpc doctor`", "none", runtime=True))  # fmt: skip
KEEP_STEP: Setting[bool] = _declare(
    Setting("QSHPC_KEEP_STEP", False, _flag, "1 or 0",
            "keep the folder of each distributed Aer step (its spec, circuits, per-rank reports) "
            "instead of removing it after reading",
            "tasks (the Aer layer)", "0", runtime=True))  # fmt: skip
DISTRIBUTE: Setting[str | int] = _declare(
    Setting("QSHPC_DISTRIBUTE", "auto", _distribute,
            "auto, never, always, or a number of qubits N >= 1",
            "when `SamplerV2`/`EstimatorV2` split one circuit's statevector over ranks "
            "([distributed](distributed.md)): `auto` only a circuit wider than one rank's "
            "simulator holds, `never` none (such a circuit is refused), `always` every one "
            "(over 2 ranks at least), N those of N qubits or more (like CUDA-Q's threshold)",
            "rank 0 (the primitives), tasks", "auto", runtime=True))  # fmt: skip
GPU_BIND: Setting[str] = _declare(
    Setting("QSHPC_GPU_BIND", "auto", _choice("auto", "none"), "auto or none",
            "in Slurm jobs with GPUs, each rank sees one GPU chosen by its local rank; "
            "`none` leaves CUDA_VISIBLE_DEVICES alone",
            "Slurm tasks", "auto", runtime=True))  # fmt: skip
# -- set by qshpc itself --------------------------------------------------------------
REQUEUE: Setting[bool] = _declare(
    Setting("QSHPC_REQUEUE", False, _flag, "1 or 0",
            "set by `qshpc submit --requeue` in the job: rank 0 requeues on Slurm's time-limit "
            "warning (not for users to set)",
            "rank 0 (Slurm jobs)", "0", runtime=True))  # fmt: skip

LAUNCH_TOKEN: Setting[str | None] = _declare(
    Setting("QSHPC_LAUNCH_TOKEN", None, str, "a token",
            "set by `qshpc run` for the ranks it starts: rank 0 records it in its run, so the "
            "launcher knows which run is its own (not for users to set)",
            "rank 0", "none"))  # fmt: skip
LAUNCH_END: Setting[Path | None] = _declare(
    Setting("QSHPC_LAUNCH_END", None, _path, "a file path",
            "set by `qshpc run` for the ranks it starts: once the store is final, rank 0 writes "
            "the job's end there, so the launcher need not open the store (not for users to set)",
            "rank 0", "none"))  # fmt: skip

LAUNCH_WATCH: Setting[str | None] = _declare(
    Setting("QSHPC_LAUNCH_WATCH", None, str, "a socket name",
            "set by `qshpc run` for the ranks it starts: each rank holds a connection to it "
            "until it ends, so the launcher knows which rank ended first (not for users to set)",
            "every rank", "none"))  # fmt: skip

LAUNCH_STDIN: Setting[str | None] = _declare(
    Setting("QSHPC_LAUNCH_STDIN", None, str, "a host, process id, start time and pid namespace",
            "set by `qshpc run` for the ranks it starts when its stdin is a pipe or a file: "
            "rank 0 reads that stdin itself, only as far as the program reads it, and mpiexec "
            "gets none (not for users to set)",
            "rank 0", "none"))  # fmt: skip

FORK_SOCKET: Setting[str | None] = _declare(
    Setting("QSHPC_FORK_SOCKET", None, str, "a socket name",
            "set by `qshpc run` for the ranks it starts: the fork server each rank hands "
            "itself over to (not for users to set)",
            "every rank", "none"))  # fmt: skip

FORK_PLAN: Setting[str | None] = _declare(
    Setting("QSHPC_FORK_PLAN", None, str, "what the fork server imports (JSON)",
            "set by LocalClient for the `qshpc run` launcher it starts: the launcher starts "
            "the ranks' fork server with it before mpiexec (not for users to set)",
            "`qshpc run` (the mpiexec parent)", "none"))  # fmt: skip

AWAIT_JOB: Setting[int | None] = _declare(
    Setting("QSHPC_AWAIT_JOB", None, _whole(1), "a process id",
            "set by LocalClient.run for the ranks it starts while it writes the job: rank 0 "
            "waits for the job's store as long as that process lives (not for users to set)",
            "rank 0", "none", runtime=True))  # fmt: skip
CACHE_JOB: Setting[bool] = _declare(
    Setting("QSHPC_CACHE_JOB", False, _flag, "1 or 0",
            "set by LocalClient and `qshpc submit` for the ranks of a job whose cache is on "
            "for every task (as `qshpc run --cache` says on its command line): a worker whose "
            "host's ranks outnumber its cores imports qiskit at its first batch, not at its "
            "start (not for users to set)",
            "workers", "0", runtime=True))  # fmt: skip

#: ``QSHPC_SLURM_<NAME>``: a Slurm site default for resource NAME (``QSHPC_SLURM_PARTITION``).
SLURM_PREFIX = "QSHPC_SLURM_"
#: Variables of the dev cluster script (``slurm/devcluster.sh``) that share the prefix.
DEV_CLUSTER = ("QSHPC_SLURM_DIR", "QSHPC_SLURM_TIMEOUT", "QSHPC_SLURM_GPUS", "QSHPC_SLURM_DB_PORT")


def slurm_defaults(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``QSHPC_SLURM_<NAME>`` variables set, as ``{variable: raw text}``.

    The dev cluster's own variables (:data:`DEV_CLUSTER`) are left out.
    :func:`qshpc.submit.config.site_defaults` types and checks the values
    against the resources (NAME is a ``SlurmResources`` field, in upper case).
    """
    env = os.environ if environ is None else environ
    return {
        var: text
        for var, text in env.items()
        if var.startswith(SLURM_PREFIX) and var not in DEV_CLUSTER
    }


def check(environ: Mapping[str, str] | None = None, runtime_only: bool = True) -> None:
    """Parse every setting (those the ranks read, by default) and report all bad ones at once.

    ``qshpc run`` and ``qshpc submit`` call this before a job starts.

    Raises:
        SettingError: One message naming every bad variable and its fix.
    """
    problems = []
    for setting in ALL.values():
        if runtime_only and not setting.runtime:
            continue
        try:
            setting.get(environ)
        except SettingError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise SettingError(problems[0])
    if problems:
        raise SettingError("bad environment variables:\n  " + "\n  ".join(problems))


def markdown_table() -> str:
    """The table of ``docs/settings.md`` (a test keeps the page equal to it)."""
    rows = ["| variable | default | takes | read by | what it does |", "|---|---|---|---|---|"]
    for s in ALL.values():
        rows.append(f"| `{s.name}` | `{s.shown_default}` | {s.takes} | {s.read_by} | {s.doc} |")
    rows.append(
        f"| `{SLURM_PREFIX}<NAME>` | none | a value for Slurm resource NAME | `qshpc submit`, "
        "`SlurmClient` | a Slurm site default, e.g. `QSHPC_SLURM_PARTITION=batch` "
        "([Slurm](slurm.md)) |"
    )
    return "\n".join(rows) + "\n"


__all__ = [
    "ALL",
    "DEV_CLUSTER",
    "PID_SPACE",
    "SLURM_PREFIX",
    "Setting",
    "SettingError",
    "check",
    "markdown_table",
    "slurm_defaults",
]
