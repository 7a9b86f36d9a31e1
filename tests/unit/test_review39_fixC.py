"""Session 25, fixC (review39 F2): the key of a Qiskit ``Target``, and of a preset pass
manager, is the same in every process. Their maps were walked in an order built from Rust
hash maps and Python sets, so each process gave another key, and a task reading a global
pass manager ran again on every resume. Real processes, real Qiskit objects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import job_dir_of, run_cli

#: Digests of a target and of preset pass managers, printed one a line.
DIGESTS = """
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator
from qshpc.cache.keys import value_digest

for value in (
    AerSimulator().target,
    generate_preset_pass_manager(1, AerSimulator()),
    generate_preset_pass_manager(1, basis_gates=["cx", "rz", "sx", "x"]),
    generate_preset_pass_manager(3, GenericBackendV2(5, seed=1)),
    AerSimulator.from_backend(GenericBackendV2(5, seed=1)),
):
    print(value_digest(value).hex())
"""


def test_a_target_and_preset_pass_managers_have_one_key_in_every_process() -> None:
    """Three processes (each its own string hashing and Rust hash-map order) give one key
    for each; before, each process gave its own (all five differed; the simulator made
    from a backend by the dates ``now()`` it stamps on each of its properties)."""
    import qshpc

    root = str(Path(qshpc.__file__).resolve().parents[1])  # the qshpc under test
    procs = []
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": root}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", DIGESTS],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        outs.append(out.split())
    assert len(outs[0]) == 5
    assert outs[0] == outs[1] == outs[2]
    assert len(set(outs[0])) == 5


def _digest(value: object) -> bytes:
    from qshpc.cache.keys import value_digest

    return value_digest(value)


def test_a_target_in_another_order_is_one_key_and_another_target_another() -> None:
    """The same instructions added in another order: one key. Another gate, another qubit
    pair, another error rate: another key each."""
    from qiskit.circuit import Parameter
    from qiskit.circuit.library import CXGate, RZGate, SXGate
    from qiskit.transpiler import InstructionProperties, Target

    def target(order: list[str], error: float = 0.01, pairs: tuple[tuple[int, int], ...] = ((0, 1),),
               extra: bool = False) -> Target:  # fmt: skip
        t = Target(num_qubits=2)
        gates = {
            "cx": (CXGate(), {p: InstructionProperties(error=error) for p in pairs}),
            "rz": (RZGate(Parameter("a")), {(0,): None, (1,): None}),
            "sx": (SXGate(), {(1,): InstructionProperties(error=0.001), (0,): None}),
        }
        if order[0] == "sx":  # the qargs of a gate in another order too
            gates["sx"] = (SXGate(), {(0,): None, (1,): InstructionProperties(error=0.001)})
        for name in order:
            gate, props = gates[name]
            t.add_instruction(gate, props)
        if extra:
            from qiskit.circuit.library import XGate

            t.add_instruction(XGate(), {(0,): None, (1,): None})
        return t

    one = _digest(target(["cx", "rz", "sx"]))
    assert _digest(target(["sx", "cx", "rz"])) == one
    assert _digest(target(["rz", "sx", "cx"])) == one
    assert _digest(target(["cx", "rz", "sx"], error=0.02)) != one
    assert _digest(target(["cx", "rz", "sx"], pairs=((1, 0),))) != one
    assert _digest(target(["cx", "rz", "sx"], extra=True)) != one


def test_a_pass_manager_for_another_basis_or_coupling_map_is_another_key() -> None:
    from qiskit.transpiler import CouplingMap, generate_preset_pass_manager

    basis = ["cx", "rz", "sx", "x"]
    one = _digest(generate_preset_pass_manager(1, basis_gates=basis))
    assert _digest(generate_preset_pass_manager(1, basis_gates=list(basis))) == one
    assert _digest(generate_preset_pass_manager(1, basis_gates=[*basis, "h"])) != one
    line = _digest(generate_preset_pass_manager(1, basis_gates=basis,
                                                coupling_map=CouplingMap.from_line(3)))  # fmt: skip
    ring = _digest(generate_preset_pass_manager(1, basis_gates=basis,
                                                coupling_map=CouplingMap.from_ring(3)))  # fmt: skip
    assert len({one, line, ring}) == 3
    assert _digest(generate_preset_pass_manager(2, basis_gates=basis)) != one


def test_a_simulator_from_another_backend_is_another_key_and_a_date_of_the_task_is_kept(
) -> None:  # fmt: skip
    """Only the dates Aer stamps on a simulator's backend properties are left out: the
    properties' values stay in the key, and a date passed to a task keeps its own."""
    import datetime

    from qiskit.providers.fake_provider import GenericBackendV2
    from qiskit_aer import AerSimulator

    one = _digest(AerSimulator.from_backend(GenericBackendV2(5, seed=1)))
    assert _digest(AerSimulator.from_backend(GenericBackendV2(5, seed=1))) == one
    assert _digest(AerSimulator.from_backend(GenericBackendV2(5, seed=2))) != one
    day = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    assert _digest(day) != _digest(day + datetime.timedelta(seconds=1))
    assert _digest([day]) != _digest([day.date()])


def test_a_plain_dict_keeps_its_order_in_a_key() -> None:
    """Only the maps of the classes named are walked sorted: a task's own dict is not."""
    assert _digest({"a": 1, "b": 2}) != _digest({"b": 2, "a": 1})
    assert _digest([{"a": 1, "b": 2}]) != _digest([{"b": 2, "a": 1}])


PROGRAM = """
import os
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_aer import AerSimulator
from qshpc import distribute_task, get, save_result

PM = generate_preset_pass_manager(1, AerSimulator())

@distribute_task()
def t(x):
    _ = PM
    if x == 3 and os.path.exists("fail"):
        raise RuntimeError("task 3 fails")
    return x * 10

save_result(get([t(i) for i in range(5)]))
"""


@pytest.mark.mpi
def test_a_task_reading_a_global_pass_manager_is_reused_on_resume(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review39 F2: all five calls ran again on resume (the pass manager's key changed with
    the process); now the four that succeeded are reused."""
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    (tmp_path / "fail").touch()
    first = run_cli("run", str(prog), "--workers", "1", cwd=tmp_path, timeout=300)
    assert first.returncode == 1, first.stdout + first.stderr
    (tmp_path / "fail").unlink()
    job = job_dir_of(qshpc_home)
    out = run_cli("run", str(prog), "--resume", str(job), "--workers", "1", cwd=tmp_path,
                  timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "SUCCEEDED (1 tasks run, 4 reused from the store)" in out.stdout + out.stderr
