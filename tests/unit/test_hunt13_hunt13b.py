"""hunt13b: quantum-serverless / qiskit-serverless programs and notebooks ported to qshpc.

qiskit-serverless v0.11.0 (the release after quantum-serverless 0.10.1) renamed
``QiskitPattern`` to ``QiskitFunction`` and ran uploaded programs with
``client.list()`` / ``client.get(title)`` and ``function.run(**arguments)``
(docs/getting_started/basic/01_running_program.ipynb). Imports changed to
``qshpc``, that flow failed at the import.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import qshpc
from qshpc import LocalClient, QiskitFunction, QiskitServerlessException

PATTERN = """\
from qshpc import get_arguments, save_result

save_result({"got": get_arguments()})
"""


def test_qiskit_function_flow_of_the_v011_tutorial(tmp_path: Path) -> None:
    (tmp_path / "source_files").mkdir()
    (tmp_path / "source_files" / "pattern.py").write_text(PATTERN)
    serverless = LocalClient(workers=0)
    function = QiskitFunction(
        title="my-first-pattern",
        entrypoint="pattern.py",
        working_dir=str(tmp_path / "source_files"),
    )
    uploaded = serverless.upload(function)  # bound, as qiskit-serverless 0.22's
    assert isinstance(uploaded, QiskitFunction) and uploaded.title == "my-first-pattern"
    pattern = qshpc.QiskitPattern(
        title="p", entrypoint="pattern.py", working_dir=str(tmp_path / "source_files")
    )
    assert serverless.upload(pattern) == "p"  # a QiskitPattern: its title, as in 0.10.1
    functions = {f.title: f for f in serverless.list()}
    my_pattern_function = functions["my-first-pattern"]
    job = my_pattern_function.run(n=3)
    assert job.result(timeout=120) == {"got": {"n": 3}}
    assert job.status() == "DONE" and job.in_terminal_state()
    got = serverless.get("my-first-pattern")
    assert got is not None and [j.job_id for j in got.get_jobs()] == [job.job_id]
    assert serverless.get("no-such-title") is None
    assert serverless.function("my-first-pattern") == got

    # the renamed client decorator runs a function as a job
    def _double(x: int) -> dict[str, int]:  # local: cloudpickle sends it by value
        return {"x": 2 * x}

    runner = qshpc.distribute_qiskit_function(serverless)(_double)
    assert runner(x=21).result(timeout=120) == {"x": 42}


def test_qiskit_function_refusals_name_the_fix() -> None:
    with pytest.raises(QiskitServerlessException, match=r"no client to run on: upload it"):
        QiskitFunction(title="a", entrypoint="pattern.py").run()
    with pytest.raises(QiskitServerlessException, match=r"Docker image.*give entrypoint="):
        QiskitFunction(title="a", image="icr.io/me/runner:1")
    with pytest.raises(QiskitServerlessException, match=r"needs a quantum-serverless gateway"):
        qshpc.ServerlessClient(token="t", host="http://localhost:8000")
    f = QiskitFunction(title="ibm/a", entrypoint="pattern.py")
    assert (f.provider, f.title) == ("ibm", "a")
    assert isinstance(f, qshpc.QiskitPattern)


SLEEPER = """\
import time

from qshpc import distribute_task, get


@distribute_task()
def nap(i):
    print("started", flush=True)
    time.sleep(120)


