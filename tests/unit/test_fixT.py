"""Session 29, fixT: small items left by session 28 (see each test)."""

from __future__ import annotations

import builtins
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest

from qshpc.errors import error_head

needs_311 = pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups: Python 3.11")


def _kept(error: str, tmp_path: Path) -> str:
    from qshpc.program.session import Session
    from qshpc.runtime.rank0 import with_resume

    session = Session(None, None, {})
    session.executed = 3
    job = tmp_path / "jobs" / "20261206-050000-abcdef"
    return with_resume(error, {"entrypoint": "/p/prog.py"}, job, session)


def _group_text() -> str:
    if sys.version_info < (3, 11):
        return ""
    from qshpc.errors import WorkerLostError

    group = builtins.ExceptionGroup("calls", [WorkerLostError("worker rank 2 stopped responding")])
    try:
        raise group
    except Exception as exc:
        return "".join(traceback.format_exception(exc))


@pytest.mark.parametrize(
    "error",
    [
        "Traceback (most recent call last):\n  x\nWorkerLostError: rank 2 lost",
        "Traceback (most recent call last):\n  x\nWorkerLostError: rank 2 lost\nsecond line\n"
        "a note\n\nqshpc: hint: do this\nqshpc: hint: or that",
        "WorkerLostError: rank 2 lost",
    ],
)
def test_the_kept_words_go_on_error_heads_line(error: str, tmp_path: Path) -> None:
    """rank0.with_resume appended them to the last line (but a hint): the summary shows
    errors.error_head's line, the exception's line before its second line and notes."""
    got = _kept(error, tmp_path)
    head = error_head(got)
    assert head.startswith("WorkerLostError: rank 2 lost; 3 finished task results are kept")
    assert head.endswith("runs only the unfinished tasks")
    assert got.replace(head[len("WorkerLostError: rank 2 lost") :], "") == error.rstrip()


@needs_311
def test_the_kept_words_of_an_exception_group_go_on_its_line(tmp_path: Path) -> None:
    error = _group_text()
    got = _kept(error, tmp_path)
    assert error_head(got).startswith("ExceptionGroup: calls (1 sub-exception); 3 finished")
    assert "  | ExceptionGroup: calls (1 sub-exception); 3 finished" in got
    assert got.count("finished task results are kept") == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n \n",
        "a\n\nb\nqshpc: hint: h",
        "Traceback (most recent call last):\n  File x\nValueError: a\nb\nc",
        "Traceback (most recent call last):\n  File x\nValueError:\nthe message\nqshpc: hint: h",
        "Traceback (most recent call last):\n  File x\nE: " + "m" * 5000,
        _group_text(),
    ],
)
def test_on_head_line_puts_the_words_where_error_head_shows_them(text: str) -> None:
    from qshpc.runtime.rank0 import on_head_line

    words = "; WORDS"
    got = on_head_line(text, words)
    if not text.strip():
        assert got == text
        return
    assert got.replace(words, "", 1) == text.rstrip() and got.count(words) == 1
    if len(error_head(text)) < 900:  # (a longer head may be cut: the words on its line)
        assert error_head(got).endswith(words), got


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="a link of another uid needs root")
THEIRS = 4242


def test_qshpc_homes_link_check_is_memoed_per_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """session 28: check_links (an lstat a part of the path) ran at each of qshpc_home's ~19
    callers' calls; it runs once a home (a changed $QSHPC_HOME is checked again)."""
    from qshpc.jobs import paths

    monkeypatch.setattr(paths, "_LINKS_CHECKED", set())
    for name in ("one", "two"):
        home = tmp_path / name
        home.mkdir(mode=0o700)
        monkeypatch.setenv("QSHPC_HOME", str(home))
        assert paths.qshpc_home() == home == paths.qshpc_home()
        assert (str(home), str(home), os.geteuid()) in paths._LINKS_CHECKED
    assert len(paths._LINKS_CHECKED) == 2
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QSHPC_HOME", "one")  # relative: by its absolute path
    assert paths.qshpc_home() == Path("one")
    assert ("one", str(tmp_path / "one"), os.geteuid()) in paths._LINKS_CHECKED


