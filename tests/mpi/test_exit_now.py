"""A `qshpc run` process ends without Python's teardown only when nothing can be lost.

:func:`qshpc.runtime.leave.exit_now` skips the interpreter's teardown (15-25 ms a
rank on the command's tail); what the teardown would still have done for the
program is checked here on real ranks: files the program or its tasks left open
(on rank 0, on the workers, one a preloaded module opened before the freeze),
``atexit`` handlers, a thread still writing, the exit code.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.mpi

HELPER = """\
import os
F = open(os.path.join(os.environ["OUT"], f"helper-{os.getpid()}.txt"), "w")
"""

PROGRAM = """\
import atexit
import builtins
import os
import threading
import time

import exit_helper
from qshpc import distribute_task, get

OUT = os.environ["OUT"]
left = open(os.path.join(OUT, "program.txt"), "w")
left.write("from the program\\n")
atexit.register(lambda: open(os.path.join(OUT, "atexit.txt"), "w").write("ran\\n"))


def late() -> None:
    time.sleep(0.3)
    with open(os.path.join(OUT, "thread.txt"), "w") as f:
        f.write("joined\\n")


threading.Thread(target=late).start()


@distribute_task()
def task(i):
    f = open(os.path.join(OUT, f"task-{i}.txt"), "w")
    f.write(f"task {i}\\n")
    builtins.__dict__.setdefault("kept", []).append(f)
    exit_helper.F.write(f"helper {i}\\n")
    return i


