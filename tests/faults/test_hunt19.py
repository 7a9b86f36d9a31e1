"""Session 19's fault hunt (hunt19): the result cache against hostile neighbours,
odd folder names, out-of-range headers, huge files and bad ``qshpc cache`` input.

Each test failed on 793198c (what it did there is said in the test); see
docs/bad-input.md, "Session 19".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli, tmpfs

OTHER_UID = 65534  # nobody: the other member of a shared cache

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="plants another user's files (chown)")

CACHED = """\
from qshpc import distribute_task, get, save_result

@distribute_task(cache=True)
def sq(x):
    return x * x

save_result(get([sq(i) for i in range(N)]))
"""


def _one_line_exit_2(out: subprocess.CompletedProcess[str], text: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert text in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def _chown_tree(path: Path, uid: int) -> None:
    os.chown(path, uid, uid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, uid)


def _member_folder(root: Path) -> Path:
    """The other member's folder in the shared cache ``root`` (made as they would make it)."""
    theirs = root / str(OTHER_UID)
    theirs.mkdir(mode=0o2750)
    os.chmod(theirs, 0o2750)
    _chown_tree(theirs, OTHER_UID)
    return theirs


# -- a member's folder named with digits int() refuses ---------------------------------------


@needs_root
def test_a_members_folder_named_with_a_superscript_digit_fails_no_job(tmp_path: Path) -> None:
    # On 793198c ("²".isdigit() is True, int("²") a ValueError) every lookup that missed
    # one's own entries raised: the job FAILED with "ValueError: invalid literal for int()",
    # and `qshpc cache ls|stats --all-users` printed that traceback.
    prog = tmp_path / "cached.py"
    cache = tmp_path / "shared"
    env = {"QSHPC_SHARE_GROUP": "1"}
    argv = ("run", str(prog), "--workers", "0", "--cache", "--cache-dir", str(cache))
    prog.write_text(CACHED.replace("N", "4"))
    assert run_cli(*argv, env=env).returncode == 0
    for name in ("²", "①", "٣"):  # a member's folders (the sticky root lets them make them)
        (cache / name).mkdir(mode=0o750)
        os.chown(cache / name, OTHER_UID, OTHER_UID)
    prog.write_text(CACHED.replace("N", "6"))  # 4 hits, 2 misses looked up in others' folders
    out = run_cli(*argv, env=env)
    assert out.returncode == 0, out.stderr
    assert "SUCCEEDED (2 tasks run, 4 from the cache)" in out.stdout + out.stderr, out.stderr
    for sub in ("ls", "stats"):
        out = run_cli("cache", sub, "--all-users", "--cache-dir", str(cache), env=env)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    out = run_cli("cache", "ls", "--all-users", "--json", "--cache-dir", str(cache), env=env)
    assert out.returncode == 0 and len(json.loads(out.stdout)) == 6, out.stderr


# -- cache folders that cannot be looked at --------------------------------------------------


def test_a_cache_folder_of_an_unknown_users_home_is_one_line(tmp_path: Path) -> None:
    # On 793198c `~nosuchuser/...` (a quoted ~, a mistyped login) raised RuntimeError
    # ("Could not determine home directory"): a traceback from each of these, exit 1.
    import qshpc.cache
    from qshpc.errors import UserError

    bad = "~nosuchuser-hunt19/cache"
    prog = tmp_path / "cached.py"
    prog.write_text(CACHED.replace("N", "2"))
    for argv in (
        ("cache", "ls", "--cache-dir", bad),
        ("cache", "stats", "--cache-dir", bad),
        ("cache", "gc", "--cache-dir", bad),
        ("cache", "rm", "--all", "--cache-dir", bad),
        ("run", str(prog), "--workers", "0", "--cache", "--cache-dir", bad),
    ):
        _one_line_exit_2(run_cli(*argv), "home folder of a user that does not exist")
    out = run_cli("cache", "ls", env={"QSHPC_CACHE_DIR": bad})
    _one_line_exit_2(out, "home folder of a user that does not exist")
    for call in (
        lambda: qshpc.cache.lookup(len, ("x",), cache_dir=bad),
        lambda: qshpc.cache.table(bad),
        lambda: qshpc.cache.get_entry("abcd", bad),
        lambda: qshpc.cache.lookup(len, ("x",), cache_dir=5),  # was: TypeError
        lambda: qshpc.cache.get_entry("abcd", 5),  # type: ignore[arg-type]
    ):
        with pytest.raises(UserError, match=r"home folder of a user|must be a path"):
            call()


