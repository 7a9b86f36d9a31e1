"""``qshpc run``'s fork server: each local rank is a fork of one process that imported qiskit.

Real runs of the local launcher (``qshpc run --workers N``) with programs that
import qiskit (what turns the server on): the ranks are the server's children,
they see what mpiexec gave them (environment, folder, umask, streams), their
exit and a kill reach the launcher as before, and nothing outlives the job.
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

from tests.conftest import ROOT, job_dir_of, run_cli

PROBE = """
import os, sys
import qiskit  # (the server preloads what the program's imports name)
from qshpc import distribute_task, get, save_result, get_arguments

def parent_cmd():
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
        return f.read().replace(b"\\0", b" ").decode()

@distribute_task()
def probe(i):
    import numpy
    print(f"task {i} says hello", flush=True)
    mask = os.umask(0)
    os.umask(mask)
    return {
        "pid": os.getpid(),
        "parent": parent_cmd(),
        "cwd": os.getcwd(),
        "umask": mask,
        "env": os.environ.get("PROBE_VALUE"),
        "random": float(numpy.random.random()),
        "qiskit_before": "qiskit" in sys.modules,
        "blas": os.environ.get("OPENBLAS_NUM_THREADS"),
    }

print("rank 0 says hello", flush=True)
save_result({"rank0_parent": parent_cmd(), "tasks": get([probe(i) for i in range(8)])})
"""


def _result(out: subprocess.CompletedProcess[str]) -> dict[str, object]:
    job = [ln.split()[2] for ln in out.stdout.splitlines() if ln.startswith("qshpc: job ")][-1]
    got: dict[str, object] = json.loads(run_cli("result", job, "--json").stdout)
    return got


@pytest.mark.parametrize("server", ["1", "0"])
def test_ranks_are_forks_that_see_what_mpiexec_gave_them(
    server: str, qshpc_home: Path, tmp_path: Path
) -> None:
    program = tmp_path / "probe.py"
    program.write_text(PROBE)
    work = tmp_path / "work"
    work.mkdir()
    env = {"QSHPC_FORK_SERVER": server, "PROBE_VALUE": "from-the-launcher"}
    cmd = [sys.executable, "-m", "qshpc", "run", str(program), "--workers", "2"]
    out = subprocess.run(
        ["sh", "-c", 'umask 027 && exec "$@"', "sh", *cmd],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=work,
        env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "rank 0 says hello" in out.stdout and "task 3 says hello" in out.stdout
    result = _result(out)
    tasks = result["tasks"]
    assert isinstance(tasks, list) and len(tasks) == 8
    forked = "qshpc.runtime.forkserver" in str(result["rank0_parent"])
    assert forked == (server == "1"), result["rank0_parent"]
    for t in tasks:
        assert ("qshpc.runtime.forkserver" in t["parent"]) == (server == "1")
        assert t["cwd"] == str(work) and t["umask"] == 0o027
        assert t["env"] == "from-the-launcher"
    if server == "1":  # imported once, by the server, before the fork
        assert all(t["qiskit_before"] for t in tasks)
        assert str(program) in str(result["rank0_parent"])  # ps/pgrep find it by its program
    by_pid: dict[int, float] = {}
    for t in tasks:
        by_pid.setdefault(t["pid"], t["random"])
    assert len(set(by_pid.values())) == len(by_pid)  # each rank its own numpy seed
    assert {t["blas"] for t in tasks} == {tasks[0]["blas"]}


KILLED = """
import os, signal, time
import qiskit
from qshpc import distribute_task, get, save_result

@distribute_task()
def task(i):
    if i == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.2)
    return i

save_result(get([task(i) for i in range(4)]))
"""


def test_a_rank_killed_fails_the_job_naming_it(qshpc_home: Path, tmp_path: Path) -> None:
    program = tmp_path / "killed.py"
    program.write_text(KILLED)
    out = run_cli("run", str(program), "--workers", "2", timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAILED" in out.stderr + out.stdout
    assert "rank" in out.stderr and "killed" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    _no_process_left(tmp_path)


LONG = """
import time
import qiskit
from qshpc import distribute_task, get, save_result

@distribute_task()
def task(i):
    time.sleep(60)
    return i

print("started", flush=True)
save_result(get([task(i) for i in range(4)]))
"""


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_the_launcher_stopped_leaves_no_process(how: str, qshpc_home: Path, tmp_path: Path) -> None:
    """SIGTERM: the job is CANCELED (143) as before; kill -9: every rank still ends."""
    proc = _start(tmp_path)
    time.sleep(0.5)
    proc.send_signal(getattr(signal, how))
    out, err = proc.communicate(timeout=60)
    if how == "SIGTERM":
        assert proc.returncode == 143, out + err
        meta = json.loads(run_cli("status", job_dir_of(qshpc_home).name, "--json").stdout)
        assert meta["state"] == "CANCELED", meta
    _no_process_left(tmp_path)


def _no_process_left(tmp_path: Path, within: float = 20.0) -> None:
    """No process whose command line names this test's folder (ranks, server) is left."""
    deadline = time.monotonic() + within
    while True:
        left = [cmd for _, cmd in _live(str(tmp_path))]
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"left running: {left}")
        time.sleep(0.2)


