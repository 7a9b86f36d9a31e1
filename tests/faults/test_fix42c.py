"""Session 26, fix42c: resume identity of a call's arguments by value (review42 F1, F2, F3).

Real runs of ``qshpc run`` (``--workers 0``, ``--workers 1``, ``mpiexec -n 3``), real files.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAIL, FAIL_AT_END, job_dir_of, run_cli

pytestmark = pytest.mark.mpi

HELPERS = """
class Model:
    def __init__(self, x):
        self.x = x

    def energy(self):
        return self.x * 2


def g(x):
    return x * 2
"""

#: Calls whose arguments name code of helpers.py (a method of an argument's class, a helper
#: function, a partial of it, an object placed with put), and calls of unchanged Qiskit and
#: Python values whose pickle differs per process (a noise model, sets, a circuit with a
#: realtime variable and a stretch). Each call says it ran.
PROGRAM = (
    """
import functools
from qiskit import QuantumCircuit
from qiskit_aer.noise import NoiseModel, depolarizing_error
from qshpc import distribute_task, get, put, save_result
import helpers

@distribute_task()
def use(tag, obj):
    print("RAN", tag, flush=True)
    if tag in ("model", "put"):
        return obj.energy()
    if tag in ("fn", "partial"):
        return obj(5)
    if tag == "var":
        return obj.num_vars + obj.num_stretches
    return len(obj) if isinstance(obj, (set, frozenset)) else tag

noise = NoiseModel()
noise.add_all_qubit_quantum_error(depolarizing_error(0.01, 1), ["h"])
flagged = QuantumCircuit(1, 1)
flagged.add_var("flag", True)
flagged.add_stretch("s")
flagged.h(0)
R = put(helpers.Model(7))
calls = {"model": helpers.Model(1), "fn": helpers.g, "partial": functools.partial(helpers.g),
         "noise": noise, "set": {"alpha", "beta", "gamma", "delta", "eps", "zeta"},
         "frozenset": frozenset(["q1", "q2", "q3", "q4"]), "var": flagged, "plain": (1, "a")}