def test_a_cache_folder_whose_name_is_too_long_is_one_line(tmp_path: Path) -> None:
    # On 793198c Path.exists raised ENAMETOOLONG: `qshpc cache ls|stats|gc|rm` printed an
    # OSError traceback (exit 1); lookup(), table() and get_entry() raised OSError.
    import qshpc.cache
    from qshpc.errors import UserError

    bad = str(tmp_path / ("a" * 300) / "cache")
    for sub in (("ls",), ("stats",), ("gc",), ("rm", "--all"), ("ls", "--json")):
        _one_line_exit_2(
            run_cli("cache", *sub, "--cache-dir", bad), "File name too long; choose another"
        )
    for call in (
        lambda: qshpc.cache.lookup(len, ("x",), cache_dir=bad),
        lambda: qshpc.cache.table(bad),
        lambda: qshpc.cache.get_entry("abcd", bad),
    ):
        with pytest.raises(UserError, match="File name too long"):
            call()


# -- qshpc cache gc's sizes ---------------------------------------------------------------


def test_a_max_size_beyond_any_number_is_one_line(qshpc_home: Path) -> None:
    # On 793198c 400 digits made float('inf'), and int() of it an OverflowError traceback.
    from qshpc.cache.store import CacheDir

    CacheDir(qshpc_home / "cache").put_value("ab" * 32, 1, "f")
    for size in ("9" * 400, "9" * 400 + "P", "1" + "0" * 30 + "T"):
        out = run_cli("cache", "gc", "--max-size", size)
        _one_line_exit_2(out, "is more than any disk holds")
    out = run_cli("cache", "gc", "--max-size", "1024P")  # large, and still a size: kept all
    assert out.returncode == 0 and "removed 0 entries" in out.stdout, out.stderr


# -- a member's entries with times out of range -----------------------------------------------


def _write_entry(path: Path, key: str, created: float, value: object = 5) -> None:
    """An entry file as a writer of its own would make it (checksum and all)."""
    from qshpc.cache import entry as E
    from qshpc.store.encoding_blob import encode_blob

    header = E.Header(key, "theirs", "their-job", "0", created, "their-host")
    path.parent.mkdir(mode=0o2750, exist_ok=True)
    path.write_bytes(b"".join(E.pack(header, encode_blob(value))))
    os.chmod(path, 0o640)


@needs_root
def test_a_members_entries_stored_at_times_out_of_range_list(tmp_path: Path) -> None:
    # On 793198c `qshpc cache ls --all-users` raised OverflowError (stored at 1e300 s) or
    # ValueError (NaN): a traceback; table() raised OutOfBoundsDatetime; `ls --json` wrote
    # NaN and Infinity (not JSON); and a lookup returned the entry stored "at" inf.
    import qshpc.cache
    from qshpc.cache.store import CacheDir

    root = tmp_path / "shared"
    mine = CacheDir(root, shared=True)
    mine.put_value("ab" * 32, 1, "mine")
    theirs = _member_folder(root)
    times = {"cd" + "0" * 62: 1e300, "cd" + "1" * 62: -1e300}
    times |= {"cd" + "2" * 62: float("inf"), "cd" + "3" * 62: float("nan")}
    for key, created in times.items():
        _write_entry(theirs / "cd" / key, key, created)
    _chown_tree(theirs, OTHER_UID)
    env = {"QSHPC_SHARE_GROUP": "1"}
    out = run_cli("cache", "ls", "--all-users", "--cache-dir", str(root), env=env)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stdout.count("theirs") == 2 and " ? " in out.stdout, out.stdout
    out = run_cli("cache", "ls", "--all-users", "--json", "--cache-dir", str(root), env=env)
    assert out.returncode == 0, out.stderr

    def strict(text: str) -> float:
        raise AssertionError(f"not JSON: {text}")

    listed = json.loads(out.stdout, parse_constant=strict)
    assert {r["key"] for r in listed} == {"ab" * 32, "cd" + "0" * 62, "cd" + "1" * 62}
    argv = ("cache", "stats", "--all-users", "--by-function", "--cache-dir", str(root))
    out = run_cli(*argv, env=env)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    table = qshpc.cache.table(mine, all_users=True)
    assert len(table) == 3
    assert mine.get("cd" + "0" * 62) is not None  # odd, but whole: used
    assert mine.get("cd" + "2" * 62) is None and mine.get("cd" + "3" * 62) is None


