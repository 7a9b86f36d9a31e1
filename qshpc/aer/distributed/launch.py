"""Start a distributed Aer step: k fresh processes with an ``MPI_COMM_WORLD`` of their own.

Aer distributes one statevector over ``MPI_COMM_WORLD`` and nothing else, so
the ranks of a job cannot lend it a sub-communicator: a distributed run is a
new MPI world, started as its own step.

- **Locally** (``launcher="mpiexec"``): a nested ``mpiexec -n k``, started from
  inside a rank that may itself run under ``mpiexec``. The launcher variables
  the parent inherited (``PMI_*``, ``HYDRA_*``, ``PMIX_*``, ``MPI_LOCAL*``,
  Open MPI's ``OMPI_COMM_WORLD_*``) are removed first (:func:`scrubbed_env`);
  Hydra overwrites the ones it sets, but a variable it does not set would
  otherwise reach the new ranks.
- **Under Slurm** (``launcher="srun"``): a job step inside the allocation,
  ``srun --mpi=pmi2 --overlap --ntasks=k --kill-on-bad-exit=1``. ``--overlap``
  lets the step use CPUs the job's running step already holds (the job's
  ranks wait while it runs).

``"auto"`` picks srun inside a Slurm allocation, else mpiexec. The step's
processes get the MPI Aer's environment (:func:`..install.step_env`); nothing
else in the job does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qshpc.aer.distributed.install import AerMPI, locate, step_env, why_missing
from qshpc.aer.distributed.spec import (
    CIRCUITS_FILE,
    RESULT_FILE,
    SPEC_FILE,
    Save,
    StepSpec,
    rank_file,
    write_json,
)
from qshpc.errors import QshpcError, UserError

if TYPE_CHECKING:
    from qiskit import QuantumCircuit  # type: ignore[import-untyped]

LAUNCHERS = ("auto", "mpiexec", "srun")
#: Variables a launcher sets in its ranks; a nested launch must not pass them on.
SCRUB_PREFIXES = ("PMI_", "PMIX_", "HYDRA_", "MPI_LOCALRANKID", "MPI_LOCALNRANKS",
                  "OMPI_COMM_WORLD_", "OMPI_UNIVERSE_SIZE", "OMPI_MCA_ess_", "OMPI_MCA_orte_",
                  "OMPI_MCA_pmix", "PRTE_")  # fmt: skip
#: Slurm variables of the enclosing step that srun would read as this step's defaults.
SLURM_STEP_VARS = ("SLURM_STEP_", "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_TASKS_PER_NODE",
                   "SLURM_CPU_BIND", "SLURM_DISTRIBUTION", "SLURM_SRUN_COMM_", "SLURM_PROCID",
                   "SLURM_LOCALID", "SLURM_NODEID", "SLURM_GTIDS", "SLURM_LAUNCH_NODE_IPADDR",
                  "SLURM_UMASK", "SLURM_STEPID", "SLURM_CPUS_PER_TASK", "SLURM_TRES_PER_TASK")  # fmt: skip


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

    def hosts(self) -> list[str]:
        """Host of each rank, by rank."""
        return [str(r.get("host")) for r in self.ranks]


def scrubbed_env(env: dict[str, str], *, slurm_step: bool = False) -> dict[str, str]:
    """``env`` without the MPI launcher variables (and the enclosing Slurm step's, if asked)."""
    drop = SCRUB_PREFIXES + (SLURM_STEP_VARS if slurm_step else ())
    return {k: v for k, v in env.items() if not k.startswith(drop)}


def pick_launcher(launcher: str = "auto") -> str:
    """``mpiexec`` or ``srun`` for ``launcher`` (``auto``: srun inside a Slurm allocation)."""
    if launcher not in LAUNCHERS:
        raise UserError(f"unknown launcher {launcher!r}; use one of {', '.join(LAUNCHERS)}")
    if launcher != "auto":
        return launcher
    return "srun" if os.environ.get("SLURM_JOB_ID") and shutil.which("srun") else "mpiexec"


def mpiexec_path() -> str:
    """The ``mpiexec`` next to this Python (the PyPI MPI), else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if found is None:
        raise UserError("no mpiexec next to Python or on PATH: pip install mpich")
    return found


def command(folder: Path, ranks: int, launcher: str, nodes: int | None = None) -> list[str]:
    """The argv that starts ``ranks`` step processes on ``folder``."""
    step = [sys.executable, "-m", "qshpc.aer.distributed.step", str(folder)]
    if launcher == "srun":
        where = [f"--nodes={nodes}"] if nodes else []
        return ["srun", "--mpi=pmi2", "--overlap", f"--ntasks={ranks}", *where,
                "--kill-on-bad-exit=1", "--cpu-bind=none", *step]  # fmt: skip
    return [mpiexec_path(), "-n", str(ranks), *step]


def write_step(folder: Path, circuits: Sequence[QuantumCircuit], spec: StepSpec) -> None:
    """Write ``circuits.qpy`` and ``spec.json`` into ``folder``."""
    from qiskit import qpy

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / CIRCUITS_FILE).open("wb") as f:
        qpy.dump(list(circuits), f)
    write_json(folder / SPEC_FILE, spec.to_json())


def launch(
    folder: Path,
    ranks: int,
    *,
    launcher: str = "auto",
    nodes: int | None = None,
    timeout: float | None = None,
    aer: AerMPI | None = None,
) -> StepResult:
    """Run the step written in ``folder`` on ``ranks`` new processes and read what they wrote.

    Raises:
        UserError: No MPI Aer, a bad rank count or launcher.
        StepError: A rank failed, a rank was lost, or the step ran past ``timeout``.
    """
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise UserError(f"ranks must be a positive int, got {ranks!r}")
    aer = aer or locate()
    if aer is None:
        raise UserError(why_missing() + ": run `make install-aer-mpi` (see docs/distributed.md)")
    how = pick_launcher(launcher)
    argv = command(folder, ranks, how, nodes)
    env = scrubbed_env(step_env(aer), slurm_step=how == "srun")
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        raise StepError(f"the {ranks}-rank Aer step ran past {timeout:g} s and was stopped "
                        f"(folder {folder}); output:\n{_tail(out)}") from None  # fmt: skip
    wall = time.monotonic() - start
    reports = [_read(rank_file(folder, r)) for r in range(ranks)]
    failed = [r for r in reports if r and "error" in r]
    if failed:
        r = failed[0]
        raise StepError(f"rank {r.get('rank', r.get('env_rank'))} of the {ranks}-rank Aer step on "
                        f"{r.get('host')} failed: {r['error']}\n{r.get('traceback', '')}")  # fmt: skip
    lost = [i for i, r in enumerate(reports) if r is None]
    result = _read(folder / RESULT_FILE)
    if proc.returncode != 0 or lost or result is None:
        raise StepError(f"the {ranks}-rank Aer step ({' '.join(argv[:3])} ...) exited "
                        f"{proc.returncode}; ranks without a report: {lost or 'none'}; "
                        f"output:\n{_tail(out)}")  # fmt: skip
    return StepResult(folder, result, [r for r in reports if r is not None], argv, wall, out,
                      _arrays(folder, result))  # fmt: skip


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


#: Chunks each rank holds by default. During a swap with another rank a rank
#: holds one chunk more than its share, so its peak is about ``1 + 1/c`` times
#: its share with qshpc's patched build (1.16-1.21x measured at 8, 2.0x at 1);
#: an unpatched build keeps a buffer per chunk: 2x whatever c.
CHUNKS_PER_RANK = 8
#: Chunks are not made smaller than this (qubits) to get there.
MIN_BLOCKING_QUBITS = 14


def default_blocking_qubits(num_qubits: int, ranks: int) -> int:
    """Chunk size (qubits) when none is given: :data:`CHUNKS_PER_RANK` chunks per rank,
    chunks of at least :data:`MIN_BLOCKING_QUBITS` qubits, one chunk on a single rank.

    See docs/distributed.md for the measurements behind it.
    """
    per_rank = num_qubits - (ranks - 1).bit_length()
    if ranks == 1:
        return per_rank
    target = per_rank - (CHUNKS_PER_RANK - 1).bit_length()
    return max(target, min(per_rank, MIN_BLOCKING_QUBITS), 1)


def prepare(
    circuits: Sequence[QuantumCircuit], optimization_level: int = 1
) -> list[QuantumCircuit]:
    """Transpile once, here, to the basis a distributed step accepts (:data:`.step.BASIS`).

    Once: every rank must run the very same circuit, and two transpiles of one
    circuit can differ (Qiskit's synthesis picks among equal choices in an
    order that varies between processes); chunks of two different circuits
    mix silently.
    """
    from qiskit import transpile as qiskit_transpile

    from qshpc.aer.distributed.step import BASIS

    out = qiskit_transpile(list(circuits), basis_gates=[*BASIS, "measure"],
                           optimization_level=optimization_level)  # fmt: skip
    return list(out)


def _scratch(launcher: str) -> str | None:
    """Where a step's folder goes: shared storage under Slurm (all nodes read it), else /tmp."""
    if pick_launcher(launcher) != "srun":
        return None
    from qshpc.jobs import qshpc_home

    path = qshpc_home() / "steps"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def run_circuits(
    circuits: Sequence[QuantumCircuit],
    ranks: int,
    *,
    shots: int = 1,
    seed: int = 0,
    saves: Sequence[Sequence[Save]] | None = None,
    options: dict[str, Any] | None = None,
    launcher: str = "auto",
    nodes: int | None = None,
    folder: Path | None = None,
    timeout: float | None = None,
    transpile: bool = True,
) -> StepResult:
    """Transpile ``circuits`` once here (:func:`prepare`), then run them over ``ranks`` processes.

    Args:
        circuits: Circuits (measured ones give counts).
        ranks: Processes of the step (a power of two for Aer's chunking).
        shots: Shots per circuit.
        seed: ``seed_simulator`` for every rank.
        saves: Per circuit, values to save (indices of the *transpiled* circuit's qubits;
            with ``transpile`` the layout is trivial for Aer's all-to-all target).
        options: ``AerSimulator`` options; ``method``, ``blocking_enable``,
            ``blocking_qubits`` (:func:`default_blocking_qubits`) and
            ``max_parallel_threads`` (cores / ranks) get defaults.
        launcher: ``auto``, ``mpiexec`` or ``srun``.
        nodes: ``srun --nodes``.
        folder: The step's folder (default: a new temporary one, removed after reading).
        timeout: Seconds before the step is stopped.
        transpile: False when ``circuits`` went through :func:`prepare` already.
    """
    if ranks & (ranks - 1):
        raise UserError(f"ranks must be a power of two for Aer's chunk distribution, got {ranks}")
    circuits = list(circuits)
    width = max((c.num_qubits for c in circuits), default=0)
    opts: dict[str, Any] = {"method": "statevector", "blocking_enable": True}
    opts.update(options or {})
    if opts.get("blocking_enable") and "blocking_qubits" not in opts:
        opts["blocking_qubits"] = default_blocking_qubits(width, ranks)
    opts.setdefault("max_parallel_threads", max(1, (os.cpu_count() or 1) // ranks))
    if transpile:
        circuits = prepare(circuits)
    seed_rows = [list(row) for row in (saves or [[] for _ in circuits])]
    spec = StepSpec(seed_rows, shots, seed, opts)
    own = folder is None
    where = folder or Path(tempfile.mkdtemp(prefix="qshpc-aer-step-", dir=_scratch(launcher)))
    try:
        write_step(where, circuits, spec)
        return launch(where, ranks, launcher=launcher, nodes=nodes, timeout=timeout)
    finally:
        if own and os.environ.get("QSHPC_KEEP_STEP") != "1":
            shutil.rmtree(where, ignore_errors=True)


__all__ = [
    "CHUNKS_PER_RANK",
    "LAUNCHERS",
    "MIN_BLOCKING_QUBITS",
    "StepError",
    "StepResult",
    "command",
    "default_blocking_qubits",
    "launch",
    "pick_launcher",
    "prepare",
    "run_circuits",
    "scrubbed_env",
    "write_step",
]
