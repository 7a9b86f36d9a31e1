"""fix31's small parts (docs/bad-input.md, "Session 24, fix31")."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qshpc.client.serverless import caller_folder, caller_path_env
from qshpc.submit.task import add_python_path


def test_add_python_path_puts_new_folders_after_the_first_entry() -> None:
    path = ["/first", "/b", "/lib"]
    assert add_python_path(os.pathsep.join(["/a", "", "/b", "/c", "/a"]), path) == ["/a", "/c"]
    assert path == ["/first", "/a", "/c", "/b", "/lib"]
    assert add_python_path("", path) == [] and len(path) == 5


def test_the_caller_folder_goes_last_on_the_job_pythonpath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path[1:]])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/x", "", "/y"]))
    assert caller_folder() == str(tmp_path)
    assert caller_path_env() == {"PYTHONPATH": os.pathsep.join(["/x", "/y", str(tmp_path)])}
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # there already: nothing to add
    assert caller_path_env() == {}
    monkeypatch.delenv("PYTHONPATH")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", *sys.path[1:]])  # python -c, the prompt: here
    assert caller_path_env() == {"PYTHONPATH": str(tmp_path.resolve())}
    monkeypatch.setattr(sys, "path", [str(tmp_path / "app.zip"), *sys.path[1:]])
    assert caller_folder() is None and caller_path_env() == {}


def _estimator_inputs() -> tuple[list[Any], list[Any], list[list[float]]]:
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter
    from qiskit.quantum_info import SparsePauliOp

    t = Parameter("t")
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.ry(t, 2)
    qc.rx(0.4, 1)
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    terms = [("ZZI", 0.5), ("XIX", -1.2), ("IIZ", 0.3), ("III", 2.0)]
    return (
        [qc, bell, bell],
        [SparsePauliOp.from_list(terms), SparsePauliOp("ZZ"), "XX"],
        [
            [0.7],
            [],
            [],
        ],
    )


def test_v1_estimator_with_shots_and_seed_draws_as_aer_s_v1_estimator() -> None:
    # review31 F4: on b6f478f `UserError: qshpc.aer.Estimator computes exact values; leave
    # shots unset`. Aer 0.18's V1 Estimator(approximation=True) draws the same values.
    import warnings

    from qiskit_aer.primitives import Estimator as AerEstimator

    from qshpc.aer import Estimator

    circuits, observables, values = _estimator_inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        aer = AerEstimator(approximation=True, run_options={"shots": 500, "seed": 7})
        want = aer.run(circuits, observables, values).result()
    got = Estimator(options={"shots": 500, "seed": 7}).run(circuits, observables, values).result()
    assert np.allclose(got.values, want.values, rtol=0, atol=1e-12)
    assert got.values[0] != 2.0  # noisy: the exact value is 2
    for mine, theirs in zip(got.metadata, want.metadata, strict=True):
        assert mine["shots"] == theirs["shots"] == 500
        assert mine["variance"] == pytest.approx(theirs["variance"], abs=1e-12)
    again = Estimator().run(circuits, observables, values, shots=500, seed=7).result()
    assert np.array_equal(again.values, got.values)  # as a run option too; the seed repeats
    other = Estimator(options={"shots": 500, "seed": 8}).run(circuits, observables, values)
    assert other.result().values[0] != got.values[0]
    exact = Estimator(options={"seed": 7}).run(circuits, observables, values).result()
    assert np.allclose(exact.values, [2.0, 1.0, 1.0]) and exact.metadata == [{}, {}, {}]


@pytest.mark.parametrize("shots", [0, -5, 2.5, "100", True])
def test_v1_estimator_refuses_shots_that_are_not_a_positive_int(shots: Any) -> None:
    from qshpc.aer import Estimator
    from qshpc.errors import UserError

    circuits, observables, values = _estimator_inputs()
    with pytest.raises(UserError, match=r"shots must be a positive int \(or None for exact"):
        Estimator(options={"shots": shots}).run(circuits, observables, values)


def test_a_result_of_a_class_beside_the_program_reads_from_any_folder(
    tmp_path: Path, qshpc_home: Path
) -> None:
    # review31 F7: on b6f478f `qshpc result J --allow-pickle` outside the program's folder
    # (and open_job(J).result(allow_pickle=True)) failed: `No module named 'helpers_f31'`.
    from qshpc import open_job
    from qshpc.errors import SerializationError
    from qshpc.store import JobReader
    from tests.conftest import run_cli, run_program

    folder = tmp_path / "prog"
    folder.mkdir()
    (folder / "helpers_f31.py").write_text(
        "import dataclasses\n\n\n@dataclasses.dataclass\nclass Stat:\n    value: int\n"
    )
    job = run_program(
        qshpc_home,
        folder / "p.py",
        "from helpers_f31 import Stat\nfrom qshpc import save_result\n\nsave_result([Stat(3)])\n",
        "--workers",
        "0",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = run_cli("result", str(job.job_dir), "--allow-pickle", cwd=elsewhere)
    assert out.returncode == 0 and "[Stat(value=3)]" in out.stdout, out.stdout + out.stderr
    assert type(open_job(job.job_dir).result(allow_pickle=True)[0]).__name__ == "Stat"
    (folder / "helpers_f31.py").unlink()  # the module gone: the fix is named
    out = run_cli("result", str(job.job_dir), "--allow-pickle", cwd=elsewhere)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert (
        "holds a pickled object of a class from the module 'helpers_f31', which this process "
        "cannot import (No module named 'helpers_f31'); the program's folder "
        f"{folder} does not hold it either: put the folder that holds it on PYTHONPATH"
    ) in out.stderr, out.stderr
    sys.modules.pop("helpers_f31", None)
    with JobReader.open(job.job_dir) as reader, pytest.raises(SerializationError) as caught:
        reader.result(allow_pickle=True)  # the store alone: the general fix
    assert str(caught.value).endswith(
        "read it where the program imports it: from the program's folder, "
        "or with that folder on PYTHONPATH"
    )


def test_get_of_a_tuple_of_references_gives_a_list() -> None:
    # review31 F6: kept (Ray's get raises ValueError for a tuple; programs pass one),
    # and said in docs/program-api.md and docs/quantum-serverless.md.
    from qshpc import distribute_task, get

    @distribute_task()
    def square(x: int) -> int:
        return x * x

    got = get((square(1), square(2)))
    assert type(got) is list and got == [1, 4]
    assert get(()) == [] and get([square(3)]) == [9]
