"""How the local launcher ends when rank 0 was to create the job (issue 19) and how it
notices mpiexec's exit (no ranks started here: plain processes stand in for them)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from qshpc.jobs.endnote import read_end_note
from qshpc.launch.deaths import Deaths
from qshpc.launch.local import _cancel_before_start, _EndNote, _not_created, _Signals
from qshpc.runtime.rank0 import tell_launcher


def test_a_wait_ends_when_the_watched_mpiexec_exits() -> None:
    proc = subprocess.Popen(["sleep", "0.2"])
    deaths = Deaths()
    try:
        deaths.watch_end(proc.pid)
        start = time.monotonic()
        deaths.wait(60)  # returns at the exit, not after 60 s
        assert time.monotonic() - start < 30
        assert proc.wait(timeout=10) == 0
        deaths.wait(0)
        assert deaths.order == []  # mpiexec is not a rank: nobody is blamed for it
    finally:
        deaths.close()


def test_ranks_found_dead_in_one_wait_are_in_the_order_they_died() -> None:
    """The launcher may not run for a while (a loaded node) and then find the killed worker
    and the rank 0 that mpiexec killed after it both dead in one wait: the first dead must
    still come first (select.poll listed them by descriptor, so rank 0 was blamed: the
    flaky test_worker_dies::test_a_worker_killed_from_outside...[1])."""
    ranks = [subprocess.Popen(["sleep", "60"]) for _ in range(4)]
    deaths = Deaths()
    try:
        for rank, proc in enumerate(ranks):
            deaths.watch(rank, proc.pid)
        for rank in (2, 0, 3, 1):
            ranks[rank].send_signal(signal.SIGKILL)
            ranks[rank].wait(timeout=10)  # dead (and reaped) before the next one is killed
        deaths.wait(0)  # one wait finds all four
        assert [rank for rank, _ in deaths.order] == [2, 0, 3, 1]
    finally:
        deaths.close()
        for proc in ranks:
            proc.kill()
            proc.wait()


_RANK = """
import sys, time
from qshpc.runtime import start
start._hold_launcher_socket()
print("ready", flush=True)
if sys.stdin.readline().strip() == "close":
    start._held[0].close()  # as a dying process's files close, long before its end
    time.sleep(0.5)
else:
    time.sleep(60)