# -- a member's sparse giant claiming a 4 GiB header --------------------------------------


def _limited(
    *args: str, env: dict[str, str], limit: int = 3 << 30
) -> subprocess.CompletedProcess[str]:
    """``qshpc ARGS`` with at most ``limit`` bytes of address space (a login node's ulimit -v)."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "qshpc", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        preexec_fn=cap,
    )


@needs_root
def test_a_members_sparse_file_claiming_a_huge_header_is_not_read(tmp_path: Path) -> None:
    # On 793198c the scans read head_len bytes (up to 4 GiB) of a file of the member's
    # that holds no blocks: `qshpc cache ls --all-users` took 12 GB and 40 s, and under
    # `ulimit -v` printed a MemoryError traceback. (A lookup already passed over it.)
    import struct

    from qshpc.cache import entry as E
    from qshpc.cache.store import CacheDir

    root = tmp_path / "shared"
    mine = CacheDir(root, shared=True)
    mine.put_value("ab" * 32, 1, "mine")
    theirs = _member_folder(root)
    key = "cd" * 32
    giant = theirs / "cd" / key
    giant.parent.mkdir(mode=0o2750)
    with open(giant, "wb") as f:
        f.write(E.MAGIC + struct.pack(">IQ", 0xFFFFFFF0, 0))
        f.truncate(6 << 30)  # 6 GB, no blocks
    os.chmod(giant, 0o640)
    _chown_tree(theirs, OTHER_UID)
    env = {"QSHPC_SHARE_GROUP": "1"}
    for argv in (("ls", "--all-users"), ("stats", "--all-users", "--by-function")):
        out = _limited("cache", *argv, "--cache-dir", str(root), env=env)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert "mine" in out.stdout, out.stdout
    assert mine.get(key) is None


# -- an entry over 2 GiB --------------------------------------------------------------------


def _mem_available() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) << 10
    except (OSError, ValueError, IndexError):
        pass
    return 0


@pytest.mark.slow
@pytest.mark.skipif(_mem_available() < 10 << 30, reason="reads a 2 GiB entry twice over")
def test_an_entry_over_2_gib_is_a_hit(tmp_path: Path) -> None:
    # On 793198c a lookup read an entry with one os.read, which Linux stops at 2 GiB - 4 KiB:
    # the entry failed its length check ("torn"), was counted damaged and removed, at every
    # lookup; a result over 2 GiB (a 28-qubit Statevector in a dict) was written at each
    # run and never hit. The entry here is whole (checksum and all), its body zeros (sparse).
    import hashlib
    import struct

    from qshpc.cache import entry as E
    from qshpc.cache.store import CacheDir

    cache = CacheDir(tmp_path / "cache")
    key = "ef" * 32
    n = (2 << 30) + (64 << 10)  # bytes of the stored value (a bytes object)
    head = E.pack(E.Header(key, "big", "j", "0", 1.7e9, "h", lazy=True), b"")[1]
    body_head = b"\\xc6" + struct.pack(">I", n)  # msgpack bin32: the blob of n bytes
    prefix = E.MAGIC + struct.pack(">IQ", len(head), len(body_head) + n)
    check = hashlib.blake2b(prefix + head + body_head, digest_size=E.CHECK)
    zeros = bytes(64 << 20)
    for _ in range(n // len(zeros)):
        check.update(zeros)
    check.update(bytes(n % len(zeros)))
    path = cache.path_of(key)
    path.parent.mkdir(mode=0o700)
    with open(path, "wb") as f:
        f.write(prefix + head + body_head)
        f.seek(n, os.SEEK_CUR)  # n zeros, no blocks
        f.write(check.digest())
    os.chmod(path, 0o600)
    del zeros
    hit = cache.get(key, lazy=True)
    assert hit is not None and cache.damaged == 0
    assert hit.blob is not None and len(hit.blob) == len(body_head) + n
    assert hit.blob[: len(body_head)] == body_head and path.exists()


# -- qshpc cache rm KEY of a link in an entry's place -------------------------------------


def test_rm_of_a_key_whose_entry_is_a_dangling_link_removes_it(qshpc_home: Path) -> None:
    # On 793198c `qshpc cache rm KEY` stat'ed the entry through the link: a
    # FileNotFoundError traceback (exit 1), and the link stayed.
    from qshpc.cache.store import CacheDir

    cache = CacheDir(qshpc_home / "cache")
    cache.put_value("ab" * 32, 1, "f")
    link = cache.path_of("ef" * 32)
    link.parent.mkdir(mode=0o700)
    link.symlink_to(qshpc_home / "nowhere")
    out = run_cli("cache", "rm", "efef")
    assert out.returncode == 0 and "removed 1 entry" in out.stdout, out.stderr
    assert not os.path.lexists(link) and cache.path_of("ab" * 32).exists()


# -- a full disk when the cache folder is made ------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (a real full disk), unmounted after the test."""
    with tmpfs(tmp_path / "disk", "size=2m") as disk:
        yield disk


