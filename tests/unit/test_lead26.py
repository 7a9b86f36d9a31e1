"""Session 26, lead: the V1 Estimator's options are checked (a noise model was ignored)."""

from __future__ import annotations

import pytest

pytest.importorskip("qiskit_aer")

from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp

from qshpc.aer import Estimator
from qshpc.errors import UserError


def _plus() -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.h(0)
    return qc


def test_a_noise_model_is_refused_not_ignored() -> None:
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    nm = NoiseModel()
    nm.add_all_qubit_quantum_error(depolarizing_error(0.1, 1), ["h"])
    for options in ({"noise_model": nm}, {"backend_options": {"noise_model": nm}}):
        with pytest.raises(UserError, match=r"noise_model.*EstimatorV2"):
            Estimator(options=options)
    with pytest.raises(UserError, match=r"Estimator\.run.*noise_model"):
        Estimator().run(_plus(), SparsePauliOp("X"), noise_model=nm)


def test_an_unknown_option_is_named_and_aers_keywords_still_run() -> None:
    with pytest.raises(UserError, match=r"unknown option 'shotz'.*shots"):
        Estimator(options={"shotz": 10})
    with pytest.raises(UserError, match="unknown option 'bogus'"):
        Estimator().run(_plus(), SparsePauliOp("X"), bogus=1)
    # Aer's V1 keywords: nested dicts opened, the ones that change no value accepted.
    est = Estimator(
        options={
            "backend_options": {"method": "statevector", "noise_model": None},
            "run_options": {"shots": 100, "seed": 3},
            "approximation": True,
            "abelian_grouping": True,
        }
    )
    assert est.options["shots"] == 100
    assert est.run(_plus(), SparsePauliOp("X")).result().values.tolist() == [1.0]
