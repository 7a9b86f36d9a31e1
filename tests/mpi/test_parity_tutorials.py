"""The seed notebook's flow and quantum-serverless's tutorial programs, imports and client changed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

# was: from quantum_serverless import QuantumServerless, GatewayProvider, Program
from qshpc import Job, LocalClient, Program, QiskitPattern, QuantumServerless
from tests.mpi.test_parity import MODES, PARITY, run_program

pytestmark = pytest.mark.mpi

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_seed_notebook_flow(qshpc_home: Path) -> None:
    """In [1]-In [20] of the seed notebook: only the provider line differs (and run_program stays)."""
    from qiskit.circuit.random import random_circuit

    serverless = QuantumServerless(
        LocalClient(workers=2)
    )  # was: QuantumServerless(GatewayProvider(...))
    assert repr(serverless) == "<QuantumServerless | providers [local]>"
    circuits = [random_circuit(2, 2) for _ in range(5)]
    [circuit.measure_all() for circuit in circuits]
    program = Program(
        title="Program with distributed workflow",
        entrypoint="program_4.py",
        working_dir=str(EXAMPLES),
    )
    job = serverless.run_program(program, arguments={"circuits": circuits})
    assert repr(job).startswith("<Job | ")
    result = job.result()
    assert job.status() == "SUCCEEDED"  # what the seed notebook printed
    assert len(result["results"]) == 5
    for dist in result["results"]:
        assert abs(sum(dist.values()) - 1) < 1e-9


def test_quantum_serverless_pattern_test(qshpc_home: Path) -> None:
    """tests/core/test_pattern.py::test_program, with a LocalClient in place of docker compose."""
    serverless = QuantumServerless(LocalClient(workers=1)).set_provider("local")
    program = QiskitPattern(
        title="simple_job",
        entrypoint="job.py",
        working_dir=str(PARITY),
        description="description",
        version="0.0.1",
    )
    job = serverless.run(program)
    assert isinstance(job, Job)
    must_finish = time.time() + 120  # tests/utils.py::wait_for_job_completion
    while time.time() < must_finish and not job.in_terminal_state():
        time.sleep(0.2)
    assert "42" in job.logs()
    assert job.in_terminal_state()
    assert job.status() == "DONE"
    recovered_job = serverless.get_job_by_id(job.job_id)
    assert recovered_job.job_id == job.job_id
    assert "42" in recovered_job.logs()
    assert recovered_job.in_terminal_state()
    assert recovered_job.status() == "DONE"
    assert isinstance(job.stop(), bool)


@pytest.mark.parametrize("mode", MODES)
def test_tutorial_program_shapes(mode: str, qshpc_home: Path) -> None:
    res = run_program(mode, "tutorial_flows.py", qshpc_home)
    assert res["values"] == [0.5 * (i + 1) + 0.25 * (i + 1) * 2 for i in range(8)]
    assert res["batches"] == [res["values"][:4], res["values"][4:]]
    assert res["ready"] == 8
    assert res["recovered"] == [1, "recovered: ValueError", 3]


def test_parallel_transpile_on_workers(qshpc_home: Path, tmp_path: Path) -> None:
    prog = tmp_path / "transpile.py"
    prog.write_text(
        "from qiskit.circuit.random import random_circuit\n"
        "from qiskit.providers.fake_provider import GenericBackendV2\n"
        "from qshpc import parallel_transpile, save_result\n"
        "c1, c2 = random_circuit(5, 3, seed=1), random_circuit(5, 3, seed=2)\n"
        "b = [GenericBackendV2(num_qubits=5), GenericBackendV2(num_qubits=5)]\n"
        "out = parallel_transpile(circuits=[c1, [c1, c2]], backends=b)\n"
        "save_result({'kinds': [type(out[0]).__name__, len(out[1])]})\n"
    )
    job = LocalClient(workers=2).run(
        Program(title="t", entrypoint="transpile.py", working_dir=str(tmp_path))
    )
    assert job.result(timeout=180) == {"kinds": ["QuantumCircuit", 2]}