"""


def test_the_rank_whose_connection_closed_first_is_first_though_others_end_before_it() -> None:
    """Seen under load: rank 1 kill -9ed, mpiexec saw its pipes close and killed ranks 0 and
    2, and both turned their pidfds readable before rank 1 did (rank 2 or 0 blamed). Each rank
    holds a connection to the launcher: it closes with the rank's files, which is what
    mpiexec reacts to, so its order is the real one."""
    import os
    import sys

    deaths = Deaths()
    name = deaths.listen("t" + os.urandom(4).hex())
    assert name is not None
    env = {**os.environ, "QSHPC_LAUNCH_WATCH": name}
    ranks = [
        subprocess.Popen(
            [sys.executable, "-c", _RANK], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        for _ in range(3)
    ]
    try:
        for rank, proc in enumerate(ranks):
            assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
            deaths.watch(rank, proc.pid)
        deadline = time.monotonic() + 30
        while len(deaths.connected) < 3 and time.monotonic() < deadline:
            deaths.wait(0.05)
        assert deaths.connected == {p.pid for p in ranks}
        assert ranks[1].stdin is not None
        ranks[1].stdin.write(b"close\n")
        ranks[1].stdin.flush()
        while not deaths.closed and time.monotonic() < deadline:
            deaths.wait(0.05)
        for rank in (0, 2):  # "mpiexec" ends the others: they are gone before rank 1 is
            ranks[rank].kill()
            ranks[rank].wait(timeout=10)
        ranks[1].wait(timeout=10)
        while len(deaths.order) < 3 and time.monotonic() < deadline:
            deaths.wait(0.05)
        assert [r for r, _ in deaths.order][-1] == 1  # by pidfds: rank 1 ended last
        assert deaths.ordered()[0] == (1, ranks[1].pid)
    finally:
        deaths.close()
        for proc in ranks:
            proc.kill()
            proc.wait()


def test_without_every_connection_the_pidfds_decide() -> None:
    deaths = Deaths()
    try:
        deaths.order = [(2, 20), (1, 10)]
        deaths.ranks = {10: 1, 20: 2}
        deaths.connected, deaths.closed = {10}, [10]  # rank 2 never connected
        assert deaths.ordered() == [(2, 20), (1, 10)]
        deaths.connected = {10, 20}
        assert deaths.ordered() == [(1, 10), (2, 20)]
    finally:
        deaths.close()


def test_a_job_rank0_never_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "jobs" / "j1"
    assert _not_created(job, "j1", 2, "qshpc: error: cannot load arguments", None) == 2
    assert capsys.readouterr().err == ""  # rank 0 said why
    assert _not_created(job, "j1", 1, "", signal.SIGINT) == 130
    assert "j1 cancelled (SIGINT) before it was created" in capsys.readouterr().err
    assert _not_created(job, "j1", 9, "Traceback ...", None) == 1
    err = capsys.readouterr().err
    assert "j1 FAILED" in err and "code 9" in err and str(job) in err
    assert not job.exists()
    # A rank killed while the ranks started (the OOM killer, kill -9), before rank 0
    # created the job: named, with its signal; not "rank 0 could not create it, see above".
    banner = "=   PID 4242 RUNNING AT vm\n=   EXIT CODE: 9\n"
    assert _not_created(job, "j1", 9, banner, None, [(1, 4242), (0, 4241)]) == 1
    err = capsys.readouterr().err
    assert "j1 FAILED while its ranks started, before it was created" in err
    assert "rank 1 (pid 4242) died: SIGKILL" in err and "out-of-memory killer" in err
    assert "see above" not in err and len(err.strip().splitlines()) == 1
    assert not job.exists()


def test_a_cancel_before_mpiexec_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        signals = _Signals()
        signals.received.append(signal.SIGTERM)
        job = tmp_path / "jobs" / "j2"
        assert _cancel_before_start(job, "j2", signals) == 143
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    assert "j2 cancelled (SIGTERM) before it was created" in capsys.readouterr().err
    assert not job.exists()


def test_rank0_dying_after_the_workers_left_mpi_is_the_one_blamed(tmp_path: Path) -> None:
    """Workers leave MPI (exit 0) once they said goodbye, while rank 0 still makes the
    store final: if rank 0 dies then, the workers ended first but are not the cause."""
    from qshpc.jobs.postmortem import describe

    ranks = [{"rank": r, "host": "vm", "pid": 100 + r} for r in range(3)]
    meta = {"id": "j", "ranks": ranks}
    output = "[mpiexec@vm] Exit codes: [vm] 9,0,0\n"
    text = describe(tmp_path, meta, set(), output, [(1, 101), (2, 102), (0, 100)])
    assert text.startswith("rank 0 on host vm (pid 100) died: SIGKILL"), text
    assert "ended the other ranks" not in text
    # A worker killed first is still the one blamed (mpiexec then ends the others).
    output = "[mpiexec@vm] Exit codes: [vm] 9,9,15\n"
    text = describe(tmp_path, meta, set(), output, [(1, 101), (0, 100), (2, 102)])
    assert text.startswith("rank 1 on host vm (pid 101) died: SIGKILL"), text
    assert "ended the other ranks" in text


def test_rank0s_end_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher takes the exit code from rank 0's note only when it is this run's and final."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    note = _EndNote()
    assert Path(note.path).parent == tmp_path and Path(note.path).stat().st_mode & 0o077 == 0
    assert note.read("t1") is None  # empty: rank 0 died before the store was final
    tell_launcher(note.path, "t1", "FAILED", "boom")
    assert note.read("t1") == {"token": "t1", "state": "FAILED", "error": "boom"}
    assert note.read("t2") is None  # another run's
    tell_launcher(note.path, "t1", "RUNNING", None)
    assert note.read("t1") is None  # not an end
    Path(note.path).write_bytes(b'{"token": "t1", "sta')  # torn (a full disk)
    assert note.read("t1") is None
    note.remove()
    tell_launcher(note.path, "t1", "SUCCEEDED", None)  # never creates the file, never raises
    assert not Path(note.path).exists()
    note.remove()


def test_one_reader_serves_the_launcher_and_the_client(tmp_path: Path) -> None:
    """read_end_note: the launcher passes its token (another run's note is not its end);
    a client's Job passes none (its note is given to its own launcher only)."""
    path = str(tmp_path / "qshpc-end-1-x")
    assert read_end_note(path) is None  # gone
    Path(path).write_bytes(b"")
    assert read_end_note(path) is None and read_end_note(path, "t1") is None  # not written yet
    assert read_end_note("") is None  # no note
    tell_launcher(path, "t1", "CANCELED", None)
    end = {"token": "t1", "state": "CANCELED", "error": None}
    assert read_end_note(path) == end == read_end_note(path, "t1")
    assert read_end_note(path, "t2") is None  # another run's: the launcher does not take it
    tell_launcher(path, None, "SUCCEEDED", None)  # rank 0 run without a launcher's token
    assert read_end_note(path) == {"token": None, "state": "SUCCEEDED", "error": None}
    assert read_end_note(path, "t1") is None
    for text in (b"[1, 2]", b'"SUCCEEDED"', b'{"state": "RUNNING"}', b'{"state": "DAMAGED"}'):
        Path(path).write_bytes(text)
        assert read_end_note(path) is None, text  # not a note of an end


def test_a_signal_is_held_until_rank_0_handles_it() -> None:
    """A cancel while rank 0 is still importing waits for rank 0's handling (it would die of
    it with a traceback, or leave the others in MPI_Init), then goes to rank 0 alone."""
    import sys

    code = (
        "import signal, sys, time; time.sleep(0.5); "
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(7)); time.sleep(60)"
    )
    rank0 = subprocess.Popen([sys.executable, "-c", code])
    mpiexec = subprocess.Popen(["sleep", "60"])
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        signals = _Signals()
        signals.forward_to(mpiexec, [rank0.pid])
        signals._on_signal(signal.SIGTERM, None)  # as the user's kill would call it
        deadline = time.monotonic() + 30
        while signals.held and time.monotonic() < deadline:
            time.sleep(0.05)
            signals.pass_on()  # as the launcher's watch loop does
        assert rank0.wait(timeout=30) == 7  # handled, not killed by it
        assert mpiexec.poll() is None  # mpiexec was not told
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for proc in (rank0, mpiexec):
            proc.kill()
            proc.wait()


