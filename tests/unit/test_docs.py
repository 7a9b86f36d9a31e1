"""The docs teach what the code does: their marked examples run, their commands exist.

In ``docs/*.md``, a fenced block right after ``<!-- test -->`` is run
(``python`` blocks in one interpreter per page, in order; ``sh`` blocks with
bash, ``qshpc`` on PATH), in a fresh folder with its own ``QSHPC_HOME``. A block
after ``<!-- file: NAME -->`` is written to ``NAME`` in that folder first.
Every ``qshpc COMMAND --option`` inside code (inline or fenced) must exist in
``qshpc COMMAND --help``.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run_cli

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
REQUIRED = [
    "program-api.md",
    "running-locally.md",
    "slurm.md",
    "sbatch.md",
    "gpus.md",
    "store.md",
    "failures-and-resume.md",
    "cli.md",
]
BLOCK = re.compile(
    r"<!--\s*(?P<tag>test|file:\s*(?P<name>[\w.-]+))\s*-->[ \t]*\n```(?P<lang>\w+)[ \t]*\n(?P<code>.*?)^```",
    re.S | re.M,
)
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
MENTION = re.compile(
    r"(?<!from )(?<!import )(?<![\w./-])qshpc ([a-z][a-z-]*)((?:(?!qshpc )[^\n])*)"
)
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)")


def blocks(page: Path) -> list[tuple[str, str | None, str, str]]:
    """``(tag, file name, language, code)`` of each marked block, in page order."""
    return [
        ("file" if m["name"] else "test", m["name"], m["lang"], m["code"])
        for m in BLOCK.finditer(page.read_text())
    ]


def test_every_concept_has_a_page() -> None:
    assert not [p for p in REQUIRED if not (DOCS / p).is_file()]
    index = (DOCS / "README.md").read_text()
    assert all(f"({p})" in index for p in REQUIRED)


@pytest.mark.parametrize(
    "page", [p for p in PAGES if any(b[0] == "test" for b in blocks(p))], ids=lambda p: p.name
)
def test_examples_run(page: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    bindir = tmp_path / "bin"  # `qshpc` in sh blocks is this Python's qshpc
    bindir.mkdir()
    shim = bindir / "qshpc"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m qshpc "$@"\n')
    shim.chmod(0o755)
    script = ["import subprocess", "import sys"]
    for tag, name, lang, code in blocks(page):
        if tag == "file":
            (work / str(name)).write_text(code)
        elif lang == "python":
            script += ["", code]
        elif lang in ("sh", "bash", "console"):
            cmd = ["bash", "-euo", "pipefail", "-c", code]
            script += ["", f"subprocess.run({cmd!r}, check=True)"]
        else:
            pytest.fail(f"{page.name}: cannot run a ```{lang} block")
    (tmp_path / "driver.py").write_text("\n".join(script) + "\n")
    env = {
        **os.environ,
        "QSHPC_HOME": str(tmp_path / "home"),
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    out = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, f"{page.name} examples failed:\n{out.stdout}\n{out.stderr}"


@functools.cache
def _help(command: str | None) -> str:
    out = run_cli(*(command.split() if command else []), "--help")
    assert out.returncode == 0, out.stderr
    return out.stdout


def _subcommand(command: str, flags_from: str) -> str:
    """``command`` itself, or ``command SUB`` when it is a group (``qshpc cache gc``)."""
    text = _help(command)
    if "Commands:" not in text:
        return command
    subs = {
        m.group(1) for m in re.finditer(r"^\s{2}([a-z][a-z-]*)\s", text.split("Commands:")[1], re.M)
    }
    words = flags_from.split()
    return f"{command} {words[0]}" if words and words[0] in subs else command


def commands() -> set[str]:
    text = _help(None).split("Commands:", 1)[1]
    return {m.group(1) for m in re.finditer(r"^\s{2}([a-z][a-z-]*)\s", text, re.M)}


def mentions(text: str, with_rest: bool = False) -> list[Any]:
    """``(command, [--flags])`` for each ``qshpc COMMAND ...`` inside code in ``text``
    (``(command, rest, [--flags])`` with ``with_rest``)."""
    code = [m.group(1) for m in FENCE.finditer(text)]
    prose = FENCE.sub("", text)
    code += [m.group(1) for m in INLINE.finditer(prose)]
    found = []
    for snippet in code:
        for m in MENTION.finditer(snippet):
            rest = re.split(r"\s(?:--|&&|\|\|?|;|>)\s", " " + m.group(2) + " ")[0]
            flags = FLAG.findall(rest)
            found.append((m.group(1), rest, flags) if with_rest else (m.group(1), flags))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_mentioned_exist(page: Path) -> None:
    known = commands()
    bad = []
    for command, rest, flags in mentions(page.read_text(), with_rest=True):
        if command not in known:
            bad.append(f"qshpc {command} (commands: {', '.join(sorted(known))})")
            continue
        full = _subcommand(command, rest)
        bad += [f"qshpc {full} {f}" for f in flags if f not in _help(full)]
    assert not bad, f"{page.name} mentions what `qshpc --help` lacks: {bad}"


def test_mention_parser() -> None:
    text = (
        "run `qshpc wait JOB [--timeout S]`, not qshpc nothing; `qshpc.save_arguments`\n"
        "```sh\nqshpc gc --older-than 2d | tail -- --x\nsrun python -m qshpc run p.py -- --y\n```\n"
    )
    assert sorted(mentions(text)) == [
        ("gc", ["--older-than"]),
        ("run", []),
        ("wait", ["--timeout"]),
    ]
