"""Session 26, fix42e: review44's findings F3, F4 and F6 (F1 is in tests/slurm and
tests/unit/test_dispatcher.py, F5 in tests/notebook)."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from qshpc import distribute_task, get
from qshpc.errors import TaskError, UserError
from qshpc.store import load_arguments
from tests.conftest import run_cli


@distribute_task()
def boom() -> None:
    raise ValueError("boom")


def test_each_get_of_a_failed_reference_raises_an_exception_with_its_own_traceback() -> None:
    """review44 F3: ``raise self._error`` raised one shared object, so each ``get`` added its
    frames to one traceback (12 frames after 3 caught gets, pointing at handled lines)."""
    ref = boom()
    caught: list[BaseException] = []
    depths: list[int] = []
    for _ in range(3):
        with pytest.raises(ValueError) as info:
            get(ref)
        caught.append(info.value)
        depths.append(len(traceback.extract_tb(info.value.__traceback__)))
    assert depths[0] == depths[1] == depths[2], depths  # was 4, 8, 12 frames
    assert len({id(e) for e in caught}) == 3
    first = caught[0]
    assert isinstance(first, TaskError) and "boom" in first.remote_traceback
    assert all(str(e) == str(first) and e.args == first.args for e in caught)
    assert all(type(e) is type(first) and e.remote_traceback == first.remote_traceback
               for e in caught)  # fmt: skip
    stored = ref.exception()
    assert stored is not None and stored.__traceback__ is None  # nothing raised it


def test_save_arguments_refuses_a_json_name(tmp_path: Path) -> None:
    """review44 F4: ``save_arguments('args.json', ...)`` wrote HDF5 under a .json name, which
    `--arguments` reads as JSON. Any other name (none, .txt, .HDF5) is HDF5, as it was, and
    loads back (session 26, lead: fix42e refused those too)."""
    from qshpc import save_arguments

    with pytest.raises(UserError, match=r"ends in \.json, .*: name it .*args\.h5"):
        save_arguments(tmp_path / "args.json", {"circuits": [1, 2]})
    assert not (tmp_path / "args.json").exists()
    for name in ("args", "args.txt", "args.HDF5"):
        save_arguments(tmp_path / name, {"circuits": [1, 2]})
        assert load_arguments(tmp_path / name) == {"circuits": [1, 2]}


def test_an_hdf5_arguments_file_named_json_is_named_for_what_it_is(tmp_path: Path) -> None:
    """review44 F4: ``--arguments a2.json`` (HDF5 inside) said "not valid JSON ('utf-8' codec
    can't decode byte 0x89 ...)"; it now says it is HDF5 and what to rename it to."""
    from qshpc import save_arguments

    save_arguments(tmp_path / "a2.h5", {"circuits": [1, 2]})
    (tmp_path / "a2.h5").rename(tmp_path / "a2.json")
    with pytest.raises(UserError, match=r"it is an HDF5 file under a \.json name") as info:
        load_arguments(tmp_path / "a2.json")
    assert "rename it to a2.h5" in str(info.value) and "utf-8" not in str(info.value)
    (tmp_path / "prog.py").write_text("import qshpc\nqshpc.save_result(1)\n")
    out = run_cli("run", str(tmp_path / "prog.py"), "--arguments", str(tmp_path / "a2.json"),
                  "--workers", "0", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert "it is an HDF5 file under a .json name" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):  # a real JSON mistake: as before
        load_arguments(tmp_path / "bad.json")


def test_a_lost_workers_error_ends_with_what_is_kept_and_the_resume_command(
    tmp_path: Path,
) -> None:
    """review44 F2 (the line rank 0 completes; tests/slurm/test_fix42e_slurm.py runs it)."""
    from qshpc.program.session import Session
    from qshpc.runtime.rank0 import with_resume

    session = Session(None, None, {})
    session.executed = 10
    lost = "Traceback ...\nWorkerLostError: worker rank 3 on host n2 (pid 7) stopped responding"
    slurm = {"scheduler": "slurm", "slurm_resources": {"nodes": 2}}
    job = tmp_path / "jobs" / "20261205-190000-abcdef"
    got = with_resume(lost, slurm, job, session).splitlines()
    assert got[-1] == (
        "WorkerLostError: worker rank 3 on host n2 (pid 7) stopped responding; 10 finished "
        f"task results are kept in the store; `qshpc submit --resume {job}` runs only the "
        "unfinished tasks"
    )
    hint = "qshpc: hint: import X instead"
    got = with_resume(f"{lost}\n{hint}", {"entrypoint": "/p/prog.py"}, job, session)
    assert got.splitlines()[-1] == hint  # the hint stays last, the summary shows both
    assert f"`qshpc run /p/prog.py --resume {job}` runs only" in got.splitlines()[-2]
    assert with_resume("ValueError: boom", slurm, job, session) == "ValueError: boom"


