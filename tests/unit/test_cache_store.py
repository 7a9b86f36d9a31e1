"""The cache folder: entries written whole, checked whole, and only trusted from their owner."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from qshpc.cache import entry as E
from qshpc.cache import maint
from qshpc.cache.store import TMP_GRACE_S, CacheDir, CacheWriteError
from qshpc.errors import UserError

ROOT = Path(__file__).parents[2]
OTHER_UID = 65534  # nobody


def _key(i: int) -> str:
    return f"{i:064x}"


class Custom:  # pickled into the entry (no other encoding holds it)
    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Custom) and other.x == self.x


@pytest.fixture
def umask0() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture(autouse=True)
def _private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QSHPC_SHARE_GROUP", raising=False)
    monkeypatch.delenv("QSHPC_CACHE_DIR", raising=False)


def test_round_trip_of_results(tmp_path: Path) -> None:
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2)
    qc.h(0)
    values = [
        {0: 0.5, 3: 0.5},
        np.arange(10.0),
        [qc, qc],
        ("a", 1, None, 2.5j),
        Custom(3),
        np.zeros(300_000),  # 2.4 MB
    ]
    cache = CacheDir(tmp_path / "c ü")
    for i, v in enumerate(values):
        assert cache.put_value(_key(i), v, "f", "job-1", str(i))
        assert not cache.put_value(_key(i), v, "f")  # kept: already there
    for i, v in enumerate(values):
        hit = cache.get(_key(i))
        assert hit is not None
        assert hit.header.function == "f" and hit.header.job == "job-1"
        assert hit.header.task == str(i)
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(hit.value, v)
        elif i == 2:
            assert [c.count_ops() for c in hit.value] == [qc.count_ops()] * 2
        else:
            assert hit.value == v
    assert cache.get(_key(99)) is None


def test_folders_are_private_whatever_the_umask(tmp_path: Path, umask0: None) -> None:
    cache = CacheDir(tmp_path / "a" / "b" / "cache")
    cache.put_value(_key(1), 1, "f")
    for p in (tmp_path / "a", tmp_path / "a" / "b", cache.root, cache.mine, cache.mine / "00"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o700, p
    assert stat.S_IMODE(cache.path_of(_key(1)).stat().st_mode) == 0o600
    assert (cache.root / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172")


def test_no_tag_in_a_folder_of_other_files_and_no_cache_among_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CACHEDIR.TAG makes backup tools skip the whole folder: only in one qshpc makes
    # (or an empty one), never in `--cache-dir ~` or a project folder.
    project = tmp_path / "project"
    project.mkdir()
    (project / "data.txt").write_text("mine")
    CacheDir(project).put_value(_key(1), 1, "f")
    assert not (project / "CACHEDIR.TAG").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    CacheDir(empty)
    assert (empty / "CACHEDIR.TAG").exists()
    # The jobs folder, a folder inside it, a job directory: refused, nothing made.
    home = tmp_path / "home"
    monkeypatch.setenv("QSHPC_HOME", str(home))
    job = tmp_path / "elsewhere"
    job.mkdir()
    (job / "job.h5").write_bytes(b"")
    for root, why in [
        (home / "jobs", "is qshpc's jobs folder"),
        (home / "jobs" / "j1", "inside qshpc's jobs folder"),
        (job, "is a job directory"),
    ]:
        with pytest.raises(UserError, match=why):
            CacheDir(root)
        assert not (root / "CACHEDIR.TAG").exists() and not (root / str(os.geteuid())).exists()
    with pytest.raises(UserError, match="empty path"):
        CacheDir("")


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif how == "flip":
        data[len(data) // 2] ^= 0x40
        path.write_bytes(bytes(data))
    elif how == "zeros":
        path.write_bytes(bytes(len(data)))
    elif how == "extend":
        path.write_bytes(bytes(data) + b"\0")
    elif how == "empty":
        path.write_bytes(b"")


def test_the_scans_read_every_shard_and_pass_over_what_is_not_one(tmp_path: Path) -> None:
    """folder.shard_entries serves ls/stats (scan), gc's temporaries and its folder sweep."""
    from qshpc.cache import folder

    base = tmp_path / "u"
    (base / "00").mkdir(parents=True)
    (base / "00" / _key(1)).write_bytes(b"x")
    (base / "00" / ".tmp.a").write_bytes(b"")
    (base / "ff").mkdir()
    (base / "ff" / _key(2)).mkdir()
    (base / "7a").write_bytes(b"")  # a file where a shard folder should be
    (base / "not-a-shard").mkdir()
    (base / "not-a-shard" / _key(3)).write_bytes(b"x")  # never looked at
    found = sorted(os.path.relpath(e.path, base) for e in folder.shard_entries(base))
    assert found == sorted([f"00/{_key(1)}", "00/.tmp.a", f"ff/{_key(2)}"])
    assert list(folder.shard_entries(tmp_path / "none")) == []


