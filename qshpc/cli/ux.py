"""Commands around jobs: plot, doctor, rm, gc; and the age parser ``list --since`` shares."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qshpc.cli.common import echo, errors

if TYPE_CHECKING:
    from collections.abc import Callable

    from qshpc.client.job import Job

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
ACTIVE = ("QUEUED", "RUNNING")


def parse_age(text: str, option: str = "--since") -> float:
    """``30m``, ``12h``, ``2d``, ``1w`` (or ``90s``) as seconds.

    Raises:
        UserError: Any other form.
    """
    from qshpc.errors import UserError

    m = _AGE.match(text)
    if not m:
        raise UserError(
            f"bad age {text!r} for {option}: use a number and a unit, "
            "s, m, h, d or w (e.g. 30m, 12h, 2d, 1w)"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


def check_state(state: str | None) -> str | None:
    """``state`` upper-cased, or a UserError naming the valid states."""
    from qshpc.errors import UserError
    from qshpc.store import STATES

    if state is None:
        return None
    if state.upper() not in STATES:
        raise UserError(f"unknown state {state!r}: use one of {', '.join(STATES)}")
    return state.upper()


@dataclass
class Entry:
    """A job seen by ``gc``: its state, the time its age counts from, its size."""

    job: Job
    state: str
    since: float
    size: int


def _size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            pass
    return total


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def job_age_ref(meta: dict[str, Any]) -> float:
    """The time a job's age counts from: when it ended, else started, else was created."""
    for key in ("finished", "last_started", "started", "created"):
        if meta.get(key):
            return float(meta[key])
    return 0.0


def _under_store(path: Path) -> bool:
    from qshpc.jobs.paths import jobs_root

    try:
        return path.resolve().parent == jobs_root().resolve()
    except OSError:
        return False


def remove_job(job: Job, force: bool = False) -> str:
    """Delete a job's directory; return the state it had.

    Raises:
        UserError: It runs or is queued (without ``force``), its store is
            unreadable (without ``force``), or its folder is outside the store.
    """
    from qshpc.errors import UserError
    from qshpc.jobs.arrays import drop_array_if_gone

    jid = job.job_dir.name
    owner = _others(job.job_dir)
    if owner is not None:  # a team's store (hunt21b: "check the folder is writable", exit 1)
        from qshpc.store.perms import user_name

        raise UserError(f"job {jid} belongs to {user_name(owner)}: only its owner can remove it")
    if not _under_store(job.job_dir):
        raise UserError(
            f"{job.job_dir} is not under the store ($QSHPC_HOME/jobs): qshpc removes only its own "
            f"job folders; delete this one yourself if you mean to (rm -r {job.job_dir})"
        )
    try:
        # review50 F3: the records alone said SUCCEEDED for a store damaged in a value
        # (its saved result), and `rm` removed the task results it still held: a small
        # store is checked whole first, as `qshpc status` checks it
        from qshpc.jobs.paths import small_store

        meta = job.info(verify=not force and small_store(job.job_dir))
        state = str(meta.get("state"))
    except Exception as exc:
        if not force:
            raise UserError(
                f"cannot read job {jid} ({exc}): pass --force to remove it anyway"
            ) from None
        state = "UNREADABLE"
    if state == "DAMAGED" and not force:
        raise UserError(
            f"job {jid}'s store is damaged ({meta.get('recoverable')}): pass --force to remove "
            f"it (see `qshpc status {jid}`)"
        )
    if state not in ACTIVE and _held(job.job_dir):
        state = "RUNNING"  # a run (a resume starting) holds it: its store says so shortly
    if state in ACTIVE:
        why = _stop_and_remove(job, state, force)
    else:
        why = remove_ended(job.job_dir, lambda st, _meta: st in ACTIVE)
        if why == TAKEN:
            why = _stop_and_remove(job, "RUNNING (a run took it meanwhile)", force)
    if why is not None:
        raise OSError(f"cannot remove job {jid}: {why}; the job is kept")
    drop_array_if_gone(job.job_dir)
    return state


def _stop_and_remove(job: Job, state: str, force: bool) -> str | None:
    """Cancel a job that runs or is queued (``state``, as the refusal names it) and remove
    its folder, as :func:`remove_tree`; without ``force``, refuse (UserError)."""
    from qshpc.errors import UserError
    from qshpc.jobs.paths import job_ref

    if not force:
        jid = job_ref(job.job_dir)
        raise UserError(
            f"job {jid} is {state}: cancel it first with `qshpc cancel {jid}`, "
            f"or pass --force to cancel and remove it"
        )
    job.stop()
    return remove_tree(job.job_dir)


def _error(text: str) -> None:
    """``qshpc: error: TEXT`` on stderr (control characters escaped)."""
    import sys

    from qshpc.text import shown_lines

    print(f"qshpc: error: {shown_lines(text)}", file=sys.stderr)


