"""``qshpc cache ls|stats|rm|gc``: what the result cache holds, and clearing it."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import Annotated, Any

import typer

from qshpc.cli.common import cache_dir_option, echo, errors

CacheDirOpt = Annotated[
    str | None,
    typer.Option(
        "--cache-dir",
        help="The cache folder (default $QSHPC_CACHE_DIR, else $QSHPC_HOME/cache).",
        show_default=False,
    ),
]
AllUsersOpt = Annotated[
    bool,
    typer.Option("--all-users", help="Shared cache: include the other group members' entries."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _clean(text: object) -> str:
    """``text`` with control characters escaped (names come from programs, not from us)."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)


def _when(t: float | None) -> str:
    """A time as ``ls`` and ``stats`` show it; ``?`` for one no calendar holds (hunt19: a
    member's entry stored "at" 1e300 s, an mtime of year 10000, made ``ls`` raise)."""
    if not t:
        return "-"
    try:
        return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, ValueError, OSError):
        return "?"


def _open(cache_dir: str | None, as_json: bool = False) -> Any:
    """The cache folder, or None (and a note saying so) when there is none yet."""
    from qshpc.cache.folder import default_dir, expand, present
    from qshpc.cache.store import CacheDir

    given = cache_dir_option(cache_dir)
    root = expand(given) if given is not None else default_dir()
    if not present(root):
        if as_json:
            return None
        echo(
            f"no cache at {root} yet: jobs run with --cache fill it "
            "(another folder: --cache-dir or QSHPC_CACHE_DIR)"
        )
        return None
    return CacheDir(root, create=False)


