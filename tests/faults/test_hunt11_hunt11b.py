"""Session 11's hunt (hunt11b): reliability promises (no lost or forged results).

Each test says what happened on main 8cc329b.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qshpc import distribute_task, get
from qshpc.errors import UserError
from qshpc.program.backend import InlineBackend
from qshpc.store.jobfile import create_job
from tests.conftest import FAIL, FAIL_AT_END, job_dir_of, run_cli, tmpfs
from tests.unit.test_dispatcher import ranks

pytestmark = pytest.mark.timeout(120)

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another uid needs root")
NEIGHBOUR = 65534  # nobody


@distribute_task()
def grows(box: dict[str, list[int]]) -> int:
    """Appends to the list it was given, and says how long it was."""
    seen = len(box["items"])
    box["items"].append(1)
    return seen


@distribute_task()
def writes(arr: Any) -> str:
    """Tries to change a placed array in place, also by making it writeable again."""
    try:
        arr.flags.writeable = True
    except ValueError:
        pass
    try:
        arr[0] = 99.0
    except ValueError:
        return f"read-only {arr[0]}"
    return f"changed {arr[0]}"


def test_a_placed_object_a_task_changes_is_not_what_the_next_task_gets() -> None:
    """Ray deserializes a placed object for each task (its numpy arrays read-only). On
    8cc329b a worker kept one object per ``put`` and gave it to every task: four calls
    on one worker saw 0, 1, 2, 3 items, and an array's change reached the next call."""
    with ranks(1) as r:  # one worker: every call runs on the same rank
        box = r.d.put({"items": []})
        assert get([r.call(grows, box) for _ in range(4)], timeout=60) == [0, 0, 0, 0]
        arr = r.d.put(np.zeros(3))
        assert get([r.call(writes, arr) for _ in range(2)], timeout=60) == ["read-only 0.0"] * 2


def test_get_of_a_placed_object_is_a_copy_of_its_own() -> None:
    """Ray's ``get`` deserializes again. On 8cc329b ``get(ref)`` returned the object
    placed: a change the program made to it reached the next ``get`` and, with workers,
    the calls sent later, whose cache key still named the value of the ``put``."""
    inline = InlineBackend()
    with ranks(1) as r:
        for b in (inline, r.d):
            ref = b.put({"items": [1, 2, 3]})
            b.get_object(ref.obj_id)["items"].append(100)
            assert b.get_object(ref.obj_id) == {"items": [1, 2, 3]}
        ref = r.d.put({"items": []})
        r.d.get_object(ref.obj_id)["items"].append(100)
        assert get(r.call(grows, ref), timeout=60) == 0
        arr = inline.get_object(inline.put(np.arange(3.0)).obj_id)
        with pytest.raises(ValueError):
            arr.flags.writeable = True


CACHED = """\
import sys
from qshpc import distribute_task, get, put

@distribute_task(cache=True)
def grow(xs):
    xs.append(1)
    return sum(xs)

ref = put([1, 2, 3])
print("OUT", [get(grow(ref)) for _ in range(3)])
"""


