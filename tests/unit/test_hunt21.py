"""Session 21 (hunt21): SamplerV2/EstimatorV2 against Aer's and Qiskit's reference primitives on
the PUB forms users write; each test is a difference the differential hunt found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qiskit_aer")

from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.primitives import StatevectorEstimator

from qshpc.aer import EstimatorV2
from qshpc.aer.v2.pubs import PubError

pytestmark = pytest.mark.usefixtures("fresh_aer")  # tests/unit/conftest.py


def _opened_with_resets() -> QuantumCircuit:
    """A circuit written for a device: every qubit reset first, one reset again before use."""
    t = Parameter("t")
    qc = QuantumCircuit(3)
    qc.reset(range(3))
    qc.barrier()
    qc.ry(t, 0)
    qc.cx(0, 1)
    qc.reset(2)  # qubit 2 is still untouched: nothing
    qc.h(2)
    qc.metadata = {"device": "prepared"}
    return qc


def test_resets_of_untouched_qubits_are_exact_as_with_qiskit_and_aer() -> None:
    """``qc.reset(range(n))`` opening a circuit leaves each qubit in |0>, where it is: Aer's
    EstimatorV2 and StatevectorEstimator give the exact values; every such PUB was refused
    (``it has a 'reset' operation; remove it``)."""
    qc = _opened_with_resets()
    pubs = [(qc, [["IZZ", "IXX", "XII", "ZZZ"]], [[[0.3]], [[1.2]]])]
    want = StatevectorEstimator().run(pubs).result()[0]
    got = EstimatorV2().run(pubs).result()[0]
    assert got.data.evs.shape == want.data.evs.shape == (2, 4)
    np.testing.assert_allclose(got.data.evs, want.data.evs, atol=1e-9)
    assert got.metadata["circuit_metadata"] == {"device": "prepared"}
    only = QuantumCircuit(1)
    only.reset(0)
    assert float(EstimatorV2().run([(only, "Z")]).result()[0].data.evs) == pytest.approx(1.0)


def test_a_reset_after_operations_on_its_qubit_is_still_refused() -> None:
    """After a gate the reset makes a mixture (no final state to read): still a PubError."""
    qc = QuantumCircuit(2)
    qc.reset([0, 1])
    qc.h(0)
    qc.reset(0)
    with pytest.raises(PubError, match="'reset' operation"):
        EstimatorV2().run([(qc, "ZI")])


def test_mode_keeps_circuit_metadata_as_given(tmp_path: Path) -> None:
    """``mode=`` stores the PUBs' circuits as QPY, which writes metadata as JSON: a tuple came
    back as a list and ``{3: ...}`` as ``{"3": ...}`` in ``circuit_metadata``, where Aer's
    primitives (and qshpc's without ``mode=``) hand back the metadata as given."""
    import qshpc
    from qshpc.aer import SamplerV2
    from qshpc.aer.v2.pubs import estimator_work, sampler_work
    from qshpc.primitives.arguments import decode, encode_estimator, encode_sampler
    from qshpc.primitives.options import Options

    given = {"pair": (1, 2), 3: "int key", "nested": {"l": [1, (2, 3)]}, None: 1.5}
    bell = QuantumCircuit(2, 2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure([0, 1], [0, 1])
    bell.metadata = dict(given)
    plain = QuantumCircuit(1, 1)
    plain.measure(0, 0)
    args = encode_sampler(sampler_work([bell, (plain, None, 5)], 10), 1, 10, Options())
    qshpc.save_arguments(tmp_path / "s.h5", args)
    _, pubs, keywords = decode(qshpc.load_arguments(tmp_path / "s.h5"))
    result = SamplerV2(seed=1, **keywords).run(pubs).result()
    assert result[0].metadata["circuit_metadata"] == given
    assert result[1].metadata["circuit_metadata"] == {}
    qc = _opened_with_resets()
    qc.metadata = dict(given)
    ework = estimator_work([(qc, "ZZZ", [0.5])], 0.0)
    qshpc.save_arguments(tmp_path / "e.h5", encode_estimator(ework, 1, 0.0, Options()))
    _, epubs, ekeywords = decode(qshpc.load_arguments(tmp_path / "e.h5"))
    eresult = EstimatorV2(seed=1, **ekeywords).run(epubs).result()
    assert eresult[0].metadata["circuit_metadata"] == given


def test_a_box_with_annotations_runs_as_its_body() -> None:
    """A ``box`` counts as its body, but one carrying an annotation (``qc.box([Twirl()])``,
    as Qiskit 2.1+ writes them) failed every run, also under plain ``python``, with
    ``QpyError: No configured annotation serializer could handle ...`` (the circuit travels
    as QPY). Aer's and Qiskit's primitives refuse every box."""
    from qiskit.circuit import annotation

    from qshpc.aer import SamplerV2

    class Tag(annotation.Annotation):  # type: ignore[misc]
        namespace = "hunt21.tag"

    def bell(tags: list[Tag], measure: bool) -> QuantumCircuit:
        qc = QuantumCircuit(2, 2 if measure else 0)
        with qc.box(tags):
            qc.h(0)
            qc.cx(0, 1)
        if measure:
            qc.measure([0, 1], [0, 1])
        qc.metadata = {"tagged": bool(tags)}
        return qc

    tagged = SamplerV2(seed=3).run([bell([Tag()], True)]).result()[0]
    plain = SamplerV2(seed=3).run([bell([], True)]).result()[0]
    assert tagged.data.c.get_counts() == plain.data.c.get_counts()
    assert set(tagged.data.c.get_counts()) == {"00", "11"}
    assert tagged.metadata["circuit_metadata"] == {"tagged": True}
    evs = EstimatorV2().run([(bell([Tag()], False), ["ZZ", "XX", "ZI"])]).result()[0].data.evs
    np.testing.assert_allclose(evs, [1.0, 1.0, 0.0], atol=1e-9)


class _RecordingClient:
    """A ``mode=`` client that records the jobs it is asked to start (none should be)."""

    def __init__(self) -> None:
        self.started: list[object] = []

    def run(self, program: object, arguments: object = None, seed: object = None) -> object:
        self.started.append(program)
        raise AssertionError("a job was started")

    def job(self, job_id: str) -> object:
        raise AssertionError("not used")


@pytest.mark.parametrize(
    ("seed", "options"),
    [(-1, None), (5.0, None), (True, None), (None, {"run_options": {"seed_simulator": -3}})],
)
def test_a_bad_seed_is_refused_at_run_also_with_mode(seed: object, options: object) -> None:
    """A seed that is not a non-negative int: with ``mode=`` the job started and then failed
    (``JobFailedError ... UserError: seed must be ...``), although every other bad input is
    refused before a job exists; and the error was a bare ``UserError`` where
    ``StatevectorSampler`` raises ``ValueError``/``TypeError``."""
    from qshpc.aer import SamplerV2

    bell = QuantumCircuit(2, 2)
    bell.h(0)
    bell.measure([0, 1], [0, 1])
    unmeasured = QuantumCircuit(1)
    for mode in (None, _RecordingClient()):
        with pytest.raises(PubError, match="seed must be a non-negative int") as info:
            SamplerV2(seed=seed, options=options, mode=mode).run([bell])
        assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
        with pytest.raises(PubError, match="seed must be a non-negative int"):
            EstimatorV2(seed=seed, options=options, mode=mode).run([(unmeasured, "Z")])
        assert mode is None or not mode.started


@pytest.mark.parametrize("noise", ["x", {"errors": []}, 3])
def test_a_noise_model_that_is_not_one_is_refused_at_construction(noise: object) -> None:
    """``backend_options={"noise_model": "x"}``: Aer's primitives fail with ``AttributeError:
    'str' object has no attribute 'basis_gates'``; here every block failed with it, after the
    run (or the ``mode=`` job) had started."""
    from qshpc.aer import SamplerV2
    from qshpc.errors import UserError

    for primitive in (SamplerV2, EstimatorV2):
        with pytest.raises(UserError, match="must be a qiskit_aer NoiseModel"):
            primitive(options={"backend_options": {"noise_model": noise}})


def test_an_operation_no_rank_can_run_is_refused_before_a_mode_job_starts() -> None:
    """``Gate("mystery", 2, [])`` (no definition): refused at ``run`` without ``mode=``; with
    ``mode=`` the job started and failed (``JobFailedError: ... PubError: PUB 0: ...``)."""
    from qiskit.circuit import Gate

    from qshpc.aer import SamplerV2

    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.append(Gate("mystery", 2, []), [0, 1])
    qc.measure([0, 1], [0, 1])
    client = _RecordingClient()
    with pytest.raises(PubError, match="'mystery' \\(Gate\\) is no gate Aer runs"):
        SamplerV2(mode=client).run([qc])
    with pytest.raises(PubError, match="'mystery'"):
        EstimatorV2(mode=client).run([(qc.remove_final_measurements(inplace=False), "ZZ")])
    assert not client.started


def test_a_result_with_an_empty_register_is_summarized() -> None:
    """``ClassicalRegister(0, 'z')`` beside a measured one: SamplerV2 gives a 0-bit ``BitArray``
    for it, as Aer's and Qiskit's samplers do, and the result is stored and read back typed;
    only its summary and JSON view fail."""
    from qiskit import ClassicalRegister, QuantumRegister

    from qshpc.aer import SamplerV2
    from qshpc.store import qiskit_results

    qc = QuantumCircuit(QuantumRegister(1), ClassicalRegister(0, "z"), ClassicalRegister(1, "m"))
    qc.x(0)
    qc.measure(0, qc.clbits[0])
    result = SamplerV2(seed=1, default_shots=8).run([qc]).result()
    assert result[0].data.z.num_bits == 0 and result[0].data.m.get_counts() == {"1": 8}
    assert "z" in qiskit_results.summary(result)
    assert qiskit_results.to_plain(result)["pubs"][0]["data"]["z"]["num_bits"] == 0
    # (lead: the fix) counts of 0 bits are {"": shots}, per row too; plot draws them
    assert qiskit_results.to_plain(result)["pubs"][0]["data"]["z"]["counts"] == [{"": 8}]
    assert qiskit_results.plottable(result)["pub 0 z"] == {"": 8}
    rows = SamplerV2(seed=1, default_shots=4).run([(qc, None, 4)]).result()  # 1 row, 4 shots
    assert qiskit_results.to_plain(rows)["pubs"][0]["data"]["z"]["counts"] == [{"": 4}]