refs = [use(k, v) for k, v in calls.items()] + [use("put", R)]
save_result(dict(zip([*calls, "put"], get(refs))))
"""
    + FAIL_AT_END
)

EDITED = {"model": 3, "fn": 15, "partial": 15, "put": 21}
UNCHANGED = {"noise", "set", "frozenset", "var", "plain"}


def _ran(out: subprocess.CompletedProcess[str]) -> set[str]:
    text = out.stdout + out.stderr
    return {line.split()[1] for line in text.splitlines() if line.startswith("RAN ")}


def _result(job: Path) -> dict[str, object]:
    from qshpc.store import JobReader

    with JobReader.open(job) as r:
        value = r.result()
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize("launch", ["workers0", "workers1", "mpiexec3"])
def test_a_resume_runs_again_the_calls_whose_argument_code_changed(
    qshpc_home: Path, tmp_path: Path, launch: str
) -> None:
    """review42 F1: arguments counted by their pickle, which names a class or function by
    reference: after `* 2` became `* 3` in helpers.py a resume reused [2, 10, 10, 14] (a
    fresh run gives [3, 15, 15, 21]). F3 and F2: an unchanged noise model, set, frozenset and
    circuit with a realtime variable ran again on every resume; now reused."""
    (tmp_path / "helpers.py").write_text(HELPERS)
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    ranks = 3 if launch == "mpiexec3" else None
    opts = [] if ranks else ["--workers", launch[-1]]
    first = run_cli("run", str(prog), *opts, ranks=ranks, cwd=tmp_path, env=FAIL, timeout=240)
    assert first.returncode == 1, first.stdout[-2000:] + first.stderr[-2000:]
    job = job_dir_of(qshpc_home)
    assert _result(job) == {**{t: v * 2 // 3 for t, v in EDITED.items()}, "noise": "noise",
                            "set": 6, "frozenset": 4, "var": 2, "plain": "plain"}  # fmt: skip
    (tmp_path / "helpers.py").write_text(HELPERS.replace("* 2", "* 3"))
    again = run_cli(
        "run", str(prog), "--resume", str(job), *opts, ranks=ranks, cwd=tmp_path, timeout=240
    )
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    result = _result(job)
    assert {t: result[t] for t in EDITED} == EDITED
    assert _ran(again) == set(EDITED), again.stdout[-2000:]
    assert "SUCCEEDED (4 tasks run, 5 reused from the store)" in again.stdout + again.stderr


def _digest_in_new_process(source: str, cwd: Path) -> str:
    code = f"from qshpc.cache.keys import value_digest\n{source}\nprint(value_digest(c).hex())"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd
    )
    return out.stdout.strip()


def test_a_circuit_with_a_realtime_variable_keeps_its_key_in_a_new_process(
    tmp_path: Path,
) -> None:
    """review42 F2: a Var's (and a Stretch's) UUID is new in each process and QPY writes it:
    such a circuit never hit the cache and ran again on every resume. Distinct circuits stay
    distinct (another name, initial value, type, or no stretch)."""
    build = (
        "from qiskit import QuantumCircuit\nc = QuantumCircuit(1, 1)\n"
        "c.add_var({name!r}, {value!r})\n{stretch}c.h(0)"
    )

    def source(name: str = "flag", value: object = True, stretch: bool = True) -> str:
        return build.format(name=name, value=value, stretch='c.add_stretch("s")\n' * stretch)

    first = _digest_in_new_process(source(), tmp_path)
    assert _digest_in_new_process(source(), tmp_path) == first
    others = [source("other"), source(value=False), source(value=3), source(stretch=False)]
    assert len({first, *(_digest_in_new_process(s, tmp_path) for s in others)}) == 5


OWN = (
    """
from qshpc import distribute_task, get, save_result
from pkg import tool
import helpers

@distribute_task()
def t(x):
    return helpers.VALUE + tool.VALUE + x

save_result(get([t(i) for i in range(2)]))
"""
    + FAIL_AT_END
)


@pytest.mark.parametrize("module", ["helpers.py", "pkg/tool.py"])
def test_a_resume_refuses_a_module_of_the_program_folder_that_others_can_write(
    qshpc_home: Path, tmp_path: Path, module: str
) -> None:
    """review42 F4: --resume checked the program file's owner and writers, not the modules
    it imports from its own folder: a `helpers.py` every user could write, rewritten after
    the job was made, ran as the resumer. Now refused as the program would be (exit 2, one
    line); unchanged since the job was made, it resumes (the first run ran it)."""
    prog = tmp_path / "prog.py"
    prog.write_text(OWN)
    (tmp_path / "helpers.py").write_text("VALUE = 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "tool.py").write_text("VALUE = 10\n")
    (tmp_path / module).chmod(0o666)
    first = run_cli("run", str(prog), "--workers", "1", cwd=tmp_path, env=FAIL)
    assert first.returncode == 1, first.stderr[-2000:]
    job = job_dir_of(qshpc_home)
    same = run_cli("run", str(prog), "--resume", str(job), "--workers", "1", cwd=tmp_path,
                   env=FAIL)  # fmt: skip
    assert same.returncode == 1 and "refusing" not in same.stderr, same.stderr[-2000:]
    (tmp_path / module).write_text("VALUE = 100\n")  # (as another user could: mode 0666)
    out = run_cli("run", str(prog), "--resume", str(job), "--workers", "1", cwd=tmp_path)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    said = (
        f"imports {tmp_path / module} from its own folder, and every user can write it (its "
        "mode is 0666), and it changed after the job was made"
    )
    assert said in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    (tmp_path / module).chmod(0o644)
    fixed = run_cli("run", str(prog), "--resume", str(job), "--workers", "1", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
