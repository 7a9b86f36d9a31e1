"""Cache keys that forged a result (review43 H1, H2, M1), in real runs.

H1: qiskit's settings file changes what ``transpile()`` returns: it is in the key.
H2: a module attribute the program sets is not seen by the workers: a worker stores
a result only when its digest of the function is rank 0's.
M1: an unbuilt blueprint circuit (QAOAAnsatz) has one key in every process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.mpi


def _result(out: subprocess.CompletedProcess[str]) -> tuple[object, str]:
    """The run's printed RESULT, and its job line."""
    assert out.returncode == 0, out.stdout + out.stderr
    res = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    job = [ln for ln in out.stdout.splitlines() if ln.startswith("qshpc: job ")][-1]
    return json.loads(res[len("RESULT ") :]), job


# -- H1 ------------------------------------------------------------------------------------

TRANSPILE = """\
import json
from qshpc import distribute_task, get, save_result
from qiskit import QuantumCircuit, transpile
from qiskit.providers.fake_provider import GenericBackendV2

@distribute_task()
def compiled_size(n):
    qc = QuantumCircuit(n)
    for i in range(n - 1):
        qc.cx(i, i + 1)
        qc.cx(i, i + 1)
    return transpile(qc, GenericBackendV2(n, seed=1), seed_transpiler=1).size()

r = get([compiled_size(3)])
print("RESULT", json.dumps(r))
save_result(r)
"""