@pytest.mark.parametrize("how", ["truncate", "flip", "zeros", "extend", "empty"])
def test_damaged_entries_are_misses_and_go(tmp_path: Path, how: str) -> None:
    cache = CacheDir(tmp_path / "c")
    cache.put_value(_key(1), {"v": list(range(100))}, "f")
    _damage(cache.path_of(_key(1)), how)
    assert cache.get(_key(1)) is None
    assert cache.damaged == 1
    assert not cache.path_of(_key(1)).exists()  # the next result can take its place
    assert cache.put_value(_key(1), 5, "f")
    hit = cache.get(_key(1))
    assert hit is not None and hit.value == 5


def test_an_entry_under_another_keys_name_is_refused(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "c")
    cache.put_value(_key(1), "one", "f")
    cache.put_value(_key(2), "two", "f")
    os.replace(cache.path_of(_key(1)), cache.path_of(_key(2)))
    assert cache.get(_key(2)) is None


def test_partial_files_are_never_read_and_gc_removes_old_ones(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "c")
    cache.put_value(_key(1), "x", "f")
    good = cache.path_of(_key(1)).read_bytes()
    tmp = cache.path_of(_key(1)).with_name(f".tmp.{_key(2)[:16]}.host.1.ab")
    tmp.write_bytes(good[:10])
    assert cache.get(_key(2)) is None
    s = maint.stats(cache)
    assert (s.entries, s.temporaries) == (1, 1)
    assert maint.gc(cache).temporaries == 0  # young: maybe still being written
    old = time.time() - TMP_GRACE_S - 10
    os.utime(tmp, (old, old))
    assert maint.gc(cache).temporaries == 1
    assert not tmp.exists() and cache.get(_key(1)) is not None


def test_write_failure_leaves_nothing(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "c")
    os.chmod(cache.mine, 0o500)
    try:
        if os.geteuid() == 0:
            pytest.skip("root writes read-only folders")
        with pytest.raises(CacheWriteError):
            cache.put_value(_key(1), "x", "f")
    finally:
        os.chmod(cache.mine, 0o700)


def test_symlinks_and_fifos_are_not_entries(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "c")
    cache.put_value(_key(1), "x", "f")
    target = cache.path_of(_key(1))
    link = cache.path_of(_key(2))
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(target)
    assert cache.get(_key(2)) is None
    fifo = cache.path_of(_key(3))
    fifo.parent.mkdir(exist_ok=True)
    os.mkfifo(fifo)
    assert cache.get(_key(3)) is None  # and does not hang
    # A result stored under such a name replaces it (not what a link points to).
    assert cache.put_value(_key(2), "y", "f") and cache.put_value(_key(3), "z", "f")
    assert not link.is_symlink() and target.read_bytes() != link.read_bytes()
    hit2, hit3 = cache.get(_key(2)), cache.get(_key(3))
    assert hit2 is not None and hit2.value == "y" and hit3 is not None and hit3.value == "z"
    # One's own entry made group-writable is refused by lookups: replaced at the next
    # store, and removed by `gc --verify` meanwhile.
    os.chmod(target, 0o660)
    assert cache.get(_key(1)) is None
    assert maint.gc(cache, verify=True).removed == 1
    assert cache.put_value(_key(1), "x2", "f")
    os.chmod(target, 0o660)
    assert cache.put_value(_key(1), "x3", "f")
    hit1 = cache.get(_key(1))
    assert hit1 is not None and hit1.value == "x3"