def remove_tree(path: Path) -> str | None:
    """Remove a job's folder; None once it is gone, else why it is not (the first error).

    On a read-only file system (an archive mounted read-only, a quota that
    forbids) ``qshpc rm`` printed a traceback, and ``qshpc gc`` said
    ``removed 1 job(s)`` and exited 0 while every job was still there.
    """
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass  # removed meanwhile (another rm, gc)
    except OSError as exc:
        return f"{exc.strerror or exc} (removing {path}: check the folder is writable)"
    return None


#: What :func:`remove_ended` returns when the job is no longer ended: a run took it.
TAKEN = "a run took it meanwhile"


def remove_ended(job_dir: Path, taken: Callable[[str, dict[str, Any]], bool]) -> str | None:
    """Remove the folder of an ended job holding its lock, after reading it again under the
    lock; None once it is gone, :data:`TAKEN` when a run holds it or ``taken(state, meta)``
    says it is no longer to be removed, else why it is kept (:func:`remove_tree`).

    hunt16: ``qshpc gc`` (and ``rm``) read the state, then removed the folder without the
    lock: a ``--resume`` whose rank 0 took the job in between lost its job under it.
    """
    from qshpc.client.job import Job
    from qshpc.store.lock import REMOVE_COMMAND, JobLock, JobLockedError

    try:
        lock = JobLock(job_dir, REMOVE_COMMAND).acquire()
    except JobLockedError:
        return TAKEN
    except Exception:  # no lock can be made here (read-only): no run can take it either
        return remove_tree(job_dir)
    try:
        try:
            meta = Job(job_dir).info()
        except Exception:
            meta = {"state": "UNREADABLE"}
        if taken(str(meta.get("state")), meta):
            return TAKEN
        return remove_tree(job_dir)
    finally:
        lock.release()


def _held(job_dir: Path) -> bool:
    """Does a live run hold the job's lock (a resume of an ended job, before it says RUNNING)?"""
    from qshpc.store.lock import holder_alive

    try:
        return holder_alive(job_dir, runs_only=True) is not None  # a read's fold: no run
    except Exception:
        return False


def _others(path: Path) -> int | None:
    """The owner of a job folder when it is another user's (a team's store), else None."""
    try:
        uid = os.lstat(path).st_uid
    except OSError:
        return None
    return uid if uid != os.geteuid() else None


def collect(
    older_than: float,
    state: str | None,
    now: float | None = None,
    others: list[Path] | None = None,
    skipped: list[str] | None = None,
) -> tuple[list[Entry], int, int]:
    """Ended jobs (of ``state``) older than ``older_than`` seconds.

    ``others``: given, it receives the folders of such jobs that other users own (in a
    team's store; hunt21b: gc tried them, could not remove them, and exited 1 every time),
    which are left out of the entries (damaged or unreadable ones too: review50 F5, gc
    told to `qshpc rm --force` a teammate's job, which rm refuses).
    ``skipped``: given, it receives the ids of the damaged or unreadable jobs skipped. A
    small store (:func:`~qshpc.jobs.paths.small_store`) is checked whole before it is
    taken, as ``qshpc status`` checks it (review50 F3: one damaged in a value was removed).

    Returns:
        The entries, the count of running/queued jobs kept, the count of unreadable jobs skipped.
    """
    from qshpc.client.job import list_jobs, read_infos
    from qshpc.jobs.paths import small_store

    now = time.time() if now is None else now
    found, active, unreadable = [], 0, 0

    def skip(job: Job) -> None:
        nonlocal unreadable
        if others is not None and _others(job.job_dir) is not None:
            others.append(job.job_dir)
            return
        unreadable += 1
        if skipped is not None:
            skipped.append(job.job_dir.name)

    for job, meta in read_infos(list_jobs()):  # one Slurm query for all of them
        if isinstance(meta, Exception):
            skip(job)
            continue
        st = str(meta.get("state"))
        if st == "DAMAGED":  # never removed by gc: what is recoverable stays for `qshpc rm --force`
            skip(job)
            continue
        if st in ACTIVE or _held(job.job_dir):  # held: a resume is starting
            active += 1
            continue
        if state and st != state:
            continue
        if not _under_store(job.job_dir):
            # hunt21b: a link in the jobs folder to a job moved elsewhere (scratch) was
            # "would remove" under --dry-run, then kept with "check the folder is
            # writable" and exit 1; like `qshpc rm`, gc removes only its own folders
            continue
        since = job_age_ref(meta)
        if now - since >= older_than:
            if others is not None and _others(job.job_dir) is not None:
                others.append(job.job_dir)
                continue
            if small_store(job.job_dir) and _damaged(job):
                skip(job)
                continue
            found.append(Entry(job, st, since, _size(job.job_dir)))
    return found, active, unreadable


def _damaged(job: Job) -> bool:
    """True when the job's store, checked whole, is damaged (or cannot be read)."""
    try:
        return job.store_meta(verify=True).get("state") == "DAMAGED"
    except Exception:
        return True


