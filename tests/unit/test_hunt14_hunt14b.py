"""hunt14b: researchers' programs under qshpc, against plain Qiskit/Aer.

Found with programs passing Qiskit objects as arguments, printing a lot on
Slurm, and sampling with Aer's ``extended_stabilizer`` method (see the
branch's report; every value compared with Qiskit/Aer in one process).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import qshpc
from qshpc import LocalClient, Program, QuantumServerless
from qshpc.store.encoding_blob import decode_blob, encode_blob


def _objects() -> dict[str, Any]:
    from qiskit.quantum_info import PauliList, SparseObservable, random_clifford
    from qiskit.result import Counts, ProbDistribution, QuasiDistribution
    from qiskit.transpiler import CouplingMap

    from qshpc.aer.results import QuasiDistribution as OurQuasi

    return {
        "qd": QuasiDistribution({0: 0.4, 5: 0.6}, shots=10),
        "pd": ProbDistribution({"01": 0.5, "10": 0.5}, shots=4),
        "counts": Counts({"0x0": 3, "0x3": 5}, creg_sizes=[["c", 2]], memory_slots=2),
        "ours": OurQuasi({1: 0.25, 2: 0.75}, shots=100),
        "ring": CouplingMap.from_ring(4),
        "hex": CouplingMap.from_heavy_hex(3),  # nodes without payloads
        "sobs": SparseObservable.from_sparse_list([("Z+", [0, 2], 0.7), ("XY", [1, 2], -0.2)], 3),
        "zero": SparseObservable.zero(2),
        "plist": PauliList(["XY", "-iZZ", "iYY"]),
        "cliff": random_clifford(3, seed=1),
    }


def _same(got: Any, want: Any) -> bool:
    from qiskit.transpiler import CouplingMap

    if type(got) is not type(want):
        return False
    if isinstance(want, CouplingMap):
        return bool(
            got.get_edges() == want.get_edges()
            and got.graph.nodes() == want.graph.nodes()
            and got.description == want.description
        )
    if isinstance(want, dict):
        return bool(got == want and vars(got) == vars(want))
    return bool(got == want)


def test_dict_results_observables_and_coupling_maps_are_stored_typed(tmp_path: Path) -> None:
    # Before: a QuasiDistribution/Counts came back a plain dict (an argument too), a
    # CouplingMap, SparseObservable, PauliList or Clifford was pickled (allow_pickle).
    from qiskit import transpile
    from qiskit.circuit.random import random_circuit

    from qshpc.store import load_arguments
    from qshpc.store.jsonable import to_jsonable

    objects = _objects()
    for name, want in objects.items():
        got = decode_blob(encode_blob([want]))[0]  # no pickle: refused by default
        assert _same(got, want), name
    qshpc.save_arguments(tmp_path / "a.h5", objects)  # the HDF5 encoding
    back = load_arguments(tmp_path / "a.h5")
    assert all(_same(back[k], v) for k, v in objects.items())
    assert back["counts"].int_outcomes() == {0: 3, 3: 5}
    assert back["qd"].binary_probabilities() == {"000": 0.4, "101": 0.6}
    qc = random_circuit(4, 3, seed=1)
    opts = {"basis_gates": ["cx", "rz", "sx", "x"], "seed_transpiler": 1}
    assert transpile(qc, coupling_map=back["ring"], **opts) == transpile(
        qc, coupling_map=objects["ring"], **opts
    )
    # `qshpc result --json` of the dicts is as before (their dict), the others readable
    plain = to_jsonable(objects)
    assert plain["qd"] == {"0": 0.4, "5": 0.6} and plain["counts"] == {"00": 3, "11": 5}
    assert plain["sobs"]["terms"][0] == ["Z+", [0, 2], [0.7, 0.0]]
    assert plain["ring"]["type"] == "CouplingMap" and [0, 1] in plain["ring"]["edges"]


ECHO = """\
from qshpc import distribute_task, get, get_arguments, save_result


@distribute_task()
def echo(x):
    print("task got", type(x).__name__, flush=True)
    return x