def test_a_leave_that_reaches_the_workers_loop_gets_its_goodbye() -> None:
    """review44 F1: LEAVE is sent as a call ends; the worker's loop (its probe takes any tag)
    may get it before the heartbeat thread: it says goodbye there (on a first version the
    loop took it and failed: 'Message truncated', rank 1 exited 1)."""
    import time

    from qshpc.runtime.protocol import TAG_BYE, TAG_LEAVE
    from tests.unit.loopback_ranks import loopback_ranks

    with loopback_ranks(1) as (d, net, threads):
        d.liveness.timeout = 60.0
        net.deliver(1, TAG_LEAVE, ("L", "the program ended while task 9 (f) still ran here"))
        threads[0].join(10)
        assert not threads[0].is_alive()  # its loop returned, after its goodbye
        assert [(src, dest) for src, dest, _ in net.sent(TAG_BYE, channel=1)] == [(1, 0)]
        time.sleep(0.3)  # (no second goodbye from the heartbeat thread)
        assert len(net.sent(TAG_BYE, channel=1)) == 1
        d.workers[0].alive = False  # rank 0 told it to leave: no STOP for it at the end


def test_a_worker_whose_process_ends_is_seen_on_its_host() -> None:
    """review44 F2: under Slurm a dead worker was lost only at the 30 s heartbeat timeout.
    A process of its host (rank 0, or another worker) sees its process end: a real
    process here, killed, with its pid and start time as MPI's start records them."""
    import os
    import signal
    import socket
    import subprocess

    from qshpc.runtime.gone import ended, neighbours
    from qshpc.runtime.liveness import Liveness, WorkerState
    from qshpc.runtime.loopback import Loopback
    from qshpc.runtime.mpi import _pidns, _started
    from qshpc.runtime.procs import stat_fields
    from qshpc.runtime.protocol import TAG_GONE

    child = subprocess.Popen(["sleep", "60"])
    try:
        ticks = int(stat_fields(child.pid)[19])
        host, ns = socket.gethostname(), _pidns()
        records = [
            {"rank": 0, "host": host, "pid": os.getpid(), "start_ticks": _started(), "pidns": ns},
            {"rank": 1, "host": host, "pid": child.pid, "start_ticks": ticks, "pidns": ns},
            {"rank": 2, "host": "elsewhere", "pid": child.pid, "start_ticks": ticks, "pidns": ns},
            {"rank": 3, "host": host, "pid": child.pid, "start_ticks": ticks, "pidns": -1},
        ]
        assert neighbours(records, 0) == {1: (child.pid, ticks)}  # not another host's or ns's
        assert not ended(child.pid, ticks) and ended(child.pid, ticks + 1)  # a pid reused
        workers = [WorkerState(r, records[r]["host"], child.pid) for r in (1, 2, 3)]
        net = Loopback(4)
        live = Liveness(net.wiring(0), workers, 30.0, records)
        assert live.gone() == []
        net.deliver(0, TAG_GONE, ("G", 3), source=2, channel=1)  # a worker's report, on n2 say
        assert live.gone() == [(workers[2], "seen by rank 2 on the same host")]
        workers[2].alive = False
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert ended(child.pid, ticks)
        assert live.gone() == [(workers[0], "seen by rank 0 on the same host")]
        live.lose(workers[0], 0.0, "seen by rank 0 on the same host")
        assert f"(pid {child.pid}) ended (its process is gone, seen by rank 0" in live.lost[0]
        assert live.gone() == []  # once
    finally:
        child.kill()
        child.wait()
