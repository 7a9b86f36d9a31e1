"""``qshpc run``'s command line read without typer: how every rank of a job starts.

Each MPI rank starts as ``python -m qshpc run PROGRAM ...``; building the
typer command costs a process 0.2-0.3 s (typer imports pydantic and builds
a validator per option), three times over on a 2-core laptop.
:func:`parse_run` reads the options of ``qshpc run`` (:mod:`qshpc.cli.run`)
the way typer does, and only the forms it is sure of: ``--opt value``,
``--opt=value``, ``-a value``, ``--``, extra arguments for the program. For
anything else (``--help``, an option it does not know, a value that does not
convert, a missing program) it answers None and the command line goes to
typer, which parses it or refuses it with its usual message.
``tests/unit/test_run_argv.py`` checks that both read the same.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from qshpc import _timeline, settings

#: option -> (RunSpec field, kind)
_OPTIONS = {
    "--arguments": ("arguments_file", "path"),
    "-a": ("arguments_file", "path"),
    "--workers": ("workers", "int"),
    "-w": ("workers", "int"),
    "--job-dir": ("job_dir", "path"),
    "--title": ("title", "str"),
    "--seed": ("seed", "int"),
    "--resume": ("resume", "str"),
    "--job-id": ("job_id", "str"),
    "--cache-dir": ("cache_dir", "path"),
}
#: flag -> (RunSpec field, value)
_FLAGS = {"--cache": ("cache", True), "--no-cache": ("cache", False)}
_INT = re.compile(r"-?[0-9]+")
#: ``qshpc submit``'s options that ``qshpc run`` does not take (tests/unit/test_run_argv.py
#: checks the list against submit's command).
SUBMIT_ONLY = frozenset(
    {
        "--array",
        "--working-dir",
        "--name",
        "--nodes",
        "--ntasks-per-node",
        "--cpus-per-task",
        "--gpus-per-node",
        "--mem-gb",
        "--time-min",
        "--partition",
        "--account",
        "--qos",
        "--mpi",
        "--sbatch",
        "--requeue",
        "--json",
        "--dry-run",
    }
)
#: Of :data:`SUBMIT_ONLY`, the names programs use for options of their own (review27:
#: ``--name``, ``--json``, ``--dry-run``, ``--array``... reached the program on e5f893c):
#: they still do. The Slurm resource options are refused: they mean a batch job.
PROGRAM_NAMES = frozenset({"--array", "--working-dir", "--name", "--mpi", "--json", "--dry-run"})
#: How close (difflib's ratio) a program's option may come to one of ``qshpc run``'s
#: before it reads as a typo of it: ``--worker`` (0.94), ``--seeds`` (0.92), ``--job_dir``
#: (0.89), ``--titel`` (0.86) are refused; ``--file`` and ``--time`` (0.77 to ``--title``),
#: ``--cores`` (0.75), ``--out-dir`` (0.78), ``--shots``, ``--output`` pass to the program.
TYPO_CUTOFF = 0.85


def misplaced_option(argv: list[str]) -> str | None:
    """Why ``qshpc run ARGV`` is refused, or None: an option before ``--`` that is a typo
    of one of ``qshpc run``'s, or one of ``qshpc submit``'s.

    Program arguments may follow PROGRAM without ``--`` (``qshpc run prog.py 5 --shots
    100``); review24 F2: ``--worker 2`` or ``--nodes 2 --time-min 30`` went to the
    program's ``sys.argv`` without a word and the job ran with the defaults. A program's
    own option that is close to none of qshpc's still passes (docs/running-locally.md).

    Args:
        argv: The words after ``run``.
    """
    i = 0
    given: set[str] = set()
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            break
        name = word.partition("=")[0]
        if not name.startswith("--") or name == "--help":
            continue
        if name in _OPTIONS:
            given.add(name)
            i += 0 if "=" in word else 1  # its value is not an option
            continue
        if name in _FLAGS:
            given.add(name)
            continue
        if name in PROGRAM_NAMES:
            continue
        if name in SUBMIT_ONLY:
            return (
                f"{name} is a qshpc submit option: qshpc run uses this machine (--workers N); "
                "program arguments go after --"
            )
        import difflib  # only for an option qshpc does not know: the ranks' start skips it

        own = [*_OPTIONS, *_FLAGS, "--help"]
        close = difflib.get_close_matches(
            name, [o for o in own if o.startswith("--")], 1, TYPO_CUTOFF
        )
        if close:
            return (
                f"{name} is not a qshpc run option (did you mean {close[0]}?); "
                "program arguments go after --"
            )
    return _cache_conflict(given)


def _cache_conflict(given: set[str]) -> str | None:
    """Why ``--no-cache`` with ``--cache`` or ``--cache-dir`` is refused (review43 L3:
    the last one given won without a word, and the job ran uncached)."""
    if "--no-cache" not in given:
        return None
    if "--cache" in given:
        return "--cache and --no-cache contradict each other: give one of them"
    if "--cache-dir" in given:
        return (
            "--cache-dir turns the cache on and --no-cache turns it off: give --cache-dir "
            "to use that folder, or --no-cache alone"
        )
    return None


def parse_run(argv: list[str]) -> dict[str, Any] | None:
    """The fields of ``qshpc run``'s ``RunSpec`` (and ``workers``) for ``argv``, or None.

    Args:
        argv: The words after ``run``.

    Returns:
        ``program``, ``program_args`` and the options given, or None when
        typer must read this command line.
    """
    values: dict[str, Any] = {}
    positional: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            rest = argv[i:]
            break
        if not word.startswith("-") or word == "-":
            positional.append(word)
            continue
        if word in _FLAGS:
            field, flag = _FLAGS[word]
            values[field] = flag
            continue
        name, eq, value = word.partition("=")
        if name not in _OPTIONS or (eq and not name.startswith("--")):
            return None  # --help, an option for the program, -a=x: typer decides
        if not eq:
            if i >= len(argv):
                return None
            value = argv[i]
            i += 1
        field, kind = _OPTIONS[name]
        if kind == "int":
            if not _INT.fullmatch(value):
                return None
            values[field] = int(value)
        elif kind == "path":
            if not value:
                return None
            values[field] = Path(value)
        else:
            values[field] = value
    if not positional:
        if not rest:
            return None
        positional, rest = rest[:1], rest[1:]
    values["program"] = Path(positional[0])
    values["program_args"] = positional[1:] + rest
    return values


def join_forks_early(argv: list[str]) -> None:
    """A rank of a user's ``mpiexec`` (``argv``: the words after ``run``): hand it over to
    its host's fork server now, before the rest of qshpc loads
    (:func:`qshpc.runtime.forkserver.join_local`; it is tried once per process: when
    this command line is one typer must read, :mod:`qshpc.runtime.start` tries it later).
    """
    fields = parse_run(argv)
    if fields is None:
        return
    from qshpc.jobs.prepare import RunSpec
    from qshpc.runtime.forkserver import join_local

    fields.pop("workers", None)
    try:
        spec = RunSpec(**fields)
        cache = spec.cache_meta()
    except Exception:  # bad input: not handed over, the command says what is wrong as usual
        return
    try:
        join_local(spec.program, cache)
    except Exception as exc:  # a setting it reads is not valid: one line, exit 2, as the
        from qshpc.cli.boundary import exit_code  # launcher's own reading of it says

        code = exit_code(exc)
        if code is None:
            raise
        sys.exit(code)


def run_fast(argv: list[str]) -> int | None:
    """Run ``qshpc run ...`` without typer; the exit code, or None to hand ``argv`` to typer.

    Args:
        argv: The command line after the program name (``sys.argv[1:]``).
    """
    if not argv or argv[0] != "run":
        return None
    misplaced = misplaced_option(argv[1:])
    if misplaced is not None:
        print(f"qshpc: error: {misplaced}", file=sys.stderr)
        return 2
    fields = parse_run(argv[1:])
    if fields is None:
        return None
    _timeline.mark("command line read")
    from qshpc.cli.boundary import exit_code
    from qshpc.jobs.prepare import RunSpec
    from qshpc.runtime.mpi import launched_by_mpi, note_workers_ignored
    from qshpc.store import holders
    from qshpc.submit.slurm import job_over, scheduler

    holders.slurm_job_over = job_over  # a lock held by an ended Slurm job is taken over
    workers = fields.pop("workers", None)
    try:
        spec = RunSpec(**fields)
        if spec.cache or (spec.cache is None and spec.cache_dir is not None):
            check_cache_dir(spec.cache_dir)
        grace = settings.EXIT_GRACE_S.get()
        if launched_by_mpi():  # a rank: what launch.local.run would do, without its imports
            from qshpc.runtime.start import run_rank

            note_workers_ignored(workers)
            ended = run_rank(spec, scheduler())
        else:
            from qshpc.launch.local import run

            ended = run(spec, workers, scheduler())
        from qshpc.runtime.leave import leave_within

        leave_within(ended, grace)  # threads the program left running do not hold the exit
        return ended
    except KeyboardInterrupt:  # before the command set its own handling (qshpc.cli.main)
        print("\nqshpc: interrupted (SIGINT)", file=sys.stderr)
        return 130
    except MemoryError:  # qshpc's own work (the program's is the job's error): one line
        print(  # (review38 F17: an internal traceback)
            "qshpc: error: qshpc ran out of memory (MemoryError) running the job; what it "
            "committed is kept: `qshpc list` names the job, `qshpc status JOB` shows its state; "
            "free memory (or raise the limit: ulimit -v, the batch job's --mem) and try again",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:
        code = exit_code(exc)
        if code is None:
            raise
        return code


def check_cache_dir(path: Path | None) -> None:
    """Create and check the cache folder now: an unsafe one is refused before the job starts.

    Raises:
        UserError: The folder is unsafe or cannot be created (docs/cache.md).
    """
    from qshpc.cache.folder import CacheUnusable
    from qshpc.cache.store import CacheDir

    try:
        CacheDir(path)
    except CacheUnusable:  # the job runs without the cache: its first cached call says so
        pass  # once (review30 F7: a member's folder under one's uid refused the job; review50
        # F1: a folder that cannot be made, read-only or full, too)