args = get_arguments()
save_result({"main": args, "task": dict(zip(args, get([echo(v) for v in args.values()])))})
"""


def test_arguments_arrive_as_their_types_and_quantum_serverless_has_the_clients_names(
    tmp_path: Path,
) -> None:
    (tmp_path / "echo.py").write_text(ECHO)
    objects = _objects()
    serverless = QuantumServerless(LocalClient(workers=1))
    job = serverless.run(
        Program(title="echo14b", entrypoint="echo.py", working_dir=str(tmp_path)), objects
    )
    result = job.result()  # nothing pickled: no allow_pickle needed
    for where in ("main", "task"):
        for k, v in objects.items():
            assert _same(result[where][k], v), (where, k)
    # QuantumServerless(...) had no jobs/job/list/get, which LocalClient has
    assert [j.job_id for j in serverless.jobs(limit=1)] == [job.job_id]
    assert serverless.jobs(limit=1)[0].status() == "DONE"  # quantum-serverless's names
    assert serverless.job(job.job_id).status() == "DONE"
    assert serverless.list() == serverless.functions() and serverless.get("nothing14b") is None
    with pytest.raises(qshpc.QuantumServerlessException, match="ranks"):
        serverless.get_compute_resources()

    # A Slurm run's output file holds what the rank's log holds (the tee echoes into
    # it) and submitit's lines: each line is shown once (a 2000-line task showed 4000).
    logs = Path(job.job_dir) / "logs"
    rank1 = (logs / "rank-1.out").read_text()
    assert rank1.count("task got") == len(objects)
    (logs / "slurm-77_1.out").write_text(
        "submitit INFO - Starting\n" + rank1 + "submitit INFO - Job completed\n"
    )
    (logs / "slurm-77_0.out").write_text("qshpc: job ended\n")
    text = job.logs()
    assert text.count("task got") == len(objects)
    assert "submitit INFO - Starting" in text and "submitit INFO - Job completed" in text
    assert "qshpc: job ended" in text
    assert job.filtered_logs(include="task got").count("\n") == len(objects)
    one = job.logs(rank=1)  # rank 1's Slurm file too (its start-up errors are there only)
    assert one.count("task got") == len(objects) and "submitit INFO - Starting" in one
    assert "qshpc: job ended" not in one and "qshpc: job ended" in job.logs(rank=0)


def test_sampler_v2_samples_the_extended_stabilizer_method_as_aer_does() -> None:
    # Every PUB failed: qshpc read exact probabilities, which this method does not save.
    from qiskit import QuantumCircuit
    from qiskit_aer.primitives import SamplerV2 as AerSamplerV2

    from qshpc.aer import SamplerV2

    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.h(2)  # Clifford: the method is fast on it (a T gate took 28 s for 200 shots)
    qc.measure_all()
    opts = {"backend_options": {"method": "extended_stabilizer"}}
    shots = 2000
    ours = SamplerV2(seed=5, options=opts).run([qc], shots=shots).result()
    again = SamplerV2(seed=5, options=opts).run([qc], shots=shots).result()
    aer = AerSamplerV2(seed=5, options=opts).run([qc], shots=shots).result()
    assert np.array_equal(ours[0].data.meas.array, again[0].data.meas.array)
    got, want = ours[0].data.meas.get_counts(), aer[0].data.meas.get_counts()
    assert set(got) == set(want) == {"000", "011", "100", "111"}
    for key in want:  # each outcome 1/4: both within 5 sigma of each other
        assert abs(got[key] - want[key]) / shots < 5 * np.sqrt(2 * 0.25 * 0.75 / shots)


def test_save_arguments_with_its_two_arguments_swapped_says_so(tmp_path: Path) -> None:
    # Was: TypeError traceback from pathlib ('expected str, bytes or os.PathLike, not dict').
    with pytest.raises(qshpc.UserError, match=r"takes the file first: save_arguments\('a.h5'"):
        qshpc.save_arguments({"shots": 10}, "a.h5")  # type: ignore[arg-type]
    assert not Path("a.h5").exists()


def test_a_quasi_distribution_prints_as_qiskit_s_does() -> None:
    """Saved results read back typed (session 14): ``job.result()`` must still print the
    seed notebook's dicts, as qiskit's ``QuasiDistribution`` does (its repr is the dict's)."""
    from qiskit.result import QuasiDistribution as QiskitQuasi

    from qshpc.aer.results import QuasiDistribution

    ours, theirs = QuasiDistribution({0: 0.5, 2: 0.5}, shots=8), QiskitQuasi({0: 0.5, 2: 0.5})
    assert repr(ours) == repr(theirs) == "{0: 0.5, 2: 0.5}"
    assert repr({"results": [ours]}).startswith("{'results': [{")
