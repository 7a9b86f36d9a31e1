"""Session 25, fixF: follow-ups of fix38c (review41).

Each test failed on the main this branch started from (05694ff); docs/bad-input.md,
"Session 25, fixF".
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from qshpc.launch.forward import Forwarder
from tests.conftest import ROOT


def _reader(fd: int, got: bytearray, pause_s: float, done: threading.Event) -> None:
    """Read ``fd`` to its end, slowly: 4 KB, then ``pause_s``."""
    while chunk := os.read(fd, 4096):
        got += chunk
        time.sleep(pause_s)
    done.set()


def _pipe_forwarder(**bounds: float) -> tuple[Forwarder, int]:
    r, w = os.pipe()
    dst = os.fdopen(w, "wb")
    return Forwarder(dst, "stdout", **bounds), r  # type: ignore[arg-type]


def test_a_slow_reader_that_reads_gets_every_line() -> None:
    # review41 F1: on 05694ff lines were dropped once the queue was full, reader reading or not
    fwd, r = _pipe_forwarder(max_lines=10, max_bytes=1 << 20)
    got = bytearray()
    done = threading.Event()
    threading.Thread(target=_reader, args=(r, got, 0.001, done), daemon=True).start()
    lines = [f"line {i:05d} {'x' * 90}\n".encode() for i in range(3000)]
    for line in lines:
        fwd.put([line])
    assert fwd.finish() == 0 and fwd.dropped == 0
    fwd.dst.close()
    assert done.wait(30)
    assert bytes(got) == b"".join(lines)


def test_a_line_longer_than_the_queue_is_passed_on_whole() -> None:
    # review41 F2: on 05694ff a line over the queue's bytes (32 MB) never reached stdout
    fwd, r = _pipe_forwarder(max_bytes=1000)
    got = bytearray()
    done = threading.Event()
    threading.Thread(target=_reader, args=(r, got, 0.0, done), daemon=True).start()
    fwd.put([b"x" * 100_000 + b"\n", b"after\n"])
    assert fwd.finish() == 0
    fwd.dst.close()
    assert done.wait(30)
    assert bytes(got) == b"x" * 100_000 + b"\nafter\n"


def test_a_reader_that_stops_costs_a_stall_then_drops_and_it_gets_lines_again() -> None:
    fwd, r = _pipe_forwarder(max_lines=5, stall_s=0.5)
    line = b"y" * 1000 + b"\n"
    started = time.monotonic()
    for _ in range(200):  # 200 KB: the pipe (64 KB) and the queue fill, nobody reads
        fwd.put([line])
    assert time.monotonic() - started < 20  # not blocked for good
    assert fwd.dropped > 0
    got = bytearray()
    done = threading.Event()
    threading.Thread(target=_reader, args=(r, got, 0.0, done), daemon=True).start()
    while got.count(b"\n") + fwd.dropped < 200:  # it takes what the pipe and queue held
        time.sleep(0.05)
    fwd.put([b"back\n"])  # the reader reads again: forwarded
    assert fwd.finish() == fwd.dropped
    fwd.dst.close()
    assert done.wait(30)
    assert got.endswith(b"back\n")
    assert got.count(b"\n") + fwd.dropped == 201


TAKE = """
import sys
from qshpc.runtime.stdin import take
ok = take(sys.argv[1])
print(ok, sys.stdin.read() if ok else "-")
"""


def test_the_stdin_hand_off_names_one_process_not_a_pid(tmp_path: Path) -> None:
    # review41 F5: on 05694ff `host:pid` alone: a reused pid, or one of another pid
    # namespace under the same host name, had rank 0 read another process's stdin
    import socket
    import subprocess
    import sys

    from qshpc.store.lock import PIDNS, start_ticks

    (tmp_path / "in.txt").write_text("hello\n")
    with open(tmp_path / "in.txt", "rb") as fh:
        other = subprocess.Popen(["sleep", "60"], stdin=fh)
    try:
        host, pid = socket.gethostname(), other.pid
        ticks = start_ticks(pid)

        def take(word: str) -> str:
            out = subprocess.run(
                [sys.executable, "-c", TAKE, word],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=60,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            return out.stdout

        assert take(f"{host}:{pid}:{ticks}:{PIDNS}") == "True hello\n\n"
        assert take(f"{host}:{pid}:{(ticks or 0) + 1}:{PIDNS}") == "False -\n"  # pid reused
        assert take(f"{host}:{pid}:{ticks}:{(PIDNS or 0) + 1}") == "False -\n"  # another pidns
    finally:
        other.kill()
        other.wait()


WAITALL = """
import ctypes, os, sys
from pathlib import Path
if sys.argv[2] == "subreaper":
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # as PID 1 would: adopts orphans
from qshpc.runtime.leave import processes_left
from qshpc.runtime.logtee import LogTee
tee = LogTee(Path(sys.argv[1]))
print("left", processes_left(), flush=True)  # the copier is none (review41 F6)
for _ in range(2):
    if os.fork() == 0:
        os._exit(0)
n = 0
try:
    while os.wait():  # until ECHILD
        n += 1
except ChildProcessError:
    print("reaped", n, flush=True)
tee.close()
"""


def test_a_rank_that_adopts_orphans_is_not_held_by_its_copier(tmp_path: Path) -> None:
    # review41 F3: on 05694ff a rank that is PID 1 (or a subreaper) adopted its orphaned
    # copier, and a program's wait-until-ECHILD loop waited for it for ever; F6: the
    # adopted copier was listed among the processes the program left
    import subprocess
    import sys

    for how in ("subreaper", "plain"):
        log = tmp_path / f"{how}.out"
        out = subprocess.run(
            [sys.executable, "-c", WAITALL, str(log), how],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert out.returncode == 0 and out.stdout == "left []\nreaped 2\n", out
        assert log.read_text() == "left []\nreaped 2\n"
