"""qshpc.aer.SamplerV2 / EstimatorV2 in one process: Qiskit's types, every PUB form, exactness,
statistics, reproducibility under any cut, grouped or alone, and bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter, ParameterVector
from qiskit.primitives import (
    BaseEstimatorV2,
    BaseSamplerV2,
    PrimitiveResult,
    PubResult,
    SamplerPubResult,
    StatevectorEstimator,
    StatevectorSampler,
)
from qiskit.primitives.containers import BindingsArray, BitArray
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.providers import JobStatus
from qiskit.quantum_info import Pauli, SparseObservable, SparsePauliOp, Statevector

from qshpc.aer import EstimatorV2, SamplerV2
from qshpc.aer.simulator import sim_spec
from qshpc.aer.v2 import seeds
from qshpc.aer.v2.prepared import key_of, prepare
from qshpc.aer.v2.pubs import PubError, cut
from qshpc.aer.v2.sample import sample_block
from qshpc.errors import UserError
from qshpc.store import _qpy


def ansatz(n: int = 3, measure: bool = True) -> QuantumCircuit:
    theta = ParameterVector("t", 2 * n)
    qc = QuantumCircuit(n)
    for layer in range(2):
        for q in range(n):
            qc.ry(theta[layer * n + q], q)
        for q in range(n - 1):
            qc.cx(q, q + 1)
    if measure:
        qc.measure_all()
    return qc


def values(rows: int, n: int = 3, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, np.pi, (rows, 2 * n))


def probs_of(circuit: QuantumCircuit, row: np.ndarray) -> dict[str, float]:
    bound = circuit.remove_final_measurements(inplace=False).assign_parameters(row)
    return Statevector(bound).probabilities_dict()


# -- types and shapes ------------------------------------------------------------


def test_real_subclasses_and_qiskit_types() -> None:
    assert isinstance(SamplerV2(), BaseSamplerV2)
    assert isinstance(EstimatorV2(), BaseEstimatorV2)
    qc = ansatz()
    res = SamplerV2(seed=1).run([(qc, values(5))]).result()
    assert isinstance(res, PrimitiveResult)
    assert isinstance(res[0], SamplerPubResult)
    assert isinstance(res[0].data.meas, BitArray)
    assert res[0].data.meas.shape == (5,) and res[0].data.meas.num_shots == 1024
    assert res.metadata["seed"] == 1 and res[0].metadata["shots"] == 1024
    est = EstimatorV2().run([(ansatz(measure=False), "ZZZ", values(5))]).result()
    assert isinstance(est[0], PubResult) and est[0].data.evs.shape == (5,)


def test_every_sampler_pub_form() -> None:
    qc = ansatz()
    params = list(qc.parameters)
    v = values(6)
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    pubs = [
        bell,
        (bell,),
        (bell, None, 20),
        (qc, v),
        (qc, v.reshape(2, 3, 6), 30),
        (qc, {tuple(params): v[:2]}),
        (qc, BindingsArray({tuple(params[:3]): v[:4, :3], tuple(params[3:]): v[:4, 3:]})),
        SamplerPub.coerce((qc, v[0]), 40),
        (qc, v.tolist()),
    ]
    res = SamplerV2(seed=3, default_shots=50).run(pubs, shots=70).result()
    shapes = [(), (), (), (6,), (2, 3), (2,), (4,), (), (6,)]
    shots = [70, 70, 20, 70, 30, 70, 70, 40, 70]
    for pub, shape, n in zip(res, shapes, shots, strict=True):
        assert pub.data.meas.shape == shape
        assert pub.data.meas.num_shots == n
    assert set(res[0].data.meas.get_counts()) <= {"00", "11"}
    # the same rows at the same PUB index give the same shots whatever the form of the PUB
    forms = [(qc, v), (qc, v.tolist()), (qc, {tuple(params): v}), SamplerPub.coerce((qc, v))]
    arrays = [SamplerV2(seed=3).run([f]).result()[0].data.meas.array for f in forms]
    assert all(np.array_equal(arrays[0], a) for a in arrays[1:])


def test_registers_and_bit_order_match_statevector_sampler() -> None:
    qr = QuantumRegister(3)
    a, b = ClassicalRegister(2, "alpha"), ClassicalRegister(3, "beta")
    qc = QuantumCircuit(qr, a, b)
    qc.x(0)
    qc.x(2)
    qc.measure([0, 1], a)  # alpha = q1 q0 = "01"
    qc.measure([2, 0], b[:2])  # beta = 0, q0, q2 -> "011"
    res = SamplerV2(seed=1).run([qc], shots=10).result()[0].data
    assert res.alpha.get_counts() == {"01": 10}
    assert res.beta.get_counts() == {"011": 10}
    assert res.alpha.num_bits == 2 and res.beta.num_bits == 3


def test_sampled_counts_pass_chi_squared() -> None:
    from scipy.stats import chi2

    qc = ansatz()
    v = values(4, seed=9)
    shots = 20000
    res = SamplerV2(seed=11).run([(qc, v, shots)]).result()[0].data.meas
    for row in range(4):
        counts = res.get_counts(row)
        exact = probs_of(qc, v[row])
        keys = [k for k, p in exact.items() if p * shots >= 5]
        observed = np.array([counts.get(k, 0) for k in keys], dtype=float)
        expected = np.array([exact[k] * shots for k in keys])
        stat = float(((observed - expected) ** 2 / expected).sum())
        assert chi2.sf(stat, len(keys) - 1) > 1e-4, (row, stat)


def test_counts_are_reproducible_and_seed_dependent() -> None:
    qc = ansatz()
    v = values(8)
    a = SamplerV2(seed=5).run([(qc, v)]).result()[0].data.meas.array
    b = SamplerV2(seed=5).run([(qc, v)]).result()[0].data.meas.array
    c = SamplerV2(seed=6).run([(qc, v)]).result()[0].data.meas.array
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    gen = SamplerV2(seed=np.random.default_rng(1)).run([(qc, v)]).result()
    assert isinstance(gen.metadata["seed"], int)


def test_any_cut_gives_the_same_shots() -> None:
    qc = ansatz()
    v = values(23)
    qpy = _qpy.dump(qc)
    prepared = prepare(key_of(qpy), qpy, sim_spec(), 1)
    whole = sample_block(prepared, v, 64, 42, 0, 0)
    for per_block in (1, 5, 7, 22):
        parts = [
            sample_block(prepared, v[lo:hi], 64, 42, 0, lo) for _, lo, hi in cut([23], 2, per_block)
        ]
        assert np.array_equal(np.concatenate([p[0] for p in parts]), whole[0])
    other_pub = sample_block(prepared, v, 64, 42, 1, 0)
    assert not np.array_equal(other_pub[0], whole[0])


def test_grouped_and_alone_give_the_same_shots() -> None:
    from qshpc.task.coop import Group

    qc = ansatz()
    v = values(12)
    qpy = _qpy.dump(qc)
    prepared = prepare(key_of(qpy), qpy, sim_spec(), 1)
    alone = [sample_block(prepared, v[i : i + 3], 32, 8, 0, i)[0] for i in range(0, 12, 3)]
    grouped: list[np.ndarray] = [np.zeros(0)] * 4

    def call(k: int) -> None:
        grouped[k] = sample_block(prepared, v[3 * k : 3 * k + 3], 32, 8, 0, 3 * k)[0]

    group = Group(4)
    try:
        group.run([lambda k=k: call(k) for k in range(4)])
    finally:
        group.close()
    for a, g in zip(alone, grouped, strict=True):
        assert np.array_equal(a, g)


def test_mid_circuit_measurement_sampled_by_aer_reproducibly() -> None:
    t = Parameter("t")
    mid = QuantumCircuit(2, 2)
    mid.h(0)
    mid.measure(0, 0)
    mid.cx(0, 1)
    mid.ry(t, 1)
    mid.measure(1, 1)
    v = np.array([[0.0], [np.pi], [0.3], [2.0], [1.0]])
    res = SamplerV2(seed=4).run([(mid, v, 400)]).result()[0].data.c
    assert set(res.get_counts(0)) == {"00", "11"}  # ry(0): q1 copies q0
    assert set(res.get_counts(1)) == {"10", "01"}  # ry(pi): q1 is the opposite
    qpy = _qpy.dump(mid)
    prepared = prepare(key_of(qpy), qpy, sim_spec(), 1)
    whole = sample_block(prepared, v, 50, 4, 0, 0)[0]
    parts = [sample_block(prepared, v[lo:hi], 50, 4, 0, lo)[0] for lo, hi in ((0, 2), (2, 5))]
    assert np.array_equal(np.concatenate(parts), whole)


def test_aer_seeds_experiments_as_seed_plus_2113_i() -> None:
    """Our cut-independence for circuits Aer samples rests on this Aer behaviour."""
    from qiskit_aer import AerSimulator

    t = Parameter("t")
    qc = QuantumCircuit(1, 1)
    qc.ry(t, 0)
    qc.measure(0, 0)
    result = AerSimulator().run(qc, shots=1, seed_simulator=100, parameter_binds=[{t: [0, 1, 2]}])
    got = [r.seed_simulator for r in result.result().results]
    assert got == [100 + seeds.AER_SEED_STEP * i for i in range(3)]


def test_aer_binds_only_the_gates_we_say() -> None:
    """Aer binds parameters of rotations only; controlled rotations get one result for all rows."""
    from qiskit.circuit.library import get_standard_gate_name_mapping
    from qiskit_aer import AerSimulator
    from qiskit_aer.library import SaveProbabilities

    from qshpc.aer.binding import BINDABLE

    sim = AerSimulator()
    binds_rows = set()
    for name, gate in get_standard_gate_name_mapping().items():
        if not gate.params or name == "delay" or name not in sim.configuration().basis_gates:
            continue
        params = [Parameter(f"p{i}") for i in range(len(gate.params))]
        op = type(gate)(*params)
        qc = QuantumCircuit(op.num_qubits)
        qc.h(range(op.num_qubits))
        qc.append(op, range(op.num_qubits))
        qc.append(SaveProbabilities(op.num_qubits), qc.qubits)
        rows = {p: [0.1 * (i + 1), 0.2 * (i + 1), 0.3 * (i + 1)] for i, p in enumerate(params)}
        if len(sim.run(qc, shots=1, parameter_binds=[rows]).result().results) == 3:
            binds_rows.add(name)
    assert binds_rows == set(BINDABLE)


def test_parameters_in_controlled_rotations() -> None:
    t = ParameterVector("t", 4)
    qc = QuantumCircuit(3)
    qc.h(range(3))
    qc.crz(t[0], 0, 1)
    qc.cp(t[1], 1, 2)
    qc.cu(t[2], t[3], 0.2, 0.1, 2, 0)
    v = values(5, n=2)
    exact = EstimatorV2().run([(qc, ["ZZI", "XIX", "IYZ"], v[:, None, :])]).result()[0].data.evs
    ref = StatevectorEstimator().run([(qc, ["ZZI", "XIX", "IYZ"], v[:, None, :])]).result()
    assert np.max(np.abs(exact - ref[0].data.evs)) < 1e-9
    measured = qc.measure_all(inplace=False)
    counts = SamplerV2(seed=2).run([(measured, v, 4000)]).result()[0].data.meas
    for row in range(5):
        probs = Statevector(qc.assign_parameters(v[row])).probabilities_dict()
        got = counts.get_counts(row)
        assert max(abs(got.get(k, 0) / 4000 - p) for k, p in probs.items()) < 0.05


def test_no_measurement_reads_zero_and_unmeasured_register_bits_read_zero() -> None:
    qc = QuantumCircuit(2, 3)
    qc.x(0)
    qc.x(1)
    qc.measure(1, 2)
    res = SamplerV2(seed=1).run([qc], shots=5).result()[0].data.c
    assert res.get_counts() == {"100": 5}


def test_a_routed_isa_circuit_is_read_as_it_is_not_through_its_layout() -> None:
    """A circuit the user transpiled onto a device (ISA, a layout with routing swaps) runs as
    it is: Qiskit's and Aer's primitives ignore ``circuit.layout``. We mapped its qubits
    through that layout a second time: wrong counts and expectation values."""
    from qiskit import transpile
    from qiskit.transpiler import CouplingMap

    from qshpc.aer.v2.prepared import is_isa

    n = 5
    qc = QuantumCircuit(n, n)
    qc.x([0, 3])
    qc.cx(0, 4)
    qc.h(2)
    qc.cx(2, 1)
    qc.measure(range(n), range(n))
    routed = transpile(qc, coupling_map=CouplingMap.from_line(n), basis_gates=["cx", "rz", "sx", "x"],
                       initial_layout=[4, 2, 0, 1, 3], seed_transpiler=3, optimization_level=1)  # fmt: skip
    assert is_isa(routed, sim_spec("automatic", "CPU", "double")) and routed.layout is not None
    ours = SamplerV2(seed=3).run([(routed, None, 200)]).result()[0].data.c.get_counts()
    ref = StatevectorSampler(seed=3).run([(routed, None, 200)]).result()[0].data.c.get_counts()
    assert set(ours) == set(ref) and len(ref) == 2, (ours, ref)
    body = routed.remove_final_measurements(inplace=False)
    obs = [SparsePauliOp(p).apply_layout(body.layout) for p in ("IZIIZ", "IIZZZ", "XXIII")]
    got = EstimatorV2().run([(body, obs)]).result()[0].data.evs
    want = StatevectorEstimator().run([(body, obs)]).result()[0].data.evs
    assert np.max(np.abs(got - want)) < 1e-9, (got, want)


# -- estimator ---------------------------------------------------------------------


def test_exact_evs_equal_statevector_estimator_with_broadcasting() -> None:
    qc = ansatz(measure=False)
    v = values(6).reshape(3, 2, 6)
    ok_obs = [
        SparsePauliOp(["ZZI", "XIX"], [0.5, -1.25]),
        Pauli("YYZ"),
        {"IZI": 2.0, "XXX": 0.5},
        "ZII",
    ]
    pubs = [
        (qc, np.array(ok_obs, dtype=object).reshape(4, 1, 1), v),  # (4, 3, 2)
        (qc, "ZZZ", v[0]),  # (2,)
        (qc.assign_parameters(v[0, 0]), ["XXI", "IYY"]),  # no parameters, (2,)
    ]
    ours = EstimatorV2().run(pubs).result()
    ref = StatevectorEstimator().run(pubs).result()
    for a, b in zip(ours, ref, strict=True):
        assert a.data.evs.shape == b.data.evs.shape
        assert np.max(np.abs(a.data.evs - b.data.evs)) < 1e-9
        assert np.all(a.data.stds == 0)
    # projectors (StatevectorEstimator cannot take them): as their Pauli expansion
    projector = SparseObservable.from_label("0+Z")
    expanded = SparsePauliOp.from_sparse_list(projector.as_paulis().to_sparse_list(), 3)
    got = EstimatorV2().run([(qc, projector, v[1, 0])]).result()[0].data.evs
    want = StatevectorEstimator().run([(qc, expanded, v[1, 0])]).result()[0].data.evs
    assert abs(float(got) - float(want)) < 1e-9


def test_precision_noise_and_stds() -> None:
    qc = ansatz(measure=False)
    v = values(4000, seed=2)
    exact = EstimatorV2().run([(qc, "ZZI", v)]).result()[0].data.evs
    noisy = EstimatorV2(seed=3).run([(qc, "ZZI", v, 0.05)]).result()[0]
    assert np.all(noisy.data.stds == 0.05)
    assert noisy.metadata["target_precision"] == 0.05
    diff = noisy.data.evs - exact
    assert abs(diff.mean()) < 0.005 and 0.045 < diff.std() < 0.055
    again = EstimatorV2(seed=3).run([(qc, "ZZI", v, 0.05)]).result()[0].data.evs
    assert np.array_equal(again, noisy.data.evs)
    default = EstimatorV2(default_precision=0.05, seed=3).run([(qc, "ZZI", v)]).result()
    assert np.array_equal(default[0].data.evs, noisy.data.evs)


# -- jobs ----------------------------------------------------------------------------


def test_local_job_interface() -> None:
    job = SamplerV2(seed=1).run([ansatz().assign_parameters(values(1)[0])])
    assert job.result() is job.result()
    assert job.status() == JobStatus.DONE and job.done() and job.in_final_state()
    assert not job.running() and not job.cancelled()
    assert job.job_id().startswith("local/sampler-")


# -- bad input ----------------------------------------------------------------------


def test_values_that_do_not_match_the_circuit() -> None:
    qc = ansatz()
    with pytest.raises(PubError, match=r"PUB 1: Length of .* inconsistent with last dimension"):
        SamplerV2().run([(qc, values(1)), (qc, values(3)[:, :2])])
    two = tuple(qc.parameters)[:2]
    with pytest.raises(PubError, match=r"PUB 0: The number of values \(2\) does not match"):
        SamplerV2().run([(qc, {two: values(3)[:, :2]})])
    with pytest.raises(ValueError, match="inconsistent with last dimension"):
        EstimatorV2().run([(ansatz(measure=False), "ZZZ", [[1.0]])])


def test_sampler_circuit_without_classical_bits() -> None:
    # as Aer's SamplerV2 and StatevectorSampler: Qiskit's warning, an empty DataBin
    qc = QuantumCircuit(2)
    qc.h(0)
    with pytest.warns(UserWarning, match="0-th pub's circuit has no output classical registers"):
        result = SamplerV2(seed=1).run([(qc, None, 8)]).result()
    assert result[0].data.shape == () and list(result[0].data) == []
    assert result[0].metadata["shots"] == 8


def test_observable_on_more_qubits_than_the_circuit() -> None:
    with pytest.raises(PubError, match=r"number of qubits of the circuit \(3\) does not match"):
        EstimatorV2().run([(ansatz(measure=False), "ZZZZ", values(1))])


def test_circuit_wider_than_the_simulator_says_the_memory() -> None:
    from qshpc.aer.distributed.plan import ranks_needed

    wide = QuantumCircuit(40)
    wide.h(range(40))
    wide.measure_all()
    with pytest.raises(PubError, match=r"PUB 0: .*40 qubits.*GiB") as info:
        SamplerV2().run([wide])
    # what splitting it would take: the ranks (from the sizing estimate), what is missing
    text = str(info.value)
    limit = int(text.split("more than the ")[1].split()[0])
    k = ranks_needed(40, limit)
    assert k >= 2 ** (40 - limit)
    assert f"it would run split over {k:,} ranks" in text, text
    # one node (a plain process, a local qshpc run): its ranks share its memory
    assert "every rank it could use is on one node" in text, text
    assert f"run it on {k} nodes (qshpc submit --nodes {k} --ntasks-per-node 1)" in text
    assert "qshpc run --workers" not in text
    assert "matrix_product_state" in text


def test_a_too_wide_circuit_is_not_split_over_ranks_of_one_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``qshpc run --workers 1`` on one node, a circuit one qubit wider than a rank holds:
    k = 2 ranks of that node would each allocate a node's worth (an OOM kill of the node);
    refused naming the node. With the ranks on two nodes it splits (nothing runs here)."""
    from qshpc.aer.distributed.plan import ranks_needed
    from qshpc.aer.simulator import width_limit
    from qshpc.primitives.base import check_widths
    from qshpc.primitives.options import block_config
    from qshpc.task import context

    config = block_config(SamplerV2().options)
    limit = width_limit(sim_spec(config.method, config.device, config.precision))
    wide = QuantumCircuit(limit + 1)
    wide.h(range(limit + 1))  # (acted on: a qubit only measured reads 0, it is not simulated)
    wide.measure_all()
    monkeypatch.setattr(context, "rank_info", lambda: context.RankInfo(0, 2, 0, 2, "n1", 1))
    monkeypatch.setattr("qshpc.aer.distributed.plan.missing", lambda *a, **k: [])  # MPI Aer there
    with pytest.raises(PubError, match=r"PUB 0: .*every rank it could use is on one node \(n1,"):
        check_widths([wide], config, "sampler", 2)
    monkeypatch.setattr(context, "rank_info", lambda: context.RankInfo(0, 8, 0, 1, "n1", 1))
    k = ranks_needed(limit + 1, limit)
    assert check_widths([wide], config, "sampler", k) == {0: k}


