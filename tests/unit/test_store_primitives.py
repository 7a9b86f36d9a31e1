"""Qiskit's V2 results in the store: typed round trips (HDF5 and blob), JSON, summary, plot;
a primitive call as job arguments (typed columns) and back."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import ParameterVector
from qiskit.primitives import PrimitiveResult, PubResult, SamplerPubResult
from qiskit.quantum_info import SparsePauliOp

import qshpc
from qshpc.aer import EstimatorV2, SamplerV2
from qshpc.aer.v2.pubs import estimator_work, sampler_work
from qshpc.jobs.plot import build_figure, find_panels
from qshpc.primitives.arguments import decode, encode_estimator, encode_sampler
from qshpc.primitives.options import Options
from qshpc.store import decode_blob, encode_blob, to_jsonable
from qshpc.store.encoding_h5 import read_native, write_native
from qshpc.store.qiskit_results import summary


def circuits() -> tuple[QuantumCircuit, QuantumCircuit]:
    theta = ParameterVector("t", 3)
    qr = QuantumRegister(3)
    a, b = ClassicalRegister(2, "a"), ClassicalRegister(1, "b")
    qc = QuantumCircuit(qr, a, b)
    for q in range(3):
        qc.ry(theta[q], q)
    qc.cx(0, 1)
    unitary = qc.copy()
    qc.measure([0, 1], a)
    qc.measure([2], b)
    return qc, unitary


def results() -> tuple[PrimitiveResult, PrimitiveResult]:
    qc, unitary = circuits()
    v = np.random.default_rng(1).uniform(0, 3, (4, 3))
    s = SamplerV2(seed=1).run([(qc, v), (qc, v[0], 7)]).result()
    e = EstimatorV2(seed=2).run([(unitary, ["ZZI", "XXY"], v[:, None], 0.1)]).result()
    return s, e


def same(x: PrimitiveResult, y: PrimitiveResult) -> None:
    assert type(x) is type(y) and x.metadata == y.metadata and len(x) == len(y)
    for a, b in zip(x, y, strict=True):
        assert type(a) is type(b) and a.metadata == b.metadata
        assert a.data.shape == b.data.shape and list(a.data) == list(b.data)
        for name in a.data:
            u, w = a.data[name], b.data[name]
            if hasattr(u, "array"):
                assert u.num_bits == w.num_bits and np.array_equal(u.array, w.array)
            else:
                assert np.array_equal(u, w)


def test_round_trips_typed(tmp_path: Path) -> None:
    s, e = results()
    for value in (s, e):
        same(decode_blob(encode_blob({"r": [value]}))["r"][0], value)
        path = tmp_path / "f.h5"
        with h5py.File(path, "w") as f:
            write_native(f, "x", {"result": value})
        with h5py.File(path, "r") as f:
            node = f["x"]["result"]
            assert node.attrs["encoding-type"] == "primitive-result"
            back = read_native(f["x"], False, str(path))["result"]
        same(back, value)
    with h5py.File(path, "w") as f:
        write_native(f, "x", s)
    with h5py.File(path, "r") as f:
        bits = f["x"]["pubs"]["0"]["data"]["a"]
        assert bits.attrs["encoding-type"] == "bit-array" and bits.dtype == np.uint8
        assert bits.shape == (4, 1024, 1) and int(bits.attrs["num-bits"]) == 2
    assert isinstance(s[0], SamplerPubResult) and isinstance(e[0], PubResult)


def test_json_summary_and_plot() -> None:
    s, e = results()
    data = json.loads(json.dumps(to_jsonable({"s": s, "e": e})))
    pub = data["s"]["pubs"][0]["data"]
    assert pub["a"]["shape"] == [4] and len(pub["a"]["counts"]) == 4
    assert sum(pub["b"]["counts"][2].values()) == 1024
    assert np.allclose(data["e"]["pubs"][0]["data"]["evs"], e[0].data.evs)
    text = summary({"s": s, "e": e, "n": 3})
    assert "PUB 0: SamplerPubResult, shape (4,)" in text and "'n': 3" in text
    assert "evs: float64 (4, 2)" in text
    titles = [p.title for p in find_panels({"sampler": s, "estimator": e})]
    assert "sampler: pub 1 a" in titles and any("evs" in t for t in titles)
    build_figure(s, "t")  # draws


def test_arguments_round_trip_through_a_file(tmp_path: Path) -> None:
    qc, unitary = circuits()
    v = np.random.default_rng(3).uniform(0, 3, (2, 3, 3))
    pubs = [(qc, v), (qc, v[0, 0], 11), qc.assign_parameters(v[0, 0])]
    work = sampler_work(pubs, 100)
    args = encode_sampler(work, 5, 100, Options(optimization_level=2))
    qshpc.save_arguments(tmp_path / "a.h5", args)
    loaded = qshpc.load_arguments(tmp_path / "a.h5")  # no pickle needed
    assert len(loaded["circuits"]) == 2  # the distinct circuits, once each
    name, back, keywords = decode(loaded)
    assert name == "SamplerV2" and keywords == {"default_shots": 100}
    want = SamplerV2(seed=5).run(pubs, shots=100).result()
    got = SamplerV2(seed=5, **keywords).run(back).result()
    same(got, want)

    obs = [[SparsePauliOp(["ZZI", "XIY"], [0.5, 2.0])], ["IIZ"]]  # shape (2, 1)
    epubs = [(unitary, obs, v[0], 0.0), (unitary, "XXX", None, 0.2)]
    epubs[1] = (unitary.assign_parameters(v[0, 0]), "XXX", None, 0.2)
    ework = estimator_work(epubs, 0.0)
    qshpc.save_arguments(tmp_path / "e.h5", encode_estimator(ework, 9, 0.0, Options()))
    name, eback, ekeywords = decode(qshpc.load_arguments(tmp_path / "e.h5"))
    assert name == "EstimatorV2"
    same(
        EstimatorV2(seed=9, **ekeywords).run(eback).result(),
        EstimatorV2(seed=9).run(epubs).result(),
    )
