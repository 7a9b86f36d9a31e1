"""One statevector over 2 and 4 ranks with the MPI build of Aer: exact, identical counts, errors.

Needs the MPI Aer (``make install-aer-mpi``); skipped without it, except under
``make test`` (``QSHPC_REQUIRE_AER_MPI=1``), where its absence fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qshpc.aer.distributed.install import AerMPI, locate, why_missing
from qshpc.aer.distributed.launch import Mpiexec
from tests.conftest import ROOT, mpiexec

pytestmark = [pytest.mark.mpi, pytest.mark.slow]


@pytest.fixture(scope="module")
def aer_mpi() -> AerMPI:
    found = locate()
    if found is None:
        if os.environ.get("QSHPC_REQUIRE_AER_MPI") == "1":
            pytest.fail(
                why_missing() + ": `make install-aer-mpi` should have built it "
                "(its log: .aer-mpi/build.log)"
            )
        pytest.skip(why_missing() + " (make install-aer-mpi)")
    return found


def circuit(n: int) -> Any:
    """A random circuit with 3-qubit gates (``ccz`` among them) and ``cu`` gates with a phase
    across the chunk edge: two that Aer's own basis gets wrong with chunks."""
    from qiskit.circuit.random import random_circuit

    from qshpc.aer.distributed.run import prepare

    c = random_circuit(n, 8, max_operands=3, seed=5)
    c.cu(0.3, 0.4, 0.5, 0.6, 0, n - 1)
    c.cu(0.7, 0.1, 0.2, 0.9, 1, n - 2)
    c.ccz(1, n - 1, 3)
    return prepare([c])[0]