def test_distribute_setting_forces_or_forbids_a_split(monkeypatch: pytest.MonkeyPatch) -> None:
    """QSHPC_DISTRIBUTE: ``always``/N ask for a split a plain process cannot give (refused,
    naming what is missing); ``never`` keeps a too-wide circuit's plain refusal; a circuit
    under the threshold runs as always; a bad value is a one-line error."""
    from qshpc.aer.distributed.plan import ranks_for, ranks_needed
    from qshpc.settings import SettingError

    qc = ansatz().assign_parameters(values(1)[0])
    for value in ("always", "3"):
        monkeypatch.setenv("QSHPC_DISTRIBUTE", value)
        with pytest.raises(PubError) as info:
            SamplerV2(seed=1).run([qc])
        text = str(info.value)
        assert f"PUB 0: QSHPC_DISTRIBUTE={value} asks to split circuit" in text, text
        assert "over 2 ranks, but this job has 1 rank(s), it needs 2" in text
        assert "unset QSHPC_DISTRIBUTE" in text
        with pytest.raises(PubError, match="asks to split"):
            EstimatorV2().run([(ansatz(measure=False), "ZZZ", values(1))])
    monkeypatch.setenv("QSHPC_DISTRIBUTE", "4")  # 3-qubit circuits stay on one rank
    pub = SamplerV2(seed=1).run([qc]).result()[0]
    assert pub.data[next(iter(pub.data))].num_shots == 1024
    mid = QuantumCircuit(2, 2)
    mid.h(0)
    mid.measure(0, 0)
    mid.cx(0, 1)
    mid.measure(1, 1)
    monkeypatch.setenv("QSHPC_DISTRIBUTE", "always")
    with pytest.raises(PubError, match="final measurements only, and this one cannot be"):
        SamplerV2().run([mid])
    monkeypatch.setenv("QSHPC_DISTRIBUTE", "never")
    wide = QuantumCircuit(40)
    wide.h(range(40))
    with pytest.raises(PubError, match=r"40 qubits: more than .*QSHPC_DISTRIBUTE=never forbids it"):
        EstimatorV2().run([(wide, "Z" * 40)])
    assert ranks_for(40, 30, "statevector", "CPU") == 1
    monkeypatch.setenv("QSHPC_DISTRIBUTE", "sometimes")
    with pytest.raises(SettingError, match="QSHPC_DISTRIBUTE='sometimes' is not valid"):
        SamplerV2().run([qc])
    monkeypatch.delenv("QSHPC_DISTRIBUTE")
    # auto: only wider than the limit, over the fewest ranks whose chunk fits the estimate
    assert ranks_for(30, 30, "statevector", "CPU") == 1
    assert ranks_for(32, 30, "statevector", "CPU") == ranks_needed(32, 30) >= 4
    assert (
        ranks_for(32, 30, "density_matrix", "CPU") == ranks_for(32, 30, "statevector", "GPU") == 1
    )
    gib = 1 << 30
    assert ranks_needed(31, 30, memory=24 * gib) == 2  # 16 GiB chunks + 10% + 0.5 GiB fit 24
    assert ranks_needed(31, 30, memory=17 * gib) == 4  # ... not 17: 8 GiB chunks
    assert ranks_needed(31, 30, precision="single", memory=17 * gib) == 2


