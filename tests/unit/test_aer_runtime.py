"""Per-rank caches, threads, devices, seeds and provenance of the Aer layer (real Aer)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("qiskit_aer")

from qiskit.circuit.random import random_circuit

import qshpc.aer
from qshpc.aer import Sampler, device, get_pass_manager, get_simulator, sim_spec
from qshpc.errors import UserError
from qshpc.task import context
from qshpc.task.context import RankInfo, TaskContext
from qshpc.task.seeding import derive_seed

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("QSHPC_AER_DEVICE", raising=False)
    saved = context.rank_info()
    qshpc.aer.reset_caches()
    yield
    context.set_rank_info(saved)
    qshpc.aer.reset_caches()


def circuits(n: int = 4, qubits: int = 4) -> list:  # type: ignore[type-arg]
    out = []
    for s in range(n):
        c = random_circuit(qubits, 4, seed=500 + s)
        c.measure_all()
        out.append(c)
    return out


def test_import_is_cheap() -> None:
    code = "import sys, qshpc.aer; print('qiskit' in sys.modules, 'qiskit_aer' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.split() == ["False", "False"]


def test_simulator_and_pass_manager_cached() -> None:
    spec = sim_spec("statevector", "CPU", "double")
    assert get_simulator(spec) is get_simulator(sim_spec("statevector", "CPU", "double"))
    pm = get_pass_manager(spec, 1)
    assert get_pass_manager(spec, 1) is pm
    assert get_pass_manager(spec, 0) is not pm
    Sampler().run(circuits(2)).result()
    Sampler().run(circuits(2)).result()
    assert get_pass_manager(sim_spec(), 1) is pm  # the Sampler used (and kept) the same one
    assert get_simulator(sim_spec("statevector", "CPU", "single")) is not get_simulator(spec)


def test_threads_follow_rank_cpus() -> None:
    context.set_rank_info(RankInfo(rank=1, size=3, local_rank=1, local_size=2, cpus=3))
    spec = sim_spec()
    assert spec.threads == 3
    assert get_simulator(spec).options.max_parallel_threads == 3
    context.set_rank_info(RankInfo(cpus=1))
    assert get_simulator(sim_spec()).options.max_parallel_threads == 1


def test_one_thread_runs_call_aer_directly_with_the_same_results() -> None:
    """On one thread the Aer layer skips the AerJob (issue 19): same data, seeds and shots."""
    from qshpc.aer import engine

    context.set_rank_info(RankInfo(cpus=1))
    spec = sim_spec()
    assert spec.threads == 1
    pm = get_pass_manager(spec, 1)
    experiments = [pm.run(c) for c in circuits(3, 3)]
    via_job = get_simulator(spec).run(experiments, shots=64, seed_simulator=7).result()
    direct = engine.run_aer(spec, experiments, 64, 7, [{}, {}, {}])
    assert [direct.data(i) for i in range(3)] == [via_job.data(i) for i in range(3)]
    assert [r.seed_simulator for r in direct.results] == [r.seed_simulator for r in via_job.results]
    assert engine._direct_call(type(get_simulator(spec))) is not None

    class Other:  # a simulator whose private entry point differs: Aer's run() is used
        def _execute_circuits_job(self, circuits: list[object]) -> None: ...

    assert engine._lookup_direct(Other) is None


def test_gpu_request_without_gpu_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    if "GPU" in device.aer_devices():
        pytest.skip("this machine has a GPU build of Aer")
    monkeypatch.setenv("QSHPC_AER_DEVICE", "GPU")
    with pytest.warns(RuntimeWarning, match="GPU was asked for.*running on the CPU"):
        spec = sim_spec()
    assert (spec.device, spec.gpu) == ("CPU", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Sampler().run(circuits(1)).result()  # second request: no second warning
    monkeypatch.setenv("QSHPC_AER_DEVICE", "CPU")
    assert sim_spec().device == "CPU"


def test_explicit_device_option_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QSHPC_AER_DEVICE", "GPU")
    assert sim_spec(device="CPU").device == "CPU"  # the option beats the environment
    monkeypatch.setenv("QSHPC_AER_DEVICE", "TPU")
    with pytest.raises(UserError, match="QSHPC_AER_DEVICE"):
        sim_spec()
    with pytest.raises(UserError, match="unknown Aer method"):
        sim_spec(method="magic")


def test_gpu_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Binding logic, with Aer's device list and the GPU count faked."""
    monkeypatch.setattr(device, "aer_devices", lambda: ("CPU", "GPU"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    device.gpu_count.cache_clear()
    context.set_rank_info(RankInfo(rank=3, size=4, local_rank=3, local_size=4, cpus=1))
    assert device.resolve_device(None) == ("GPU", 1)
    monkeypatch.setenv("QSHPC_AER_DEVICE", "CPU")
    assert device.resolve_device(None) == ("CPU", None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    device.gpu_count.cache_clear()
    assert device.gpu_count() == 0


def test_a_rank_bound_to_a_gpu_builds_its_simulator_and_runs() -> None:
    """The GPU a rank binds goes to Aer as the run option ``target_gpus``.

    Passed to ``AerSimulator(...)`` it failed every GPU task ("Invalid option
    target_gpus", qiskit-aer-gpu 0.18.2 on an H200); the CPU build refuses it there
    alike, and takes it as a run option, so the path runs here on the CPU.
    """
    from qiskit import QuantumCircuit

    from qshpc.aer.engine import run_aer
    from qshpc.aer.simulator import SimSpec

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.save_probabilities_dict()  # type: ignore[attr-defined]
    for threads in (1, 2):  # Aer's controller called directly, and through run()
        spec = SimSpec("statevector", "CPU", "double", threads, gpu=0)
        get_simulator(spec)
        data = run_aer(spec, [qc], 1, None, [{}]).data(0)["probabilities"]
        assert data == pytest.approx({0: 0.5, 3: 0.5})


def test_gpus_hidden_by_cuda_visible_devices_mean_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """qiskit-aer-gpu lists GPU even when ``CUDA_VISIBLE_DEVICES=-1`` hides them (seen on an
    H200 node): a rank asked for a GPU then warns and runs on the CPU, naming the variable."""
    monkeypatch.setattr(device, "aer_devices", lambda: ("CPU", "GPU"))
    for hidden in ("-1", "", "NoDevFiles"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        device.reset_caches()
        assert device.gpus_hidden()
        assert device.resolve_device(None) == ("CPU", None)  # auto
        monkeypatch.setenv("QSHPC_AER_DEVICE", "GPU")
        with pytest.warns(RuntimeWarning, match="CUDA_VISIBLE_DEVICES=.* hides every GPU"):
            assert device.resolve_device(None) == ("CPU", None)
        monkeypatch.delenv("QSHPC_AER_DEVICE")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    device.reset_caches()
    assert not device.gpus_hidden() and device.resolve_device(None) == ("GPU", 0)


def test_task_seed_and_provenance() -> None:
    task = TaskContext(task_id="17", function="f", seed=derive_seed(99, "17"))
    prov = context.push_task(task)
    try:
        a = Sampler(options={"shots": 256}).run(circuits(3)).result().quasi_dists
        Sampler().run(circuits(1)).result()
    finally:
        context.pop_task()
    assert prov["seed"] == task.seed
    assert prov["aer_runs"] == 2
    assert len(prov["circuit_sha256"]) == 4
    assert all(len(h) == 64 for h in prov["circuit_sha256"])
    assert prov["simulator"] == {
        "method": "statevector",
        "device": "CPU",
        "precision": "double",
        "threads": context.rank_info().cpus,
    }
    assert prov["device"] == "CPU" and prov["gpu"] is None
    assert prov["qiskit_aer_version"].count(".") >= 1
    assert prov["wall_s"] > 0
    # the same seed outside the task reproduces the counts
    b = Sampler().run(circuits(3), shots=256, seed=task.seed).result().quasi_dists
    assert a == b


def test_counts_do_not_depend_on_rank_or_cores() -> None:
    task = TaskContext(task_id="3", function="f", seed=derive_seed(1, "3"))
    results = []
    for info in (RankInfo(rank=1, size=3, cpus=1), RankInfo(rank=2, size=3, cpus=2)):
        context.set_rank_info(info)
        qshpc.aer.reset_caches()
        context.push_task(task)
        try:
            results.append(Sampler().run(circuits(4, 8), shots=1000).result().quasi_dists)
        finally:
            context.pop_task()
    assert results[0] == results[1]


@pytest.mark.parametrize("level", [0, 1])
def test_pass_manager_from_the_target_transpiles_as_from_the_backend(level: int) -> None:
    """get_pass_manager builds from ``sim.target`` (once) what ``backend=sim`` builds."""
    from qiskit import QuantumCircuit
    from qiskit.transpiler import generate_preset_pass_manager

    spec = sim_spec()
    reference = generate_preset_pass_manager(optimization_level=level, backend=get_simulator(spec))
    extra = QuantumCircuit(3, 2)
    extra.reset(0)
    extra.initialize([0, 1], 1)
    extra.h(2)
    extra.measure(2, 0)
    with extra.if_test((extra.clbits[0], 1)):
        extra.x(0)
    extra.measure([0, 1], [0, 1])
    batch = [*circuits(8, 5), extra]
    ours = get_pass_manager(spec, level).run(batch, num_processes=1)
    theirs = reference.run(batch, num_processes=1)
    assert ours == theirs
