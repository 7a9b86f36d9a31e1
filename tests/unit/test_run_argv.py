"""``qshpc run``'s fast command-line reader (every rank starts through it) agrees with typer."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from qshpc.cli.runargv import parse_run

CASES = [
    "prog.py",
    "prog.py --arguments a.h5 -w 2 --seed 5 --title T --job-dir d",
    "prog.py -w 2 --job-dir d --resume r",  # --resume with --arguments/--seed/--title: refused
    "prog.py x y",
    "prog.py -- --foo 1",
    "--seed 3 prog.py",
    "prog.py --seed=3",
    "prog.py --seed -3",
    "prog.py x --seed 3 y",
    "prog.py -- x -- y",
    "prog.py x -- --seed 4",
    "prog.py --seed 1 --seed 2",
    "prog.py --workers=-1",
    "prog.py -w 0",
    "-- prog.py a b",
    "prog.py --title=",
    "prog.py --title --seed",
    "prog.py -",
    "prog.py --job-dir '/tmp/a b' -a args.json",
    "prog.py --job-dir '/tmp/a b' --resume 2026-x",
    "prog.py --job-dir /j/20261201-1 --job-id 20261201-1 --title 'my job' -- x",
    "prog.py --cache",
    "prog.py --no-cache --seed 2",
    "prog.py --cache-dir /tmp/c x",
    "prog.py --cache --no-cache",
    "prog.py --cache-dir=/tmp/c --cache",
    # handed to typer (the fast reader returns None):
    "prog.py --foo 1",
    "prog.py -x",
    "prog.py -a=x",
    "prog.py -w2",
    "prog.py --seed 3.5",
    "prog.py --seed ' 3'",
    "prog.py --seed",
    "prog.py --arguments=",
    "prog.py --cache=1",
    "--help",
    "prog.py -h",
    "",
    "--",
]


def _typer_reads(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any] | None:
    """What the typer command passes on for ``qshpc run ARGV`` (None if it refuses)."""
    import qshpc.launch.local as local
    from qshpc.cli import app as cli_app

    cli_app._register()
    seen: list[dict[str, Any]] = []

    def fake_run(spec: Any, workers: int | None, scheduler: Any = None) -> int:
        seen.append({**vars(spec), "workers": workers})
        return 0

    monkeypatch.setattr(local, "run", fake_run)
    monkeypatch.setattr("qshpc.cli.run.check_cache_dir", lambda path: None)
    result = CliRunner().invoke(cli_app.app, ["run", *argv])
    return seen[0] if result.exit_code == 0 and seen else None


@pytest.mark.parametrize("line", CASES)
def test_fast_reader_agrees_with_typer(line: str, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = shlex.split(line)
    fast = parse_run(argv)
    if fast is None:
        return  # typer reads it: nothing to compare
    typer_view = _typer_reads(argv, monkeypatch)
    assert typer_view is not None, f"typer refuses {argv!r}, the fast reader took it: {fast}"
    fields = {k: v for k, v in typer_view.items() if v not in (None, [])}
    mine = {k: v for k, v in fast.items() if v not in (None, [])}
    assert mine == fields


def test_what_the_fast_reader_hands_to_typer() -> None:
    for line in ("prog.py --foo 1", "prog.py -a=x", "--help", "prog.py -h", "", "prog.py --seed"):
        assert parse_run(shlex.split(line)) is None, line
    assert parse_run(["prog.py"]) == {"program": Path("prog.py"), "program_args": []}
