"""Keys of a pass manager that has run, of one made for a target, and of an unbuilt
blueprint circuit: one key in every process (review43 M1, M2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qshpc.cache import key
from qshpc.cache.keys import value_digest

ROOT = Path(__file__).parents[2]

PROG = """\
import warnings
warnings.filterwarnings("ignore")
import qshpc.cache as C
from qiskit.circuit.library import QAOAAnsatz, efficient_su2
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager

def f(*a):
    return a

be = GenericBackendV2(5, seed=3)
pm = generate_preset_pass_manager(optimization_level=1, backend=be, seed_transpiler=1)
fresh = C.key(f, (pm,))
qc = efficient_su2(4, reps=1)
qc.measure_all()
pm.run(qc)
on_target = generate_preset_pass_manager(optimization_level=1, target=be.target, seed_transpiler=1)
qaoa = QAOAAnsatz(SparsePauliOp(["ZZI", "IZZ"]), reps=2)
print(C.key(f, (pm,)), C.key(f, (on_target,)), C.key(f, (qaoa,)), C.key(f, (qaoa,)), fresh)
"""


def _keys(tmp_path: Path, seed: str) -> list[str]:
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED=seed)
    out = subprocess.run(
        [sys.executable, str(prog)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_pass_manager_run_target_and_blueprint_keys_agree_across_processes(
    tmp_path: Path,
) -> None:
    one, two = _keys(tmp_path, "1"), _keys(tmp_path, "2")
    assert one == two  # a run pass manager, one made for a target, a QAOAAnsatz
    assert one[2] == one[3]  # the blueprint keyed before and after it is built: one key
    assert one[0] == one[4]  # a pass manager that has run: the key of a fresh one


def test_dict_views_are_keyed_as_what_they_are() -> None:
    a, b = {"x": 1, "y": 2}, {"y": 2, "x": 1}
    assert value_digest(a.keys()) == value_digest(b.keys())  # a set
    assert value_digest(a.items()) == value_digest(b.items())
    assert value_digest(a.values()) != value_digest(b.values())  # a sequence
    assert value_digest(a.keys()) != value_digest({"x": 1, "z": 2}.keys())


def test_a_pass_alone_keeps_its_property_set_in_the_key() -> None:
    pytest.importorskip("qiskit")
    from qiskit.transpiler.passes import Size

    def f(p: object) -> object:
        return p

    fresh, used = Size(), Size()
    used.property_set["size"] = 3  # a pass called alone starts from its last property set
    assert key(f, (fresh,)) != key(f, (used,))


# -- L3: the CLI and the API say what matched nothing ------------------------------------


def test_cache_cli_says_what_matched_nothing(qshpc_home: Path, tmp_path: Path) -> None:
    from qshpc.cache.store import CacheDir
    from qshpc.errors import UserError
    from tests.conftest import run_cli

    cache = CacheDir(qshpc_home / "cache")
    for i in range(3):
        cache.put_value(f"{i:02x}" + "0" * 62, i, "fn", "job-a", str(i))
    out = run_cli("cache", "ls", "-n", "0")
    assert out.returncode == 0 and "3 entries in" in out.stdout and "none listed" in out.stdout
    for opt, value in (("-f", "NOSUCHFUNC"), ("-j", "NOSUCHJOB")):
        out = run_cli("cache", "rm", opt, value)
        assert out.returncode == 2, out.stdout + out.stderr
        assert value in out.stderr and "no entry of yours matches" in out.stderr
        assert "Traceback" not in out.stderr
    out = run_cli("cache", "rm", "-f", "fn", "--dry-run")
    assert out.returncode == 0 and "would remove 3 entries" in out.stdout
    assert len(list(cache.scan())) == 3

    import qshpc.cache as api

    def f(x: int) -> int:
        return x

    with pytest.raises(UserError, match="/etc/passwd is not a folder"):
        api.lookup(f, (1,), cache_dir="/etc/passwd")
    assert api.lookup(f, (1,), cache_dir=str(tmp_path / "none")) is None


def test_run_refuses_cache_and_no_cache(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    prog = tmp_path / "p.py"
    prog.write_text("print('RAN')\n")
    for extra in (["--cache", "--no-cache"], ["--no-cache", f"--cache-dir={tmp_path}/c"]):
        out = run_cli("run", str(prog), *extra)
        assert out.returncode == 2 and "RAN" not in out.stdout, out.stdout + out.stderr
        assert "--no-cache" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("run", str(prog), "--workers", "0", "--", "--cache", "--no-cache")
    assert out.returncode == 0 and "RAN" in out.stdout  # the program's own arguments