def register(app: typer.Typer) -> None:
    """Add the ``cache`` command group to ``app``."""
    sub = typer.Typer(
        name="cache",
        help="The result cache across jobs: ls, stats, rm, gc (see docs/cache.md).",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    app.add_typer(sub, name="cache")

    @sub.command("ls")
    @errors
    def ls(
        cache_dir: CacheDirOpt = None,
        function: Annotated[
            str | None, typer.Option("--function", "-f", help="Only this function's entries.")
        ] = None,
        job: Annotated[
            str | None, typer.Option("--job", "-j", help="Only entries computed by this job.")
        ] = None,
        limit: Annotated[
            int | None, typer.Option("--limit", "-n", help="At most N entries.")
        ] = None,
        all_users: AllUsersOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """List cached results, newest first: key, function, source job and task, size, time."""
        from qshpc.cache.maint import format_size, rows

        _not_empty(function=function, job=job)
        if limit is not None and limit < 0:
            from qshpc.errors import UserError

            raise UserError(f"--limit {limit}: give a number of entries, 0 or more")
        cache = _open(cache_dir, as_json)
        if cache is None:
            if as_json:
                echo("[]")
            return
        found = sorted(rows(cache, all_users, function, job), key=lambda r: r.created, reverse=True)
        total = len(found)
        if limit is not None:
            found = found[:limit]
        if as_json:
            echo(json.dumps([r.as_dict() for r in found], indent=1))
            return
        if not found:
            if total:  # --limit 0 (review43 L3: it said "no entries")
                n = f"{total} entr{'y' if total == 1 else 'ies'}"
                echo(f"{n} in {cache.root}; none listed (--limit 0)")
            else:
                echo(f"no entries in {cache.root}" + (" matching" if function or job else ""))
            return
        head: tuple[str, ...] = ("KEY", "FUNCTION", "JOB", "TASK", "SIZE", "STORED", "USED")
        table: list[tuple[str, ...]] = [(*head, "USER") if all_users else head]
        for r in found:
            row: tuple[str, ...] = (
                r.key[:16],
                _clean(r.function),
                _clean(r.job or "-"),
                _clean(r.task or "-"),
                format_size(r.size),
                _when(r.created),
                _when(r.used),
            )
            table.append((*row, _clean(r.user)) if all_users else row)
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for line in table:
            echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())

    @sub.command("stats")
    @errors
    def stats(
        cache_dir: CacheDirOpt = None,
        by_function: Annotated[
            bool,
            typer.Option("--by-function", help="Count per function (reads every entry's header)."),
        ] = False,
        all_users: AllUsersOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Entries and bytes in the cache, oldest and newest use, leftovers of killed writers."""
        from qshpc.cache.maint import format_size
        from qshpc.cache.maint import stats as count

        cache = _open(cache_dir, as_json)
        if cache is None:
            if as_json:
                echo(json.dumps({"root": None, "entries": 0, "bytes": 0}))
            return
        s = count(cache, all_users, by_function)
        if as_json:
            echo(json.dumps(s.as_dict(), indent=1))
            return
        mode = "shared with the group" if s.shared else "private"
        echo(f"cache     {s.root} ({mode})")
        echo(f"entries   {s.entries} ({format_size(s.bytes)})")
        if s.entries:
            echo(f"used      {_when(s.oldest)} .. {_when(s.newest)}")
        if all_users or len(s.users) > 1:
            for user, (n, b) in sorted(s.users.items()):
                echo(f"  user {_clean(user)}: {n} ({format_size(b)})")
        if s.functions is not None:
            for fn, (n, b) in sorted(s.functions.items(), key=lambda kv: -kv[1][0]):
                echo(f"  {_clean(fn)}: {n} ({format_size(b)})")
        if s.temporaries:
            echo(
                f"partial   {s.temporaries} file(s) being written or left by killed writers "
                f"({format_size(s.temporary_bytes)}; `qshpc cache gc` removes those over an hour old)"
            )

    @sub.command("rm")
    @errors
    def rm(
        keys: Annotated[
            list[str] | None,
            typer.Argument(help="Keys (or 4+ of their first hex digits), as `ls` shows them."),
        ] = None,
        cache_dir: CacheDirOpt = None,
        function: Annotated[
            str | None, typer.Option("--function", "-f", help="Every entry of this function.")
        ] = None,
        job: Annotated[
            str | None, typer.Option("--job", "-j", help="Every entry computed by this job.")
        ] = None,
        everything: Annotated[bool, typer.Option("--all", help="Every entry of yours.")] = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", "-n", help="Print what would go; remove nothing.")
        ] = False,
    ) -> None:
        """Remove your cached results: by key, by function, by source job, or all."""
        from qshpc.cache.maint import format_size, remove
        from qshpc.errors import UserError

        _not_empty(function=function, job=job)
        if not keys and function is None and job is None and not everything:
            raise UserError("say what to remove: KEY..., --function NAME, --job JOB or --all")
        cache = _open(cache_dir)
        if cache is None:
            return
        out = remove(cache, keys or (), function, job, everything, dry_run)
        _matched(out, function, job)
        verb = "would remove" if dry_run else "removed"
        echo(
            f"{verb} {out.removed} entr{'y' if out.removed == 1 else 'ies'} ({format_size(out.freed)})"
        )
        _failed(out)

    @sub.command("gc")
    @errors
    def gc(
        cache_dir: CacheDirOpt = None,
        older_than: Annotated[
            str | None,
            typer.Option("--older-than", help="Remove entries unused for this long: 12h, 30d, 1w."),
        ] = None,
        max_size: Annotated[
            str | None,
            typer.Option(
                "--max-size", help="Then remove the least recently used down to: 500M, 10G."
            ),
        ] = None,
        verify: Annotated[
            bool, typer.Option("--verify", help="Read every entry; remove torn or altered ones.")
        ] = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", "-n", help="Print what would go; remove nothing.")
        ] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Remove your old cached results (and files left by killed writers).

        "Used" is when an entry was stored or, to the day, last returned by a lookup.
        """
        from qshpc.cache.maint import format_size, parse_size
        from qshpc.cache.maint import gc as collect
        from qshpc.cli.ux import parse_age

        age = parse_age(older_than, "--older-than") if older_than is not None else None
        size = parse_size(max_size) if max_size is not None else None
        cache = _open(cache_dir, as_json)
        if cache is None:
            if as_json:
                echo(json.dumps({"removed": 0, "freed_bytes": 0}))
            return
        out = collect(cache, age, size, verify, dry_run, time.time())
        if as_json:
            echo(json.dumps(out.as_dict(), indent=1))
            if out.failed:
                raise typer.Exit(1)
            return
        verb = "would remove" if dry_run else "removed"
        echo(
            f"{verb} {out.removed} entr{'y' if out.removed == 1 else 'ies'} "
            f"({format_size(out.freed)}); kept {out.kept} ({format_size(out.kept_bytes)})"
            + (f"; {out.damaged} damaged" if out.damaged else "")
            + (f"; {out.temporaries} partial file(s) of killed writers" if out.temporaries else "")
        )
        _failed(out)


def _not_empty(**options: str | None) -> None:
    """Refuse ``--function ""`` or ``--job ""`` (an unset shell variable).

    hunt19: ``qshpc cache rm --function "$FN"`` with ``FN`` unset said "removed 0
    entries" and exited 0, and ``ls --function ""`` said "no entries in X", as if
    the cache were empty.

    Raises:
        UserError: Naming the option and what to give.
    """
    for name, value in options.items():
        if value is not None and not value.strip():
            from qshpc.errors import UserError

            what = "function's name" if name == "function" else "job's id"
            raise UserError(
                f"--{name} is empty (an unset shell variable?): give the {what} as "
                "`qshpc cache ls` shows it, or leave the option out"
            )


def _matched(out: Any, function: str | None, job: str | None) -> None:
    """Refuse ``rm --function NAME`` / ``--job JOB`` that matched no entry: a typo
    (review43 L3: it said "removed 0 entries" and exited 0, where ``rm 0000`` exits 2).

    Raises:
        UserError: Naming the option and its value.
    """
    if out.removed or out.failed or (function is None and job is None):
        return
    from qshpc.errors import UserError

    said = " and ".join(
        f"--{name} {value}" for name, value in (("function", function), ("job", job)) if value
    )
    raise UserError(f"no entry of yours matches {said} (see `qshpc cache ls`)")


def _failed(out: Any) -> None:
    """Say which entries could not be removed, and exit 1 (they are counted as kept)."""
    if out.failed:
        n = out.failed
        print(
            f"qshpc: cache: {n} entr{'y' if n == 1 else 'ies'} could not be removed: {out.error}",
            file=sys.stderr,
        )
        raise typer.Exit(1)