def _fill(disk: Path) -> Path:
    fill = disk / "fill"
    fd = os.open(fill, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, bytes(4096)):
            pass
    except OSError:  # ENOSPC: full
        pass
    finally:
        os.close(fd)
    return fill


@needs_root
def test_a_cache_made_on_a_full_disk_gets_its_whole_tag_later(small_disk: Path) -> None:
    # On 793198c the tag was created and its text not written: an empty CACHEDIR.TAG
    # (backup tools want the signature first), never written again.
    from qshpc.cache.folder import TAG_TEXT
    from qshpc.cache.store import CacheDir

    fill = _fill(small_disk)
    root = small_disk / "cache"
    CacheDir(root)
    tag = root / "CACHEDIR.TAG"
    assert not tag.exists() or tag.read_text() == TAG_TEXT
    fill.unlink()
    CacheDir(root)
    assert tag.read_text() == TAG_TEXT


# -- what --all-users lists of a member's folder -----------------------------------------------


@needs_root
def test_all_users_lists_only_what_a_lookup_would_read_of_a_member(tmp_path: Path) -> None:
    # On 793198c a member's shard that was a link to one of ours listed our 3 entries as
    # theirs too (6 rows in `ls --all-users`, "user nobody: 3" in stats), and a file a
    # third party planted in their folder (not theirs, a lookup ignores it) was listed.
    from qshpc.cache.store import CacheDir

    root = tmp_path / "shared"
    mine = CacheDir(root, shared=True)
    for i in range(3):
        mine.put_value(f"ab{i:062x}", i, "mine")
    theirs = _member_folder(root)
    _write_entry(theirs / "cd" / ("cd" * 32), "cd" * 32, 1.7e9)  # theirs: listed
    _write_entry(theirs / "ce" / ("ce" * 32), "ce" * 32, 1.7e9)  # planted: not theirs
    _chown_tree(theirs, OTHER_UID)
    os.chown(theirs / "ce" / ("ce" * 32), 0, 0)
    (theirs / "ab").symlink_to(mine.mine / "ab")
    os.lchown(theirs / "ab", OTHER_UID, OTHER_UID)
    env = {"QSHPC_SHARE_GROUP": "1"}
    out = run_cli("cache", "ls", "--all-users", "--json", "--cache-dir", str(root), env=env)
    assert out.returncode == 0, out.stderr
    rows = {(r["key"], r["user"]) for r in json.loads(out.stdout)}
    assert len(rows) == 4 and ("cd" * 32, "nobody") in rows, rows
    assert {r[1] for r in rows if r[0].startswith("ab")} == {"root"}, rows
    out = run_cli("cache", "stats", "--all-users", "--json", "--cache-dir", str(root), env=env)
    users = json.loads(out.stdout)["users"]
    assert users["nobody"]["entries"] == 1 and users["root"]["entries"] == 3, users
    assert mine.get("ce" * 32) is None and mine.get("cd" * 32) is not None


