"""Seeds and provenance of Aer runs inside tasks.

The seed of a run, in order: an explicit ``seed``, then the running task's seed
(derived from the job seed and the task id, so it does not depend on the rank),
then none (Aer draws one; it is recorded so the run can be repeated).
Each run adds to the running task's provenance record; several runs in one task
accumulate (hashes appended, wall time summed).
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from qshpc.task.context import TaskContext, current_task, record_provenance

_local = threading.local()


def resolve_seed(explicit: int | None) -> int | None:
    """The seed for a run: ``explicit``, else the running task's seed, else None."""
    if explicit is not None:
        from numbers import Integral  # numpy's ints too, as Aer takes them

        if isinstance(explicit, bool) or not isinstance(explicit, Integral) or explicit < 0:
            from qshpc.errors import UserError

            raise UserError(f"seed must be a non-negative int, got {explicit!r}")
        return int(explicit)
    task = current_task()
    return task.seed if task is not None else None


@functools.cache
def aer_version() -> str:
    """The installed qiskit-aer version (read once per process)."""
    import qiskit_aer

    return str(qiskit_aer.__version__)


def record_run(
    *,
    seed: int | None,
    simulator: dict[str, Any],
    circuit_hashes: list[str],
    wall_s: float,
    shots: int | None,
    primitive: str,
    shared: int = 0,
) -> None:
    """Add one Aer run to the running task's provenance (no-op outside tasks).

    Args:
        seed: ``seed_simulator`` used (the one Aer drew when none was given).
        simulator: ``{"method", "device", "precision", "threads", "gpu"}``.
        circuit_hashes: SHA-256 of each input circuit's QPY.
        wall_s: Seconds the run took, transpiling included (on a worker that ran
            it in a group: the task's own turns and its share of the shared Aer run).
        shots: Shots, or None for exact results.
        primitive: Which entry point ran, e.g. ``"Sampler"``.
        shared: Results (experiments, or bound points of merged ones) of the Aer
            run that computed this run's exact states, when it was shared with
            other tasks (0: not shared).
    """
    task: TaskContext | None = current_task()
    if task is None:
        return
    last = getattr(_local, "last", None)
    if last is not None and last[0] is task:
        acc: dict[str, Any] = last[1]
    else:
        acc = {"circuit_sha256": [], "wall_s": 0.0, "aer_runs": 0, "seeds": [], "shared": 0}
        _local.last = (task, acc)
    acc["circuit_sha256"].extend(circuit_hashes)
    acc["wall_s"] = round(acc["wall_s"] + wall_s, 6)
    acc["aer_runs"] += 1
    acc["seeds"].append(seed)
    acc["shared"] = max(acc["shared"], shared)
    record_provenance(
        seed=acc["seeds"][0],
        seeds=list(acc["seeds"]),
        simulator={k: simulator[k] for k in ("method", "device", "precision", "threads")},
        device=simulator["device"],
        gpu=simulator.get("gpu"),
        qiskit_aer_version=aer_version(),
        circuit_sha256=list(acc["circuit_sha256"]),
        wall_s=acc["wall_s"],
        aer_runs=acc["aer_runs"],
        shots=shots,
        primitive=primitive,
    )
    if acc["shared"] > 1:
        record_provenance(aer_shared_experiments=acc["shared"])


__all__ = ["aer_version", "record_run", "resolve_seed"]
