"""Session 12, the lead's cases: one damaged cache shard, not the whole cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from qshpc.cache.jobcache import Writer
from qshpc.cache.store import CacheDir, CacheWriteError


def _key(shard: str, i: int) -> str:
    return shard + f"{i:062x}"


def _break_shard(cache: CacheDir, shard: str) -> None:
    path = cache.mine / shard
    if path.is_dir():
        path.rmdir()
    path.write_text("not a folder")  # what a damaged or hostile folder leaves


def test_a_file_in_a_shard_s_place_fails_that_entry_only(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "cache")
    _break_shard(cache, "ab")
    with pytest.raises(CacheWriteError) as err:
        cache.put_value(_key("ab", 1), 1, "f")
    assert err.value.shard == "ab"
    assert "ab" in str(err.value) and "Not a directory" in str(err.value)
    assert cache.put_value(_key("cd", 1), 2, "f")  # the other shards still take entries
    assert cache.get(_key("cd", 1)) is not None
    assert cache.get(_key("ab", 1)) is None  # a miss, not an error


def test_the_writer_skips_a_bad_shard_and_keeps_caching(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """On 7186ba2 one bad shard turned the cache off for the rest of the job (hunt12b)."""
    cache = CacheDir(tmp_path / "cache")
    _break_shard(cache, "ab")
    writer = Writer(cache)
    for i in range(3):
        writer.submit(_key("ab", i), None, i, "f", "job", str(i))
        writer.submit(_key("cd", i), None, i, "f", "job", str(i))
    assert writer.flush(30)
    assert not writer.off
    assert writer.bad_shards == {"ab"}
    assert writer.written == 3 and writer.failed == 3
    err = capfd.readouterr().err
    assert err.count("keys start with 'ab' are not cached") == 1, err  # one line per shard
    assert "for the rest of this job" not in err
    for i in range(3):
        assert cache.get(_key("cd", i)) is not None


def test_a_shard_removed_meanwhile_is_made_again(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "cache")
    assert cache.put_value(_key("ef", 1), 1, "f")
    for p in (cache.mine / "ef").iterdir():
        p.unlink()
    (cache.mine / "ef").rmdir()  # `qshpc cache rm` of everything meanwhile
    with pytest.raises(CacheWriteError) as err:
        cache.put_value(_key("ef", 2), 2, "f")
    assert err.value.shard == "ef"
    assert cache.put_value(_key("ef", 3), 3, "f")  # the next write makes the folder again


def test_gc_verify_removes_what_stands_in_a_shard_s_place(tmp_path: Path) -> None:
    """hunt12b: `qshpc cache gc --verify` left the file, and the shard stayed uncacheable."""
    from tests.conftest import run_cli

    cache = CacheDir(tmp_path / "cache")
    assert cache.put_value(_key("cd", 1), 1, "f")
    _break_shard(cache, "ab")
    dry = run_cli("cache", "gc", "--verify", "--dry-run", "--cache-dir", str(tmp_path / "cache"))
    assert dry.returncode == 0, dry.stderr
    assert (cache.mine / "ab").is_file()
    out = run_cli("cache", "gc", "--verify", "--cache-dir", str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr
    assert not (cache.mine / "ab").exists()
    assert cache.get(_key("cd", 1)) is not None  # the good entries stay
    assert CacheDir(tmp_path / "cache").put_value(_key("ab", 1), 1, "f")


def test_the_launcher_folds_under_the_job_lock_only(tmp_path: Path, qshpc_home: Path) -> None:
    """launch/local._stored_after_fold (a store unreadable when the ranks ended): it reads
    an ended job after folding it, and touches nothing while a live run holds the job."""
    from qshpc.launch.local import _stored_after_fold
    from qshpc.store.lock import JobLock
    from tests.conftest import job_dir_of, run_program

    run_program(qshpc_home, tmp_path / "p.py", "from qshpc import save_result\nsave_result(1)\n")
    job = job_dir_of(qshpc_home)
    meta, _ = _stored_after_fold(job)
    assert meta["state"] == "SUCCEEDED"
    lock = JobLock(job, "qshpc run").acquire()  # a live --resume of the job
    try:
        assert _stored_after_fold(job) == ({}, set())
    finally:
        lock.release()
