"""A job's cache: writes in the background, and a cache that fails never fails the job."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qshpc.cache import jobcache, store
from qshpc.cache.jobcache import CacheConfig, JobCache
from tests.conftest import tmpfs


def f(x: object) -> object:
    return x


def test_lookup_store_flush(tmp_path: Path) -> None:
    jc = JobCache(CacheConfig(True, str(tmp_path / "c")), "job-1", open_now=True)
    keys = []
    for i in range(50):
        k = jc.key(f, (i,), None, None)
        assert k is not None and jc.lookup(k) is None
        jc.store(k, "f", str(i), value={"i": i})
        keys.append(k)
    jc.flush(30)
    for i, k in enumerate(keys):
        hit = jc.lookup(k)
        assert hit is not None and hit.value == {"i": i}
        assert (hit.header.job, hit.header.task) == ("job-1", str(i))
        prov = jobcache.provenance(hit)["cache"]
        assert prov["job"] == "job-1" and prov["task"] == str(i) and "stored" in prov
    assert jc.summary() == {
        "hits": 50, "misses": 50, "uncacheable": 0, "written": 50, "dropped": 0, "failed": 0,
    }  # fmt: skip


def test_task_setting_wins_over_the_job() -> None:
    on, off = JobCache(CacheConfig(True), "j"), JobCache(CacheConfig(False), "j")
    assert on.wanted() and not on.wanted(False)
    assert not off.wanted() and off.wanted(True)


def test_uncacheable_function_and_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = threading.Lock()

    def holds_lock(x: int) -> int:
        with lock:
            return x

    jc = JobCache(CacheConfig(True, str(tmp_path / "c")), "j")
    assert jc.key(holds_lock, (1,), None, None) is None
    assert "not cached" in capsys.readouterr().err
    assert jc.key(f, (threading.Lock(),), None, None) is None
    assert jc.uncacheable == 1


def test_an_unusable_folder_turns_the_cache_off_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "c"
    bad.mkdir(mode=0o777)
    bad.chmod(0o777)
    jc = JobCache(CacheConfig(True, str(bad)), "j")
    k = jc.key(f, (1,), None, None)
    assert k is not None
    assert jc.lookup(k) is None
    assert jc.lookup(k) is None
    jc.store(k, "f", "0", value=1)
    jc.flush(5)
    assert capsys.readouterr().err.count("every user") == 1


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "tiny", "size=1m") as mnt:
        yield mnt


@pytest.mark.parametrize("reserved", [False, True])
def test_a_full_disk_stops_the_writes_not_the_job(
    tiny_fs: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    reserved: bool,
) -> None:
    if reserved:
        # The cache leaves room on its file system (64 MiB at least): the job store
        # beside it must not fail for want of the space the cache took.
        jc = JobCache(CacheConfig(True, str(tiny_fs / "c")), "j", open_now=True)
        k = jc.key(f, (0,), None, None)
        assert k is not None
        jc.store(k, "f", "0", value=1)
        jc.flush(30)
        assert jc.summary()["written"] == 0
        err = capsys.readouterr().err
        assert err.count("not cached for the rest of this job") == 1
        assert "free, and the cache leaves 64.0 MB to the job stores" in err
        return
    # No reserve: the writes go on to the disk's last byte, and ENOSPC stops them.
    monkeypatch.setattr(store.CacheDir, "_check_room", lambda self, size: None)
    jc = JobCache(CacheConfig(True, str(tiny_fs / "c")), "j", open_now=True)
    for i in range(40):
        k = jc.key(f, (i,), None, None)
        assert k is not None
        jc.store(k, "f", str(i), value=np.random.default_rng(i).random(10_000))  # 80 KB
    jc.flush(30)
    s = jc.summary()
    assert 0 < s["written"] < 40 and s["failed"] >= 1
    err = capsys.readouterr().err
    assert err.count("not cached for the rest of this job") == 1 and "No space left" in err
    assert not [p for p in (tiny_fs / "c").rglob(".tmp.*")]  # nothing half-written left


def test_pending_bytes_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobcache, "MAX_PENDING_BYTES", 100_000)
    jc = JobCache(CacheConfig(True, str(tmp_path / "c")), "j", open_now=True)
    blocker = threading.Event()
    d = jc.dir
    assert d is not None
    real_put = d.put

    def slow_put(*a: object, **k: object) -> bool:
        blocker.wait(10)
        return real_put(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(d, "put", slow_put)
    for i in range(5):
        k = jc.key(f, (i,), None, None)
        assert k is not None
        jc.store(k, "f", str(i), body=bytes(40_000))
    blocker.set()
    jc.flush(30)
    s = jc.summary()
    assert s["dropped"] == 3 and s["written"] == 2


def test_prepare_takes_the_first_calls_costs_and_leaves_a_bad_folder_to_the_first_lookup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rank 0 prepares a cached job at its start (issue 18: the first cached call's ~5 ms
    of versions and the source tree's stats were in a rerun's task phase): the folder is
    opened then; one that cannot be used is said once, by the first lookup, as before."""
    from qshpc.cache import keys

    off = JobCache(CacheConfig(False, str(tmp_path / "off")), "j")
    off.prepare()
    assert not (tmp_path / "off").exists()
    keys.environment_digest.cache_clear()
    keys.environment.cache_clear()
    jc = JobCache(CacheConfig(True, str(tmp_path / "c")), "j")
    jc.prepare()
    assert jc._dir is not None and (tmp_path / "c").is_dir()
    assert keys.environment_digest.cache_info().currsize == 1
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    bad = JobCache(CacheConfig(True, str(blocked)), "j")
    bad.prepare()
    assert capsys.readouterr().err == ""
    k = bad.key(f, (1,), None, None)
    assert k is not None and bad.lookup(k) is None
    err = capsys.readouterr().err
    assert "tasks run without the cache" in err and str(blocked) in err