@root_only
def test_a_home_another_user_could_make_a_link_is_checked_at_each_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part missing in /tmp (or another user's folder there) could become their link
    later: such a home is not memoed, and the link planted after the first call is refused."""
    from qshpc.jobs import paths
    from qshpc.store.perms import UnsafeStoreError

    monkeypatch.setattr(paths, "_LINKS_CHECKED", set())
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    sticky.chmod(0o1777)
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    monkeypatch.setenv("QSHPC_HOME", str(sticky / "home"))
    assert paths.qshpc_home() == sticky / "home"  # not there yet: fine, not memoed
    (sticky / "home").symlink_to(mine)
    os.lchown(sticky / "home", THEIRS, -1)
    with pytest.raises(UnsafeStoreError, match=f"it goes through {sticky / 'home'}"):
        paths.qshpc_home()
    (sticky / "home").unlink()
    (sticky / "theirs").mkdir()
    os.chown(sticky / "theirs", THEIRS, -1)
    (sticky / "theirs" / "home").mkdir(mode=0o700)
    monkeypatch.setenv("QSHPC_HOME", str(sticky / "theirs" / "home"))
    assert paths.qshpc_home() == sticky / "theirs" / "home"
    (sticky / "theirs").rename(sticky / "gone")  # what they can do: their folder, their link
    (sticky / "theirs").symlink_to(sticky / "gone")
    os.lchown(sticky / "theirs", THEIRS, -1)
    with pytest.raises(UnsafeStoreError, match=f"it goes through {sticky / 'theirs'}"):
        paths.qshpc_home()
    assert not paths._LINKS_CHECKED


def _walk_digest(value: object) -> str:
    import hashlib

    from qshpc.cache.keywalk import walk_value

    h = hashlib.blake2b(digest_size=16)
    walk_value(h.update, value)
    return h.hexdigest()


def test_a_set_of_2000_items_keeps_its_digest() -> None:
    """keywalk._digest_of copied the walk's refs and modules (each name set too) for each
    item of a set; the items now share them until one changes them: the same digests (those
    of main e1e1b75, whatever the set's order)."""
    assert _walk_digest(set(range(2000))) == "4526c319bb5eb6313e8ea3de990b0730"
    big = set(range(2000)) | {f"s{i}" for i in range(2000)}
    assert _walk_digest(big) == "7acc660e06afa1c1ed01612927be3f3b"


def test_a_sets_items_reading_modules_start_from_the_walk_and_leave_it_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import importlib

    from qshpc.cache.keywalk import _Walk

    (tmp_path / "cfg_fixt.py").write_text("A = 1\nB = 2\nC = 3\n")
    (tmp_path / "helpers_fixt.py").write_text(
        "import cfg_fixt\n\ndef hb():\n    return cfg_fixt.B\n\ndef hc():\n    return cfg_fixt.C\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = importlib.import_module("cfg_fixt")
    helpers = importlib.import_module("helpers_fixt")
    ns: dict[str, Any] = {"cfg_fixt": cfg, "helpers_fixt": helpers, "__name__": "fixt_prog"}
    exec(
        "def f(x):\n    return cfg_fixt.A + x\n"
        "def g(x):\n    return cfg_fixt.B + helpers_fixt.hc()\n"
        "def h(x):\n    return helpers_fixt.hb() + cfg_fixt.A\n",
        ns,
    )
    f, g, h = ns["f"], ns["g"], ns["h"]

    walk = _Walk(hashlib.blake2b().update)
    walk.value(f)
    refs, names = dict(walk.refs), walk.modules[id(cfg)]
    assert names is not None and "A" in names and "B" not in names
    kept = set(names)
    walk.value({g, h, frozenset({g}), 7})  # each item keys cfg.B, helpers_fixt...
    assert walk.refs == refs and walk.modules[id(cfg)] is names and names == kept
    assert id(helpers) not in walk.modules and not walk.borrowed

    before = _walk_digest((f, {g, h}, h))
    assert _walk_digest((f, {h, g}, h)) == before
    monkeypatch.setattr(cfg, "C", 30)  # read by g (through hc) in the set only
    after = _walk_digest((f, {g, h}, h))
    assert after != before
    monkeypatch.setattr(cfg, "B", 20)  # read by g and h (through hb)
    assert _walk_digest((f, {g, h}, h)) not in (before, after)


BIG_RESULT = (
    "import numpy as np\nfrom qshpc import save_result\n"
    "save_result({'a': np.full(2_000_000, 7.25), 'b': 'text'})\n"
)


@pytest.mark.parametrize("damaged", [False, True])
def test_a_resume_of_a_succeeded_job_with_a_big_store_reads_its_result(
    tmp_path: Path, damaged: bool
) -> None:
    """fixR left: a SUCCEEDED job whose store is over QSHPC_STATUS_VERIFY_MAX (256 MiB) said
    "nothing to resume (`qshpc result J`)" without reading the result, which `qshpc result J`
    then found damaged. Its result's bytes are read now (4 MiB at a time), as a small store's
    are with the rest."""
    import numpy as np

    from tests.conftest import run_cli

    env = {"QSHPC_HOME": str(tmp_path / "home"), "QSHPC_STATUS_VERIFY_MAX": "1"}
    prog = tmp_path / "big.py"
    prog.write_text(BIG_RESULT)
    assert run_cli("run", str(prog), "--workers", "0", env=env).returncode == 0
    (job,) = (tmp_path / "home" / "jobs").iterdir()
    store = job / "job.h5"
    data = bytearray(store.read_bytes())
    if damaged:  # the middle of the array: one 4 MiB read of the 16 MB (not its first)
        at = data.find(np.full(64, 7.25).tobytes()) + 8_000_000
        assert data[at : at + 8] == np.float64(7.25).tobytes()
        data[at] ^= 0xFF
        store.write_bytes(bytes(data))
    out = run_cli("run", "--resume", job.name, env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    if not damaged:
        assert "already SUCCEEDED: nothing to resume" in out.stderr, out.stderr
        return
    assert "nothing to resume" not in out.stderr, out.stderr  # (was said)
    assert f"cannot resume job {job.name}: " in out.stderr and "integrity seal" in out.stderr
    assert "Traceback" not in out.stderr


def test_status_json_names_another_jobs_job_h5(tmp_path: Path, qshpc_home: Path) -> None:
    """fixS left: `qshpc status J` showed a "note" line when J's folder holds another job's
    job.h5; `status --json` had no field for it (a script read job A's values as J's)."""
    import json
    import shutil

    from tests.conftest import run_cli

    prog = tmp_path / "p.py"
    prog.write_text("import qshpc\nqshpc.save_result(41)\n")
    for _ in range(2):
        assert run_cli("run", str(prog), "--workers", "0").returncode == 0
    a, b = sorted((qshpc_home / "jobs").iterdir(), key=lambda d: d.stat().st_ctime_ns)
    assert "other_job_note" not in json.loads(run_cli("status", b.name, "--json").stdout)
    shutil.copy(a / "job.h5", b / "job.h5")  # a whole, sealed file of another job
    out = run_cli("status", b.name, "--json")
    assert out.returncode == 0, out.stderr
    note = json.loads(out.stdout)["other_job_note"]
    assert note.startswith(f"the job.h5 in folder {b} holds job {a.name}, not job {b.name}, ")
    text = run_cli("status", b.name).stdout
    assert note == " ".join(text.split("  note     ")[1].split("\n")[0].split()), text


def test_an_old_stores_result_check_is_no_error(tmp_path: Path) -> None:
    """A store of a qshpc before the seal is read by IsolatedReader (in a child): its
    check_result, as its verify, has nothing to check against (was: JobReader's, on no file)."""
    import shutil

    from qshpc.store import JobReader
    from tests.faults.test_damaged_store import FROZEN_V1

    old = tmp_path / "old"
    old.mkdir()
    shutil.copyfile(FROZEN_V1, old / "job.h5")
    with JobReader.open(old) as r:
        assert type(r).__name__ == "IsolatedReader"
        r.check_result()


@pytest.mark.parametrize("size", [1000, 4_000_000])  # in job.h5's data stream; a large blob
def test_check_result_reads_a_result_still_in_the_journal(tmp_path: Path, size: int) -> None:
    """check_result of a result the journal holds (a job whose end was not folded in): its
    bytes are read and checked, a damaged byte found; 4 MiB pieces, not the blob whole."""
    import tracemalloc

    import numpy as np

    from qshpc.errors import DamagedStoreError
    from qshpc.store import JobReader, JobWriter
    from qshpc.store import layout as L
    from tests.unit.test_fix42a_readback import RUNTIME, rec
    from tests.unit.test_fixR import made

    job = made(tmp_path / "j")
    w = JobWriter.open(job, RUNTIME)
    try:
        w.append_task(rec(0, 1))
        w.save_result(np.random.default_rng(0).random(size))  # (random: ones compress)
        w.commit()
        reader = JobReader.open(job)
        assert reader._log().frames  # in the journal, not folded
        tracemalloc.start()
        reader.check_result()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        reader.close()
        assert peak < 16 << 20, peak
        jpath = job / L.JOURNAL_FILE
        data = bytearray(jpath.read_bytes())
        data[len(data) // 2] ^= 0xFF  # the frame (compressed), or the large result's middle
        jpath.write_bytes(data)
        with JobReader.open(job) as r, pytest.raises(DamagedStoreError):
            r.check_result()
    finally:
        tracemalloc.stop()  # (where check_result failed: no-op otherwise)
        w.close()