def test_a_cached_task_that_changes_a_placed_object(tmp_path: Path, qshpc_home: Path) -> None:
    """Under ``mpiexec -n 2`` (one worker) with the result cache: on 8cc329b the calls
    gave [7, 8, 7]: the second computed on the first's change, and its result went to
    the cache under the key of ``[1, 2, 3]`` (a later run could be served 8)."""
    prog = tmp_path / "prog.py"
    prog.write_text(CACHED)
    env = {"QSHPC_CACHE_DIR": str(tmp_path / "cache")}
    out = run_cli("run", str(prog), ranks=2, timeout=100, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OUT [7, 7, 7]" in out.stdout, out.stdout[-2000:]


CLASS_PUT = """\
from dataclasses import dataclass, field
import numpy as np
from qshpc import distribute_task, get, put

@dataclass
class Box:
    items: list = field(default_factory=list)
    arr: np.ndarray = field(default_factory=lambda: np.zeros(3))

@distribute_task()
def f(b):
    n = len(b.items)
    b.items.append(1)
    return n, type(b).__name__, bool(b.arr.flags.writeable)

ref = put(Box())
print("OUT", get([f(ref) for _ in range(3)]), type(get(ref)).__name__)
"""


def test_a_placed_instance_of_a_class_of_the_program(tmp_path: Path, qshpc_home: Path) -> None:
    """``put(Box())``, Box a dataclass of the program file (Ray sends it by value). On
    8cc329b the worker died unpickling the batch ('Can't get attribute 'Box' on <module
    'qshpc.__main__'>') and the job FAILED: 'rank 1 ... died: exit code 1'."""
    prog = tmp_path / "prog.py"
    prog.write_text(CLASS_PUT)
    out = run_cli("run", str(prog), ranks=2, timeout=100)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OUT [(0, 'Box', False), (0, 'Box', False), (0, 'Box', False)] Box" in out.stdout


@as_root
def test_a_job_folder_another_user_made_is_refused(tmp_path: Path, qshpc_home: Path) -> None:
    """``--job-dir D`` where D is an empty folder a neighbour made (``mkdir /tmp/D``). On
    8cc329b root's run took it (its chmod 0700 works for root), and the neighbour, still
    its owner, swapped ``job.h5``: ``qshpc result D`` printed their 666 for the job's 42.
    Another user got 'cannot write D/job.h5: Operation not permitted. Check that the
    folder is writable' (it was: the chmod was refused)."""
    prog = tmp_path / "prog.py"
    prog.write_text("from qshpc import save_result\nsave_result(42)\n")
    planted = tmp_path / "planted"
    planted.mkdir(mode=0o755)
    os.chown(planted, NEIGHBOUR, NEIGHBOUR)
    out = run_cli("run", str(prog), "--job-dir", str(planted), timeout=60)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "belongs to" in out.stderr and "uid 65534" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert list(planted.iterdir()) == [] and planted.stat().st_mode & 0o777 == 0o755
    with pytest.raises(UserError, match="belongs to"):  # the clients' path (LocalClient.run)
        create_job(planted, {"id": "x", "created": time.time()}, {})
    assert list(planted.iterdir()) == []


@as_root
def test_a_run_refused_for_a_full_disk_leaves_no_lock_claim(tmp_path: Path) -> None:
    """``qshpc run --resume JOB`` while the job's disk is full (a real tmpfs). On 8cc329b
    each refused run left an empty ``job.lock|host|pid|n`` in the job folder (flufl.lock's
    claim file, made before its write failed); the refusal itself was clear."""
    with tmpfs(tmp_path / "disk", "size=2m") as mnt:
        prog = tmp_path / "prog.py"
        prog.write_text("from qshpc import save_result\nsave_result(42)\n" + FAIL_AT_END)
        env = {"QSHPC_HOME": str(mnt / "home")}
        assert run_cli("run", str(prog), env={**env, **FAIL}, timeout=60).returncode == 1
        job = job_dir_of(mnt / "home")
        with open(mnt / "filler", "wb") as fh:  # fill the disk to its last block
            try:
                while True:
                    fh.write(bytes(1 << 16))
            except OSError:
                pass
        for workers in ("0", "1"):
            out = run_cli("run", str(prog), "--resume", str(job), "--workers", workers, env=env)
            assert out.returncode == 2, (out.stdout, out.stderr)
            assert "cannot lock job" in out.stderr and "No space left" in out.stderr
        assert sorted(p.name for p in job.iterdir()) == ["job.h5", "logs"]
        (mnt / "filler").unlink()
        out = run_cli("result", str(job), env=env, timeout=60)
        assert out.stdout.strip() == "42", (out.stdout, out.stderr)


@as_root
def test_a_job_or_arguments_file_not_created_for_a_full_disk_says_try_again(
    tmp_path: Path,
) -> None:
    """A full disk when the job is created (or ``save_arguments`` writes its file). On
    8cc329b the line ended 'every result committed before is kept: free space (df -h),
    then resume the job (qshpc run PROGRAM --resume JOB)': there was no job to resume
    (its folder was removed), and the file saved no result."""
    from qshpc import save_arguments
    from qshpc.errors import StoreError

    with tmpfs(tmp_path / "disk", "size=1m") as mnt:
        with open(mnt / "filler", "wb") as fh:
            try:
                while True:
                    fh.write(bytes(1 << 16))
            except OSError:
                pass
        prog = tmp_path / "prog.py"
        prog.write_text("from qshpc import save_result\nsave_result(42)\n")
        out = run_cli("run", str(prog), "--workers", "0", env={"QSHPC_HOME": str(mnt / "h")})
        assert out.returncode == 2, (out.stdout, out.stderr)
        assert "no space left on device" in out.stderr and "(creating it)" in out.stderr
        assert "nothing was written" in out.stderr and "--resume" not in out.stderr
        with pytest.raises(StoreError, match="nothing was written") as err:
            save_arguments(mnt / "args.h5", {"a": 1})
        assert "--resume" not in str(err.value) and not (mnt / "args.h5").exists()


@as_root
def test_a_job_the_disk_stopped_before_it_started_is_failed_not_queued(tmp_path: Path) -> None:
    """The job is created, then the disk has no room for the run (its 1 MiB reserve). On
    8cc329b ``qshpc run`` exited 2 and left the job QUEUED for good: ``qshpc list``
    showed a job that never runs, and ``qshpc rm`` refused it ('cancel it first')."""
    with tmpfs(tmp_path / "disk", "size=1m") as mnt:
        (mnt / "filler").write_bytes(bytes(800 * 1024))  # room for the job, not for its run
        prog = tmp_path / "prog.py"
        prog.write_text("from qshpc import save_result\nsave_result(42)\n")
        env = {"QSHPC_HOME": str(mnt / "home")}
        out = run_cli("run", str(prog), "--workers", "0", env=env, timeout=60)
        assert out.returncode == 2, (out.stdout, out.stderr)
        assert "no space left on device" in out.stderr and "Traceback" not in out.stderr
        job = job_dir_of(mnt / "home")
        status = run_cli("status", str(job), env=env, timeout=60)
        assert status.stdout.startswith("FAILED"), status.stdout
        assert "no space left on device" in status.stdout
        (mnt / "filler").unlink()
        out = run_cli("run", str(prog), "--resume", str(job), "--workers", "0", env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        assert run_cli("result", str(job), env=env, timeout=60).stdout.strip() == "42"


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2]",
        '{"state": 5}',
        '{"state": "\\u001b[31mHACK"}',
        '{"state": "FAILED", "error": ["a"], "time": "x"}',
        '{"state": "SUCCEEDED"}',
    ],
)
def test_a_damaged_status_file_is_not_taken(tmp_path: Path, qshpc_home: Path, text: str) -> None:
    """``status.json`` (the end qshpc records beside the store of a job whose ranks never
    finalized it) damaged, for a job that never ran. On 8cc329b it was taken as it was:
    '[1, 2]' or an error that is no text made ``qshpc status`` and ``result`` print a
    TypeError traceback, ESC bytes in its state reached the terminal through ``qshpc
    result``, and ``{"state": "SUCCEEDED"}`` made ``qshpc result`` print None, exit 0."""
    job = tmp_path / "job"
    create_job(job, {"id": "j1", "created": time.time()}, {})
    (job / "status.json").write_text(text)
    status = run_cli("status", str(job), timeout=60)
    assert status.returncode == 0 and status.stdout.startswith("QUEUED"), status
    out = run_cli("result", str(job), timeout=60)
    assert out.returncode == 2 and "is QUEUED: it has no result yet" in out.stderr, out
    assert "Traceback" not in out.stderr + status.stderr and "\x1b" not in out.stderr