def test_qiskit_settings_file_is_in_the_key(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text(TRANSPILE)
    for level in (0, 3):
        (tmp_path / f"o{level}.conf").write_text(
            f"[default]\ntranspile_optimization_level = {level}\n"
        )

    def run(level: int) -> tuple[object, str]:
        env = {"QISKIT_SETTINGS": str(tmp_path / f"o{level}.conf")}
        return _result(run_cli("run", str(prog), "--workers", "1", "--cache", env=env))

    low, job = run(0)
    assert low != [0] and "from the cache" not in job, (low, job)
    high, job = run(3)  # level 3 cancels the pairs: a miss, not level 0's result
    assert high == [0] and "from the cache" not in job, (high, job)
    again, job = run(0)
    assert again == low and "1 from the cache" in job, (again, job)


def test_qiskit_settings_read_as_qiskit_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qshpc.cache.keyenv import qiskit_settings

    conf = tmp_path / "s.conf"
    conf.write_text("[default]\ntranspiler_seed = 5\n# a comment\ncircuit_drawer = mpl\n")
    monkeypatch.setenv("QISKIT_SETTINGS", str(conf))
    for name in ("QISKIT_TRANSPILER_SEED", "QISKIT_SABRE_ALL_THREADS", "QISKIT_NUM_PROCS"):
        monkeypatch.delenv(name, raising=False)
    assert qiskit_settings() == [("qiskit:circuit_drawer", "mpl"), ("qiskit:transpiler_seed", "5")]
    monkeypatch.setenv("QISKIT_TRANSPILER_SEED", "7")
    assert ("env:QISKIT_TRANSPILER_SEED", "7") in qiskit_settings()
    monkeypatch.setenv("QISKIT_IGNORE_USER_SETTINGS", "TRUE")  # qiskit reads no file then
    assert qiskit_settings() == [("env:QISKIT_TRANSPILER_SEED", "7")]
    monkeypatch.delenv("QISKIT_IGNORE_USER_SETTINGS")
    conf.write_text("not = an ini file\n")  # qiskit fails on it; keyed by its bytes
    assert next(k for k, _ in qiskit_settings()) == "qiskit:settings-file"
    monkeypatch.setenv("QISKIT_SETTINGS", str(tmp_path / "none.conf"))
    monkeypatch.setenv("QISKIT_SABRE_ALL_THREADS", "1")  # trials follow the CPU count
    assert ("qiskit:cpus", str(__import__("os").cpu_count())) in qiskit_settings()


# -- H2 ------------------------------------------------------------------------------------

HELPERS = "FACTOR = 2\n\ndef scale(x):\n    return x * FACTOR\n"
MODATTR = """\
import json
from qshpc import distribute_task, get, save_result
import helpers
helpers.FACTOR = 10

@distribute_task(cache=True)
def work(x):
    return helpers.scale(x)

r = get([work(i) for i in range(1, 4)])
print("RESULT", json.dumps(r))
save_result(r)
"""
NOTE = "results of work computed on this worker are not cached"


def _modattr(tmp_path: Path) -> Path:
    (tmp_path / "helpers.py").write_text(HELPERS)
    prog = tmp_path / "prog.py"
    prog.write_text(MODATTR)
    return prog


def test_module_attribute_set_by_the_program_is_not_stored_by_workers(tmp_path: Path) -> None:
    prog = _modattr(tmp_path)
    out = run_cli("run", str(prog), "--workers", "1")
    value, job = _result(out)
    assert value == [2, 4, 6]  # the workers import helpers from its file (as before)
    assert NOTE in out.stderr and "helpers.FACTOR = 10" in out.stderr
    assert out.stderr.count(NOTE) == 1  # once for the function, not once a call
    assert "no entries" in run_cli("cache", "ls").stdout  # nothing stored under a false key
    # In the program's process the program's FACTOR is used, and kept under its own key.
    first, job = _result(run_cli("run", str(prog), "--workers", "0", "--cache"))
    assert first == [10, 20, 30] and "from the cache" not in job
    again, job = _result(run_cli("run", str(prog), "--workers", "0", "--cache"))
    assert again == [10, 20, 30] and "3 from the cache" in job
    plain = subprocess.run(
        [sys.executable, "prog.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert "RESULT [10, 20, 30]" in plain.stdout, plain.stdout + plain.stderr


def test_module_attribute_under_mpiexec(tmp_path: Path) -> None:
    prog = _modattr(tmp_path)
    out = run_cli("run", str(prog), ranks=3)
    value, _ = _result(out)
    assert value == [2, 4, 6] and NOTE in out.stderr
    assert "no entries" in run_cli("cache", "ls").stdout
    value, job = _result(run_cli("run", str(prog), "--workers", "0"))
    assert value == [10, 20, 30] and "from the cache" not in job


def test_a_function_from_the_file_is_stored_as_before(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text(HELPERS)
    prog = tmp_path / "prog.py"
    prog.write_text(MODATTR.replace("helpers.FACTOR = 10\n", ""))
    out = run_cli("run", str(prog), "--workers", "1")
    assert _result(out)[0] == [2, 4, 6] and NOTE not in out.stderr
    value, job = _result(run_cli("run", str(prog), "--workers", "0"))
    assert value == [2, 4, 6] and "3 from the cache" in job


BETWEEN = """\
import json
from qshpc import distribute_task, get, save_result
import helpers
G = 1

@distribute_task(cache=True)
def work(x):
    return helpers.scale(x) + 100 * G

helpers.FACTOR = 10
a = get(work(1))
helpers.FACTOR = 20
b = get(work(1))
G = 2
c = get(work(1))
print("RESULT", json.dumps([a, b, c]))
save_result([a, b, c])
"""


def test_values_changed_between_calls_of_one_task_change_its_key(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text(HELPERS)
    prog = tmp_path / "prog.py"
    prog.write_text(BETWEEN)
    value, job = _result(run_cli("run", str(prog), "--workers", "0"))
    assert value == [110, 120, 220] and "3 tasks run" in job
    value, job = _result(run_cli("run", str(prog), "--workers", "0"))
    assert value == [110, 120, 220] and "3 from the cache" in job


# -- M1 ------------------------------------------------------------------------------------

QAOA = """\
import json
from qshpc import distribute_task, get, save_result
from qiskit.circuit.library import QAOAAnsatz
from qiskit.quantum_info import SparsePauliOp

@distribute_task(cache=True)
def nparams(a):
    return a.num_parameters

r = get([nparams(QAOAAnsatz(SparsePauliOp(["ZZI", "IZZ"]), reps=2))])
print("RESULT", json.dumps(r))
save_result(r)
"""


def test_unbuilt_blueprint_has_one_key_in_every_process(tmp_path: Path) -> None:
    prog = tmp_path / "prog.py"
    prog.write_text(QAOA)
    value, job = _result(run_cli("run", str(prog), "--workers", "0"))
    assert value == [4] and "from the cache" not in job
    value, job = _result(run_cli("run", str(prog), "--workers", "0"))
    assert value == [4] and "1 from the cache" in job
    value, job = _result(run_cli("run", str(prog), "--workers", "1"))
    assert value == [4] and "1 from the cache" in job


PATCHED = MODATTR.replace("helpers.FACTOR = 10", "helpers.scale = lambda x: x * 100")
IN_BODY = """\
import json
from qshpc import distribute_task, get, put, save_result
import helpers
R = put(list(range(10)))

@distribute_task(cache=True)
def work(x):
    import helpers
    return helpers.scale(x) + get(R)[x]

r = get([work(i) for i in range(1, 4)])
print("RESULT", json.dumps(r))
save_result(r)
"""


def test_a_patched_module_function_is_not_stored_by_workers(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text(HELPERS)
    prog = tmp_path / "prog.py"
    prog.write_text(PATCHED)
    out = run_cli("run", str(prog), "--workers", "1")
    assert _result(out)[0] == [2, 4, 6] and "helpers.scale differs here" in out.stderr
    assert "no entries" in run_cli("cache", "ls").stdout


def test_a_module_imported_in_the_body_and_a_global_put_are_stored_as_before(
    tmp_path: Path,
) -> None:
    """What only rank 0 can key (a global ObjectRef, a module rank 0 imported and the
    worker not yet) is no reason to leave a result out."""
    (tmp_path / "helpers.py").write_text(HELPERS)
    prog = tmp_path / "prog.py"
    prog.write_text(IN_BODY)
    out = run_cli("run", str(prog), "--workers", "1")
    assert _result(out)[0] == [3, 6, 9] and NOTE not in out.stderr, out.stderr
    value, job = _result(run_cli("run", str(prog), "--workers", "1"))
    assert value == [3, 6, 9] and "3 from the cache" in job