get(nap(1))
"""


def test_status_after_stop_is_canceled_as_on_the_gateway(tmp_path: Path) -> None:
    # quantum-serverless's gateway marked a stopped job at once: `job.stop(); job.status()`
    # gave CANCELED. qshpc's stop returned as the signal left, and status() said RUNNING.
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    serverless = qshpc.QuantumServerless(LocalClient(workers=1))
    job = serverless.run(
        qshpc.QiskitPattern(title="sleeper", entrypoint="sleeper.py", working_dir=str(tmp_path))
    )
    deadline = time.monotonic() + 60
    while "started" not in job.logs() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.status() == "RUNNING"
    assert job.stop() is True
    assert job.status() == "CANCELED" and job.in_terminal_state()
    assert job.stop() is False  # already ended


def test_a_noise_model_from_get_arguments_saved_again_stays_typed(tmp_path: Path) -> None:
    # A program that saves the NoiseModel it was given (get_arguments) in its result:
    # Aer's to_dict of a from_dict model gives unitaries its from_dict cannot read, so
    # the store pickled it and job.result() raised PickleRefusedError.
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    model = NoiseModel()
    model.add_all_qubit_quantum_error(depolarizing_error(0.01, 1), ["x"])
    (tmp_path / "echo.py").write_text(
        "from qshpc import get_arguments, save_result\n"
        "save_result({'noise': get_arguments()['noise']})\n"
    )
    job = LocalClient(workers=0).run(
        qshpc.Program(title="echo", entrypoint="echo.py", working_dir=str(tmp_path)),
        arguments={"noise": model},
    )
    got = job.result(timeout=120)["noise"]  # no allow_pickle
    assert isinstance(got, NoiseModel) and got == model
    # saved a third time, from the notebook, it is still data
    qshpc.save_arguments(tmp_path / "again.h5", {"noise": got})
    assert qshpc.load_arguments(tmp_path / "again.h5")["noise"] == model


V022 = Path(__file__).resolve().parents[1] / "programs" / "hunt13b"


def test_qiskit_serverless_v022_docker_tests_with_local_client() -> None:
    """tests/docker/test_docker.py of qiskit-serverless v0.22.0, its ``local`` client.

    The source_files (pattern.py, pattern_with_arguments.py,
    pattern_with_parallel_workflow.py) with only the import line changed.
    """
    from qiskit import QuantumCircuit
    from qiskit.circuit.random import random_circuit

    base_client = LocalClient(workers=0)  # one rank: cheap (mpiexec -n 3 checked by hand)
    # test_simple_function
    simple_function = QiskitFunction(
        title="my-first-pattern", entrypoint="pattern.py", working_dir=str(V022)
    )
    runnable_function = base_client.upload(simple_function)
    assert isinstance(runnable_function, QiskitFunction)
    assert runnable_function.type == "GENERIC"
    runnable_function = base_client.function(simple_function.title)
    assert runnable_function is not None and runnable_function.type == "GENERIC"
    job = runnable_function.run()
    assert job.result(timeout=120) is not None
    assert job.status() == "DONE"
    assert isinstance(job.logs(), str)
    # test_function_with_arguments
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    arguments_function = QiskitFunction(
        title="pattern-with-arguments",
        entrypoint="pattern_with_arguments.py",
        working_dir=str(V022),
    )
    runnable = base_client.upload(arguments_function)
    assert isinstance(runnable, QiskitFunction)
    job_args = runnable.run(circuit=circuit)
    # test_distributed_workloads
    circuits = [random_circuit(2, 2) for _ in range(3)]
    for c in circuits:
        c.measure_all()
    parallel = base_client.upload(
        QiskitFunction(
            title="pattern-with-parallel-workflow",
            entrypoint="pattern_with_parallel_workflow.py",
            working_dir=str(V022),
        )
    )
    assert isinstance(parallel, QiskitFunction)
    job_par = parallel.run(circuits=circuits)
    assert set(job_args.result(timeout=120)["quasi_dists"]) <= {"00", "11"}
    assert len(job_par.result(timeout=120)["results"]) == 3
    assert job_par.status() == "DONE"
    # test_multiple_runs: retrieved by id
    retrieved = base_client.job(job.job_id)
    assert retrieved.result() == job.result() and isinstance(retrieved.logs(), str)


def test_update_status_job_mapping_of_v022() -> None:
    """v0.22.0's test_update_sub_status: `update_status(Job.MAPPING)`, then the status
    equals "RUNNING: MAPPING" (Job.MAPPING was an AttributeError: the program failed)."""
    base_client = LocalClient(workers=0)
    function = QiskitFunction(
        title="pattern-with-sub-status",
        entrypoint="pattern_with_sub_status_and_wait.py",
        working_dir=str(V022),
    )
    runnable_function = base_client.upload(function)
    assert isinstance(runnable_function, QiskitFunction)
    job = runnable_function.run()
    deadline = time.monotonic() + 60
    while job.status() != "RUNNING: MAPPING" and not job.in_terminal_state():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    status = job.status()
    assert status == "RUNNING: MAPPING" and status == "RUNNING" and status != "RUNNING: OTHER"
    assert job.result(timeout=60) is None and job.status() == "DONE"
    assert job.status() != "RUNNING: MAPPING"
    assert "update_status\nTrue\nupdated" in job.logs()


def test_jobs_takes_qiskit_serverless_keywords(tmp_path: Path) -> None:
    """`client.jobs(limit=, offset=, status=, function=)` (qiskit-serverless 0.11 on) was a
    TypeError: qshpc's jobs took `state` only."""
    (tmp_path / "p.py").write_text("from qshpc import save_result\nsave_result(1)\n")
    client = LocalClient(workers=0)
    fn = client.upload(QiskitFunction(title="one", entrypoint="p.py", working_dir=str(tmp_path)))
    assert isinstance(fn, QiskitFunction)
    first, second = fn.run(), fn.run()
    assert first.result(timeout=120) == 1 and second.result(timeout=120) == 1
    assert [j.job_id for j in client.jobs(limit=1)] == [second.job_id]
    assert [j.job_id for j in client.jobs(limit=1, offset=1)] == [first.job_id]
    assert len(client.jobs(status="DONE", function=fn)) == 2
    assert client.jobs(function="other") == [] and client.jobs(status="ERROR") == []
    with pytest.raises(qshpc.UserError, match=r"jobs: limit must be a whole number >= 0"):
        client.jobs(limit=-1)
