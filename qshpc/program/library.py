"""quantum-serverless 0.10.1's library: ``parallel_transpile``, on qshpc's tasks.

It is also the tutorials' pattern in one function: two objects placed once with
``put``, one task that fans out nested tasks and blocks in ``get`` on them.
"""

from __future__ import annotations

from typing import Any

from qshpc.errors import QshpcError
from qshpc.program.api import distribute_task, put, results_of


def _transpile(circuits: Any, backend: Any) -> Any:
    from qiskit import transpile  # type: ignore[import-untyped]

    return transpile(circuits, backend=backend)


_transpile_task = distribute_task(name="qshpc.parallel_transpile.transpile")(_transpile)


@distribute_task(name="qshpc.parallel_transpile")
def _remote_transpile(circuits: Any, backends: Any) -> list[Any]:
    # The references are this function's own: their results without get's copies
    return results_of([_transpile_task(c, b) for c, b in zip(circuits, backends, strict=True)])


def parallel_transpile(circuits: list[Any], backends: list[Any]) -> list[Any]:
    """Transpile ``circuits[i]`` (a circuit or a list of them) for ``backends[i]``, in parallel.

    Returns:
        One entry per backend: a transpiled circuit, or a list of them.

    Raises:
        QshpcError: ``circuits`` and ``backends`` differ in length.
    """
    if len(circuits) != len(backends):
        raise QshpcError(
            f"parallel_transpile: {len(circuits)} circuit entries for {len(backends)} backends; "
            "give one entry (a circuit or a list of circuits) per backend"
        )
    result: list[Any] = results_of([_remote_transpile(put(circuits), put(backends))])[0]
    return result