@pytest.mark.parametrize(("ranks", "chunks_per_rank"), [(2, 1), (4, 1), (2, 4)])
def test_distributed_run_is_exact_and_counts_are_identical(
    aer_mpi: AerMPI, ranks: int, chunks_per_rank: int
) -> None:
    from qiskit.quantum_info import SparsePauliOp, Statevector
    from qiskit.result import Counts
    from qiskit_aer import AerSimulator

    from qshpc.aer.distributed.run import run_circuits
    from qshpc.aer.distributed.spec import Save

    n = 12
    t = circuit(n)
    m = t.copy()
    m.measure_all()
    rng = np.random.default_rng(7)
    labels = ["".join(rng.choice(list("IXYZ"), n)) for _ in range(8)]
    labels += ["X" + "I" * (n - 1), "Y" * n, "I" * n]
    obs = SparsePauliOp(labels, rng.normal(size=len(labels)))
    terms = [
        (str(p), float(c.real), 0.0)
        for p, c in zip(obs.paulis.to_labels(), obs.coeffs, strict=True)
    ]
    subsets = [[0, 1, 2], [n - 3, n - 2, n - 1], [n - 1, 0, n // 2]]
    saves = [[Save("probabilities", q, f"p{i}") for i, q in enumerate(subsets)]
             + [Save("expectation_value", list(range(n)), "ev", terms)], []]  # fmt: skip
    blocking = n - (ranks - 1).bit_length() - (chunks_per_rank - 1).bit_length()
    step = run_circuits([t, m], ranks, shots=3000, seed=11, saves=saves, transpile=False,
                        options={"blocking_qubits": blocking}, timeout=240)  # fmt: skip
    assert step.result["metadata"]["num_processes_per_experiments"] == ranks
    exact = Statevector(t)
    for i, q in enumerate(subsets):
        assert np.abs(step.probabilities(0, f"p{i}") - exact.probabilities(q)).max() < 1e-9
    assert step.value(0, "ev") == pytest.approx(exact.expectation_value(obs).real, abs=1e-9)
    single = AerSimulator(method="statevector").run([t, m], shots=3000, seed_simulator=11).result()
    assert dict(Counts(step.counts(1), memory_slots=n)) == dict(single.get_counts(1))
    assert [r["rank"] for r in step.ranks] == list(range(ranks))
    assert all(r["peak_rss"] > 0 and r["host"] for r in step.ranks)


def test_a_step_started_from_inside_an_mpi_rank_has_its_own_world(
    aer_mpi: AerMPI, tmp_path: Path
) -> None:
    # Each rank writes its own file: the ranks' stdout is merged by mpiexec, and with
    # unbuffered output (PYTHONUNBUFFERED in CI) the pieces of two ranks' lines interleave.
    script = tmp_path / "outer.py"
    script.write_text(
        textwrap.dedent("""
        import sys
        from pathlib import Path
        from mpi4py import MPI
        from qiskit import QuantumCircuit
        from qshpc.aer.distributed.run import run_circuits
        from qshpc.aer.distributed.spec import Save
        comm = MPI.COMM_WORLD
        out = Path(sys.argv[1])
        if comm.rank == 1:
            c = QuantumCircuit(10)
            c.h(range(10))
            step = run_circuits([c], 2, saves=[[Save("probabilities", [9], "p")]], timeout=120)
            p = [round(float(x), 9) for x in step.probabilities(0, "p")]
            (out / "inner").write_text(f"inner {step.result['metadata']['num_mpi_processes']} {p}")
        comm.Barrier()
        (out / f"outer-{comm.rank}").write_text(f"outer {comm.rank} {comm.size}")
    """)
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    found = tmp_path / "found"
    found.mkdir()
    out = subprocess.run([mpiexec(), "-n", "3", sys.executable, str(script), str(found)],
                         capture_output=True, text=True, timeout=240, env=env)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    # a world of 2, not of the outer 3 (+2)
    assert (found / "inner").read_text() == "inner 2 [0.5, 0.5]", out.stdout + out.stderr
    outer = sorted(f.read_text() for f in found.glob("outer-*"))
    assert outer == ["outer 0 3", "outer 1 3", "outer 2 3"], out.stdout + out.stderr


def test_a_failing_rank_is_named_with_its_host_and_nothing_hangs(aer_mpi: AerMPI) -> None:
    from qiskit import QuantumCircuit

    from qshpc.aer.distributed.launch import StepError
    from qshpc.aer.distributed.run import run_circuits
    from qshpc.aer.distributed.spec import Save

    c = QuantumCircuit(8)
    c.h(0)
    start = time.monotonic()
    with pytest.raises(
        StepError, match=r"rank \d of the 2-rank Aer step on \S+ failed: .*IndexError"
    ):
        run_circuits([c], 2, saves=[[Save("probabilities", [42], "p")]], timeout=120)
    assert time.monotonic() - start < 100


@dataclass
class Stalled:
    """The real launcher, but each rank of the step sleeps before it starts: a step that
    outlasts any short timeout on any machine (a long circuit depends on the machine's speed)."""

    shared_folder: bool = False

    def argv(self, ranks: int, nodes: int | None, step: list[str]) -> list[str]:
        stall = [sys.executable, "-c", "import time; time.sleep(600)"]
        return Mpiexec().argv(ranks, nodes, [*stall, *step[1:]])

    def env(self, env: dict[str, str]) -> dict[str, str]:
        return Mpiexec().env(env)


def test_a_step_past_its_timeout_is_stopped(aer_mpi: AerMPI, tmp_path: Path) -> None:
    from qiskit import QuantumCircuit

    from qshpc.aer.distributed.launch import StepError
    from qshpc.aer.distributed.run import run_circuits

    c = QuantumCircuit(4)
    c.h(range(4))
    start = time.monotonic()
    with pytest.raises(StepError, match="ran past 3 s and was stopped"):
        run_circuits([c], 2, timeout=3, folder=tmp_path / "step", launcher=Stalled())
    assert time.monotonic() - start < 30
    time.sleep(1)
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "step")], capture_output=True, text=True)
    assert left.stdout.strip() == "", "step processes left running"