def test_mode_that_is_not_a_client() -> None:
    from qiskit_aer import AerSimulator

    for bad in ("ibm_brisbane", AerSimulator(), 3):
        with pytest.raises(PubError, match="mode= takes a qshpc client"):
            SamplerV2(mode=bad)
        with pytest.raises(UserError, match="LocalClient"):
            EstimatorV2(mode=bad)


def test_other_bad_input() -> None:
    qc = ansatz()
    with pytest.raises(PubError, match="wrap it with"):
        SamplerV2().run(qc)  # a circuit, not a list of PUBs
    with pytest.raises(TypeError, match="shots must be an integer"):
        SamplerV2().run([qc], shots=1.5)  # type: ignore[arg-type]
    with pytest.raises(PubError, match="default_shots"):
        SamplerV2(default_shots=0)
    with pytest.raises(UserError, match="unknown option"):
        SamplerV2(options={"backend_opts": {}})
    with pytest.raises(PubError, match="precision must be non-negative"):
        EstimatorV2().run([(ansatz(measure=False), "ZZZ", values(1), -1.0)])
    reset = QuantumCircuit(1)
    reset.h(0)  # a reset of a qubit no operation touched yet is nothing (tests/unit/test_hunt21.py)
    reset.reset(0)
    with pytest.raises(PubError, match="reset"):
        EstimatorV2().run([(reset, "Z")])
    with pytest.raises(UserError, match="seed must be a non-negative int"):
        SamplerV2(seed=-1).run([qc.assign_parameters(values(1)[0])])


def test_import_is_cheap() -> None:
    import subprocess
    import sys

    code = "import qshpc, qshpc.aer, qshpc.primitives, sys; print('qiskit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_warning_for_empty_runs() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(SamplerV2().run([]).result()) == 0
        assert len(EstimatorV2().run([]).result()) == 0
    assert math.isfinite(1.0)
