"""The distributed-Aer pieces that need no MPI build: lookup, env, spec, launch lines, patch, Paulis."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from qshpc.aer.distributed import build, install, launch, run, spec, step
from qshpc.errors import UserError

FAKE_SO = b"\x7fELF....libopenblas.so.0\x00libmpi.so.12\x00libstdc++.so.6\x00"


def fake_build(prefix: Path, so: bytes = FAKE_SO, info: dict[str, str] | None = None) -> Path:
    backends = prefix / install.SITE / "qiskit_aer" / "backends"
    backends.mkdir(parents=True)
    (backends / "controller_wrappers.cpython-311-x86_64-linux-gnu.so").write_bytes(so)
    (prefix / install.SITE / "qiskit_aer" / "VERSION.txt").write_text("0.18.2\n")
    stamp = {"aer_version": "0.18.2", "mpi_lib_dir": "/opt/mpi/lib", "patches": "abc"}
    (prefix / install.INFO_FILE).write_text(json.dumps(info if info is not None else stamp))
    return prefix


def test_prefix_order_env_then_checkout_then_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, qshpc_home: Path
) -> None:
    monkeypatch.setenv(install.ENV_PREFIX, str(tmp_path / "mine"))
    sources = [s for s, _ in install.prefixes()]
    assert sources[0] == install.ENV_PREFIX and sources[-1] == "home"
    assert install.prefixes()[-1][1] == qshpc_home / "aer-mpi"
    assert install.default_prefix() == tmp_path / "mine"


def test_locate_reads_the_stamp_and_the_module(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prefix = fake_build(tmp_path / "p")
    monkeypatch.setenv(install.ENV_PREFIX, str(prefix))
    found = install.locate()
    assert found is not None and found.source == install.ENV_PREFIX
    assert found.mpi_library == "libmpi.so.12" and found.version == "0.18.2"
    assert found.mpi_lib_dir == Path("/opt/mpi/lib") and found.patched


def test_a_build_without_mpi_or_stamp_is_not_used(tmp_path: Path) -> None:
    assert (
        install.at_prefix(fake_build(tmp_path / "nompi", so=b"\x7fELF libstdc++.so.6\x00")) is None
    )
    assert install.at_prefix(fake_build(tmp_path / "nostamp", info={})) is None  # half-built


def test_pypi_aer_is_not_an_mpi_build() -> None:
    module = install.environment_aer()
    assert module is not None and install.mpi_needed(module) is None


def test_missing_says_where_it_looked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(install.ENV_PREFIX, str(tmp_path / "none"))
    assert str(tmp_path / "none") in install.why_missing()


def test_a_qshpc_aer_mpi_without_a_build_is_not_passed_over(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, qshpc_home: Path
) -> None:
    """review32 F6: $QSHPC_AER_MPI naming no build (a typo, an empty folder, the PyPI Aer's
    site-packages) fell back to another build without a word, and doctor said OK."""
    from qshpc import doctor

    fake_build(qshpc_home / "aer-mpi")  # a build qshpc would find without the variable
    monkeypatch.delenv(install.ENV_PREFIX, raising=False)
    found = install.locate()
    assert found is not None and found.source in ("checkout", "home")
    empty = tmp_path / "empty"
    empty.mkdir()
    nompi = fake_build(tmp_path / "nompi", so=b"\x7fELF libstdc++.so.6\x00")
    for prefix, why in (
        (tmp_path / "typo", "no such folder"),
        (empty, "no " + str(empty / install.SITE / "qiskit_aer" / "backends")),
        (nompi, "its controller_wrappers.cpython-311-x86_64-linux-gnu.so links no MPI library"),
        (fake_build(tmp_path / "half", info={}), "no build-info.json"),
    ):
        monkeypatch.setenv(install.ENV_PREFIX, str(prefix))
        assert install.locate() is None, prefix
        said = install.why_missing()
        assert said.startswith(f"no MPI build of Aer at $QSHPC_AER_MPI={prefix} ({why}"), said
        assert "unset it" in said
        check = doctor.check_aer_mpi()
        assert check.status == doctor.FAIL and "$QSHPC_AER_MPI" in check.detail, check
        with pytest.raises(UserError, match=r"\$QSHPC_AER_MPI="):
            launch.launch(tmp_path, 2)


def test_step_env_puts_the_build_first_and_keeps_the_rest(tmp_path: Path) -> None:
    found = install.at_prefix(fake_build(tmp_path / "p"))
    assert found is not None
    env = install.step_env(found, {"PYTHONPATH": "/x", "LD_LIBRARY_PATH": "/y", "HOME": "/h"})
    py = env["PYTHONPATH"].split(":")
    assert py[0] == str(tmp_path / "p" / install.SITE) and py[-1] == "/x"
    assert Path(py[1], "qshpc", "__init__.py").is_file()  # the parent's own qshpc
    assert env["LD_LIBRARY_PATH"] == "/opt/mpi/lib:/y" and env["HOME"] == "/h"


def test_scrub_removes_launcher_variables_only() -> None:
    from qshpc.submit.slurm import SrunStep, mpi_env

    env = {"PMI_RANK": "1", "PMI_FD": "9", "HYDRA_CONTROL_FD": "3", "MPI_LOCALRANKID": "0",
           "OMPI_COMM_WORLD_RANK": "2", "PMIX_RANK": "1", "MPIR_CVAR_CH4_NETMOD": "ofi",
           "SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "4", "PATH": "/bin"}  # fmt: skip
    kept = {"MPIR_CVAR_CH4_NETMOD", "SLURM_JOB_ID", "PATH"}
    assert set(launch.Mpiexec().env(env)) == kept | {"SLURM_STEP_ID", "SLURM_NTASKS"}
    assert set(SrunStep().env(env)) == kept | set(mpi_env())  # (FI_PROVIDER for the PyPI mpich)


def test_launch_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qshpc.submit import slurm

    step = launch.step_argv(tmp_path)
    assert step == [sys.executable, "-m", "qshpc.aer.distributed.step", str(tmp_path)]
    line = slurm.SrunStep().argv(4, 2, step)
    assert line[:5] == ["srun", "--mpi=pmi2", "--overlap", "--ntasks=4", "--nodes=2"]
    assert line[-4:] == step and slurm.SrunStep().shared_folder
    local = launch.Mpiexec().argv(2, None, step)
    assert local[1:3] == ["-n", "2"] and local[3:] == step and not launch.Mpiexec().shared_folder
    assert slurm.step_launcher({}) is None  # not in an allocation
    # pinned to the held ranks' nodes, when host names are Slurm's node names
    import socket

    here = {"SLURMD_NODENAME": socket.gethostname()}
    held = slurm.SrunStep().placed(["n2", "n1", "n2", "n1"])
    assert held.nodelist(4, here) == ["--nodelist=n2,n1", "--nodes=2", "--ntasks-per-node=2"]
    assert slurm.SrunStep().placed(["n1", "n1", "n3"]).nodelist(3, here) == [
        "--nodelist=n1,n3",
        "--nodes=2",
    ]
    assert held.nodelist(4, {"SLURMD_NODENAME": "elsewhere"}) == []  # names differ: not pinned
    assert held.nodelist(2, here) == []  # not the held count
    monkeypatch.setenv("SLURMD_NODENAME", socket.gethostname())
    line = held.argv(4, 2, step)
    assert line[4:7] == ["--nodelist=n2,n1", "--nodes=2", "--ntasks-per-node=2"], line


def test_the_ranks_of_a_slurm_job_start_steps_with_srun(monkeypatch: pytest.MonkeyPatch) -> None:
    from qshpc.aer.distributed import defaults
    from qshpc.submit import slurm

    monkeypatch.setattr(defaults, "_launcher", None)
    assert isinstance(launch.default_launcher(), launch.Mpiexec)
    assert slurm.scheduler({}) is None
    assert isinstance(launch.default_launcher(), launch.Mpiexec)  # outside a job: unchanged
    monkeypatch.setattr(slurm.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert slurm.scheduler({"SLURM_JOB_ID": "7", "SLURM_PROCID": "1"}) is not None
    assert isinstance(launch.default_launcher(), slurm.SrunStep)  # what run_circuits then uses


def test_default_blocking_is_eight_chunks_per_rank_but_not_tiny_ones() -> None:
    assert [run.default_blocking_qubits(28, r) for r in (1, 2, 4, 8)] == [28, 24, 23, 22]
    assert run.default_blocking_qubits(16, 2) == 14  # 2 chunks of 14 qubits per rank
    assert run.default_blocking_qubits(12, 4) == 10  # small: one chunk per rank


def test_bad_ranks_are_refused_before_anything_starts(tmp_path: Path) -> None:
    for bad in (3, 0, True):
        with pytest.raises(UserError, match="power of two"):
            run.run_circuits([], bad)
    # review32 F4: the fix named, the two nearest powers of two
    with pytest.raises(UserError, match=r"got ranks=3: use ranks=2 or 4"):
        run.run_circuits([], 3)
    with pytest.raises(UserError, match=r"got ranks=12: use ranks=8 or 16"):
        run.run_circuits([], 12)
    with pytest.raises(UserError, match="positive int"):
        launch.launch(tmp_path, 0)


def test_nodes_that_cannot_hold_the_ranks_are_refused_before_anything_starts() -> None:
    """review32: nodes=3 and nodes=5 with 2 ranks ran on 2 nodes, dropped without a word."""
    for nodes in (3, 5):
        with pytest.raises(UserError, match=f"nodes={nodes} is more than the step's 2 rank"):
            run.run_circuits([], 2, nodes=nodes)
    assert run._check_nodes(np.int64(2), 2) == 2  # numpy's ints are whole numbers (review39 F7)
    for bad in (0, -1, True, 1.5, "2", np.float64(2.0)):
        with pytest.raises(UserError, match="nodes must be a whole number of 1 or more"):
            run.run_circuits([], 2, nodes=bad)  # type: ignore[arg-type]


def test_spec_round_trip_and_version_check() -> None:
    s = spec.StepSpec([[spec.Save("expectation_value", [0, 1], "ev", [("XZ", 0.5, 0.0)])], []], 10, 7,
                      {"method": "statevector", "blocking_qubits": 20})  # fmt: skip
    data = json.loads(json.dumps(s.to_json()))
    assert spec.StepSpec.from_json(data) == s
    with pytest.raises(UserError, match="different qshpc versions"):
        spec.StepSpec.from_json({**data, "version": 99})
    with pytest.raises(UserError, match="unknown save kind"):
        spec.StepSpec.from_json(
            {**data, "saves": [[{"kind": "density_matrix", "qubits": [], "label": "s"}]]}
        )


def test_pauli_groups_are_qubitwise_commuting() -> None:
    groups = step.pauli_groups(
        [("XI", 1.0, 0.0), ("XZ", 2.0, 0.0), ("ZI", 3.0, 0.0), ("YY", 4.0, 0.0), ("IZ", 5.0, 0.0)]
    )
    assert groups == [({1: "X"}, [("ZI", 1.0), ("ZZ", 2.0), ("IZ", 5.0)]), ({}, [("ZI", 3.0)]),
                      ({0: "Y", 1: "Y"}, [("ZZ", 4.0)])]  # fmt: skip
    with pytest.raises(ValueError, match="Hermitian"):
        step.pauli_groups([("X", 1.0, 0.5)])


def test_diagonalized_expectation_values_are_exact() -> None:
    from qiskit import transpile
    from qiskit.circuit.random import random_circuit
    from qiskit.quantum_info import SparsePauliOp, Statevector
    from qiskit_aer import AerSimulator

    rng = np.random.default_rng(3)
    circuit = transpile(
        random_circuit(5, 5, max_operands=2, seed=2), AerSimulator(), optimization_level=1
    )
    labels = ["".join(rng.choice(list("IXYZ"), 5)) for _ in range(12)] + ["IIIII"]
    coeffs = rng.normal(size=13)
    c = circuit.copy()
    keys = step.add_saves(c, [spec.Save("expectation_value", list(range(5)), "ev",
                                        [(lb, float(x), 0.0) for lb, x in zip(labels, coeffs, strict=True)])])  # fmt: skip
    data = AerSimulator().run(c).result().data(0)
    names, constant = keys["ev"]
    got = constant + sum(float(data[k]) for k in names)
    assert got == pytest.approx(
        Statevector(circuit).expectation_value(SparsePauliOp(labels, coeffs)).real, abs=1e-12
    )


def test_memory_patch_matches_the_aer_sources(tmp_path: Path) -> None:
    """The patch applies to the sdist it was written for (when that sdist is at hand)."""
    sdists = [p / "sdist" for _, p in install.prefixes()]
    found = [t for d in sdists if d.is_dir() for t in d.glob("qiskit_aer-*.tar.gz")]
    if not found:
        pytest.skip("no qiskit-aer sdist downloaded (make install-aer-mpi fetches one)")
    import tarfile

    with tarfile.open(found[0]) as tar:
        tar.extractall(tmp_path, filter="data")
    src = next(tmp_path.iterdir())
    assert build.apply_patches(src) == ["src/simulators/parallel_state_executor.hpp",
                                        "src/simulators/statevector/qubitvector.hpp"]  # fmt: skip
    with pytest.raises(UserError, match="--no-patch"):
        build.apply_patches(src)  # already applied: the text is gone


def test_only_the_verified_basis_reaches_a_step() -> None:
    from qiskit import QuantumCircuit

    c = QuantumCircuit(3)
    c.ccz(0, 1, 2)
    c.cu(0.1, 0.2, 0.3, 0.4, 0, 2)
    with pytest.raises(ValueError, match=r"has a 'ccz'.*basis_gates=\['u', 'cx'\]"):
        step.check_gates([c])
    ready = run.prepare([c])
    step.check_gates(ready)
    assert {i.operation.name for i in ready[0].data} <= {"u", "cx"}


def test_a_split_whose_ranks_on_one_node_need_more_than_its_memory_is_refused() -> None:
    from qshpc.aer.distributed.plan import check_hosts
    from qshpc.errors import ResourceError

    gib = 1 << 30
    # 32 qubits over 4 ranks: 16 GiB chunks, ~18.1 GiB a rank with the estimate's overhead
    check_hosts(32, ["n1", "n2", "n3", "n4"], memory=24 * gib)
    with pytest.raises(ResourceError) as info:
        check_hosts(32, ["n1", "n1", "n2", "n2"], memory=24 * gib)
    text = str(info.value)
    assert "2 of the ranks are on n1" in text and "place at most 1 rank(s) per node" in text, text
    check_hosts(32, ["n1", "n1", "n2", "n2"], precision="single", memory=24 * gib)  # 9.3 GiB each
    check_hosts(12, ["vm"] * 2)  # small: any node


def test_a_step_launcher_dies_with_the_thread_that_started_it() -> None:
    """A worker killed while its call runs a step (Ctrl-C, cancel, lost rank 0) takes the step
    with it: the launcher (mpiexec, srun) runs under PR_SET_PDEATHSIG=SIGTERM. It ran on
    orphaned, with its ranks and memory, after the job was CANCELED."""
    import os
    import signal
    import subprocess
    import time

    code = (
        "import os, subprocess, sys, time\n"
        "from qshpc.aer.distributed.launch import _WITH_PARENT\n"
        "p = subprocess.Popen([*_WITH_PARENT, str(os.getpid()), 'sleep', '300'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert worker.stdout is not None
    child = int(worker.stdout.readline())
    try:
        # the wrapper has exec'd sleep (was a 0.3 s sleep: its python -S start took longer
        # under load)
        deadline = time.monotonic() + 30
        while not Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"sleep\0"):
            assert time.monotonic() < deadline, "the wrapper never exec'd the launcher"
            time.sleep(0.01)
        worker.kill()
        worker.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                break  # gone (reaped)
            if state == "Z":
                break  # dead, not reaped yet
            time.sleep(0.05)
        else:
            pytest.fail("the step's launcher outlived the process that started it")
    finally:
        worker.kill()
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_step_srun_refused_says_slurm_s_reason_and_the_fix() -> None:
    """review32 F5: srun refused the step (4 ranks in a job of 3 tasks); the error said "on ?
    ... exited 1 before its result was written: rerun the call ... (mpiexec -n k ...)" and
    Slurm's reason was only in the log. srun's own line as the dev cluster printed it:"""
    out = ("srun: error: Unable to create step for job 41: More processors requested than "
           "permitted\n")  # fmt: skip
    argv = ["srun", "--mpi=pmi2", "--overlap", "--ntasks=4", "--kill-on-bad-exit=1"]
    text = launch._lost(4, argv, 1, [None] * 4, out)
    assert text == (
        f"srun on {socket.gethostname()} could not start the 4-rank Aer step; Slurm says: "
        "Unable to create step for job 41: More processors requested than permitted: the job's "
        "allocation is too small for a 4-rank step: submit the job with more tasks (qshpc "
        "submit --nodes N --ntasks-per-node M) and declare the task with target={'ranks': 4} "
        "(the job then holds 4 ranks for it); rerunning the call will not help"
    )
    assert "mpiexec" not in text
    # a rank that started and died is not a refusal; the hint names srun, not mpiexec
    text = launch._lost(
        2, argv, 1, [{"host": "n1", "pid": 5}, None], "srun: error: n2: task 1: Exited"
    )
    assert text.startswith("rank 1 of the 2-rank Aer step") and "inside the job: srun" in text
    assert "mpiexec" not in text


def test_a_killed_step_rank_is_one_line_naming_rank_host_pid_signal_and_the_fix() -> None:
    """mpiexec's banner after a rank of the step was killed: the error is one line (a task's
    failure shows its last line: it was the banner's 'Please see the FAQ page ...')."""
    banner = (
        "===================================================================================\n"
        "=   BAD TERMINATION OF ONE OF YOUR APPLICATION PROCESSES\n"
        "=   PID 8186 RUNNING AT node7\n"
        "=   EXIT CODE: 9\n"
        "=   CLEANING UP REMAINING PROCESSES\n"
        "YOUR APPLICATION TERMINATED WITH THE EXIT STRING: Killed (signal 9)\n"
        "Please see the FAQ page for debugging suggestions\n"
    )
    reports = [{"host": "node6", "pid": 8185, "env_rank": 0},
               {"host": "node7", "pid": 8186, "env_rank": 1}]  # fmt: skip
    text = launch._lost(2, ["mpiexec", "-n", "2"], 9, list(reports), banner)
    assert "\n" not in text
    assert text.startswith("the 2-rank Aer step on node6, node7 (mpiexec reports its rank 1, "
                           "host node7, pid 8186) was killed by signal 9 (SIGKILL)"), text  # fmt: skip
    assert "out-of-memory" in text and "more ranks" in text
    srun = "srun: error: node9: task 3: Killed\nsrun: Terminating StepId=12.3\n"
    text = launch._lost(4, ["srun"], 137, [None, None, None, {"host": "node9", "pid": 5}], srun)
    assert text.startswith("rank 3 of the 4-rank Aer step (host node9, pid 5) was killed by "
                           "signal 9 (SIGKILL)"), text  # fmt: skip
    text = launch._lost(2, ["mpiexec", "-n", "2"], 1, [None, None], "")
    here = socket.gethostname()
    assert text.startswith(f"the 2-rank Aer step launched from {here} (mpiexec -n 2 ...; ranks "
                           "unfinished: [0, 1]) exited 1"), text  # fmt: skip
    assert "QSHPC_KEEP_STEP=1" in text and "\n" not in text and "(mpiexec -n k" in text
    # mpiexec reaped first a rank it stopped before that rank wrote its start report (seen
    # in CI on 6540cfa: the message lost its pid and host)
    started = [None, {"host": "node7", "pid": 8186, "env_rank": 1}]
    text = launch._lost(2, ["mpiexec", "-n", "2"], 9, started, banner.replace("8186", "8185"))
    assert text.startswith("the 2-rank Aer step on node7 (mpiexec reports pid 8185 on node7, a "
                           "rank that had not reported its start; ranks unfinished: [0, 1]) was "
                           "killed by signal 9 (SIGKILL)"), text  # fmt: skip