def test_an_empty_tag_left_by_a_killed_writer_is_written_again(tmp_path: Path) -> None:
    # A writer killed between the tag's creation and its text (or 793198c on a full disk)
    # left an empty CACHEDIR.TAG; on 793198c it stayed empty for good.
    from qshpc.cache.folder import TAG_TEXT
    from qshpc.cache.store import CacheDir

    root = tmp_path / "cache"
    CacheDir(root).put_value("ab" * 32, 1, "f")
    tag = root / "CACHEDIR.TAG"
    tag.write_text("")
    CacheDir(root, create=False)  # a lookup or `qshpc cache ls` changes nothing
    assert tag.read_text() == ""
    CacheDir(root)
    assert tag.read_text() == TAG_TEXT
    mine = "Signature: 8a477f597d28d172789f06886806bc55\n# mine\n"
    tag.write_text(mine)  # a tag of the user's own: kept as it is
    CacheDir(root)
    assert tag.read_text() == mine


# -- a group cache folder a member made private --------------------------------------------


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder the other user can reach (pytest's own are root's alone)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="qshpc-hunt19-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _as_other_user(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``code`` as uid/gid 65534 (the interpreter's files are root's: import first)."""
    script = (
        "import os, sys, pwd\n"
        "import qshpc.cache, qshpc.cache.store, qshpc.cache.maint, qshpc.cache.folder\n"
        "import qshpc.cache.entry, qshpc.cache.keys, qshpc.errors, qshpc.settings\n"
        "import qshpc.jobs.paths, numbers, pandas, hashlib, secrets, socket\n"
        "import qshpc.cache.jobcache, qshpc.cache.body, qshpc.store.encoding_blob\n"
        "qshpc.cache.key(len, ('x',))\n"  # the keys' imports, while they can be read
        f"os.setgroups([]); os.setgid({OTHER_UID}); os.setuid({OTHER_UID})\n{code}"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QSHPC_HOME": str(cwd / "home")}
    env["QSHPC_SHARE_GROUP"] = "1"
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )


@needs_root
def test_a_shared_cache_folder_one_cannot_enter_is_one_line(open_dir: Path) -> None:
    # On 793198c, in the group mode, a cache folder another member made private (0700)
    # passed the folder checks, and the look for one's own folder in it raised
    # PermissionError: a traceback from `qshpc cache ls` and `qshpc run --cache`
    # (CacheDir, create or not), and from lookup() and table().
    root = open_dir / "team-cache"
    root.mkdir(mode=0o700)  # made by its owner without QSHPC_SHARE_GROUP
    out = _as_other_user(
        f"""
from qshpc.cache.store import CacheDir
from qshpc.errors import UserError
root = {str(root)!r}
calls = [
    lambda: CacheDir(root, shared=True),
    lambda: CacheDir(root, shared=True, create=False),
    lambda: qshpc.cache.lookup(len, ("x",), cache_dir=root),
    lambda: qshpc.cache.table(root),
]
for call in calls:
    try:
        call()
    except UserError as exc:
        print("refused:", exc)
""",
        open_dir,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 4, out.stdout + out.stderr
    fix = "Permission denied; its owner can open it to the group: chmod 3770"
    assert all(fix in x for x in lines), lines
    # The private mode: one's own cache folder one cannot enter (chmod 600 by mistake).
    os.chmod(open_dir, 0o777)
    out = _as_other_user(
        f"""
from qshpc.cache.store import CacheDir
from qshpc.errors import UserError
root = {str(open_dir / "mine")!r}
CacheDir(root, shared=False)
os.chmod(root, 0o600)
for create in (True, False):
    try:
        CacheDir(root, shared=False, create=create)
    except UserError as exc:
        print("refused:", exc)
""",
        open_dir,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all("Permission denied; chmod 700 " in x for x in lines), lines


# -- the cache removed while a job writes to it ---------------------------------------------


def test_a_cache_removed_under_a_job_is_one_warning(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # On 793198c a job whose cache folder was removed (rm -rf) while it ran printed one
    # warning per shard it had written to (24 here), each saying "remove what is there in
    # its place" when nothing was; the documented behaviour is one warning.
    import hashlib
    import shutil

    from qshpc.cache.jobcache import CacheConfig, JobCache

    root = tmp_path / "cache"
    jc = JobCache(CacheConfig(True, str(root)), "job1", open_now=True)
    keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000)]
    for k in keys[:1000]:
        jc.store(k, "f", "t", value=1)
    jc.flush()
    assert jc.written == 1000
    capfd.readouterr()
    shutil.rmtree(root)
    for k in keys[1000:]:
        jc.store(k, "f", "t", value=1)
    jc.flush()
    warnings = [x for x in capfd.readouterr().err.splitlines() if x.startswith("qshpc: cache:")]
    assert len(warnings) == 1, warnings[:3]
    assert "the folder was removed" in warnings[0] and "rest of this job" in warnings[0]


# -- the bound on results queued for the cache -----------------------------------------------


def test_results_queued_for_the_cache_count_their_arrays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On 793198c a result queued as a value counted only its own `nbytes`: a dict or a
    # list of arrays, or a Statevector, counted 0 bytes, and a worker whose file system
    # was slower than its tasks held every such result (MAX_PENDING_BYTES never reached).
    # The slow file system is injected (as test_cache_jobcache's bound test does).
    import threading

    import numpy as np
    from qiskit.quantum_info import Statevector

    from qshpc.cache import jobcache
    from qshpc.cache.jobcache import CacheConfig, JobCache

    monkeypatch.setattr(jobcache, "MAX_PENDING_BYTES", 100_000)
    jc = JobCache(CacheConfig(True, str(tmp_path / "c")), "j", open_now=True)
    d = jc.dir
    assert d is not None
    blocker = threading.Event()
    real_put = d.put

    def slow_put(*a: object, **k: object) -> bool:
        blocker.wait(10)
        return real_put(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(d, "put", slow_put)
    values: list[object] = [{"counts": np.zeros(5000)} for _ in range(3)]  # 40 kB each
    values += [[np.zeros(2500), np.zeros(2500)], Statevector(np.ones(4096) / 64)]
    for i, v in enumerate(values):
        jc.store(f"{i:064x}", "f", str(i), value=v)
    blocker.set()
    jc.flush(30)
    s = jc.summary()
    assert s["dropped"] == 3 and s["written"] == 2, s


# -- an empty --function or --job --------------------------------------------------------------


def test_an_empty_function_or_job_is_one_line(qshpc_home: Path) -> None:
    # On 793198c `qshpc cache rm --function "$FN"` with FN unset said "removed 0 entries"
    # (exit 0), and `ls --function ""` said "no entries in X", as if the cache were empty.
    from qshpc.cache.store import CacheDir

    CacheDir(qshpc_home / "cache").put_value("ab" * 32, 1, "f", "job1", "0")
    for argv in (
        ("rm", "--function", ""),
        ("rm", "--job", " "),
        ("ls", "--function", ""),
        ("ls", "--job", ""),
        ("rm", "--function", "", "--job", "job1"),
    ):
        opt = "--function" if "--function" in argv else "--job"
        _one_line_exit_2(run_cli("cache", *argv), f"{opt} is empty (an unset shell variable?)")
    out = run_cli("cache", "rm", "--function", "f")
    assert out.returncode == 0 and "removed 1 entry" in out.stdout, out.stderr


# -- a shard folder of wrong permissions -------------------------------------------------------


@needs_root
def test_a_shard_of_wrong_permissions_costs_its_keys_only(open_dir: Path) -> None:
    # On 793198c a shard folder one cannot write (mode 0: a chmod -R slip) turned the cache
    # off for the rest of the job (one warning; 299 of the next 300 results, in other
    # shards, not cached), where a file in a shard's place costs that shard's keys only.
    os.chmod(open_dir, 0o777)
    out = _as_other_user(
        f"""
from qshpc.cache.jobcache import JobCache, CacheConfig
keys = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(600)]
jc = JobCache(CacheConfig(True, {str(open_dir / "c")!r}), "j", open_now=True)
for k in keys[:300]:
    jc.store(k, "f", "t", value=1)
jc.flush()
os.chmod(jc.dir.mine / keys[300][:2], 0)
for k in keys[300:600]:
    jc.store(k, "f", "t", value=1)
jc.flush()
print("shard", jc.summary()["written"], flush=True)
""",
        open_dir,
    )
    assert out.returncode == 0, out.stderr
    written = dict(line.split() for line in out.stdout.splitlines())
    assert 590 <= int(written["shard"]) < 600, (written, out.stderr)
    warnings = out.stderr.strip().splitlines()
    assert len(warnings) == 1, warnings
    assert "Permission denied (chmod 2750 " in warnings[0], warnings  # the shared mode's
    assert "start with '98' are not cached (the other keys are)" in warnings[0], warnings