def _live(needle: str) -> list[tuple[int, str]]:
    """``(pid, command line)`` of each process not yet ended whose command line holds ``needle``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmd and state != "Z":
            found.append((int(pid), cmd))
    return found


@pytest.mark.parametrize("server", ["1", "0"])
def test_a_local_client_s_ranks_are_forks_too(
    server: str, qshpc_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LocalClient's launcher starts the server before mpiexec (QSHPC_FORK_PLAN)."""
    from qshpc import LocalClient, Program

    monkeypatch.setenv("QSHPC_FORK_SERVER", server)
    monkeypatch.setenv("PROBE_VALUE", "from-the-client")
    program = tmp_path / "probe.py"
    program.write_text(PROBE)
    job = LocalClient(workers=2).run(
        Program(title="probe", entrypoint="probe.py", working_dir=str(tmp_path))
    )
    result = job.result(timeout=120)
    assert job.status() == "SUCCEEDED", job.logs()
    assert ("qshpc.runtime.forkserver" in result["rank0_parent"]) == (server == "1")
    assert {t["env"] for t in result["tasks"]} == {"from-the-client"}
    _no_process_left(tmp_path)


def _processes(tmp_path: Path, word: str) -> list[int]:
    """Pids of the live Python processes whose command line names ``tmp_path`` and ``word``."""
    return [
        pid
        for pid, cmd in _live(str(tmp_path))
        if word in cmd and os.path.basename(cmd.split(" ", 1)[0]).startswith("python")
    ]


