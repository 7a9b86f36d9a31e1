"""What the benchmarks that time qshpc trees against each other share."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def precompile(*trees: Path) -> None:
    """Byte-compile each tree's qshpc, as ``pip install`` and ``make install`` do.

    With PYTHONDONTWRITEBYTECODE set (as on this machine) an editable checkout is
    otherwise compiled again in every process (~0.08 s of CPU per rank), while
    the plain process's qiskit comes compiled from its wheel.
    """
    for tree in trees:
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(tree / "qshpc")],
            check=False,
            stdout=subprocess.DEVNULL,
        )


def child_timings(
    cmd: list[str], tag: str, env: dict[str, str], cwd: str | Path
) -> dict[str, float]:
    """Run a timing child; its line ``TAG {json}``, as a dict (µs by case)."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    for line in out.stdout.splitlines():
        if line.startswith(tag + " "):
            return dict(json.loads(line[len(tag) + 1 :]))
    raise RuntimeError(f"no timing from {cmd[:1]}: {out.stdout[-800:]}{out.stderr[-800:]}")


def alternate(
    old: Path, new: Path, rounds: int, once: Callable[[Path], dict[str, float]]
) -> dict[str, dict[str, float]]:
    """The best timing of each case for ``old`` and ``new``, run alternately ``rounds`` times."""
    best: dict[str, dict[str, float]] = {"old": {}, "new": {}}
    for r in range(rounds):
        order = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new), ("old", old)]
        for label, tree in order:
            for kind, us in once(tree).items():
                best[label][kind] = min(us, best[label].get(kind, float("inf")))
    return best


def print_table(best: dict[str, dict[str, float]], head: str) -> None:
    """``best`` (:func:`alternate`) as a markdown table; ``head``: its first columns' titles."""
    print(f"| {head} | new / old |")
    print("|---|---|---|---|")
    for kind, o in best["old"].items():
        w = best["new"][kind]
        print(f"| {kind} | {o:.1f} | {w:.1f} | {w / o:.2f} |")
