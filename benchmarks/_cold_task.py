"""The task body of benchmarks/coldstart.py's baselines: exact probabilities on Aer.

The same work as the seed program's ``Sampler().run(circuit).result().quasi_dists[0]``
(exact: final measurements removed, the probabilities of the final state), done
the way a careful user of plain Qiskit would: one AerSimulator and one preset
pass manager per process, built on first use and reused.
"""

from __future__ import annotations

from typing import Any

_cache: dict[str, Any] = {}


def _tools() -> tuple[Any, Any]:
    if not _cache:
        from qiskit.transpiler import generate_preset_pass_manager
        from qiskit_aer import AerSimulator

        sim = AerSimulator(method="statevector", max_parallel_threads=1)
        _cache["sim"] = sim
        _cache["pm"] = generate_preset_pass_manager(optimization_level=1, backend=sim)
    return _cache["sim"], _cache["pm"]


def _exact(circuit: Any) -> Any:
    c = circuit.remove_final_measurements(inplace=False)
    c.save_probabilities_dict()
    return c


def _dist(data: dict[str, Any]) -> dict[int, float]:
    return {
        int(k, 16) if isinstance(k, str) else int(k): float(v)
        for k, v in data["probabilities"].items()
    }


def sample(circuit: Any) -> dict[int, float]:
    """One circuit: transpile with the process's pass manager, one Aer run."""
    sim, pm = _tools()
    result = sim.run(pm.run(_exact(circuit)), shots=1).result()
    return _dist(result.data(0))


def sample_all(circuits: list[Any]) -> list[dict[int, float]]:
    """All circuits: one transpile call, one Aer batch."""
    sim, pm = _tools()
    transpiled = pm.run([_exact(c) for c in circuits])
    result = sim.run(transpiled, shots=1).result()
    return [_dist(result.data(i)) for i in range(len(circuits))]
