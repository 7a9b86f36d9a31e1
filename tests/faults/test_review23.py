"""review23's findings in the session's merged work, mended by the lead (session 21)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.faults.test_hunt21b import _data_code, _python, needs_root


def test_a_download_keeps_an_existing_file_s_mode(tmp_path: Path) -> None:
    """The download is written beside its target and renamed over it (hunt21b): the
    existing file's mode stays (a 0640 file became 0644)."""
    home, out = tmp_path / "home", tmp_path / "out"
    out.mkdir()
    (out / "keep").write_bytes(b"older")
    os.chmod(out / "keep", 0o640)
    body = f"(d / 'f').write_bytes(b'new')\nprint(files.download('f', 'keep', {str(out)!r}))\n"
    done = _python(_data_code(home, body), home)
    assert done.returncode == 0, done.stderr
    assert (out / "keep").read_bytes() == b"new"
    assert (out / "keep").stat().st_mode & 0o777 == 0o640


@needs_root
def test_a_download_onto_a_file_one_may_not_write_is_refused(open_dir: Path) -> None:
    """A file one cannot write (one's own 0444) is not replaced by the rename (review23 F2):
    refused, as writing it was on b295950."""
    base = open_dir
    home, out = base / "home", base / "out"
    home.mkdir()
    out.mkdir()
    (out / "ro").write_bytes(b"older")
    os.chmod(out / "ro", 0o444)
    for p in (home, out, out / "ro"):
        os.chown(p, 4343, 4343)
    code = _data_code(home, (
        "(d / 'f').write_bytes(b'new')\n"
        "try:\n"
        f"    files.download('f', 'ro', {str(out)!r})\n"
        "except UserError as exc:\n"
        "    print(exc)\n"
    ))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QSHPC_HOME": str(home)}
    argv = ["setpriv", "--reuid=4343", "--regid=4343", "--clear-groups", sys.executable]
    done = subprocess.run([*argv, "-c", code], capture_output=True, text=True, timeout=60,
                          env=env, cwd=str(base))  # fmt: skip
    assert done.returncode == 0, done.stderr
    want = f"cannot write {out}/ro: Permission denied (give another target name)"
    assert done.stdout.strip() == want, done.stdout
    assert (out / "ro").read_bytes() == b"older"


def test_a_partial_s_name_in_the_cache_s_messages_is_short() -> None:
    """A partial holding a large array was named by its repr (the array printed whole)."""
    import numpy as np

    from qshpc.cache.jobcache import _task_name

    def f(table: object, x: int) -> int:
        return x

    name = _task_name(functools.partial(f, np.zeros(10**6)), functools.partial(f, 1))
    assert name.endswith("f") and len(name) < 100
