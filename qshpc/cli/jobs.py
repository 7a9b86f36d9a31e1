"""Commands that read jobs back: status, result, logs, wait, cancel, list."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from qshpc.cli.common import echo, errors, reads_store
from qshpc.errors import UserError, error_head
from qshpc.jobs.seconds import seconds
from qshpc.text import error_line, shown, shown_lines, shown_seconds

if TYPE_CHECKING:
    from qshpc.client.logread import LogReader

JobArg = Annotated[str, typer.Argument(help="Job id, job directory, or Slurm job id.")]


def _fmt_time(t: Any) -> str:
    """``2026-12-05 13:20:50``; ``-`` when none, ``?`` when no calendar holds it (review30
    F5: a damaged ``status.json`` time made ``qshpc status`` end in a traceback)."""
    from qshpc.text import shown_time

    return shown_time(t)


def _duration(meta: dict[str, Any], start_key: str = "started") -> str:
    start, end = meta.get(start_key), meta.get("finished")
    if not start:
        return "-"
    try:
        secs = (float(end) if end else time.time()) - float(start)
    except (TypeError, ValueError):
        return "?"
    if not shown_seconds(secs):  # (NaN too)
        return "?"
    return f"{secs:.1f}s" if secs < 120 else f"{secs / 60:.1f}m"


def _resume_note(meta: dict[str, Any]) -> str:
    """``; run 2, a resume: 15.0s, 16 tasks`` for a resumed job: the time from the first
    start counts the pause before the resume and its tasks those it reused (review44 F11c)."""
    runs = meta.get("runs")
    if not isinstance(runs, int) or runs < 2 or not meta.get("last_started"):
        return ""
    tasks = meta.get("tasks_this_run")
    ended = f", {tasks} tasks ended in it" if isinstance(tasks, int) else ""
    return f"; run {runs}, a resume: {_duration(meta, 'last_started')}{ended}"


def _counts(meta: dict[str, Any]) -> str:
    """``6 done (2 from cache), 1 failed, 2 stopped, 3 never started`` (stopped: still running
    when the job ended; the store counts them FAILED), as the watch line and the card say it."""
    from qshpc.jobs.progress import done_text, snapshot

    return done_text(snapshot(meta))


HEADER = ("ID", "TITLE", "STATE", "SLURM", "TASKS", "CREATED", "DURATION")


def _grouped_lines(
    entries: list[tuple[tuple[str, ...], str | None, int]], totals: dict[str, int] | None = None
) -> list[str]:
    """The table of ``qshpc list``: newest first; an array's elements together under its line.

    ``totals``: each array's elements in all (its line says ``2 of 3 element(s) shown`` when
    ``--limit`` cut some: review34 F7, it said ``1 element(s)`` of a 3-element array).

    ``entries``: (row, array id or None, array index), newest first.
    """
    rows = [HEADER, *(e[0] for e in entries)]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(HEADER))]

    def fmt(r: tuple[str, ...]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    members: dict[str, list[tuple[tuple[str, ...], str | None, int]]] = {}
    for e in entries:
        if e[1] is not None:
            members.setdefault(e[1], []).append(e)
    lines = [fmt(HEADER)]
    shown: set[str] = set()
    for row, array_id, _ in entries:
        if array_id is None:
            lines.append(fmt(row))
            continue
        if array_id in shown:
            continue
        shown.add(array_id)
        group = sorted(members[array_id], key=lambda e: e[2])
        by_state: dict[str, int] = {}
        for e in group:
            by_state[e[0][2]] = by_state.get(e[0][2], 0) + 1
        counts = ", ".join(f"{n} {st}" for st, n in sorted(by_state.items()))
        total = (totals or {}).get(array_id, 0)
        many = (
            f"{len(group)} of {total} element(s) shown"
            if total > len(group)
            else (f"{len(group)} element(s)")
        )
        lines.append(f"array {array_id}  {row[1]}  {many}: {counts}")
        lines += [fmt(e[0]) for e in group]
    return lines


def _damaged_exit(meta: dict[str, Any], extra: str = "") -> NoReturn:
    """One line on stderr and exit code 2 for a job whose store is damaged."""
    print(
        f"qshpc: error: job {shown(meta.get('id'))}: {shown(meta.get('error'))}; "
        f"{shown(meta.get('recoverable'))}{extra}",
        file=sys.stderr,
    )
    raise typer.Exit(2)


def _slurm_id(meta: dict[str, Any]) -> str | None:
    """The job's Slurm id: ``qshpc submit``'s, else the last run's under Slurm (one's own
    sbatch script: recorded by rank 0, review24 F3)."""
    ids = meta.get("slurm_job_ids") or [None]
    return str(meta.get("slurm_job_id") or ids[-1] or "") or None


def _echo_result(value: Any, as_json: bool) -> None:
    """Print a saved result: JSON, or the summary the terminal shows.

    The JSON is written in pieces as it is made (review38 F3: whole, a 500 MB array took
    3.8 GB). A result an older qshpc stored deeper than the store's limit (review38 F2) is
    printed from a thread with a deep stack, not as a ``RecursionError``.
    """
    from qshpc.errors import SerializationError
    from qshpc.store.nesting import check_stored, deep_stack

    try:
        check_stored(value)
    except SerializationError:  # deeper than a new job could store: an older job's
        deep_stack(lambda: _print_result(value, as_json))
    else:
        _print_result(value, as_json)


def _print_result(value: Any, as_json: bool) -> None:
    if not as_json:
        from qshpc.store.qiskit_results import summary

        echo(summary(value))
        return
    from qshpc.store.jsonable import iter_json

    out = sys.stdout
    pending: list[str] = []
    size = 0
    for piece in iter_json(value):
        pending.append(piece)
        size += len(piece)
        if size >= 1 << 20:
            out.write("".join(pending))
            pending, size = [], 0
    pending.append("\n")
    out.write("".join(pending))
    out.flush()


def _damaged_result(j: Any, as_json: bool, allow_pickle: bool) -> NoReturn:
    """``qshpc result`` of a DAMAGED job: its saved result printed when it is intact, the
    damage on stderr, exit 2 either way (the store is not what it was written as).

    review24 F5: ``qshpc status`` said "recoverable: ..., the saved result" and ``qshpc
    result`` refused with another list (its shallow look, without the result): no command
    gave the recoverable result. Both now take the deep look, so their lists agree.
    """
    from qshpc.errors import QshpcError
    from qshpc.jobs.paths import job_ref
    from qshpc.store import JobReader

    # the look `qshpc status --verify` takes: the same "recoverable" list (the damage may be
    # in the result's own bytes, which plain `qshpc status` of a big store does not read)
    meta = j.info(verify=True)
    extra = ""
    if meta.get("has_result"):
        try:
            with JobReader.open(j.job_dir) as r:
                value = r.result(allow_pickle=allow_pickle)
        except QshpcError as exc:
            pickled = not allow_pickle and "pickled data" in str(exc)
            what = getattr(exc, "what", None)
            extra = (
                f"; the saved result holds pickled Python objects"
                f"{f' (a {shown(what)})' if what else ''}: if you trust this store, "
                f"`qshpc result {job_ref(j.job_dir)} --allow-pickle`"
                if pickled
                else f"; the saved result could not be read ({shown(exc)})"
            )
        else:
            _echo_result(value, as_json)
            extra = "; the saved result (intact, checked block by block) is printed above"
    _damaged_exit(meta, extra)


# The reader is qshpc.client.logread's LogReader; these two and _chunks are what the command
# passes it, here so that tests (tests/faults/test_mend19.py) can turn them.
#: Bytes read from a log at a time (:data:`qshpc.client.logread.LOG_CHUNK`).
_CHUNK = 1 << 20
#: Slurm output files of one rank shown without their rank's lines up to this size
#: (:data:`qshpc.client.logread.DEDUP_MAX`).
_DEDUP_MAX = 64 << 20


def _chunks(path: Path, start: int = 0) -> Iterator[bytes]:
    """The bytes of a log from ``start`` on, :data:`_CHUNK` at a time."""
    from qshpc.client.logread import log_chunks

    return log_chunks(path, start, _CHUNK)


def _note(message: str) -> None:
    print(f"qshpc: {message}", file=sys.stderr)


def _reader(j: Any, rank: int | None, tail: int | None) -> LogReader:
    """The one log reader of :mod:`qshpc.client.logread`, its notes on stderr."""
    from qshpc.client.logread import LogReader

    return LogReader(j, rank, tail=tail, read=_chunks, note=_note, dedup_max=_DEDUP_MAX)


def _check_rank(j: Any, job: str, rank: int) -> None:
    """Refuse ``--rank R`` of a job that ran no rank R (review24 F11: nothing printed,
    exit 0). A job not started yet, or whose size is not recorded, is not refused.

    Raises:
        UserError: Naming the job's ranks.
    """
    from qshpc.errors import UserError

    if j._log_files(rank):
        return
    size = j.info().get("mpi_size")
    if isinstance(size, int) and size > 0 and not 0 <= rank < size:
        ranks = "rank 0" if size == 1 else f"ranks 0-{size - 1}"
        raise UserError(f"job {job} has {ranks}: --rank {rank} is none of them")


def _print_logs(
    j: Any, rank: int | None, show: Callable[[str], str], tail: int | None = None
) -> None:
    """Print the logs as ``Job.logs`` joins them, a chunk at a time."""
    out = sys.stdout
    for text in _reader(j, rank, tail).once():
        out.write(show(text))
    out.write("\n")
    out.flush()


def _follow_logs(
    j: Any, rank: int | None, show: Callable[[str], str], tail: int | None = None
) -> None:
    """Print the logs as they grow, until the job ends (``Job.iter_logs(follow=True)``)."""
    for text in _reader(j, rank, tail).follow():
        sys.stdout.write(show(text))
        sys.stdout.flush()


def _tail_option(text: str | None) -> int | None:
    """``--tail N``: a whole number of lines, 0 or more, in ASCII digits.

    Raises:
        UserError: Anything else (typer's refusal of a bad integer is three lines).
    """
    if text is None:
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    from qshpc.errors import UserError

    raise UserError(
        f"--tail {shown(repr(text))} is not a whole number of lines: give 0 or more, e.g. --tail 20"
    )


def _not_ours(job_dir: Path, what: str, exc: OSError) -> UserError:
    """The error of a job that another user's run holds (a team's store): one line, exit 2.

    hunt21b: `qshpc cancel` of a teammate's running job was a PermissionError traceback
    (its rank 0 cannot be signalled by another user).
    """
    from qshpc.store.perms import user_name

    try:
        uid = os.lstat(job_dir).st_uid
        owner = user_name(uid)
    except OSError:
        uid, owner = -1, "another user"
    if uid == os.geteuid():  # the job is ours: its recorded process is another user's now
        return UserError(
            f"cannot {what} job {shown(job_dir.name)}: {exc.strerror or exc} (the process the "
            "job recorded belongs to another user now: the job's own process has ended; "
            "`qshpc status` says what it became)"
        )
    return UserError(
        f"cannot {what} job {shown(job_dir.name)}: {exc.strerror or exc} (the job belongs to "
        f"{owner}: only its owner can {what} it)"
    )


#: The longest line of an error `qshpc status` shows (the whole is in the job's logs).
_LINE_MAX = 2000


def _other_job(job_dir: Path, jid: object) -> str | None:
    """A line when ``job_dir``'s ``job.h5`` holds another job than the one the folder was
    made for (:func:`qshpc.jobs.paths.other_job`)."""
    from qshpc.jobs.paths import other_job

    other = other_job(job_dir, jid)
    return None if other is None else other[0]


def _refuse_other_job(job_dir: Path, jid: object) -> None:
    """``qshpc result`` of a folder whose ``job.h5`` holds another job (review53 N1: its
    values were printed as this job's, exit 0, the note only on stderr, or none at all
    for a ``--job-dir`` folder).

    Raises:
        UserError: Both ids, and the ways on.
    """
    from qshpc.errors import UserError
    from qshpc.jobs.paths import other_job

    other = other_job(job_dir, jid)
    if other is None:
        return
    line, fix = other
    raise UserError(
        f"refusing to show the result in {shown(job_dir)}: {line}; its values are job "
        f"{shown(jid)}'s. Read job {shown(jid)}'s result from the folder it was made in; "
        f"to take this folder as job {shown(jid)}'s, {fix}"
    )


def register(app: typer.Typer) -> None:
    """Add the commands to ``app``."""

    @app.command("status")
    @errors
    @reads_store
    def status(
        job: JobArg,
        as_json: Annotated[bool, typer.Option("--json", help="Print every field as JSON.")] = False,
        watch: Annotated[
            bool,
            typer.Option(
                "--watch", "-w", help="Show live progress until the job ends, then the details."
            ),
        ] = False,
        verify: Annotated[
            bool,
            typer.Option(
                "--verify",
                help="Also check every byte of the store against its seal (reads all of it).",
            ),
        ] = False,
    ) -> None:
        """Show a job's state (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED) and details.

        Reads the job's records and counters, and the values too only when the store
        is small (up to 256 MiB): as fast for a 100 GB store as for a small one.
        --verify checks every byte of any store against its seal; qshpc result,
        Job.result() and --resume check what they read.
        """
        from qshpc.client.job import open_job
        from qshpc.store import to_jsonable

        j = open_job(job)
        if watch:
            from qshpc.jobs.progress import watch as watch_job

            watch_job(j, stream=sys.stdout)
        from qshpc.jobs.paths import small_store

        meta = j.info(verify=verify or small_store(j.job_dir), deep=True)
        other = _other_job(j.job_dir, meta.get("id"))
        if as_json:
            if other:  # fixS left: the text's "note" line had no field here
                meta = {**meta, "other_job_note": other}
            echo(json.dumps(to_jsonable(meta), indent=2, sort_keys=True))
            if meta.get("state") == "DAMAGED":
                raise typer.Exit(2)
            return
        state = str(meta.get("state"))
        if state == "DAMAGED":
            echo("DAMAGED")
            echo(f"  job      {shown(meta.get('id'))}  {shown(meta.get('title', ''))}")
            echo(f"  dir      {shown(j.job_dir)}")
            if other:
                echo(f"  note     {other}")
            echo(f"  error    {shown(meta.get('error'))}")
            echo(f"  {shown(meta.get('recoverable'))}")
            _damaged_exit(meta)
        line = shown(state)
        if state == "RUNNING" and meta.get("sub_status"):
            line += f": {shown(meta['sub_status'])}"
        if meta.get("slurm_state"):
            line += f" (slurm: {shown(meta['slurm_state'])})"
        echo(line)
        echo(f"  job      {shown(meta.get('id'))}  {shown(meta.get('title', ''))}")
        echo(f"  dir      {shown(j.job_dir)}")
        if other:
            echo(f"  note     {other}")
        if _slurm_id(meta):
            echo(f"  slurm    {shown(_slurm_id(meta))}")
        # A run that ended without recording it (a crash found later): when it was found
        # (or, where it cannot be recorded, the last time its store or logs were written)
        ended = (
            f"found {state} at"
            if meta.get("found_ended")
            else "last seen"
            if meta.get("last_seen")
            else "finished"
        )
        echo(
            f"  created  {_fmt_time(meta.get('created'))}   started {_fmt_time(meta.get('started'))}"
            f"   {ended} {_fmt_time(meta.get('finished'))}   ({_duration(meta)}{_resume_note(meta)})"
        )
        echo(f"  tasks    {_counts(meta)}")
        ranks = meta.get("ranks") or []
        if ranks:
            hosts = sorted({shown(r.get("host")) for r in ranks})
            echo(f"  ranks    {len(ranks)} on {', '.join(hosts)}")
        if meta.get("error") and state != "SUCCEEDED":
            echo("  error:")
            for ln in shown_lines(meta["error"]).rstrip().splitlines()[-15:]:
                if len(ln) > _LINE_MAX:  # (a 1 MiB message printed 2 MB: review55 E3)
                    ln = f"{ln[:_LINE_MAX]}... ({len(ln) - _LINE_MAX} characters more: qshpc logs)"
                echo(f"    {ln}")

    @app.command("result")
    @errors
    @reads_store
    def result(
        job: JobArg,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
        allow_pickle: Annotated[
            bool,
            typer.Option("--allow-pickle", help="Load pickled values (only for stores you trust)."),
        ] = False,
        timeout: Annotated[
            float | None, typer.Option("--wait", help="Wait up to this many seconds for the job.")
        ] = None,
    ) -> None:
        """Print what the program passed to save_result."""
        from qshpc.client.job import open_job
        from qshpc.errors import UserError
        from qshpc.jobs.paths import job_ref
        from qshpc.jobstate import TERMINAL

        timeout = seconds(timeout, "--wait", "leave --wait out not to wait")
        j = open_job(job)
        state = j.status().state if timeout is None else j.wait(timeout)
        _refuse_other_job(j.job_dir, j.info().get("id"))
        if state == "DAMAGED":
            _damaged_result(j, as_json, allow_pickle)
        ref = job_ref(j.job_dir)
        if state not in TERMINAL:
            raise UserError(
                f"job {j.job_id} is {state}: it has no result yet. "
                f"Wait with `qshpc wait {ref}` or `qshpc result {ref} --wait SECONDS`."
            )
        from qshpc.errors import DamagedStoreError, StoreError

        try:
            value = j.result(allow_pickle=allow_pickle)
        except DamagedStoreError:
            # Damage the quick state look does not see (the saved result's own blocks): the
            # look `qshpc status --verify` takes, its "recoverable / lost" list (review27).
            _damaged_result(j, as_json, allow_pickle)
        except StoreError as exc:
            if allow_pickle or "pickled data" not in str(exc):
                raise
            what = getattr(exc, "what", None)  # the class pickled (mend24), when plain to see
            raise UserError(  # the CLI's words, not the API's "pass allow_pickle=True" (F3)
                f"{shown(j.job_dir / 'job.h5')} contains pickled data: the result holds Python "
                f"objects{f' (a {shown(what)})' if what else ''}, which could run code when "
                "loaded; if you trust who wrote this store, "
                f"run `qshpc result {ref} --allow-pickle`"
            ) from None
        if value is None and state == "SUCCEEDED":
            print(
                f"qshpc: job {j.job_id} SUCCEEDED but the program never called save_result",
                file=sys.stderr,
            )
        _echo_result(value, as_json)
        if state != "SUCCEEDED":  # printed (nothing lost), but no success (review38 F9)
            # the error's own line, as the run's summary shows it
            line = error_line(error_head(shown_lines(j.error_message() or "")))
            print(
                f"qshpc: job {j.job_id} ended {state} after saving this result: "
                f"{line or 'no error text'} (`qshpc status {ref}` shows it all)",
                file=sys.stderr,
            )
            raise typer.Exit(1)

    @app.command("logs")
    @errors
    @reads_store
    def logs(
        job: JobArg,
        rank: Annotated[
            int | None, typer.Option("--rank", "-r", help="Only this rank's log.")
        ] = None,
        follow: Annotated[
            bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
        ] = False,
        raw: Annotated[
            bool,
            typer.Option(
                "--raw",
                help="Print the logs exactly as written (control characters and escape "
                "sequences included); by default they are shown escaped, e.g. \\x1b.",
            ),
        ] = False,
        tail: Annotated[
            str | None,
            typer.Option(
                "--tail",
                "-n",
                metavar="N",
                help="Only the last N lines of each log (as tail -n), read from its end; "
                "with --follow, then what the logs gain.",
                show_default=False,
            ),
        ] = None,
    ) -> None:
        """Print the job's logs (stdout and stderr of every rank), also while it runs."""
        from qshpc.client.job import open_job

        lines = _tail_option(tail)
        j = open_job(job)
        if rank is not None:
            _check_rank(j, job, rank)
        show = (lambda t: t) if raw else shown_lines
        if not follow:
            _print_logs(j, rank, show, lines)
            return
        _follow_logs(j, rank, show, lines)

    @app.command("wait")
    @errors
    @reads_store
    def wait(
        job: JobArg,
        timeout: Annotated[
            float | None,
            typer.Option("--timeout", help="Give up after this many seconds (exit 3)."),
        ] = None,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="No progress on stderr, only the final state.")
        ] = False,
    ) -> None:
        """Wait until the job ends; print its state. Exit 0 when SUCCEEDED, 1 otherwise.

        Shows progress on stderr while waiting (a live bar on a terminal, a line
        every few seconds otherwise).
        """
        from qshpc.client.job import open_job

        timeout = seconds(timeout, "--timeout", "leave --timeout out to wait as long as it takes")
        j = open_job(job)
        if quiet:
            state = j.wait(timeout)
        else:
            from qshpc.jobs.progress import watch as watch_job

            state = watch_job(j, timeout=timeout)
        echo(shown(state))
        if state == "DAMAGED":
            _damaged_exit(j.info())
        if state != "SUCCEEDED":
            raise typer.Exit(1)

    @app.command("cancel")
    @errors
    def cancel(
        job: JobArg,
        grace: Annotated[
            float,
            typer.Option(
                "--grace",
                min=0,
                help="Seconds a run on this host gets to stop before its rank 0 is killed "
                "(SIGKILL): a program that handles SIGTERM itself may go on, and a stopped "
                "one (SIGSTOP, Ctrl-Z) does not end.",
            ),
        ] = 10.0,
    ) -> None:
        """Cancel a job; results of finished tasks stay in the store."""
        from qshpc.client.job import open_job

        grace = seconds(grace, "--grace", "--grace 0 to kill it at once") or 0.0
        j = open_job(job)
        try:
            asked = j.stop(wait=0)
        except PermissionError as exc:
            raise _not_ours(j.job_dir, "cancel", exc) from None
        if asked:
            echo(f"cancel requested for job {shown(j.job_id)}")
            killed = j.kill_if_stuck(grace)
            if killed is not None:
                echo(f"job {shown(j.job_id)} CANCELED: {shown(killed)}")
        else:
            echo(f"job {shown(j.job_id)} already ended {shown(j.status())}")

    @app.command("list")
    @errors
    @reads_store
    def list_(
        state: Annotated[
            str | None, typer.Option("--state", "-s", help="Only jobs in this state.")
        ] = None,
        limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many jobs.")] = 50,
        since: Annotated[
            str | None,
            typer.Option("--since", help="Only jobs created within this age: 30m, 12h, 2d, 1w."),
        ] = None,
        array: Annotated[
            str | None,
            typer.Option("--array", help="Only the elements of this job array (its id)."),
        ] = None,
        as_json: Annotated[
            bool,
            typer.Option(
                "--json", help="Print the jobs as a JSON list (each as `qshpc status --json`)."
            ),
        ] = False,
    ) -> None:
        """List jobs in the store, newest first.

        The elements of a job array (`qshpc submit --array`, `Client.map`) are
        listed together, in index order, under a line with the array's id and
        its elements' counts by state.
        """
        from qshpc.cli.ux import parse_age

        if limit < 0:  # (review30 F9: an empty table and exit 0, as `cache ls` refuses it)
            raise UserError(f"--limit {limit}: give a number of jobs, 0 or more")
        cutoff = time.time() - parse_age(since) if since else None
        from qshpc.client.job import Job, list_jobs, read_infos
        from qshpc.jobstate import JobState

        if state and state.upper() not in JobState.__members__:
            raise UserError(f"unknown state {state!r}: use {', '.join(JobState.__members__)}")
        jobs: list[Job] = list_jobs()
        if array is not None:  # element directories are named <array id>-<index>
            jobs = [j for j in jobs if j.job_dir.name.startswith(f"{array}-")]

        def keep(m: dict[str, Any]) -> bool:
            if cutoff is not None and float(m.get("created") or 0) < cutoff:
                return False
            return array is None or str(m.get("array_id") or "") == array

        # One Slurm query for every job listed (sacct -j a,b,c), not one per job.
        entries: list[tuple[tuple[str, ...], str | None, int]] = []
        listed: list[dict[str, Any]] = []
        others: list[str] = []  # folders whose job.h5 holds another job (F7)
        for j, m in read_infos(jobs, keep, limit=None if state else limit):
            if len(listed if as_json else entries) >= limit:
                break
            if as_json:
                if isinstance(m, Exception):
                    if array is None and not state:
                        listed.append(
                            {"id": j.job_dir.name, "job_dir": str(j.job_dir),
                             "state": "UNREADABLE", "error": str(m)}
                        )  # fmt: skip
                elif not state or str(m.get("state")) == state.upper():
                    info = {"job_dir": str(j.job_dir), **m}
                    if _other_job(j.job_dir, m.get("id")):  # review55 L1: as the table's `!`
                        info["holds_other_job"] = True
                    listed.append(info)
                continue
            if isinstance(m, Exception):
                if array is None and not state:
                    entries.append(
                        (
                            (shown(j.job_dir.name), "?", "UNREADABLE", "", shown(m)[:40], "", ""),
                            None,
                            0,
                        )
                    )
                continue
            if state and str(m.get("state")) != state.upper():
                continue
            array_id = shown(m["array_id"]) if m.get("array_id") else None
            jid = shown(m.get("id"))
            if _other_job(j.job_dir, m.get("id")):  # review52 F7: a copy listed as the original
                jid = f"{shown(j.job_dir.name)}!"
                others.append(f"{shown(j.job_dir.name)} (it holds {shown(m.get('id'))})")
            row = (
                jid,
                shown(m.get("title", ""))[:30],
                shown(m.get("state")),
                shown(_slurm_id(m) or "-"),
                _counts(m),
                _fmt_time(m.get("created")),
                _duration(m),
            )
            entries.append((row, array_id, int(m.get("array_index") or 0)))
        if array is not None and not (listed if as_json else entries):
            raise UserError(f"no job of array {array!r} (run `qshpc list` to see the arrays)")
        if as_json:
            from qshpc.store import to_jsonable

            echo(json.dumps(to_jsonable(listed), indent=2, sort_keys=True))
            return
        from qshpc.jobs.paths import ELEMENT_ID

        totals: dict[str, int] = {}
        for j in jobs:  # (element folders are named <array id>-<index>)
            if ELEMENT_ID.fullmatch(j.job_dir.name):
                key = shown(j.job_dir.name.rsplit("-", 1)[0])
                totals[key] = totals.get(key, 0) + 1
        for line in _grouped_lines(entries, totals):
            echo(line)
        if others:
            echo(
                f"! the job.h5 in folder {'; in folder '.join(others)}: another job's file put "
                "in its place, or a job folder copied under a new name (`qshpc status FOLDER`)"
            )
