"""Start a distributed Aer step: k fresh processes with an ``MPI_COMM_WORLD`` of their own.

Aer distributes one statevector over ``MPI_COMM_WORLD`` and nothing else, so
the ranks of a job cannot lend it a sub-communicator: a distributed run is a
new MPI world, started as its own step by a :class:`StepLauncher`:

- :class:`Mpiexec` (the default): a nested ``mpiexec -n k``, also from inside
  a rank that itself runs under ``mpiexec``. The launcher variables the parent
  inherited (``PMI_*``, ``HYDRA_*``, ``PMIX_*``, ``MPI_LOCAL*``, Open MPI's
  ``OMPI_COMM_WORLD_*``) are removed first (:func:`scrubbed_env`): Hydra
  overwrites the ones it sets, but one it does not set would reach the ranks.
- Under Slurm, :class:`qshpc.submit.slurm.SrunStep`: a job step of the
  allocation (``srun --mpi=pmi2 --overlap``), built where every Slurm command
  lives.

MPI's own process spawning is not used: under Slurm's pmi2 an
``MPI_Comm_spawn`` asks for a job step without ``--overlap`` and waits for
CPUs the job's ranks hold (it hung, measured).

The step's processes get the MPI Aer's environment (:func:`.install.step_env`);
nothing else in the job does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from qshpc.aer.distributed.defaults import chosen_launcher
from qshpc.aer.distributed.install import AerMPI, locate, step_env, why_missing
from qshpc.aer.distributed.spec import (
    CIRCUITS_FILE,
    RESULT_FILE,
    SPEC_FILE,
    StepSpec,
    rank_file,
    write_json,
)
from qshpc.errors import QshpcError, UserError

#: Variables a launcher sets in its ranks; a nested launch must not pass them on.
SCRUB_PREFIXES = ("PMI_", "PMIX_", "HYDRA_", "MPI_LOCALRANKID", "MPI_LOCALNRANKS",
                  "OMPI_COMM_WORLD_", "OMPI_UNIVERSE_SIZE", "OMPI_MCA_ess_", "OMPI_MCA_orte_",
                  "OMPI_MCA_pmix", "PRTE_")  # fmt: skip


class StepError(QshpcError):
    """A distributed step failed: which rank, on which host, what it said."""


@dataclass
class StepResult:
    """What a finished step left in its folder.

    Attributes:
        folder: The step's folder.
        result: ``result.json`` (``experiments`` and Aer's ``metadata``).
        ranks: Each rank's report, by rank (host, pid, ``peak_rss``, times).
        command: The launch command.
        wall_s: Wall time of the launch, start-up included.
    """

    folder: Path
    result: dict[str, Any]
    ranks: list[dict[str, Any]]
    command: list[str]
    wall_s: float
    output: str = ""
    arrays: dict[tuple[int, str], Any] = field(default_factory=dict)

    def probabilities(self, experiment: int, label: str) -> Any:
        """The saved probabilities array ``label`` of ``experiment`` (numpy)."""
        return self.arrays[(experiment, label)]

    def value(self, experiment: int, label: str) -> float:
        """A saved expectation value."""
        return float(self.result["experiments"][experiment]["saved"][label]["value"])

    def counts(self, experiment: int = 0) -> dict[str, int]:
        """Aer's counts of ``experiment`` (hex keys), empty when it measured nothing."""
        return dict(self.result["experiments"][experiment].get("counts", {}))

    def memory(self, experiment: int = 0) -> list[str]:
        """Aer's per-shot outcomes of ``experiment`` (hex, with ``options={"memory": True}``)."""
        return list(self.result["experiments"][experiment].get("memory", []))

    def hosts(self) -> list[str]:
        """Host of each rank, by rank."""
        return [str(r.get("host")) for r in self.ranks]


def scrubbed_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` without the variables an MPI launcher set for the parent's own world."""
    return {k: v for k, v in env.items() if not k.startswith(SCRUB_PREFIXES)}


def mpiexec_path() -> str:
    """The ``mpiexec`` next to this Python (the PyPI MPI), else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if found is None:
        raise UserError("no mpiexec next to Python or on PATH: pip install mpich")
    return found


class StepLauncher(Protocol):
    """How the processes of a step start.

    Attributes:
        shared_folder: True when the ranks may run on other nodes, so the step's
            folder must be on storage they all see.
    """

    @property
    def shared_folder(self) -> bool:
        """True when the step's folder must be on storage every node sees."""
        ...

    def argv(self, ranks: int, nodes: int | None, step: list[str]) -> list[str]:
        """The command that starts ``ranks`` processes of ``step`` (on ``nodes`` nodes)."""
        ...

    def env(self, env: dict[str, str]) -> dict[str, str]:
        """The environment of that command, from the parent's."""
        ...


@dataclass(frozen=True)
class Mpiexec:
    """A nested ``mpiexec -n k`` on this host (``exe``: default :func:`mpiexec_path`)."""

    exe: str | None = None
    shared_folder: bool = False

    def argv(self, ranks: int, nodes: int | None, step: list[str]) -> list[str]:
        """``mpiexec -n RANKS STEP...`` (``nodes`` is ignored: one host)."""
        return [self.exe or mpiexec_path(), "-n", str(ranks), *step]

    def env(self, env: dict[str, str]) -> dict[str, str]:
        """The parent's environment, scrubbed (:func:`scrubbed_env`)."""
        return scrubbed_env(env)


def default_launcher() -> StepLauncher:
    """How a step starts when the caller gives no launcher: the one set with
    :func:`.defaults.use_launcher` (``SrunStep`` in the ranks of a Slurm job), else
    :class:`Mpiexec`."""
    chosen: StepLauncher | None = chosen_launcher()
    return chosen or Mpiexec()


def step_argv(folder: Path) -> list[str]:
    """What each rank runs: the step module of this qshpc, on ``folder``."""
    return [sys.executable, "-m", "qshpc.aer.distributed.step", str(folder)]


def write_step(folder: Path, circuits: list[Any], spec: StepSpec) -> None:
    """Write ``circuits.qpy`` and ``spec.json`` into ``folder``."""
    from qiskit import qpy  # type: ignore[import-untyped]

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / CIRCUITS_FILE).open("wb") as f:
        qpy.dump(list(circuits), f)
    write_json(folder / SPEC_FILE, spec.to_json())


def launch(
    folder: Path,
    ranks: int,
    *,
    launcher: StepLauncher | None = None,
    nodes: int | None = None,
    timeout: float | None = None,
    aer: AerMPI | None = None,
) -> StepResult:
    """Run the step written in ``folder`` on ``ranks`` new processes and read what they wrote.

    Args:
        folder: Written by :func:`write_step`.
        ranks: Processes of the step.
        launcher: How they start (default :func:`default_launcher`: :class:`Mpiexec`, or an
            ``srun`` step in the ranks of a Slurm job).
        nodes: Nodes to spread them over (launchers that span nodes).
        timeout: Seconds before the step is stopped (its process group killed).
        aer: The MPI Aer (default :func:`.install.locate`).

    Raises:
        UserError: No MPI Aer, a bad rank count.
        StepError: A rank failed, a rank was lost, or the step ran past ``timeout``.
    """
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise UserError(f"ranks must be a positive int, got {ranks!r}")
    aer = aer or locate()
    if aer is None:
        raise UserError(why_missing() + ": run `make install-aer-mpi` (see docs/distributed.md)")
    how = launcher or default_launcher()
    argv = how.argv(ranks, nodes, step_argv(folder))
    env = how.env(step_env(aer))
    start = time.monotonic()
    # The launcher dies with this thread (PR_SET_PDEATHSIG): a worker killed or stopped
    # while the call runs (Ctrl-C, qshpc cancel, a lost rank 0) takes its step with it.
    proc = subprocess.Popen([*_WITH_PARENT, str(os.getpid()), *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        out = _stop(proc)
        raise StepError(f"the {ranks}-rank Aer step ran past {timeout:g} s and was stopped "
                        f"(folder {folder}); output:\n{_tail(out)}") from None  # fmt: skip
    except BaseException:  # the task is interrupted: its step must not run on alone
        _stop(proc)
        raise
    wall = time.monotonic() - start
    reports = [_read(rank_file(folder, r)) for r in range(ranks)]
    failed = [r for r in reports if r and "error" in r]
    if failed:
        r = failed[0]
        _log_output(out, r.get("traceback"))
        raise StepError(f"rank {r.get('rank', r.get('env_rank'))} of the {ranks}-rank Aer step on "
                        f"{r.get('host')} failed: {_one_line(r['error'])} (its traceback and the "
                        "step's output are in this task's log)")  # fmt: skip
    result = _read(folder / RESULT_FILE)
    done = [r is not None and "wall_s" in r for r in reports]
    if proc.returncode != 0 or not all(done) or result is None:
        _log_output(out)
        raise StepError(_lost(ranks, argv, proc.returncode, reports, out))
    return StepResult(folder, result, [r for r in reports if r is not None], argv, wall, out,
                      _arrays(folder, result))  # fmt: skip


#: Runs the launcher with ``PR_SET_PDEATHSIG`` = SIGTERM (kept across ``exec``): it gets
#: SIGTERM when the thread that started it ends, and stops its ranks (mpiexec, srun do).
#: Arguments: the parent's pid (gone already: exit), then the launcher's argv.
_WITH_PARENT = [
    sys.executable, "-S", "-c",
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None).prctl(1, int(signal.SIGTERM), 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]): os._exit(143)\n"
    "try:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "except OSError as exc:\n"
    "    sys.stderr.write(f'qshpc: cannot start {sys.argv[2]}: {exc}\\n')\n"
    "    os._exit(127)\n",
]  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> str:
    """Stop the step's process group (SIGTERM, SIGKILL after 10 s); its output so far."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    except ProcessLookupError:
        out, _ = proc.communicate()
    return out or ""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _log_output(out: str | None, traceback: str | None = None) -> None:
    """The step's traceback and output to this process's stderr (the task's log)."""
    text = (traceback or "") + _tail(out, 60)
    if text.strip():
        sys.stderr.write(f"qshpc: the Aer step's output:\n{text}\n")
        sys.stderr.flush()


_SIGNALS = {int(s): s.name for s in signal.Signals}


def _lost(
    ranks: int, argv: list[str], code: int, reports: list[dict[str, Any] | None], out: str | None
) -> str:
    """One line: which rank of the step died (host, pid, how) and what to do."""
    import re

    text = out or ""
    refused = _refused(ranks, argv, reports, text)
    if refused is not None:
        return refused
    pids = {int(p): h for p, h in re.findall(r"PID (\d+) RUNNING AT (\S+)", text)}  # mpiexec
    killed = re.search(r"\(signal (\d+)\)", text)  # mpiexec: "Killed (signal 9)"
    srun = re.search(r"srun: error: (\S+): tasks? (\d+)[\d,-]*: (.+)", text)
    # mpiexec names the first rank it reaped, which may be one it stopped after another died
    named = [i for i, r in enumerate(reports) if r is not None and int(r.get("pid", -1)) in pids]
    dead = int(srun.group(2)) if srun is not None and int(srun.group(2)) < ranks else None
    signum = None
    if killed is not None:
        signum = int(killed.group(1))
    elif srun is not None and "Killed" in srun.group(3):
        signum = int(signal.SIGKILL)
    elif code < 0:  # the launcher itself
        signum = -code
    how = f"exited {code}"
    cannot = re.search(r"qshpc: cannot start (.+)", text)
    if cannot is not None:
        how = f"did not start ({cannot.group(1).strip()})"
    elif signum in _SIGNALS:
        how = f"was killed by signal {signum} ({_SIGNALS[signum]})"
    hint = (
        "SIGKILL is most often the out-of-memory killer: give the circuit more ranks or nodes "
        "(QSHPC_DISTRIBUTE=N, target={'ranks': 2k}) or fewer qubits, and check the node's memory "
        "(dmesg)"
        if signum == int(signal.SIGKILL)
        else "rerun the call; if it fails again, keep the step's folder (QSHPC_KEEP_STEP=1) and "
        f"run it by hand ({_by_hand(argv)} python -m qshpc.aer.distributed.step FOLDER)"
    )
    hosts = ", ".join(dict.fromkeys(str(r.get("host")) for r in reports if r is not None))
    if dead is not None:
        r = reports[dead] or {}
        who = f"rank {dead} of the {ranks}-rank Aer step (host {r.get('host', '?')}, pid {r.get('pid', '?')})"
    else:
        unfinished = [i for i, r in enumerate(reports) if r is None or "wall_s" not in r]
        if named:
            r = reports[named[0]] or {}
            said = (f"mpiexec reports its rank {named[0]}, host {r.get('host', '?')}, "
                    f"pid {r.get('pid', '?')}")  # fmt: skip
        elif pids:  # a rank reaped before it wrote its start report (often one mpiexec stopped)
            pid, host = next(iter(pids.items()))
            hosts = hosts or host
            said = (f"mpiexec reports pid {pid} on {host}, a rank that had not reported its start; "
                    f"ranks unfinished: {unfinished or 'none'}")  # fmt: skip
        else:
            said = f"{' '.join(argv[:3])} ...; ranks unfinished: {unfinished or 'none'}"
        where = f"on {hosts}" if hosts else f"launched from {socket.gethostname()}"
        who = f"the {ranks}-rank Aer step {where} ({said})"
    return f"{who} {how} before its result was written: {hint} (the step's output is in this task's log)"


def _by_hand(argv: list[str]) -> str:
    """The launcher line to run a kept step folder with by hand."""
    if argv and os.path.basename(argv[0]) == "srun":
        return "inside the job: srun --mpi=pmi2 --overlap -n k"
    return "mpiexec -n k"


def _refused(
    ranks: int, argv: list[str], reports: list[dict[str, Any] | None], text: str
) -> str | None:
    """One line when srun refused to start the step (no rank started): Slurm's own reason,
    quoted, and this host's name (review32 F5: "on ? ... exited 1 ... rerun the call ...
    mpiexec -n k", while the log said "srun: error: Unable to create step for job 41:
    More processors requested than permitted"). None otherwise."""
    import re

    if not argv or os.path.basename(argv[0]) != "srun" or any(r is not None for r in reports):
        return None
    # srun's own errors; a task's ("srun: error: n1: task 0: Killed") name a host and task
    lines = [m.strip() for m in re.findall(r"srun: error: (.+)", text)]
    why = [m for m in lines if not re.match(r"\S+: tasks? [\d,\-]+: ", m)]
    if not why:
        return None
    head = (
        f"srun on {socket.gethostname()} could not start the {ranks}-rank Aer step; "
        f"Slurm says: {_one_line(why[-1])}"
    )
    if re.search(r"processors|node configuration|nodes|tasks", why[-1], re.IGNORECASE):
        return (
            f"{head}: the job's allocation is too small for a {ranks}-rank step: submit the "
            "job with more tasks (qshpc submit --nodes N --ntasks-per-node M) and declare the "
            f"task with target={{'ranks': {ranks}}} (the job then holds {ranks} ranks for it); "
            "rerunning the call will not help"
        )
    return f"{head} (the step's output is in this task's log)"


def _arrays(folder: Path, result: dict[str, Any]) -> dict[tuple[int, str], Any]:
    """The saved arrays, loaded (the folder may be removed after reading)."""
    import numpy as np

    out: dict[tuple[int, str], Any] = {}
    for i, exp in enumerate(result.get("experiments", [])):
        for label, entry in exp.get("saved", {}).items():
            if "file" in entry:
                out[(i, label)] = np.load(folder / entry["file"])
    return out


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _tail(text: str | None, lines: int = 20) -> str:
    return "\n".join((text or "").strip().splitlines()[-lines:])


__all__ = [
    "SCRUB_PREFIXES",
    "Mpiexec",
    "StepError",
    "StepLauncher",
    "StepResult",
    "default_launcher",
    "launch",
    "mpiexec_path",
    "scrubbed_env",
    "step_argv",
    "write_step",
]
