"""Helpers for the multi-node tests: Slurm calls with timeouts, job waits, exact probabilities.

Every subprocess gets a timeout (a wedged daemon fails a test instead of
hanging the run). Job folders live under pytest's ``tmp_path``: the node
namespaces share the host's filesystem (``test_tmp_path_is_shared`` checks it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PROGRAMS = REPO / "tests" / "programs"
EXAMPLES = REPO / "examples"
SBATCH_EXAMPLE = REPO / "slurm" / "examples" / "run_multinode.sbatch"
DEVCLUSTER = REPO / "slurm" / "devcluster.sh"
SLURM_DIR = Path(os.environ.get("QSHPC_SLURM_DIR", "/var/tmp/qshpc-slurm"))
NODES = ("n1", "n2", "n3")
SLURM_TERMINAL = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
}


def sh(
    args: list[str], timeout: float = 30, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """subprocess.run, text captured, with a timeout (deadlock guard)."""
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **kw,
    )


def qshpc(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m qshpc ARGS`` as a user runs it."""
    return sh([sys.executable, "-m", "qshpc", *args], timeout=timeout)


def sbatch(script: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Submit ``script``; return the Slurm job id."""
    out = sh(["sbatch", "--parsable", *args, str(script)], env=env)
    assert out.returncode == 0, f"sbatch failed: {out.stderr}"
    return out.stdout.strip().split(";")[0]


def sacct_state(job_id: str) -> str:
    """The allocation's raw state (``NODE_FAIL``, ``CANCELLED``, ...), '' when unknown yet."""
    out = sh(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"], timeout=15)
    lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    return lines[-1].split()[0] if lines else ""


def wait_slurm(job_id: str, timeout: float = 90) -> str:
    """Wait until Slurm says the job ended; return its raw state (scancel + fail on timeout)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = sacct_state(job_id)
        if state in SLURM_TERMINAL:
            return state
        time.sleep(0.25)
    sh(["scancel", job_id])
    pytest.fail(f"Slurm job {job_id} not finished after {timeout}s (last state {state!r})")


def status_json(job: str | Path) -> dict[str, Any]:
    """``qshpc status JOB --json``."""
    out = qshpc("status", str(job), "--json")
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def read_tasks(job_dir: Path) -> list[dict[str, Any]]:
    from qshpc.store import JobReader

    with JobReader.open(job_dir) as r:
        return r.tasks()


def circuits_args(path: Path, n: int = 8) -> list[Any]:
    """Write the seed notebook's arguments (``n`` random 2-qubit circuits) to ``path``."""
    from qiskit.circuit.random import random_circuit

    import qshpc

    circuits = [random_circuit(2, 2, measure=True, seed=100 + i) for i in range(n)]
    qshpc.save_arguments(path, {"circuits": circuits})
    return circuits


def exact_probabilities(circuit: Any) -> dict[int, float]:
    """The circuit's outcome probabilities from its statevector, keyed by int."""
    from qiskit.quantum_info import Statevector

    sv = Statevector(circuit.remove_final_measurements(inplace=False))
    return {int(k, 2): float(v) for k, v in sv.probabilities_dict().items()}


def assert_same_distribution(got: dict[int, float], want: dict[int, float]) -> None:
    keys = set(got) | set(want)
    for k in keys:
        assert abs(float(got.get(k, 0.0)) - want.get(k, 0.0)) < 1e-9, (k, got, want)


def assert_program_4_result(result: dict[str, Any], circuits: list[Any]) -> None:
    assert len(result["results"]) == len(circuits)
    for got, circuit in zip(result["results"], circuits, strict=True):
        assert_same_distribution({int(k): v for k, v in got.items()}, exact_probabilities(circuit))


def hosts_of_ranks(meta: dict[str, Any]) -> dict[int, str]:
    return {int(r["rank"]): str(r["host"]) for r in meta["ranks"]}


def record_figure(name: str, **values: Any) -> None:
    """Print a measured figure (``pytest -s`` shows it; docs/multinode.md quotes them)."""
    print(f"\n[multinode figure] {name}: {json.dumps(values, sort_keys=True)}")


def submit_available() -> bool:
    """``qshpc submit`` exists (the Slurm submit path)."""
    try:
        out = qshpc("submit", "--help", timeout=30)
    except subprocess.TimeoutExpired:
        return False
    return out.returncode == 0