def register(app: typer.Typer) -> None:
    """Add plot, doctor, rm and gc to ``app``."""

    @app.command("plot")
    @errors
    def plot(
        job: Annotated[str, typer.Argument(help="Job id, job directory, or Slurm job id.")],
        out: Annotated[
            Path | None,
            typer.Option(
                "--out",
                "-o",
                help="Image file (.png, .pdf, .svg); default JOB_DIR/plot.png (timeline.png).",
            ),
        ] = None,
        timeline: Annotated[
            bool,
            typer.Option("--timeline", help="Draw the timeline of task attempts per rank instead."),
        ] = False,
    ) -> None:
        """Draw the saved result: histograms of counts/quasi-distributions, lines for sweeps.

        With --timeline: the task attempts per rank over time, as in `qshpc report`.
        """
        from qshpc.client.job import open_job

        j = open_job(job)
        if timeline:
            from qshpc.report.page import write_timeline

            echo(str(write_timeline(j.job_dir, out, j.info())))
            return
        from qshpc.jobs.plot import plot_job

        echo(str(plot_job(j, out)))

    @app.command("doctor")
    @errors
    def doctor(
        as_json: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
    ) -> None:
        """Check Python, packages, MPI across 2 ranks, Slurm, Aer CPU/GPU, and the store.

        Exit 0 when nothing FAILed (WARN is fine), 1 otherwise.
        """
        from qshpc.doctor import as_json as to_json
        from qshpc.doctor import format_table, healthy, run_checks

        checks = run_checks()
        echo(json.dumps(to_json(checks), indent=2) if as_json else format_table(checks))
        if not healthy(checks):
            raise typer.Exit(1)

    @app.command("rm")
    @errors
    def rm(
        jobs: Annotated[list[str], typer.Argument(help="Job ids or job directories.")],
        force: Annotated[
            bool,
            typer.Option(
                "--force", "-f", help="Also remove running/queued jobs (cancels them first)."
            ),
        ] = False,
    ) -> None:
        """Remove jobs from the store (their folder, results and logs)."""
        from qshpc.cli.boundary import exit_code
        from qshpc.client.job import open_job

        failed = 0
        for text in jobs:  # the others are still removed; the worst exit code at the end
            try:
                j = open_job(text)
                state = remove_job(j, force)
            except OSError as exc:
                failed = max(failed, 1)
                _error(str(exc))
                continue
            except Exception as exc:  # review52 F8: one bad job left the next ones unsaid
                code = exit_code(exc)  # its line on stderr: 2 for bad input, a damaged store
                if code is None:
                    raise
                failed = max(failed, code)
                continue
            echo(f"removed {j.job_dir.name} ({state})")
        if failed:
            raise typer.Exit(failed)

    @app.command("gc")
    @errors
    def gc(
        older_than: Annotated[
            str,
            typer.Option("--older-than", help="Age: 30m, 12h, 30d, 1w (from when the job ended)."),
        ],
        state: Annotated[
            str | None, typer.Option("--state", "-s", help="Only jobs that ended in this state.")
        ] = None,
        dry_run: Annotated[
            bool,
            typer.Option("--dry-run", "-n", help="Print what would be removed; remove nothing."),
        ] = False,
    ) -> None:
        """Remove ended jobs older than --older-than (running and queued jobs are kept)."""
        from qshpc.errors import UserError
        from qshpc.jobs.arrays import drop_array_if_gone

        age = parse_age(older_than, "--older-than")
        st = check_state(state)
        if st in ACTIVE:
            raise UserError(
                f"gc removes only ended jobs, not {st} ones: use `qshpc rm JOB --force` for one of those"
            )
        others: list[Path] = []
        skipped: list[str] = []
        entries, active, unreadable = collect(age, st, others=others, skipped=skipped)
        verb = "would remove" if dry_run else "removed"
        now = time.time()
        kept: list[str] = []
        gone = []
        for e in entries:
            if not dry_run:
                why = remove_ended(
                    e.job.job_dir,
                    lambda st, meta: st in ACTIVE or now - job_age_ref(meta) < age,
                )
                if why == TAKEN:  # resumed since collect() looked: kept as running
                    active += 1
                    continue
                if why is not None:
                    kept.append(f"{e.job.job_dir.name}: {why}")
                    continue
                drop_array_if_gone(e.job.job_dir)
            gone.append(e)
            days = (now - e.since) / 86400
            echo(f"{verb} {e.job.job_dir.name}  {e.state:<9}  {days:.1f}d old  {_human(e.size)}")
        total = _human(sum(e.size for e in gone))
        echo(
            f"{verb} {len(gone)} job(s), {total}"
            + (f"; kept {active} running/queued" if active else "")
        )
        if kept:
            _error(
                f"{len(kept)} job(s) could not be removed and are kept: {kept[0]}"
                + (f" (and {len(kept) - 1} more)" if len(kept) > 1 else "")
            )
        if unreadable:
            some = ", ".join(skipped[:5]) + (
                f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            )
            echo(
                f"skipped {unreadable} damaged or unreadable job(s) ({some}): see "
                "`qshpc status JOB` (what is recoverable), remove with `qshpc rm JOB --force`"
            )
        if others:
            echo(f"left {len(others)} job(s) of other users (only its owner removes a job)")
        if dry_run and entries:
            echo("run again without --dry-run to remove them")
        if kept:
            raise typer.Exit(1)