@dataclass
class KillsRank1:
    """The real launcher, but rank 1 of the step is SIGKILLed once it has started (as the
    out-of-memory killer would)."""

    shared_folder: bool = False

    def argv(self, ranks: int, nodes: int | None, step: list[str]) -> list[str]:
        folder = step[-1]
        script = (
            f'if [ "$PMI_RANK" = 1 ]; then (while [ ! -f {folder}/rank-1.json ]; do sleep 0.1; '
            'done; kill -9 $$) & fi; exec "$@"'
        )
        return Mpiexec().argv(ranks, nodes, ["sh", "-c", script, "sh", *step])

    def env(self, env: dict[str, str]) -> dict[str, str]:
        return Mpiexec().env(env)


def test_a_killed_step_rank_is_named_in_one_line(aer_mpi: AerMPI, tmp_path: Path) -> None:
    from qiskit import QuantumCircuit

    from qshpc.aer.distributed.launch import StepError
    from qshpc.aer.distributed.run import run_circuits

    c = QuantumCircuit(4)
    c.h(range(4))
    with pytest.raises(StepError) as info:
        run_circuits([c], 2, timeout=120, folder=tmp_path / "step", launcher=KillsRank1())
    text = str(info.value)
    assert "\n" not in text and text.startswith("the 2-rank Aer step on "), text
    assert "(mpiexec reports " in text, text  # its rank, or the pid of one not started yet
    assert "killed by signal 9 (SIGKILL)" in text and "more ranks" in text, text


def test_doctor_says_the_mpi_build_distributes(aer_mpi: AerMPI) -> None:
    from qshpc.doctor import OK, check_aer_mpi

    c = check_aer_mpi()
    assert c.status == OK, c
    assert "over 2 ranks" in c.detail and "max error" in c.detail


def test_a_task_of_a_qshpc_job_runs_a_step_and_its_ranks_are_in_provenance(
    aer_mpi: AerMPI, tmp_path: Path, qshpc_home: Path
) -> None:
    """A task under ``qshpc run`` (mpiexec -n 2) calls run_circuits: a nested world of 2,
    exact, the step's ranks (host, memory) in the task's provenance; the other calls run."""
    from qshpc.store import JobReader
    from tests.conftest import PROGRAMS, job_dir_of, run_cli

    args = tmp_path / "args.json"
    args.write_text('{"qubits": 12, "ranks": 2}')
    out = run_cli("run", str(PROGRAMS / "wide_circuit.py"), "--arguments", str(args),
                  ranks=2, timeout=240)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    with JobReader.open(job_dir_of(qshpc_home)) as r:
        result = r.result(allow_pickle=True)
        tasks = r.tasks()
    wide = result["wide"]
    assert wide["ranks"] == 2 and wide["launcher"] == "mpiexec", wide
    assert wide["prob_err"] < 1e-9 and wide["ev_err"] < 1e-9, wide
    assert result["small"] == [i * i for i in range(16)]
    (record,) = [t for t in tasks if t["function"].endswith("wide")]
    (entry,) = record["provenance"]["aer_steps"]
    assert entry["ranks"] == 2 and len(entry["hosts"]) == 2, entry
    assert all(p > b > 0 for p, b in zip(entry["peak_rss"], entry["before_rss"], strict=True))


def test_a_two_rank_task_gets_its_ranks_from_the_job(
    aer_mpi: AerMPI, tmp_path: Path, qshpc_home: Path
) -> None:
    """``target={"ranks": 2}`` under ``mpiexec -n 3``: the job holds both workers for the call,
    ``run_circuits`` takes k = 2 from the task, the other calls run before and after."""
    from qshpc.store import JobReader
    from tests.conftest import PROGRAMS, job_dir_of, run_cli

    args = tmp_path / "args.json"
    args.write_text('{"qubits": 12, "ranks": 2, "hold": true}')
    out = run_cli("run", str(PROGRAMS / "wide_circuit.py"), "--arguments", str(args),
                  ranks=3, timeout=240)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    with JobReader.open(job_dir_of(qshpc_home)) as r:
        result = r.result(allow_pickle=True)
    wide = result["wide"]
    assert wide["ranks"] == 2 and wide["prob_err"] < 1e-9 and wide["ev_err"] < 1e-9, wide
    assert result["small"] == [i * i for i in range(16)]