def test_entries_that_cannot_be_removed_are_said_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    cache = CacheDir(tmp_path / "c")
    for i in range(3):
        cache.put_value(_key(i), i, "f")

    def read_only(path: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(os, "unlink", read_only)
    out = maint.gc(cache, max_size=0)
    assert (out.removed, out.failed, out.kept) == (0, 3, 3)
    assert out.error is not None and "Read-only file system" in out.error
    out = maint.remove(cache, everything=True)
    assert (out.removed, out.failed, out.kept) == (0, 3, 3)


# -- permissions -------------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")


def test_private_mode_refuses_folders_others_can_write(tmp_path: Path) -> None:
    root = tmp_path / "c"
    CacheDir(root)
    os.chmod(root, 0o770)
    with pytest.raises(UserError, match=r"written by its group.*QSHPC_SHARE_GROUP"):
        CacheDir(root)
    os.chmod(root, 0o707)
    with pytest.raises(UserError, match="every user"):
        CacheDir(root)
    os.chmod(root, 0o700)
    os.chmod(root / str(os.geteuid()), 0o770)
    with pytest.raises(UserError, match="can be written by users other than"):
        CacheDir(root)


@needs_root
def test_private_mode_refuses_a_folder_another_user_owns(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir(mode=0o700)
    os.chown(root, OTHER_UID, -1)
    with pytest.raises(UserError, match=r"belongs to .*QSHPC_SHARE_GROUP=1"):
        CacheDir(root)


@needs_root
def test_a_user_folder_planted_by_another_user_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "c"
    CacheDir(root)
    mine = root / str(os.geteuid())
    os.chown(mine, OTHER_UID, -1)
    with pytest.raises(UserError, match="belongs to"):
        CacheDir(root)


def test_shared_mode_modes_and_refusals(tmp_path: Path, umask0: None) -> None:
    root = tmp_path / "shared"
    cache = CacheDir(root, shared=True)
    assert stat.S_IMODE(root.stat().st_mode) == 0o3770
    assert stat.S_IMODE(cache.mine.stat().st_mode) == 0o2750
    cache.put_value(_key(1), 1, "f")
    assert stat.S_IMODE(cache.path_of(_key(1)).stat().st_mode) == 0o640
    os.chmod(root, 0o770)  # group-writable without the sticky bit
    with pytest.raises(UserError, match="sticky"):
        CacheDir(root, shared=True)
    os.chmod(root, 0o1777)
    with pytest.raises(UserError, match="every user"):
        CacheDir(root, shared=True)


def _as_other_user(code: str, env: dict[str, str] | None = None) -> None:
    """Run ``code`` in a child process as uid/gid 65534 (the files it makes are that user's)."""
    # Import first: the interpreter's own files may not be readable by that user.
    script = (
        "import os, sys, pwd, socket, secrets, msgpack, numpy\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import test_cache_store, qshpc.cache.store, qshpc.cache.entry, qshpc.jobs\n"
        "import qshpc.store.encoding_blob\n"
        f"os.setgroups([]); os.setgid({OTHER_UID}); os.setuid({OTHER_UID})\n{code}"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


@pytest.fixture
def group_dir() -> Iterator[Path]:
    """A folder both users can reach (pytest's own is root's alone), group of the other user."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="qshpc-shared-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _shared_root(parent: Path) -> tuple[Path, CacheDir]:
    root = parent / "shared"
    mine = CacheDir(root, shared=True)
    os.chown(root, -1, OTHER_UID)  # the project group both users are in
    return root, mine


@needs_root
def test_shared_cache_reads_other_members_data_but_never_their_pickles(group_dir: Path) -> None:
    root, mine = _shared_root(group_dir)
    mine.put_value(_key(3), "mine", "f")
    _as_other_user(
        f"""
from test_cache_store import Custom
from qshpc.cache.store import CacheDir
c = CacheDir({str(root)!r}, shared=True)
c.put_value({_key(1)!r}, {{"counts": [1, 2]}}, "f", "their-job", "0")
c.put_value({_key(2)!r}, Custom(1), "f", "their-job", "1")
c.put_value({_key(3)!r}, "theirs", "f")
from qshpc.aer.results import QuasiDistribution
c.put_value({_key(4)!r}, QuasiDistribution({{0: 0.25, 3: 0.75}}, shots=8), "f", "their-job", "2")
"""
    )
    from qshpc.aer.results import QuasiDistribution

    hit = mine.get(_key(4))  # a typed result dict is data, not pickle: shared like a blob
    assert hit is not None and hit.header.form == "typed" and hit.owner == OTHER_UID
    assert type(hit.value) is QuasiDistribution and hit.value == {0: 0.25, 3: 0.75}
    assert hit.value.shots == 8
    hit = mine.get(_key(1))
    assert hit is not None and hit.value == {"counts": [1, 2]} and hit.owner == OTHER_UID
    assert mine.get(_key(2)) is None  # pickled by another user: never loaded
    assert mine.refused == 1
    hit = mine.get(_key(3))
    assert hit is not None and hit.value == "mine"  # one's own entry comes first
    # Only one's own entries are listed and removed by default.
    assert {s.key for s in mine.scan()} == {_key(3)}
    assert {s.key for s in mine.scan(all_users=True)} == {_key(i) for i in (1, 2, 3, 4)}
    assert maint.remove(mine, everything=True).removed == 1
    assert mine.get(_key(1)) is not None
    # Private mode reads nobody else's entries.
    os.chmod(root, 0o700)
    assert CacheDir(root, shared=False).get(_key(1)) is None


@needs_root
def test_files_in_a_members_folder_that_they_do_not_own_are_ignored(
    group_dir: Path, tmp_path: Path
) -> None:
    root, mine = _shared_root(group_dir)
    _as_other_user(f"from qshpc.cache.store import CacheDir; CacheDir({str(root)!r}, shared=True)")
    theirs = root / str(OTHER_UID)
    # root (standing in for a third party) plants a valid entry in their folder
    planter = CacheDir(tmp_path / "elsewhere")
    planter.put_value(_key(5), "forged", "f")
    (theirs / "00").mkdir()
    os.replace(planter.path_of(_key(5)), theirs / "00" / _key(5))
    assert mine.get(_key(5)) is None
    os.chown(theirs / "00" / _key(5), OTHER_UID, OTHER_UID)
    os.chmod(theirs / "00" / _key(5), 0o666)  # theirs, but anyone could have written it
    assert mine.get(_key(5)) is None
    os.chmod(theirs / "00" / _key(5), 0o640)
    hit = mine.get(_key(5))
    assert hit is not None and hit.value == "forged"  # theirs: data from a member is used


@needs_root
def test_a_sparse_giant_in_a_members_folder_is_not_read(group_dir: Path) -> None:
    """A member's 64 GiB file that holds no blocks is a miss, not 64 GiB read into memory."""
    import resource

    root, mine = _shared_root(group_dir)
    _as_other_user(
        f"""
import os
from qshpc.cache.store import CacheDir
c = CacheDir({str(root)!r}, shared=True)
c.put_value({_key(6)!r}, "small and fine", "f")
path = c.path_of({_key(7)!r})
path.parent.mkdir(exist_ok=True)
with open(path, "wb") as f:
    f.truncate(64 << 30)
os.chmod(path, 0o640)
"""
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert mine.get(_key(7)) is None and mine.refused == 1
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 * 1024  # KiB
    hit = mine.get(_key(6))
    assert hit is not None and hit.value == "small and fine"


# -- maintenance ---------------------------------------------------------------------


def test_gc_by_age_and_size_and_verify(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "c")
    now = time.time()
    for i in range(10):
        cache.put_value(_key(i), np.zeros(1000), "f", "j", str(i))
        t = now - (10 - i) * 86400  # entry i last used 10 - i days ago
        os.utime(cache.path_of(_key(i)), (t, t))
    size = cache.path_of(_key(0)).stat().st_size
    dry = maint.gc(cache, older_than=7.5 * 86400, dry_run=True, now=now)
    assert dry.removed == 3 and cache.path_of(_key(0)).exists()
    out = maint.gc(cache, older_than=7.5 * 86400, now=now)
    assert out.removed == 3 and out.kept == 7
    out = maint.gc(cache, max_size=3 * size, now=now)
    assert out.removed == 4 and out.kept == 3
    assert sorted(s.key for s in cache.scan()) == [_key(7), _key(8), _key(9)]
    _damage(cache.path_of(_key(8)), "flip")
    out = maint.gc(cache, verify=True, now=now)
    assert out.damaged == 1 and out.kept == 2


def test_a_lookup_marks_an_old_entry_used(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "c")
    cache.put_value(_key(1), 1, "f")
    old = time.time() - 40 * 86400
    os.utime(cache.path_of(_key(1)), (old, old))
    assert cache.get(_key(1), freshen=False) is not None
    assert cache.path_of(_key(1)).stat().st_mtime == pytest.approx(old)
    assert cache.get(_key(1)) is not None
    assert time.time() - cache.path_of(_key(1)).stat().st_mtime < 60
    assert maint.gc(cache, older_than=30 * 86400).removed == 0


def test_rm_by_key_prefix_function_and_job(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "c")
    for i in range(6):
        cache.put_value(f"{i:02x}" + "ab" * 31, i, "even" if i % 2 == 0 else "odd", f"job{i % 3}")
    assert maint.remove(cache, ["01abab"]).removed == 1
    with pytest.raises(UserError, match="no entry"):
        maint.remove(cache, ["01abab"])
    with pytest.raises(UserError, match="hex digits"):
        maint.remove(cache, ["xyz"])
    assert maint.remove(cache, function="even").removed == 3
    assert maint.remove(cache, job="job0").removed == 1  # 03
    assert {r.key[:2] for r in maint.rows(cache)} == {"05"}


def test_table(tmp_path: Path) -> None:
    cache = CacheDir(tmp_path / "c")
    for i in range(3):
        cache.put_value(_key(i), i, "f", "j", str(i))
    df = maint.table(cache)
    assert list(df["task"]) == ["2", "1", "0"]  # newest first
    assert set(df.columns) >= {"key", "function", "job", "task", "created", "used", "size"}


def test_parse_size() -> None:
    assert maint.parse_size("10G") == 10 << 30
    assert maint.parse_size("1.5k") == 1536
    assert maint.parse_size("500MB") == 500 << 20
    assert maint.parse_size("2048") == 2048
    with pytest.raises(UserError, match="500M"):
        maint.parse_size("ten gigs")


def test_entry_format_rejects_other_files() -> None:
    header = E.Header(_key(1), "f", None, None, 1.0, "h")
    data = b"".join(E.pack(header, b"\x01"))
    h, body = E.unpack(data, _key(1), "x")
    assert h == header and bytes(body) == b"\x01"
    for bad in (b"", b"QSHPCC\x02\n" + data[8:], data[:-1], b"\x89HDF\r\n\x1a\n" + data[8:]):
        with pytest.raises(E.DamagedEntryError):
            E.unpack(bad, _key(1), "x")


def test_a_hit_is_the_result_itself_not_its_base_type(tmp_path: Path) -> None:
    from qiskit.result import QuasiDistribution

    from qshpc.cache.body import faithful

    qd = QuasiDistribution({0: 0.25, 3: 0.75}, shots=1000)
    cache = CacheDir(tmp_path / "c")
    cache.put_value(_key(1), [qd, qd], "f")
    cache.put_value(_key(2), {"e": np.float64(0.5), "a": np.arange(3, dtype=np.int16)}, "f")
    hit = cache.get(_key(1))
    assert hit is not None and type(hit.value[0]) is QuasiDistribution
    assert hit.value[0].shots == 1000 and hit.value[0] == qd
    hit = cache.get(_key(2))
    assert hit is not None and hit.value["a"].dtype == np.int16
    # the blob encoding keeps a QuasiDistribution's class since session 14 (qiskit_objects)
    assert faithful(qd) and faithful({"x": [1, 2.5, "s", (None, b"b")]})
    assert not faithful(np.ma.masked_array([1.0]))


def test_result_dicts_are_typed_not_pickled(tmp_path: Path) -> None:
    from qiskit.result import Counts

    from qshpc.aer.results import QuasiDistribution
    from qshpc.store.encoding_blob import decode_blob, encode_blob

    qd = QuasiDistribution({0: 0.25, 3: 0.75}, shots=1000)
    counts = Counts({"00": 3, "11": 5})
    cache = CacheDir(tmp_path / "c")
    cache.put_value(_key(1), qd, "f")
    cache.put_value(_key(2), counts, "f")
    for k, want in ((_key(1), qd), (_key(2), counts)):
        hit = cache.get(k)
        assert hit is not None and hit.header.form == "typed"
        assert type(hit.value) is type(want) and hit.value == want
        assert vars(hit.value) == vars(want)
        # the body is the plain dict; the job store keeps the class (session 14): the
        # hit's record is made from the body's bytes, byte for byte the store's encoding
        assert hit.blob == encode_blob(want) == encode_blob(hit.value)
        assert type(decode_blob(hit.blob)) is type(want) and decode_blob(hit.blob) == want
    assert cache.get(_key(1)).value.binary_probabilities() == {"00": 0.25, "11": 0.75}  # type: ignore[union-attr]


def test_a_typed_entry_names_only_known_classes(tmp_path: Path) -> None:
    from qshpc.cache import entry as E2
    from qshpc.store.encoding_blob import encode_blob

    cache = CacheDir(tmp_path / "c")
    body = encode_blob({0: 1.0})
    header = E2.Header(_key(1), "f", None, None, 1.0, "h", form="typed",
                       type={"class": "os:system", "attrs": {}})  # fmt: skip
    cache.path_of(_key(1)).parent.mkdir(parents=True, exist_ok=True)
    cache.path_of(_key(1)).write_bytes(b"".join(E2.pack(header, body)))
    os.chmod(cache.path_of(_key(1)), 0o600)
    assert cache.get(_key(1)) is None and cache.damaged == 1
