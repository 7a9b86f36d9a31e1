"""Slurm jobs that wait for a time limit, started when the session starts.

A job ended by Slurm's time limit keeps its test waiting 80-115 s while the
machine idles: ``--time`` counts in whole minutes, and slurmctld looks at the
limits every 30 s (``PERIODIC_TIMEOUT``, not configurable). Such a test is
split in two:

* ``launch(ctx)``, run in a background thread from the end of collection,
  submits the job and waits for its end (the same Slurm job and deadlines as
  before; it polls ``qshpc status`` every 2-4 s rather than 0.3-1 s, and
  squeue in between: each ``qshpc status`` costs about 0.6 s of CPU, which
  the tests running meanwhile need); it returns what the test checks;
* the test asks for the fixture ``early_job`` and calls its ``outcome()``,
  which waits for that thread, re-raises what it raised, and returns its
  value; the test then checks it (the same assertions as before).

Other Slurm tests whose time is mostly waiting use it the same way (a killed rank 0's
job ending, own sbatch scripts, a job array and its rerun: tests/slurm/test_hunt12_*.py,
test_cache_slurm.py).

Mark the test ``@pytest.mark.early(launch=launch)``. Only tests selected in the
session start a launch (``-k``, ``-m``, a single file: the same). The waits
overlap each other and the rest of the suite; a test run alone takes as long
as before. Each launch has its own folder under /var/tmp (the Slurm nodes see
it; QSHPC_HOME is in it) and runs its subprocesses with the environment the
session had at its start plus the cluster's, never ``os.environ`` (which other
tests patch meanwhile: PATH, QSHPC_* settings). Its failure fails its own test
only. At the session's end, launches still running stop and their Slurm jobs
are cancelled.

A test that must have the cluster to itself (it kills a node) asks for the
fixture ``no_early_jobs`` first, which waits until every launch has ended.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# A launch's own deadlines end it well before this; the bound keeps a wedged one from hanging.
JOIN_TIMEOUT_S = 600


class Stopped(Exception):
    """The session ended while a launch was running."""


class Context:
    """What a launch gets: its folder, its environment, its subprocess runners."""

    def __init__(self, env: dict[str, str], stop: threading.Event) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="qshpc-early-test-", dir="/var/tmp"))
        self.home = self.work / "qshpc-home"
        self.env = {**env, "QSHPC_HOME": str(self.home)}
        self._stop = stop
        self._slurm_ids: list[str] = []
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        """Sleep; raise Stopped at once when the session ends."""
        if self._stop.wait(seconds):
            raise Stopped("the session ended")

    def run(
        self, args: list[str], timeout: float = 30, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``args`` with this launch's environment, output captured, a deadlock guard."""
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env=self.env,
            check=False,
        )

    def qshpc(
        self, *args: str, timeout: float = 120, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``qshpc ARGS`` as ``tests.conftest.run_cli`` runs it, in this launch's environment."""
        return self.run([sys.executable, "-m", "qshpc", *args], timeout=timeout, cwd=cwd)

    def wait_slurm_gone(self, slurm_ids: list[str], timeout: float) -> None:
        """Wait (at most ``timeout``) until squeue no longer lists the jobs.

        A cheap wait before the launch's own one: squeue costs milliseconds, a
        ``qshpc status`` half a second of CPU, which the tests running meanwhile need.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.run(["squeue", "-h", "-o", "%i", "-j", ",".join(slurm_ids)])
            if out.returncode == 0 and not out.stdout.strip():
                return
            if out.returncode != 0 and "Invalid job id" not in out.stderr:
                return  # squeue does not answer: the launch's own wait tells why
            self.sleep(2)

    def slurm_job(self, slurm_id: object) -> None:
        """Record a Slurm job of this launch: cancelled if the session ends first."""
        with self._lock:
            self._slurm_ids.append(str(slurm_id))
        if self._stop.is_set():
            self.cancel_jobs()

    def cancel_jobs(self) -> None:
        with self._lock:
            ids, self._slurm_ids = self._slurm_ids, []
        if ids:
            try:
                self.run(["scancel", *ids], timeout=30)
            except (OSError, subprocess.SubprocessError):
                pass


class Early:
    """One launch in its thread; ``outcome()`` waits for it."""

    def __init__(self, name: str, launch: Callable[[Context], Any], env: dict[str, str]) -> None:
        self.stop = threading.Event()
        self.ctx = Context(env, self.stop)
        self._launch = launch
        self._value: Any = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"early {name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._value = self._launch(self.ctx)
        except BaseException as exc:  # pytest.fail's Failed too: the test re-raises it
            self._error = exc

    def wait(self, timeout: float = JOIN_TIMEOUT_S) -> None:
        self.thread.join(timeout)

    def outcome(self) -> Any:
        self.wait()
        if self.thread.is_alive():
            pytest.fail(f"{self.thread.name} still running after {JOIN_TIMEOUT_S} s")
        if self._error is not None:
            raise self._error
        return self._value

    def close(self) -> None:
        """Stop the thread (if still running); unless the launch returned, cancel its jobs.

        Then remove its folder. (A launch returns once its jobs have ended.)
        """
        self.stop.set()
        if self.thread.is_alive():
            self.ctx.cancel_jobs()
            self.wait(90)  # a subprocess in flight ends within its own timeout
        if self.thread.is_alive() or self._error is not None:
            self.ctx.cancel_jobs()
        shutil.rmtree(self.ctx.work, ignore_errors=True)


_KEY = pytest.StashKey[Early]()
_started: list[Early] = []
_session_env: dict[str, str] = {}


def slurm_plumbing() -> Any:
    """tests/slurm/conftest.py's helpers (one module, ``_qshpc_slurm_plumbing``, loaded once),
    for tests outside tests/slurm and for the launches here."""
    name = "_qshpc_slurm_plumbing"
    if name not in sys.modules:
        path = Path(__file__).resolve().parent / "slurm" / "conftest.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _cluster_env() -> dict[str, str] | None:
    """The session's environment plus the cluster's, or None when the cluster does not listen.

    When None, no launch starts: the tests' own ``slurm_env`` skips them (fails under CI).
    """
    plumbing = slurm_plumbing()
    env: dict[str, str] = plumbing.cluster_env(_session_env)  # as require_cluster reads it
    conf = env["SLURM_CONF"]
    if not Path(conf).is_file() or not plumbing.ctld_listening(conf):
        return None
    return env


def _start(item: pytest.Item, env: dict[str, str]) -> Early:
    marker = item.get_closest_marker("early")
    assert marker is not None and "launch" in marker.kwargs, "use @pytest.mark.early(launch=f)"
    early = Early(item.nodeid, marker.kwargs["launch"], env)
    item.stash[_KEY] = early
    _started.append(early)
    return early


def start_launches(items: list[pytest.Item]) -> None:
    """At the end of collection: start the launch of every selected ``early`` test."""
    _session_env.update(os.environ)
    marked = [item for item in items if item.get_closest_marker("early") is not None]
    if not marked:
        return
    env = _cluster_env()
    if env is None:
        return
    for item in marked:
        _start(item, env)


def close_all() -> None:
    while _started:
        _started.pop().close()


def job_of(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Early]:
    """The ``early_job`` fixture: this test's launch; QSHPC_HOME is the launch's.

    The test calls ``early_job.outcome()``: what the launch raised fails the test
    itself (not its setup).
    """
    item = request.node
    early = item.stash.get(_KEY, None)
    if early is None:  # not started at collection (the cluster was not listening then)
        env = _cluster_env()
        if env is None:
            pytest.fail("the dev Slurm cluster does not listen (its fixture let the test run)")
        early = _start(item, env)
    monkeypatch.setenv("QSHPC_HOME", str(early.ctx.home))
    try:
        yield early
    finally:
        if early in _started:
            _started.remove(early)
        early.close()


def wait_all() -> None:
    """The ``no_early_jobs`` fixture: every launch of the session has ended."""
    for early in list(_started):
        early.wait()