def test_a_job_failed_by_the_post_mortem_has_an_end_time(tmp_path: Path) -> None:
    # Its duration stopped at the death, not running on to now ("finished -  (37.2m)").
    from qshpc.client.job import Job
    from qshpc.jobs.paths import mark_terminal
    from qshpc.store import create_job

    job = tmp_path / "j2"
    create_job(job, {"id": "j2", "title": "t", "created": time.time() - 600}, None)
    mark_terminal(job, "FAILED", "rank 1 (pid 7) died: SIGKILL")
    j = Job(job)
    meta = j.complete_info(j.store_meta())
    assert meta["state"] == "FAILED" and abs(float(meta["finished"]) - time.time()) < 60


def test_a_queued_job_whose_run_died_before_it_started_is_failed(tmp_path: Path) -> None:
    # Under plain mpiexec (no launcher to record it), a rank killed between rank 0's
    # creation of the job and its start left it QUEUED for good.
    import sys

    from qshpc.client.job import Job
    from qshpc.store import create_job
    from qshpc.store.lock import JobLock

    waiting, orphan = tmp_path / "waiting", tmp_path / "orphan"
    for job in (waiting, orphan):
        create_job(job, {"id": job.name, "title": "t", "created": time.time()}, None)
    claim = f"import os; from pathlib import Path; from qshpc.store.lock import JobLock; " \
            f"JobLock(Path({str(orphan)!r}), 'qshpc run').acquire(); os._exit(0)"  # fmt: skip
    subprocess.run([sys.executable, "-c", claim], check=True, timeout=60)
    j = Job(orphan)
    meta = j.complete_info(j.store_meta())
    assert meta["state"] == "FAILED" and "ended before the job started" in meta["error"]
    assert f"--resume {orphan}` runs it" in meta["error"]  # its folder: not in the store (F3)
    j = Job(waiting)  # a client's job waiting for its run: no claim yet
    assert j.complete_info(j.store_meta())["state"] == "QUEUED"
    lock = JobLock(waiting, "qshpc run").acquire()  # claimed by a live run, about to start
    try:
        assert j.complete_info(j.store_meta())["state"] == "QUEUED"
    finally:
        lock.release()
