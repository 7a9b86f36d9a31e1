"""``qshpc cache ls|stats|rm|gc`` as users type them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from qshpc.cache.store import CacheDir
from tests.conftest import run_cli


def _fill(root: Path, n: int = 4) -> CacheDir:
    cache = CacheDir(root)
    for i in range(n):
        cache.put_value(f"{i:02x}" + "0" * 62, list(range(100 * i)), f"fn{i % 2}", "job-a", str(i))
    return cache


def test_ls_stats_rm_gc(qshpc_home: Path) -> None:
    cache = _fill(qshpc_home / "cache")
    out = run_cli("cache", "ls")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["KEY", "FUNCTION", "JOB", "TASK", "SIZE", "STORED", "USED"]
    assert len(lines) == 5 and "job-a" in lines[1]
    rows = json.loads(run_cli("cache", "ls", "--json", "--function", "fn1").stdout)
    assert sorted(r["task"] for r in rows) == ["1", "3"]
    stats = json.loads(run_cli("cache", "stats", "--json", "--by-function").stdout)
    assert stats["entries"] == 4 and stats["functions"]["fn0"]["entries"] == 2
    assert "entries   4" in run_cli("cache", "stats").stdout
    out = run_cli("cache", "rm", "0100")
    assert out.returncode == 0 and "removed 1 entry" in out.stdout, out.stderr
    old = time.time() - 40 * 86400
    os.utime(cache.path_of("02" + "0" * 62), (old, old))
    out = run_cli("cache", "gc", "--older-than", "30d", "--dry-run")
    assert "would remove 1 entry" in out.stdout
    older = time.time() - 86400
    os.utime(cache.path_of("00" + "0" * 62), (older, older))  # used before 03
    size = cache.path_of("03" + "0" * 62).stat().st_size
    out = run_cli("cache", "gc", "--older-than", "30d", "--max-size", str(size))
    assert out.returncode == 0 and "removed 2 entries" in out.stdout, out.stdout
    assert [r.key[:2] for r in cache.scan()] == ["03"]


def test_cache_dir_option_and_env(tmp_path: Path) -> None:
    _fill(tmp_path / "shared cache", 2)
    out = run_cli("cache", "ls", "--cache-dir", str(tmp_path / "shared cache"))
    assert len(out.stdout.splitlines()) == 3
    out = run_cli("cache", "stats", env={"QSHPC_CACHE_DIR": str(tmp_path / "shared cache")})
    assert "entries   2" in out.stdout


def test_no_cache_yet_is_not_an_error(qshpc_home: Path) -> None:
    out = run_cli("cache", "ls")
    assert out.returncode == 0 and "no cache at" in out.stdout
    assert json.loads(run_cli("cache", "ls", "--json").stdout) == []
    assert run_cli("cache", "gc", "--older-than", "1d").returncode == 0
    assert not (qshpc_home / "cache").exists()


def test_bad_input_is_one_line_and_exit_2(qshpc_home: Path) -> None:
    _fill(qshpc_home / "cache", 1)
    for args, text in [
        (("cache", "gc", "--max-size", "ten gigs"), "--max-size: 'ten gigs' is not a size"),
        (("cache", "gc", "--older-than", "soon"), "bad age 'soon' for --older-than"),
        (("cache", "rm"), "say what to remove"),
        (("cache", "rm", "zz"), "is not a cache key"),
        (("cache", "rm", "abcdef"), "no entry of yours"),
        (("cache", "ls", "--cache-dir", ""), "--cache-dir is empty"),
        (("cache", "ls", "--limit", "-3"), "--limit -3: give a number of entries, 0 or more"),
        (("run", "absent.py", "--cache-dir", ""), "--cache-dir is empty"),
    ]:
        out = run_cli(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert text in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_unsafe_cache_folder_is_refused(qshpc_home: Path) -> None:
    _fill(qshpc_home / "cache", 1)
    os.chmod(qshpc_home / "cache", 0o777)
    out = run_cli("cache", "ls")
    assert out.returncode == 2 and "can be written by every user" in out.stderr


def test_names_with_control_characters_are_escaped(qshpc_home: Path) -> None:
    cache = CacheDir(qshpc_home / "cache")
    cache.put_value("ab" * 32, 1, "evil\x1b[2J\nSUCCEEDED", "job\x07", "0")
    out = run_cli("cache", "ls")
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout
    assert "evil\\x1b[2J\\nSUCCEEDED" in out.stdout


def test_submit_dry_run_with_cache_makes_no_folder(qshpc_home: Path, tmp_path: Path) -> None:
    prog = tmp_path / "p.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    out = run_cli("submit", str(prog), "--cache", "--cache-dir", str(tmp_path / "c"), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "#SBATCH" in out.stdout and not (tmp_path / "c").exists()