assert get([task(i) for i in range(6)]) == list(range(6))
"""


@pytest.mark.parametrize(("ranks", "workers"), [(None, "2"), (3, None), (None, "0")])
def test_nothing_written_is_lost_at_the_exit(
    ranks: int | None, workers: str | None, qshpc_home, tmp_path
) -> None:
    """(``--workers 0`` lost every such file's text on f163b7c: Python's teardown
    finalized the buffers under the program's text files before the text files.)"""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (tmp_path / "exit_helper.py").write_text(HELPER)
    prog = tmp_path / "leaves_files.py"
    prog.write_text(PROGRAM)
    args = ["run", str(prog)] + (["--workers", workers] if workers is not None else [])
    out = run_cli(*args, ranks=ranks, env={"OUT": str(out_dir)}, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (out_dir / "program.txt").read_text() == "from the program\n"
    assert (out_dir / "atexit.txt").read_text() == "ran\n"
    assert (out_dir / "thread.txt").read_text() == "joined\n"
    for i in range(6):
        assert (out_dir / f"task-{i}.txt").read_text() == f"task {i}\n"
    helped = "".join(p.read_text() for p in out_dir.glob("helper-*.txt"))
    assert sorted(helped.splitlines()) == [f"helper {i}" for i in range(6)]


def test_a_failed_program_keeps_its_exit_code_and_message(qshpc_home, tmp_path) -> None:
    prog = tmp_path / "fails.py"
    prog.write_text("raise ValueError('boom')\n")
    out = run_cli("run", str(prog), "--workers", "2")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "ValueError: boom" in out.stderr


ARCHIVES = """\
import bz2
import gzip
import lzma
import os
import sys
import zipfile

from qshpc import distribute_task, get

OUT = os.environ["OUT"]
gz = gzip.open(os.path.join(OUT, "out.gz"), "wt")
bz = bz2.open(os.path.join(OUT, "out.bz2"), "wt")
xz = lzma.open(os.path.join(OUT, "out.xz"), "wt")
zf = zipfile.ZipFile(os.path.join(OUT, "out.zip"), "w")


class Checkpoint:
    def __del__(self):
        with open(os.path.join(OUT, "del.txt"), "w") as f:
            f.write("ran\\n")


checkpoint = Checkpoint()


@distribute_task()
def square(i):
    return i * i


text = str(get([square(i) for i in range(4)])) * 100
for f in (gz, bz, xz):
    f.write(text)
zf.writestr("r.txt", text)
if sys.argv[1:] == ["fail"]:
    raise ValueError("after writing")
"""


@pytest.mark.parametrize(
    ("ranks", "workers", "fail"), [(None, "1", False), (3, None, True), (None, "0", False)]
)
def test_archives_left_open_are_whole_and_del_runs(
    ranks: int | None, workers: str | None, fail: bool, qshpc_home, tmp_path
) -> None:
    """On e5f893c a gzip, bz2 or xz file the program left open had no end (unreadable:
    'Compressed file ended before the end-of-stream marker'), a zip file no directory,
    and a ``__del__`` never ran; ``python program.py`` writes them whole."""
    import bz2
    import gzip
    import lzma
    import zipfile

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    prog = tmp_path / "archives.py"
    prog.write_text(ARCHIVES)
    args = ["run", str(prog)] + (["--workers", workers] if workers is not None else [])
    args += ["--", "fail"] if fail else []
    out = run_cli(*args, ranks=ranks, env={"OUT": str(out_dir)}, cwd=tmp_path)
    assert out.returncode == (1 if fail else 0), out.stdout + out.stderr
    text = str([0, 1, 4, 9]) * 100
    for name, opener in (("out.gz", gzip.open), ("out.bz2", bz2.open), ("out.xz", lzma.open)):
        with opener(out_dir / name, "rt") as f:
            assert f.read() == text, name
    with zipfile.ZipFile(out_dir / "out.zip") as z:
        assert z.read("r.txt").decode() == text
    assert (out_dir / "del.txt").read_text() == "ran\n"


AFTER = """\
import atexit
import gzip
import json
import os
import sys

from qshpc import distribute_task, get, save_result

OUT = os.environ["OUT"]
log = open(os.path.join(OUT, "run.log"), "w")  # left open: the globals are freed at the end
results = {"energy": -1.23}


def write_summary():
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(results, f)


atexit.register(write_summary)


@distribute_task()
def square(i):
    return i * i


class Late:
    def __del__(self):
        with open(os.path.join(OUT, "late.txt"), "w") as f:
            f.write(str(get(square(3))))


late = Late()
save_result(get(square(2)))
"""


def test_the_programs_atexit_handlers_and_late_calls_see_its_globals(qshpc_home, tmp_path) -> None:
    """review25: with the globals freed before the exit's atexit handlers ran, a handler
    found them None (its summary.json never written, the job SUCCEEDED); a __del__ that
    called a task waited forever on the stopped dispatcher."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    prog = tmp_path / "after.py"
    prog.write_text(AFTER)
    out = run_cli("run", str(prog), "--workers", "1", env={"OUT": str(out_dir)}, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (out_dir / "summary.json").read_text() == '{"energy": -1.23}'
    assert (out_dir / "late.txt").read_text() == "9"  # run inline, as in plain python


def test_a_program_without_functions_has_its_file_whole_when_the_job_ends(
    qshpc_home, tmp_path
) -> None:
    """review25: its globals are held by nothing, so they are freed as the program ends (as
    runpy's were), before the job's end is stored: a reader that waits for the job
    finds the gzip whole."""
    import gzip

    from qshpc import LocalClient, Program

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (tmp_path / "flat.py").write_text(
        "import gzip, os\nfrom qshpc import save_result\n"
        "gz = gzip.open(os.path.join(os.environ['OUT'], 'flat.gz'), 'wt')\n"
        "gz.write('x' * 1000)\nsave_result(1)\n"
    )
    program = Program(
        title="flat", entrypoint="flat.py", working_dir=str(tmp_path),
        env_vars={"OUT": str(out_dir)},
    )  # fmt: skip
    job = LocalClient(workers=1).run(program)
    assert job.result(timeout=60) == 1
    with gzip.open(out_dir / "flat.gz", "rt") as f:
        assert f.read() == "x" * 1000
