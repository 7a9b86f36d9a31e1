"""quantum-serverless 0.10.1's own tests, ported with only import and client lines changed.

From ``tests/test_quantum_serverless.py``, ``tests/core/test_decorator.py``,
``tests/core/test_job.py`` and ``tests/library/test_transpiler.py``. What needed
Ray (``ray.is_initialized()``), a docker compose gateway or HTTP mocks is left
out; each such line is named in a comment. These run in one process (tasks
inline, as under plain ``python``); tests/mpi/test_parity_tutorials.py runs the
same flows on worker ranks.
"""

from __future__ import annotations

from pathlib import Path
from unittest import TestCase

from qiskit import QuantumCircuit
from qiskit.circuit.random import random_circuit

# was: from quantum_serverless import QuantumServerless, BaseProvider, get
# was: from quantum_serverless.core.decorators import distribute_task, Target, fetch_execution_meta
# was: from quantum_serverless.exception import QuantumServerlessException
# was: from quantum_serverless.library import parallel_transpile
from qshpc import (
    BaseProvider,
    QuantumServerless,
    QuantumServerlessException,
    Target,
    distribute_task,
    fetch_execution_meta,
    get,
    parallel_transpile,
)


class TestQuantumServerless(TestCase):
    """tests/test_quantum_serverless.py (the ray.is_initialized() lines need Ray)."""

    def test_qs_class(self) -> None:
        serverless = QuantumServerless()
        with serverless.context():
            pass

    def test_for_at_least_one_cluster_and_one_provider(self) -> None:
        serverless = QuantumServerless()
        self.assertEqual(len(serverless.providers()), 1)

    def test_add_provider(self) -> None:
        serverless = QuantumServerless()
        self.assertEqual(len(serverless.providers()), 1)
        serverless.add_provider(BaseProvider("my_provider"))
        self.assertEqual(len(serverless.providers()), 2)

    def test_all_context_allocations(self) -> None:
        serverless = QuantumServerless()
        with serverless.context():
            pass
        with serverless.provider("local"):
            pass

    def test_available_clusters(self) -> None:
        # test_available_clusters_with_mock mocks a gateway manager's HTTP API; what is left:
        serverless = QuantumServerless()
        for provider in serverless.providers():
            self.assertIsInstance(provider, BaseProvider)


class TestDecorators(TestCase):
    """tests/core/test_decorator.py."""

    def test_distribute_task(self) -> None:
        serverless = QuantumServerless()

        @distribute_task()
        def another_function(circuit: list[QuantumCircuit], other_circuit: QuantumCircuit) -> int:
            """Another test function."""
            return int(circuit[0].compose(other_circuit, range(5)).depth())

        @distribute_task(target={"cpu": 1})
        def ultimate_function(ultimate_argument: int) -> int:
            """Test function."""
            print("Printing function argument:", ultimate_argument)
            mid_result: int = get(
                another_function([random_circuit(5, 2)], other_circuit=random_circuit(5, 2))
            )
            return mid_result

        with serverless.context():
            reference = ultimate_function(1)
            result = get(reference)
            self.assertEqual(result, 4)

    def test_target(self) -> None:
        target_expected = Target(pip=["pytest", "numpy"])
        target = Target.from_dict({"pip": ["pytest", "numpy"]})
        self.assertEqual(target.pip, target_expected.pip)

    def test_execution_meta(self) -> None:
        args = ([random_circuit(5, 2)], 42, random_circuit(3, 1))
        kwargs = {"some_kwarg": random_circuit(3, 1), "some_kwargs": [random_circuit(3, 1)]}
        meta = fetch_execution_meta(*args, **kwargs)
        expecting = {
            "qs.args.arg_0.0": [5, 2],
            "qs.args.arg_2": [3, 1],
            "qs.kwargs.some_kwarg": [3, 1],
            "qs.kwargs.some_kwargs.0": [3, 1],
        }
        self.assertEqual(expecting, meta)


def test_filtered_logs(qshpc_home: Path) -> None:
    """tests/core/test_job.py::test_filtered_logs, on a job's own log (not a mocked gateway)."""
    from qshpc import LocalClient, Program
    from qshpc.jobs.spec import create_program_job

    prog = qshpc_home.parent / "p.py"
    prog.write_text("print('hi')\n")
    job_dir = create_program_job(
        Program(title="logs", entrypoint="p.py", working_dir=str(prog.parent)), None, None, None
    )
    (job_dir / "logs" / "rank-0.out").write_text(
        "This is the line 1\nThis is the second line\nOK.  This is the last line.\n"
    )
    job = LocalClient().get_job_by_id(job_dir.name)
    assert job.filtered_logs(include="the.+a.+l") == "OK.  This is the last line.\n"
    assert job.filtered_logs(exclude="the.+a.+l") == "This is the line 1\nThis is the second line\n"
    assert (
        job.filtered_logs(include="This is the l.+", exclude="the.+a.+l") == "This is the line 1\n"
    )


class TestParallelTranspile(TestCase):
    """tests/library/test_transpiler.py."""

    def test_transpile(self) -> None:
        from qiskit.providers.fake_provider import GenericBackendV2

        circuit1 = random_circuit(5, 3)
        circuit2 = random_circuit(5, 3)
        backend1 = GenericBackendV2(num_qubits=5)
        backend2 = GenericBackendV2(num_qubits=5)
        with QuantumServerless().context():
            transpiled_circuits = parallel_transpile(
                circuits=[circuit1, [circuit1, circuit2]], backends=[backend1, backend2]
            )
            self.assertIsInstance(transpiled_circuits[0], QuantumCircuit)
            self.assertIsInstance(transpiled_circuits[1], list)
            self.assertEqual(len(transpiled_circuits[1]), 2)
            for tcirc in transpiled_circuits[1]:
                self.assertIsInstance(tcirc, QuantumCircuit)

    def test_transpile_fail(self) -> None:
        from qiskit.providers.fake_provider import GenericBackendV2

        circuit1 = random_circuit(5, 3)
        backend1 = GenericBackendV2(num_qubits=5)
        backend2 = GenericBackendV2(num_qubits=5)
        with QuantumServerless().context():
            with self.assertRaises(QuantumServerlessException):
                parallel_transpile(circuits=[circuit1], backends=[backend1, backend2])
