"""fixD: follow-ups of fix37 (review40 F1, F4 and the V1 Sampler's backend_options)."""

from __future__ import annotations

from typing import Any

import pytest


def _bell() -> Any:
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def _value_for(name: str) -> Any:
    """A value Aer takes for ``name`` (None resets a run option to its default)."""
    values: dict[str, Any] = {
        "coupling_map": [[0, 1], [1, 0]],
        "basis_gates": ["cx", "h", "measure", "u", "rz", "sx", "x"],
        "n_qubits": 5,
        "max_shots": 100,
        "custom_instructions": [],
        "description": "x",
        "fusion_enable": False,
        "max_parallel_threads": 1,
    }
    return values.get(name)


def test_every_name_aer_simulator_takes_is_accepted_and_a_misspelling_refused() -> None:
    """review40 F1: coupling_map, basis_gates, target, ... were refused as unknown.

    Every name is also checked against Aer itself: ``AerSimulator(**{name: value})``.
    """
    from qiskit_aer import AerSimulator

    from qshpc.aer import SamplerV2
    from qshpc.aer.simulator import aer_backend_names, aer_option_names
    from qshpc.aer.v2.pubs import PubError
    from qshpc.primitives.options import SPEC_KEYS

    bell = _bell()
    names = sorted(aer_backend_names() | aer_option_names())
    assert {"coupling_map", "basis_gates", "target", "max_shots", "custom_instructions"} <= set(
        names
    )
    for name in names:
        if name in SPEC_KEYS:
            continue  # they choose the simulator: tested with it
        value = _value_for(name)
        AerSimulator(**{name: value})  # Aer takes it
        sampler = SamplerV2(seed=1, options={"backend_options": {name: value}})
        assert sampler.run([bell], shots=20).result()[0].data.meas.num_shots == 20, name
    # Aer's noisy pattern, as its docs give it
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.1, 2), ["cx"])
    backend = {
        "method": "density_matrix",
        "coupling_map": [[0, 1], [1, 0]],
        "basis_gates": noise.basis_gates,
        "noise_model": noise,
    }
    counts = SamplerV2(seed=1, options={"backend_options": backend}).run([bell], shots=200)
    assert counts.result()[0].data.meas.num_shots == 200
    # Aer: "Invalid option" (to_dict, a method of its configuration, Aer would take)
    for bad in ("seed", "bogus", "coupling_maps", "to_dict"):
        with pytest.raises(PubError, match=rf"unknown backend option\(s\) '{bad}'"):
            SamplerV2(options={"backend_options": {bad: 1}})
    sampler = SamplerV2(seed=1)
    sampler.options.backend_options["basis_gate"] = ["x"]  # set later: refused at run
    with pytest.raises(PubError, match=r"'basis_gate' \(did you mean 'basis_gates'"):
        sampler.run([bell])


def test_a_noisy_estimator_takes_the_density_matrix_only_where_aer_automatic_does() -> None:
    """review40 F4: 13 qubits took 14 s and 15 qubits a 16 GiB density matrix per PUB.

    Aer's automatic method takes density_matrix for a noisy circuit only when
    shots > 2**qubits (9 qubits at its 1024 shots); wider, the PUB is refused
    unless the method is named.
    """
    from qiskit import QuantumCircuit
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    from qshpc.aer import EstimatorV2
    from qshpc.aer.v2.pubs import PubError

    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.1, 2), ["cx"])

    def ghz(n: int) -> QuantumCircuit:
        qc = QuantumCircuit(n, name=f"ghz{n}")
        qc.h(0)
        for i in range(n - 1):
            qc.cx(i, i + 1)
        return qc

    for method in (None, "automatic"):
        backend: dict[str, Any] = {"noise_model": noise}
        if method:
            backend["method"] = method
        estimator = EstimatorV2(options={"backend_options": backend})
        pub = estimator.run([(ghz(9), "ZZ" + "I" * 7)]).result()[0]
        assert float(pub.data.evs) == pytest.approx(0.9, abs=1e-9)  # exact, as Aer's
        assert pub.metadata["simulator_metadata"]["method"] == "density_matrix"
        with pytest.raises(
            PubError, match=r"PUB 1: .*at most 9 qubits at 1024 shots.*'ghz15' acts on 15 qubits"
        ):
            estimator.run([(ghz(2), "ZZ"), (ghz(15), "ZZ" + "I" * 13)])
    named = EstimatorV2(
        options={"backend_options": {"noise_model": noise, "method": "density_matrix"}}
    )
    assert float(named.run([(ghz(10), "ZZ" + "I" * 8)]).result()[0].data.evs) == pytest.approx(
        0.9, abs=1e-9
    )
    fewer = EstimatorV2(
        options={"backend_options": {"noise_model": noise}, "run_options": {"shots": 64}}
    )
    with pytest.raises(PubError, match=r"at most 5 qubits at 64 shots.*acts on 6 qubits"):
        fewer.run([(ghz(6), "ZZ" + "I" * 4)])


def test_the_v1_sampler_takes_aers_nested_backend_and_run_options() -> None:
    """review40: ``Sampler(options={"backend_options": ...})`` failed with a raw TypeError."""
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    from qshpc.aer import Sampler
    from qshpc.errors import UserError

    bell = _bell()
    described = {"coupling_map": [[0, 1]], "basis_gates": ["x"], "n_qubits": 1}
    dist = Sampler(options={"backend_options": described}).run(bell).result().quasi_dists[0]
    assert dist == pytest.approx({0: 0.5, 3: 0.5})
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.5, 2), ["cx"])
    nested = {"backend_options": {"noise_model": noise}, "run_options": {"shots": 400, "seed": 3}}
    flat = {"noise_model": noise, "shots": 400, "seed": 3}
    a = Sampler(options=nested).run(bell).result().quasi_dists[0]
    assert a == Sampler(options=flat).run(bell).result().quasi_dists[0]
    assert set(a) == {0, 1, 2, 3}  # the noise model ran
    later = Sampler()
    later.set_options(run_options={"shots": 10, "seed": 1})
    assert later.run(bell).result().quasi_dists[0].shots == 10
    with pytest.raises(UserError, match=r"options\['backend_options'\] must be a dict"):
        Sampler(options={"backend_options": "statevector"})