def _start(
    tmp_path: Path, source: str = LONG, name: str = "long.py", started: bool = True
) -> subprocess.Popen[str]:
    """``qshpc run`` of ``source`` on 2 workers, in the background; with ``started``, once
    the program printed ``started``."""
    program = tmp_path / name
    program.write_text(source)
    proc = subprocess.Popen(
        [sys.executable, "-m", "qshpc", "run", str(program), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if started:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
    return proc


@pytest.mark.parametrize("victim", ["server", "stand-in"])
def test_the_server_or_a_stand_in_killed_ends_the_job(
    victim: str, qshpc_home: Path, tmp_path: Path
) -> None:
    """kill -9 of the server: its children die with it (their stand-ins say so); of a
    stand-in (what mpiexec kills): the server kills its rank. The job ends FAILED either way."""
    proc = _start(tmp_path)
    servers = _processes(tmp_path, "qshpc.runtime.forkserver")
    ranks = _processes(tmp_path, "--job-dir")
    stand_ins = [p for p in ranks if p not in servers]
    assert servers and len(stand_ins) == 3, (servers, ranks)
    server = min(servers)  # the server itself is older than its children
    os.kill(server if victim == "server" else max(stand_ins), signal.SIGKILL)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1, out + err
    assert "FAILED" in err, err
    _no_process_left(tmp_path)


def test_another_user_s_connection_is_refused(qshpc_home: Path, tmp_path: Path) -> None:
    """The server's socket has an abstract name anyone can connect to: another user's
    connection is closed unread, and the job runs on."""
    if os.getuid() != 0:
        pytest.skip("needs root to act as another user")
    proc = _start(tmp_path)
    server = min(_processes(tmp_path, "qshpc.runtime.forkserver"))
    names = Path("/proc/net/unix").read_text().split()
    name = next(n for n in names if n.startswith("@qshpc-fork-"))
    child = os.fork()
    if child == 0:  # another user: connects, sends a request with its descriptors
        try:
            import socket

            os.setuid(65534)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect("\0" + name[1:])
            try:
                socket.send_fds(sock, [b"\0\0\0\2{}"], [0, 1, 2])
                answer = sock.recv(16)
            except (ConnectionResetError, BrokenPipeError):
                answer = b""  # closed with the request unread
            os._exit(0 if answer == b"" else 3)  # closed unread, nothing forked
        except BaseException as exc:
            print(repr(exc), file=sys.stderr, flush=True)
            os._exit(4)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert os.path.exists(f"/proc/{server}")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, out + err
    _no_process_left(tmp_path)


@pytest.mark.parametrize("ranks,server", [(3, "1"), (3, "0"), (1, "1")])
def test_a_user_s_mpiexec_ranks_are_forks_of_local_rank_0_s_server(
    ranks: int, server: str, qshpc_home: Path, tmp_path: Path
) -> None:
    """Under ``mpiexec -n N`` (hydra), local rank 0 starts the host's server; one rank: none."""
    program = tmp_path / "probe.py"
    program.write_text(PROBE)
    env = {"QSHPC_FORK_SERVER": server, "PROBE_VALUE": "from-mpiexec"}
    out = run_cli("run", str(program), ranks=ranks, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    result = _result(out)
    forked = "qshpc.runtime.forkserver" in str(result["rank0_parent"])
    assert forked == (server == "1" and ranks > 1), result["rank0_parent"]
    tasks = result["tasks"]
    assert isinstance(tasks, list) and {t["env"] for t in tasks} == {"from-mpiexec"}
    if ranks > 1:
        assert all(("qshpc.runtime.forkserver" in t["parent"]) == forked for t in tasks)
    _no_process_left(tmp_path)


def test_bad_input_leaves_no_server(qshpc_home: Path, tmp_path: Path) -> None:
    """The server starts before the job is planned: refused input (exit 2) stops it too."""
    program = tmp_path / "probe.py"
    program.write_text(PROBE)
    out = run_cli("run", str(program), "--workers", "2", "--arguments", str(tmp_path / "no.h5"))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "no.h5" in out.stderr
    _no_process_left(tmp_path, within=5.0)


def test_a_signal_while_the_server_imports_cancels_as_before(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """A SIGTERM that reaches the stand-ins before their ranks exist is passed on once they
    do, and deferred there as a fresh rank defers it: CANCELED (143), no traceback."""
    proc = _start(tmp_path, started=False)
    deadline = time.monotonic() + 30
    while not [p for p in _processes(tmp_path, "--job-dir") if p not in
               _processes(tmp_path, "qshpc.runtime.forkserver")]:  # fmt: skip
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # the stand-ins are up: their ranks may not be yet
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 143, out + err
    assert "Traceback" not in err, err
    _no_process_left(tmp_path)


def test_a_signal_meant_for_a_rank_does_not_end_the_server(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """The server's command line shows the ranks' (for ps/pgrep): a `pkill -INT -f` of it
    must not end the server, and with it every rank."""
    proc = _start(tmp_path)
    server = min(_processes(tmp_path, "qshpc.runtime.forkserver"))
    for sig in (signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
        os.kill(server, sig)
    time.sleep(0.5)
    assert os.path.exists(f"/proc/{server}") and proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, out + err
    _no_process_left(tmp_path)


SPAWNS = """
import subprocess, time
import qiskit
from qshpc import distribute_task, get, save_result

@distribute_task()
def task(i):
    subprocess.Popen(["sh", "-c", "sleep 300; :", "{marker}"])
    time.sleep(60)
    return i

print("started", flush=True)
save_result(get([task(i) for i in range(2)]))
"""


def test_what_a_rank_started_ends_with_its_stand_in(qshpc_home: Path, tmp_path: Path) -> None:
    """mpiexec ends a rank by its process group: the server kills the forked rank's group."""
    marker = f"qshpc-test-{os.getpid()}-{time.monotonic_ns()}"
    proc = _start(tmp_path, SPAWNS.format(marker=marker), "spawns.py")
    deadline = time.monotonic() + 30
    while len(_sleepers(marker)) < 2:
        assert time.monotonic() < deadline, _sleepers(marker)
        time.sleep(0.1)
    servers = _processes(tmp_path, "qshpc.runtime.forkserver")
    stand_ins = [p for p in _processes(tmp_path, "--job-dir") if p not in servers]
    os.kill(max(stand_ins), signal.SIGKILL)
    proc.communicate(timeout=90)
    deadline = time.monotonic() + 20
    while _sleepers(marker):
        assert time.monotonic() < deadline, _sleepers(marker)
        time.sleep(0.2)


def _sleepers(marker: str) -> list[int]:
    return [pid for pid, _ in _live(marker)]


@pytest.mark.parametrize("ranks", [None, 2])
def test_a_bad_fork_server_setting_is_one_line(
    ranks: int | None, qshpc_home: Path, tmp_path: Path
) -> None:
    """Under the launcher and under a user's mpiexec (where the rank reads it before the
    rest of qshpc: a traceback once), an invalid QSHPC_FORK_SERVER is one line, exit 2."""
    program = tmp_path / "probe.py"
    program.write_text(PROBE)
    args = ["run", str(program)] + (["--workers", "2"] if ranks is None else [])
    out = run_cli(*args, ranks=ranks, env={"QSHPC_FORK_SERVER": "maybe"})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert "QSHPC_FORK_SERVER='maybe' is not valid" in out.stderr
    _no_process_left(tmp_path, within=5.0)