def test_a_stored_error_reaches_the_terminal_escaped(tmp_path: Path, qshpc_home: Path) -> None:
    """A program whose exception text holds ESC and BEL (an OSC title, a screen clear).
    ``qshpc status`` escaped them; on 8cc329b ``qshpc result`` of the FAILED job printed
    the stored error raw ('qshpc: error: job ... ended FAILED: ...')."""
    prog = tmp_path / "prog.py"
    prog.write_text('raise RuntimeError("\\x1b]0;pwned\\x07 \\x1b[2J cleared")\n')
    assert run_cli("run", str(prog), "--workers", "0", timeout=60).returncode == 1
    out = run_cli("result", str(job_dir_of(qshpc_home)), timeout=60)
    assert out.returncode == 1, out
    assert "\\x1b]0;pwned\\x07 \\x1b[2J cleared" in out.stderr, out.stderr
    assert "\x1b" not in out.stderr and "\x07" not in out.stderr


_RAN: list[int] = []


def _ran() -> None:
    _RAN.append(1)


class _Runs:
    """A pickled value whose loading would run code (here: it records that it did)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_ran, ())


@as_root
def test_pickled_arguments_in_a_folder_others_can_write_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--arguments F``, F the user's own (0600) in a folder others can write without a
    sticky bit (a 0777 project folder). On 8cc329b F passed the owner check, and a
    neighbour who renamed their pickle over F right after it (the race is injected here:
    the rename runs just after the check) got it unpickled: their code ran."""
    from qshpc.jobs import prepare
    from qshpc.store import perms, save_arguments

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    theirs, mine = shared / "theirs.h5", shared / "args.h5"
    save_arguments(theirs, {"x": _Runs()})
    os.chown(theirs, NEIGHBOUR, NEIGHBOUR)
    save_arguments(mine, {"x": [1]})
    check = perms.private_to_me

    def check_then_swap(path: Path) -> bool:
        ok = check(path)
        if theirs.exists():
            os.replace(theirs, mine)
        return ok

    monkeypatch.setattr(perms, "private_to_me", check_then_swap)
    _RAN.clear()
    with pytest.raises(UserError, match="a folder above it"):
        prepare.load_arguments_file(mine)
    assert not _RAN
    monkeypatch.setattr(perms, "private_to_me", check)
    sticky = tmp_path / "sticky"  # as /tmp: others cannot rename over what is not theirs
    sticky.mkdir()
    sticky.chmod(0o1777)
    save_arguments(sticky / "args.h5", {"x": _Runs()})
    prepare.load_arguments_file(sticky / "args.h5")
    assert _RAN == [1]