def test_primitives_split_a_pub_over_the_job_ranks(aer_mpi: AerMPI, qshpc_home: Path) -> None:
    """``QSHPC_DISTRIBUTE=10`` under ``--workers 2``: SamplerV2/EstimatorV2 PUBs of 12 (and 22)
    qubits each run as one 2-rank call, the 4-qubit ones as ordinary blocks, in one run; the
    same PUBs on one rank (``never``) give identical shots and values within 1e-9 (and Qiskit's
    exact ones); a task holding 2 ranks splits the PUB itself, and so does the V1 Sampler
    there; the steps are in provenance."""
    from qshpc.store import JobReader
    from tests.conftest import PROGRAMS, job_dir_of, run_cli

    out = run_cli("run", str(PROGRAMS / "split_primitives.py"), "--workers", "2",
                  timeout=400, env={"QSHPC_DISTRIBUTE": "10"})  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    with JobReader.open(job_dir_of(qshpc_home)) as r:
        result = r.result()
        tasks = r.tasks()
    split, one = result["split"], result["one"]
    for a, b in zip(split["sampler"], one["sampler"], strict=True):
        assert list(a.data) == list(b.data)
        for name in a.data:
            assert np.array_equal(a.data[name].array, b.data[name].array), name
    assert split["sampler"].metadata["seed"] == one["sampler"].metadata["seed"]
    assert len(split["sampler"][3].data.meas.get_counts()) > 100  # 22 qubits, Aer's shots
    for i, (a, b) in enumerate(zip(split["estimator"], one["estimator"], strict=True)):
        assert np.abs(a.data.evs - b.data.evs).max() < 1e-9
        assert np.abs(a.data.evs - result["exact"][i]).max() < 1e-9
    assert np.array_equal(result["inside"], split["sampler"][0].data.a.array)
    # the V1 Sampler in that task: exact quasi-probabilities to 1e-9, the same shots
    (exact_split, shots_split), (exact_one, shots_one) = split["v1"], one["v1"]
    for a, b in zip(exact_split, exact_one, strict=True):
        assert set(a) == set(b) and max(abs(a[k] - b[k]) for k in a) < 1e-9
    assert shots_split == shots_one
    assert result["small"] == [i * i for i in range(8)]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for t in tasks:
        by_name.setdefault(t["function"], []).append(t)
    # split: PUBs 0, 2, 3 of the sampler and PUB 0 of the estimator; the rest as blocks
    assert len(by_name["qshpc.SamplerV2.split"]) == 3
    assert len(by_name["qshpc.EstimatorV2.split"]) == 1
    assert by_name["qshpc.SamplerV2"] and by_name["qshpc.EstimatorV2"]
    paths = set()
    for t in (
        by_name["qshpc.SamplerV2.split"] + by_name["qshpc.EstimatorV2.split"] + by_name["inside"]
    ):
        steps = t["provenance"]["aer_steps"]
        assert len(steps) == (3 if t["function"] == "inside" else 1)  # inside: V2, 2 x V1
        for entry in steps:
            assert entry["ranks"] == 2 and entry["split"] == 2, entry
            assert len(entry["hosts"]) == 2 and min(entry["peak_rss"]) > entry["before_rss"][0] // 2
        paths.add(t["provenance"].get("primitive"))
    assert "SamplerV2 (aer, split over 2 ranks)" in paths, paths
    assert "EstimatorV2 (split over 2 ranks)" in paths, paths
