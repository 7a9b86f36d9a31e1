"""Plumbing for tests that need the dev Slurm cluster (slurm/devcluster.sh).

``slurm_env`` loads the cluster's environment (SLURM_CONF) into os.environ and
checks that ``sinfo`` answers. When the cluster is not up, the tests are
skipped with a loud reason, except under CI (env ``CI`` set), where they fail:
the cluster must run there (``make slurm-up``).

``tests/multinode/conftest.py`` loads this file for the same helpers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEVCLUSTER = REPO / "slurm" / "devcluster.sh"
SLURM_DIR = Path(os.environ.get("QSHPC_SLURM_DIR", "/var/tmp/qshpc-slurm"))

# Every call into Slurm gets a timeout so that a wedged daemon fails a test
# instead of hanging the run.
CALL_TIMEOUT_S = 30


def run(
    args: list[str], timeout: float = CALL_TIMEOUT_S, check: bool = False, **kw: object
) -> subprocess.CompletedProcess[str]:
    """subprocess.run with text output captured and a timeout (deadlock guard)."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=check, **kw)


def load_cluster_env() -> dict[str, str]:
    """The variables of $QSHPC_SLURM_DIR/env.sh (``export K=V`` lines)."""
    env_sh = SLURM_DIR / "env.sh"
    found: dict[str, str] = {}
    if env_sh.is_file():
        for line in env_sh.read_text().splitlines():
            line = line.strip()
            if line.startswith("export ") and "=" in line:
                key, _, value = line[len("export ") :].partition("=")
                found[key.strip()] = value.strip().strip("'\"")
    return found


def cluster_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` with the cluster's variables (:func:`load_cluster_env`) over it, ``SLURM_CONF``
    ($QSHPC_SLURM_DIR/slurm.conf when env.sh names none) and ``QSHPC_MPI_START_TIMEOUT_S``
    (90 when neither sets it). The environment the Slurm tests and the early launches
    (tests/early_jobs.py) run in."""
    cluster = load_cluster_env()
    env = {**(base or {}), **cluster}
    env["SLURM_CONF"] = cluster.get("SLURM_CONF") or str(SLURM_DIR / "slurm.conf")
    # A job whose MPI does not start fails in 90 s with the reason (the runtime's
    # watchdog), not at the test's own timeout with the job still RUNNING.
    env.setdefault("QSHPC_MPI_START_TIMEOUT_S", "90")
    return env


def _not_up(why: str, start: str) -> None:
    msg = (
        f"\n{'!' * 72}\n"
        f"!! dev Slurm cluster not usable: {why}\n"
        f"!! start it with `{start}`\n"
        f"{'!' * 72}"
    )
    if os.environ.get("CI"):
        pytest.fail(f"the Slurm cluster must run in CI: make slurm-up{msg}", pytrace=False)
    pytest.skip(f"SKIPPED, NO SLURM CLUSTER{msg}")


def node_states() -> dict[str, str]:
    """Node name -> state as sinfo shows it (default partition)."""
    out = run(["sinfo", "-h", "-N", "-o", "%N %T"], timeout=15)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip() or "sinfo failed")
    states: dict[str, str] = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


READY = {"idle", "mixed", "allocated", "completing"}


def ctld_address(conf: str) -> tuple[str, int]:
    """(address, port) of slurmctld from ``SlurmctldHost=name(addr)`` in ``conf``."""
    host, port = "127.0.0.1", 6817
    for line in Path(conf).read_text().splitlines():
        key, _, value = line.strip().partition("=")
        if key.lower() == "slurmctldhost" and value:
            name, _, addr = value.partition("(")
            host = addr.rstrip(")") or name
        elif key.lower() == "slurmctldport" and value.isdigit():
            port = int(value)
    return host, port


def ctld_listening(conf: str) -> bool:
    """Quick check (sinfo takes ~10 s to give up on a controller that is down)."""
    try:
        with socket.create_connection(ctld_address(conf), timeout=2):
            return True
    except OSError:
        return False


def require_cluster(
    mp: pytest.MonkeyPatch, nodes: list[str] | None = None, start: str = "make slurm-up"
) -> dict[str, str]:
    """Put the cluster env into os.environ (through ``mp``) and check it answers.

    ``nodes``: node names that must exist and be ready (idle/mixed/allocated).
    """
    env = cluster_env()
    conf = env["SLURM_CONF"]
    if not Path(conf).is_file():
        _not_up(f"no {SLURM_DIR}/env.sh or {conf}", start)
    for key, value in env.items():
        mp.setenv(key, value)
    if not ctld_listening(conf):
        addr, port = ctld_address(conf)
        _not_up(f"slurmctld does not listen at {addr}:{port}", start)
    try:
        states = node_states()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        _not_up(f"sinfo does not answer ({exc})", start)
    if not states:
        _not_up("sinfo lists no nodes", start)
    if nodes is not None:
        bad = {n: states.get(n, "absent") for n in nodes if states.get(n) not in READY}
        if bad:
            _not_up(f"nodes not ready: {bad} (sinfo: {states})", start)
    elif not any(s in READY for s in states.values()):
        _not_up(f"no node ready (sinfo: {states})", start)
    return env


@pytest.fixture(scope="session")
def slurm_env() -> Iterator[dict[str, str]]:
    """The dev cluster's environment, loaded into os.environ for the session."""
    with pytest.MonkeyPatch.context() as mp:
        yield require_cluster(mp)


@pytest.fixture(scope="session")
def multinode_env() -> Iterator[dict[str, str]]:
    """Like ``slurm_env``, and the 3-node cluster (n1..n3 ready)."""
    with pytest.MonkeyPatch.context() as mp:
        yield require_cluster(mp, nodes=["n1", "n2", "n3"], start="make slurm-up NODES=3")


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder of this test's own under /var/tmp, which the Slurm nodes see.

    Not pytest's tmp_path: a concurrent pytest session prunes old numbered
    base folders, which removed a job directory under a running job here.
    """
    path = Path(tempfile.mkdtemp(prefix="qshpc-slurm-test-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def qshpc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """QSHPC_HOME inside this test's folder (overrides the suite-wide fixture)."""
    home = tmp_path / "qshpc-home"
    monkeypatch.setenv("QSHPC_HOME", str(home))
    return home
