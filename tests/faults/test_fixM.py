"""Session 27, fixM: what a module of the user's own decides is keyed, on resume and in the
cache (review49 F6, L1); damaged cache entries are said (review49 L5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FAIL, FAIL_AT_END, job_dir_of, run_cli

CFGMOD = "_SCALE = 2\nSHOTS = 100\n\n\ndef _scaled(x):\n    return _SCALE * x\n"

HELPERS = """
import cfgmod


class Holder:
    cfg = cfgmod
    table = {"m": cfgmod}

    def go(self):
        return self.cfg._SCALE * 10 + self.cfg.SHOTS

    def in_dict(self):
        return self.table["m"]._SCALE * 7
"""

PROGRAM = (
    """
import json
import cfgmod, helpers
from qshpc import distribute_task, get

@distribute_task()
def t_cls(h):
    return h.go()

@distribute_task()
def t_dict(h):
    return h.in_dict()

@distribute_task()
def t_modarg(mod):
    return mod._SCALE * 1000

@distribute_task()
def t_dyn(name, x):
    return getattr(cfgmod, name)(x)

@distribute_task()
def t_plain(x):
    return x + 40

refs = {"cls": t_cls(helpers.Holder()), "dict": t_dict(helpers.Holder()),
        "modarg": t_modarg(cfgmod), "dyn": t_dyn("_scaled", 5), "plain": t_plain(2)}
print("RESULT", json.dumps({k: get(r) for k, r in refs.items()}, sort_keys=True), flush=True)
"""
    + FAIL_AT_END
)

BEFORE = {"cls": 120, "dict": 14, "modarg": 2000, "dyn": 10, "plain": 42}
AFTER = {"cls": 400, "dict": 210, "modarg": 30000, "dyn": 150, "plain": 42}


def _write(d: Path) -> None:
    (d / "cfgmod.py").write_text(CFGMOD)
    (d / "helpers.py").write_text(HELPERS)
    (d / "prog.py").write_text(PROGRAM)


def _edit_private_constant(d: Path) -> None:
    # Another size: Python's bytecode cache checks the source's size and second.
    (d / "cfgmod.py").write_text(CFGMOD.replace("_SCALE = 2", "_SCALE = 30"))


def _after_edit(d: Path, *args: str) -> str:
    """``_SCALE`` edited, ``qshpc run prog.py ARGS``: its output, the new values checked."""
    _edit_private_constant(d)
    out = run_cli("run", "prog.py", *args, cwd=d)
    assert out.returncode == 0, out.stderr
    assert _result(out.stdout) == AFTER, out.stdout
    return out.stdout


def _result(out: str) -> dict[str, int]:
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    found: dict[str, int] = json.loads(line.partition(" ")[2])
    return found


@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_private_constant_of_a_module_held_as_a_value_reruns_on_resume(
    tmp_path: Path, qshpc_home: Path, workers: str
) -> None:
    """review49 F6: ``self.cfg._SCALE`` (a class attribute ``cfg = cfgmod``, or a module in
    a dict), ``mod._SCALE`` (a module argument) and ``getattr(cfgmod, name)`` (L1): an
    edited ``_SCALE`` was reused on ``--resume`` (120 where a fresh run gives 400)."""
    _write(tmp_path)
    first = run_cli("run", "prog.py", "--workers", workers, cwd=tmp_path, env=FAIL)
    assert first.returncode == 1 and _result(first.stdout) == BEFORE, first.stderr
    again = _after_edit(tmp_path, "--workers", workers, "--resume", str(job_dir_of(qshpc_home)))
    assert "(4 tasks run, 1 reused from the store)" in again, again


def test_a_private_constant_of_a_module_held_as_a_value_is_no_cache_hit(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """review49 F6 and L1 in the cache: the same edit gave "0 tasks run, 5 from the cache"
    with the old values."""
    _write(tmp_path)
    first = run_cli("run", "prog.py", "--cache", "--workers", "1", cwd=tmp_path)
    assert first.returncode == 0 and _result(first.stdout) == BEFORE, first.stderr
    same = run_cli("run", "prog.py", "--cache", "--workers", "1", cwd=tmp_path)
    assert "(0 tasks run, 5 from the cache)" in same.stdout, same.stdout + same.stderr
    again = _after_edit(tmp_path, "--cache", "--workers", "1")
    assert "(4 tasks run, 1 from the cache)" in again, again


def test_damaged_cache_entries_are_counted_in_one_note_naming_the_folder(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """review49 L5: a flipped, a truncated entry and another key's entry copied over one
    were silent misses (the calls ran again, right values, no word)."""
    prog = tmp_path / "prog.py"
    prog.write_text(
        "from qshpc import distribute_task, get\n\n@distribute_task()\ndef sq(x):\n"
        "    return x * x\n\nprint('RESULT', get([sq(i) for i in range(4)]), flush=True)\n"
    )
    cache_dir = tmp_path / "cache"
    first = run_cli("run", "prog.py", "--cache-dir", str(cache_dir), "--workers", "1", cwd=tmp_path)
    assert first.returncode == 0 and "damaged" not in first.stderr, first.stderr
    entries = sorted(p for p in cache_dir.glob("*/*/*") if p.is_file())
    assert len(entries) == 4, entries
    flipped = bytearray(entries[0].read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    entries[0].write_bytes(bytes(flipped))
    entries[1].write_bytes(entries[1].read_bytes()[:40])
    entries[2].write_bytes(entries[3].read_bytes())
    again = run_cli("run", "prog.py", "--cache-dir", str(cache_dir), "--workers", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "RESULT [0, 1, 4, 9]" in again.stdout, again.stdout
    assert "(3 tasks run, 1 from the cache)" in again.stdout, again.stdout
    notes = [x for x in again.stderr.splitlines() if "damaged" in x]
    assert len(notes) == 1, again.stderr
    assert f"3 damaged entries (torn, altered or another key's) in {cache_dir}" in notes[0]
    assert "qshpc cache gc --verify" in notes[0]
    third = run_cli("run", "prog.py", "--cache-dir", str(cache_dir), "--workers", "1", cwd=tmp_path)
    assert "(0 tasks run, 4 from the cache)" in third.stdout and "damaged" not in third.stderr
