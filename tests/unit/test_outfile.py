"""review30 F3: ``--out`` of report, plot and plot --timeline: one writer (qshpc/jobs/outfile.py).

A link is written where it points and kept; a FIFO, a device node or a folder at the
name is refused (exit 2, naming --out) and left as it was. On 6e1dc61 ``qshpc report
--out`` and ``plot --timeline --out`` renamed a plain file over all of them (as root,
``--out /dev/full`` replaced the device). The tests make their own FIFO, socket and
device node (``mknod`` when the test runs as root), never touching /dev.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from qshpc.errors import UserError
from qshpc.jobs.outfile import write_out
from tests.conftest import run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(path: Path) -> None:
    write_out(path, lambda f: f.write(b"new\n"))


def test_a_link_is_written_where_it_points_and_kept(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "keep.html"
    target.write_text("old\n")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    _write(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new\n"
    dangling = tmp_path / "dangling.html"
    dangling.symlink_to(tmp_path / "real" / "later.html")
    _write(dangling)
    assert dangling.is_symlink() and (tmp_path / "real" / "later.html").read_text() == "new\n"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["keep.html", "later.html"]


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _folder(p: Path) -> None:
    p.mkdir()


def _socket(p: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(p))
    s.close()


def _chardev(p: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a null device of the test's own


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (_folder, "a folder"),
        (_socket, "a socket"),
    ],
)
@pytest.mark.parametrize("through_link", [False, True])
def test_a_socket_or_folder_is_refused_and_kept(
    tmp_path: Path, make: Callable[[Path], None], kind: str, through_link: bool
) -> None:
    node = tmp_path / "node"
    make(node)
    before = node.lstat()
    name = node
    if through_link:
        name = tmp_path / "link.out"
        name.symlink_to(node)
    with pytest.raises(
        UserError,
        match=rf"cannot write {re.escape(str(name))}.*it is {kind}, not a regular file.*--out",
    ):
        _write(name)
    after = node.lstat()
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert not through_link or name.is_symlink()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def _read_fifo(fifo: Path, got: list[bytes]) -> threading.Thread:
    """A reader of ``fifo`` (as ``display`` of the shell's ``>(display)`` is), started."""

    def read() -> None:
        with open(fifo, "rb") as f:
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


@pytest.mark.parametrize("through_link", [False, True])
def test_a_fifo_or_character_device_is_written_to_as_it_is(
    tmp_path: Path, through_link: bool
) -> None:
    """``--out /dev/stdout`` (a link to a pipe or a terminal) and a FIFO are written to,
    never replaced by a file (review30 F3 made /dev/full a file; plot wrote to them since
    review29 F4)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    name = fifo
    if through_link:
        name = tmp_path / "link.out"
        name.symlink_to(fifo)
    got: list[bytes] = []
    reader = _read_fifo(fifo, got)
    _write(name)
    reader.join(30)
    assert got == [b"new\n"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    if os.geteuid() == 0:  # a null device of the test's own (mknod)
        null = tmp_path / "null"
        _chardev(null)
        _write(null)
        assert stat.S_ISCHR(null.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_full_write_keeps_the_old_file(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    out.write_text("old\n")

    def fail(f: object) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(UserError, match=r"No space left on device; pick another --out"):
        write_out(out, fail)
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def _stored_job(home: Path) -> Path:
    from qshpc.jobs.paths import jobs_root
    from qshpc.store import JobWriter, create_job

    job = jobs_root() / "20260101-000000-abcdef"
    create_job(job, {"id": job.name, "title": "t", "created": 1.0}, {})
    w = JobWriter.open(job, {"mpi_size": 1, "ranks": [], "started": 2.0})
    w.save_result({"counts": {"00": 3, "11": 5}})
    w.finalize("SUCCEEDED")
    return job


def test_report_plot_and_timeline_share_the_writer_from_the_cli(
    qshpc_home: Path, tmp_path: Path
) -> None:
    job = _stored_job(qshpc_home).name
    (tmp_path / "real").mkdir()
    commands = {
        "report.html": ["report", job],
        "timeline.svg": ["plot", job, "--timeline"],
        "timeline.png": ["plot", job, "--timeline"],
        "plot.png": ["plot", job],
    }
    for name, args in commands.items():
        target = tmp_path / "real" / name
        target.write_text("old\n")
        link = tmp_path / f"link-{name}"
        link.symlink_to(target)
        res = run_cli(*args, "--out", str(link))
        assert res.returncode == 0, res.stderr
        assert link.is_symlink() and target.read_bytes() != b"old\n", name
        if name.endswith(".png"):
            assert target.read_bytes().startswith(PNG_MAGIC)
        fifo = tmp_path / f"fifo-{name}"
        os.mkfifo(fifo)
        got: list[bytes] = []
        reader = _read_fifo(fifo, got)
        res = run_cli(*args, "--out", str(fifo))
        reader.join(30)
        assert res.returncode == 0, res.stderr
        assert got and got[0] and stat.S_ISFIFO(fifo.lstat().st_mode), name
        if name.endswith(".png"):
            assert got[0].startswith(PNG_MAGIC)
        sock = tmp_path / f"sock-{name}"
        _socket(sock)
        res = run_cli(*args, "--out", str(sock))
        assert res.returncode == 2, res.stderr
        assert "it is a socket, not a regular file" in res.stderr and "--out" in res.stderr
        assert "Traceback" not in res.stderr
