"""Session 20's hunt in the fork server: what the review of session 19 left, on real jobs.

Each test runs ``qshpc run`` (or a user's ``mpiexec``) as users do; a wrapper
that patches the launcher is used only to inject what cannot be made real (its
own code raising, a stalled connection at the right moment), and a forced pid
(root's ``ns_last_pid``) to make a pid's reuse happen when it matters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, job_dir_of, mpiexec, run_cli
from tests.mpi.test_forkserver import _live, _no_process_left, _processes

pytestmark = pytest.mark.mpi

#: A wrapper of ``python -m qshpc``: patches the launcher as ``PATCH`` says, then runs it.
WRAPPER = """
import os, runpy, signal, socket, sys, time
patch = os.environ.get("PATCH", "")
if patch == "raise":  # the launcher's own code raises once the ranks are running
    import qshpc.launch.local as local

    def watch(*args, **kwargs):
        deadline = time.monotonic() + 90
        while not os.path.exists(os.environ["STARTED"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.environ.get("STOP_RANKS"):  # the ranks were stopped (kill -STOP) meanwhile
            me = os.getpid()
            for kid in open(f"/proc/{me}/task/{me}/children").read().split():
                if b"qshpc.runtime.forkserver" in open(f"/proc/{kid}/cmdline", "rb").read():
                    for rank in open(f"/proc/{kid}/task/{kid}/children").read().split():
                        os.kill(int(rank), signal.SIGSTOP)
        raise RuntimeError("injected: the launcher's own code raised")

    local._watch = watch
elif patch == "stall":  # a same-user connection that sent part of a request, then nothing
    import qshpc.runtime.forkserver as fs

    real, held = fs.start, []

    def start(*args, **kwargs):
        server = real(*args, **kwargs)
        if server is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect("\\0" + server.name)
            if os.environ.get("STALL_FDS"):  # with a descriptor, as a stand-in sends its own
                r, w = os.pipe()
                with open(os.environ["STALL_FDS"], "w") as f:
                    f.write(os.readlink(f"/proc/self/fd/{w}"))
                socket.send_fds(sock, [b"\\0\\0\\0\\x20{"], [w] * 40)  # (numbers past a rank's)
                os.close(w)
                held.append(r)
            else:
                sock.sendall(b"\\0\\0\\0\\x20{")
            held.append(sock)
        return server

    fs.start = start
sys.argv = ["qshpc", *sys.argv[1:]]
runpy.run_module("qshpc", run_name="__main__", alter_sys=True)
"""


def _wrapped(tmp_path: Path, *args: str) -> list[str]:
    """``python -m qshpc ARGS`` through :data:`WRAPPER` (its ``PATCH`` in the environment)."""
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    return [sys.executable, str(wrapper), *args]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


# 3. The launcher's own code raised: the ranks get a SIGTERM first, the store opens.

HALF = """
import os, time
import qiskit
from qshpc import distribute_task, get, save_result

@distribute_task()
def task(i):
    time.sleep(0.05 if i < 4 else 60)
    return i

first = get([task(i) for i in range(4)])
open(os.environ["STARTED"], "w").close()
save_result(first + get([task(i) for i in range(4, 8)]))
"""


@pytest.mark.parametrize("server,stopped", [("1", ""), ("1", "1"), ("0", "")])
def test_a_launcher_that_raised_leaves_a_store_that_opens(
    server: str, stopped: str, qshpc_home: Path, tmp_path: Path
) -> None:
    """Server.stop() killed the ranks (SIGKILL): rank 0's final fold never ran. They now
    get a SIGTERM and a grace period, as mpiexec gives them without the server (and a
    SIGCONT: ranks stopped meanwhile act on it)."""
    program = tmp_path / "half.py"
    program.write_text(HALF)
    started = tmp_path / "started"
    cmd = _wrapped(tmp_path, "run", str(program), "--workers", "2")
    env = _env(PATCH="raise", STARTED=str(started), QSHPC_FORK_SERVER=server, STOP_RANKS=stopped)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=150, env=env)
    assert out.returncode != 0 and "injected" in out.stderr, out.stdout + out.stderr
    assert started.exists()
    _no_process_left(tmp_path)
    job = job_dir_of(qshpc_home).name
    status = run_cli("status", job, "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "Damaged" not in status.stdout + status.stderr
    meta = json.loads(status.stdout)
    if server == "1":  # rank 0 stored its end: the store was made final
        assert meta["state"] == "CANCELED", meta
    else:  # (mpiexec's SIGTERM comes once the launcher is gone: no reader of the ranks' output)
        assert meta["state"] in ("CANCELED", "FAILED"), meta


# 5. A stalled same-user connection holds no other rank.

QUICK = """
import qiskit
from qshpc import distribute_task, get, save_result

@distribute_task()
def task(i):
    return i * i

save_result(get([task(i) for i in range(4)]))
"""


def test_a_stalled_connection_does_not_delay_the_job(qshpc_home: Path, tmp_path: Path) -> None:
    """The server read a request with a 10 s timeout, one connection at a time: a same-user
    connection that sent part of one held every rank behind it for 10 s."""
    program = tmp_path / "quick.py"
    program.write_text(QUICK)
    cmd = _wrapped(tmp_path, "run", str(program), "--workers", "2")
    took = {}
    for patch in ("", "stall", "", "stall"):
        t0 = time.monotonic()
        out = subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, env=_env(PATCH=patch)
        )
        assert out.returncode == 0, out.stdout + out.stderr
        took.setdefault(patch, []).append(time.monotonic() - t0)
    assert min(took["stall"]) < min(took[""]) + 4.0, took
    _no_process_left(tmp_path)


# 4. A descriptor at RLIMIT_NOFILE - 1: the hand-over never fails the rank.


@pytest.mark.parametrize("limit", [256, 1024])
def test_a_descriptor_at_the_limit_is_handed_over(
    limit: int, qshpc_home: Path, tmp_path: Path
) -> None:
    """`_take_descriptors` asked F_DUPFD for a number above the highest one: EINVAL when
    that is the last the limit allows, and the rank died with a traceback."""
    program = tmp_path / "quick.py"
    program.write_text(QUICK)
    top = limit - 1
    script = f'ulimit -n {limit} && exec {top}</dev/null && exec "$@"'
    rank = [sys.executable, "-m", "qshpc", "run", str(program)]
    cmd = [mpiexec(), "-n", "3", "bash", "-c", script, "bash", *rank]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert "SUCCEEDED" in out.stdout + out.stderr
    _no_process_left(tmp_path)


# 2. pid reuse: a signal a stand-in passes on never reaches another process.

SHORT = """
import time
import qiskit
from qshpc import distribute_task, get, save_result

@distribute_task()
def task(i):
    time.sleep(1.0)
    return i

print("started", flush=True)
save_result(get([task(i) for i in range(2)]))
"""


def _force_pid(pid: int) -> subprocess.Popen[bytes] | None:
    """A ``sleep`` in a session of its own whose pid is ``pid`` (root's ns_last_pid)."""
    for _ in range(50):
        try:
            Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        except OSError:
            return None
        decoy = subprocess.Popen(["sleep", "120"], start_new_session=True)
        if decoy.pid == pid:
            return decoy
        decoy.kill()
        decoy.wait()
    return None


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _pmi_of(pid: int, fd: int) -> str:
    """What descriptor ``fd`` of ``pid`` is (a stand-in's ``PMI_FD``: its rank has it too)."""
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return ""


def test_a_signal_after_the_rank_ended_reaches_no_other_process(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """The stand-in passed signals on by pid: once its rank was reaped, that pid could be
    another process's (forced here), which got the rank's SIGTERM."""
    if os.getuid() != 0 or not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK):
        pytest.skip("needs root to choose the next pid")
    program = tmp_path / "short.py"
    program.write_text(SHORT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qshpc", "run", str(program), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    servers = _processes(tmp_path, "qshpc.runtime.forkserver")
    server = min(servers)
    stand_ins = [p for p in _processes(tmp_path, "--job-dir") if p not in servers]
    children = [p for p in servers if p != server]
    stand_in = max(stand_ins)
    env = Path(f"/proc/{stand_in}/environ").read_bytes().split(b"\0")
    pmi_fd = int(next(e for e in env if e.startswith(b"PMI_FD=")).split(b"=")[1])
    child = next(c for c in children if _pmi_of(c, pmi_fd) == _pmi_of(stand_in, pmi_fd))
    os.kill(stand_in, signal.SIGSTOP)  # it reads its rank's end only once continued
    deadline = time.monotonic() + 10
    while _state(child) != "T":  # the server stopped the rank too, as it would have been
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(child, signal.SIGCONT)  # the rank alone continues: it ends, the server reaps it
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/{child}"):  # ended, and reaped by the server
        assert time.monotonic() < deadline
        time.sleep(0.05)
    decoy = _force_pid(child)
    if decoy is None:
        os.kill(stand_in, signal.SIGCONT)
        proc.communicate(timeout=60)
        pytest.skip("could not give the rank's pid to another process")
    try:
        os.kill(stand_in, signal.SIGTERM)
        os.kill(stand_in, signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
        time.sleep(0.3)
        assert decoy.poll() is None, "the rank's SIGTERM reached the process that took its pid"
    finally:
        decoy.kill()
        decoy.wait()
    assert proc.returncode == 0, out + err
    _no_process_left(tmp_path)


# 1. Ctrl-Z, fg/bg; SIGSTOP/SIGCONT of a rank: as without the server.

BEATS = """
import os, time
import qiskit
from qshpc import distribute_task, get, save_result

@distribute_task()
def task(i):
    t0 = time.time()
    while time.time() - t0 < {seconds}:
        with open(os.path.join({folder!r}, f"beat-{{os.getpid()}}"), "w") as f:
            f.write(str(time.time()))
        time.sleep(0.05)
    return i

print("started", flush=True)
save_result(get([task(i) for i in range(2)]))
"""


def _beat_ages(folder: Path) -> list[float]:
    now = time.time()
    ages = []
    for beat in folder.glob("beat-*"):
        try:
            ages.append(now - float(beat.read_text()))
        except (OSError, ValueError):
            continue
    return ages


@pytest.mark.parametrize("server", ["1", "0"])
def test_sigstop_and_sigcont_of_the_ranks_stop_and_continue_them(
    server: str, qshpc_home: Path, tmp_path: Path
) -> None:
    """``kill -STOP`` of the ranks mpiexec started stops them; ``kill -CONT`` continues
    them. With the server those are stand-ins: SIGSTOP cannot be caught (nor passed on by
    them), the forked ranks ran on."""
    beats = tmp_path / "beats"
    beats.mkdir()
    program = tmp_path / "beats.py"
    program.write_text(BEATS.format(seconds=6, folder=str(beats)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "qshpc", "run", str(program), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(QSHPC_FORK_SERVER=server),
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 30
    while len(_beat_ages(beats)) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ranks = [p for p, cmd in _live(str(tmp_path)) if "--job-dir" in cmd and "mpiexec" not in cmd]
    ranks = [p for p in ranks if "qshpc.runtime.forkserver" not in Path(
        f"/proc/{p}/cmdline").read_text()]  # fmt: skip
    assert len(ranks) == 3, ranks
    for pid in ranks:
        os.kill(pid, signal.SIGSTOP)
    time.sleep(1.5)
    stopped = _beat_ages(beats)
    for pid in ranks:
        os.kill(pid, signal.SIGCONT)
    time.sleep(1.0)
    continued = _beat_ages(beats)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + err
    assert min(stopped) > 0.8, stopped  # no beat while they were stopped
    assert max(continued) < 0.5, continued  # beating again
    _no_process_left(tmp_path)


def test_ctrl_z_then_fg_under_a_terminal_as_without_the_server(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """An interactive shell: Ctrl-Z stops ``qshpc run`` and mpiexec (the ranks, in sessions
    of their own as hydra starts them, run on: with or without the server), ``fg`` continues
    it; the job succeeds either way, and the tasks beat on alike."""
    import pty

    ages = {}
    for server in ("1", "0"):
        beats = tmp_path / f"beats-{server}"
        beats.mkdir()
        program = tmp_path / f"beats{server}.py"
        program.write_text(BEATS.format(seconds=4, folder=str(beats)))
        cmd = f"{sys.executable} -m qshpc run {program} --workers 2"
        env = _env(QSHPC_FORK_SERVER=server, PS1="$ ")
        pid, fd = pty.fork()
        if pid == 0:
            os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"], env)
        seen = bytearray()
        try:
            _pump(fd, seen, b"$ ", 10)
            os.write(fd, cmd.encode() + b"\n")
            _pump(fd, seen, b"started", 60)
            time.sleep(0.5)
            os.write(fd, b"\x1a")
            _pump(fd, seen, b"Stopped", 10)
            assert b"Stopped" in seen, seen.decode(errors="replace")
            time.sleep(1.0)
            ages[server] = max(_beat_ages(beats))
            os.write(fd, b"fg\n")
            _pump(fd, seen, b"SUCCEEDED", 60)
            deadline = time.monotonic() + 10
            while seen.count(b"$ ") < 3 and time.monotonic() < deadline:  # its prompt again
                _pump(fd, seen, b"\0", 0.1)
            os.write(fd, b"echo EXIT=$?\n")
            _pump(fd, seen, b"EXIT=0", 10)
            assert b"EXIT=0" in seen and b"SUCCEEDED" in seen, seen.decode(errors="replace")
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(fd)
    assert ages["1"] < 0.5 and ages["0"] < 0.5, ages  # the ranks ran on, as without it
    _no_process_left(tmp_path)


def _pump(fd: int, seen: bytearray, until: bytes, within: float) -> None:
    """Read the terminal ``fd`` into ``seen`` until ``until`` shows (``within`` s at most)."""
    import select

    deadline = time.monotonic() + within
    while until not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                return


# Found in the hunt: a standard stream closed in the launcher or in the ranks.

PARENT = """
import qiskit
from qshpc import distribute_task, get, save_result

@distribute_task()
def task(i):
    return i * i

with open("/proc/self/cmdline", "rb") as f:
    me = f.read().replace(b"\\0", b" ").decode()
save_result({"rank0": me, "squares": get([task(i) for i in range(4)])})
"""


def _rank0_forked(qshpc_home: Path) -> bool:
    job = job_dir_of(qshpc_home).name
    got = json.loads(run_cli("result", job, "--json").stdout)
    assert got["squares"] == [0, 1, 4, 9], got
    return "qshpc.runtime.forkserver" in got["rank0"]


@pytest.mark.parametrize("closed", ["<&-", "2>&-", "<&- >&- 2>&-"])
def test_a_launcher_with_a_standard_stream_closed_forks_its_ranks(
    closed: str, qshpc_home: Path, tmp_path: Path
) -> None:
    """``<&-``: the server's socket took number 0 in the launcher, where the server's stdin
    (/dev/null) took it again: a traceback from the server, every rank imported alone.
    ``2>&-``: the server had no ``sys.stderr``, nor had its forked ranks (their own fd 2
    open): the job failed, exit 1, without a word."""
    program = tmp_path / "parent.py"
    program.write_text(PARENT)
    rank = [sys.executable, "-m", "qshpc", "run", str(program), "--workers", "2"]
    cmd = ["sh", "-c", f'exec "$@" {closed}', "sh", *rank]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert _rank0_forked(qshpc_home)
    _no_process_left(tmp_path)


def test_ranks_with_their_standard_streams_closed_are_forked(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """A user's ``mpiexec -n 3 sh -c 'exec python -m qshpc run ... <&- >&-'``: local rank 0's
    server crashed (its socket at 0), the other ranks waited 5 s for it, then ran alone."""
    program = tmp_path / "parent.py"
    program.write_text(PARENT)
    rank = [sys.executable, "-m", "qshpc", "run", str(program)]
    cmd = [mpiexec(), "-n", "3", "sh", "-c", 'exec "$@" <&- >&-', "sh", *rank]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    assert _rank0_forked(qshpc_home)
    _no_process_left(tmp_path)


FDS = """
import os
import qiskit
from qshpc import distribute_task, get, save_result

def links():
    return sorted({os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                   if os.path.exists(f"/proc/self/fd/{fd}")})

@distribute_task()
def task(i):
    return links()

save_result({"rank0": links(), "tasks": get([task(i) for i in range(4)])})
"""


def test_a_request_read_in_part_leaves_its_descriptors_out_of_other_ranks(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """Requests are read as they come: the descriptors that came with one not read whole
    yet (a stand-in's streams, its PMI_FD) must not stay open in a rank forked meanwhile."""
    program = tmp_path / "fds.py"
    program.write_text(FDS)
    pipe = tmp_path / "pipe.txt"
    cmd = _wrapped(tmp_path, "run", str(program), "--workers", "2")
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(PATCH="stall", STALL_FDS=str(pipe)),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    got = json.loads(run_cli("result", job_dir_of(qshpc_home).name, "--json").stdout)
    held = pipe.read_text()
    assert held.startswith("pipe:")
    for links in [got["rank0"], *got["tasks"]]:
        assert held not in links, (held, links)
    _no_process_left(tmp_path)


HUGE = """
import os
import qiskit
from qshpc import distribute_task, get, save_result

@distribute_task()
def task(i):
    return len(os.environ["BIG3"])

with open("/proc/self/cmdline", "rb") as f:
    me = f.read().replace(b"\\0", b" ").decode()
save_result({"rank0": me, "lengths": get([task(i) for i in range(4)])})
"""


def test_an_environment_of_huge_values_reaches_the_forked_ranks(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """Four values of 120 kB (Linux takes 128 kB a value): each request is read in parts."""
    program = tmp_path / "huge.py"
    program.write_text(HUGE)
    big = {f"BIG{i}": str(i) * 120_000 for i in range(4)}
    cmd = [sys.executable, "-m", "qshpc", "run", str(program), "--workers", "2"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env(**big))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    got = json.loads(run_cli("result", job_dir_of(qshpc_home).name, "--json").stdout)
    assert got["lengths"] == [120_000] * 4
    assert "qshpc.runtime.forkserver" in got["rank0"]
    _no_process_left(tmp_path)


#: Injected in every process of the job (sitecustomize): the folder ``HUNT20_GONE`` is
#: removed at the moment a process changes into it (the forked rank, taking its
#: stand-in's folder: a user's ``rm -r`` between the hand-over and the fork).
GONE = """
import os
_chdir, _gone = os.chdir, os.environ.get("HUNT20_GONE")

def chdir(path):
    if _gone and os.fspath(path) == _gone and os.path.isdir(_gone):
        os.rmdir(_gone)
    return _chdir(path)

os.chdir = chdir
"""


def test_a_folder_removed_before_the_fork_fails_no_rank(qshpc_home: Path, tmp_path: Path) -> None:
    """The child changed into its stand-in's folder by name: removed meanwhile (the
    server holds a worker's request ~1 s while Aer loads), the rank died of a traceback.
    It takes the folder its stand-in is in (/proc/PID/cwd), as a fresh rank stays in it,
    and says what a fresh rank says there: one line, exit 2."""
    program = tmp_path / "quick.py"
    program.write_text(QUICK)
    work = tmp_path / "work"
    work.mkdir()
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(GONE)
    env = _env(HUNT20_GONE=str(work), PYTHONPATH=f"{inject}:{ROOT}")
    cmd = [mpiexec(), "-n", "3", sys.executable, "-m", "qshpc", "run", str(program)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=work)
    assert not work.exists()  # (the injection happened)
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == 2, out.stdout + out.stderr
    assert "the working directory was removed" in out.stderr
    _no_process_left(tmp_path)
