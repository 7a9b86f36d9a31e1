"""review56 H1 (session 29, lead): values read by a name the code computes, reached
through an alias (``ev = eval``, ``g = globals``, imported from a helper, a closure, a
default, a partial), a name given as text (``getattr(sys, "modules")``,
``operator.attrgetter("__globals__")``), ``importlib.__import__``, ``pydoc.locate``,
``pkgutil.resolve_name``: 16 of 19 such tasks were wrong cache hits after an edit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import run_cli

PROG = 'import json, os, sys, builtins, importlib, operator, functools\nfrom qshpc import distribute_task, get, save_result\nimport h56, cfg56\nfrom h56 import plain, GL, EV, MODS\nSCALE = int(open("scale.txt").read())\ng = globals\nev = eval\nfrom importlib import __import__ as imp2\nM = sys.modules\n\n@distribute_task()\ndef t_alias_globals(x):  return g()["SCALE"] * x\n@distribute_task()\ndef t_alias_eval(x):  return ev("cfg56.V") * x\n@distribute_task()\ndef t_helper_GL(x):  return GL()["SCALE"] * x          # h56\'s globals via alias imported\n@distribute_task()\ndef t_helper_EV(x):  return EV("cfg56.V") * x\n@distribute_task()\ndef t_getattr_globals(x):  return getattr(plain, "__glo" + "bals__")["K"] * x\n@distribute_task()\ndef t_getattr_sys(x):  return getattr(sys, "modules")["cfg56"].V * x\n@distribute_task()\ndef t_vars_sys(x):  return vars(sys)["modules"]["cfg56"].V * x\n@distribute_task()\ndef t_importlib_import(x):  return importlib.__import__("cfg56").V * x\n@distribute_task()\ndef t_imp2(x):  return imp2("cfg56").V * x\n@distribute_task()\ndef t_builtins_getattr(x):  return getattr(builtins, "ev" + "al")("cfg56.V") * x\n@distribute_task()\ndef t_dunder_builtins(x):  return __builtins__.globals()["SCALE"] * x if hasattr(__builtins__, "globals") else __builtins__["globals"]()["SCALE"] * x\n@distribute_task()\ndef t_attrgetter(x):  return operator.attrgetter("__globals__")(plain)["K"] * x\n@distribute_task()\ndef t_M(x):  return M["cfg56"].V * x\n@distribute_task()\ndef t_MODS(x):  return MODS["cfg56"].V * x\n@distribute_task()\ndef t_helper_named(x):  return h56.read_named("K") * x\n@distribute_task()\ndef t_partial_eval(x):  return functools.partial(ev, "cfg56.V")() * x\nimport pydoc, pkgutil\n@distribute_task()\ndef t_pydoc(x):  return pydoc.locate("cfg56.V") * x\n@distribute_task()\ndef t_pkgutil(x):  return pkgutil.resolve_name("cfg56:V") * x\n@distribute_task()\ndef t_builtins_dict(x):  return builtins.__dict__["ev"+"al"]("cfg56.V") * x\n\ntasks = [v for k, v in list(globals().items()) if k.startswith("t_")]\nnames = [k for k in list(globals()) if k.startswith("t_")]\nout = {n: get(t(1)) for n, t in zip(names, tasks)}\nsave_result(out)\njson.dump(out, open(os.environ["OUT"], "w"))\n'

GEN = 'import sys\nk = int(sys.argv[1])\nopen("h56.py","w").write(f\'\'\'\nimport sys, builtins\nK = {k}\nMODS = sys.modules\ndef plain():\n    return 0\nGL = globals\nEV = eval\ndef read_named(name):\n    return globals()[name]\n\'\'\')\nopen("cfg56.py","w").write(f"V = {k}\\n")\n'


def _run(tmp_path: Path, k: int) -> tuple[dict[str, int], str]:
    subprocess.run([sys.executable, "gen.py", str(k)], cwd=tmp_path, check=True)
    (tmp_path / "scale.txt").write_text(f"{k}\n")
    out = run_cli(
        "run", "prog.py", "--cache", "--cache-dir", str(tmp_path / "c"), "--workers", "0",
        cwd=tmp_path, env={"OUT": str(tmp_path / "out.json"), "PYTHONPATH": str(tmp_path)},
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads((tmp_path / "out.json").read_text()), out.stdout + out.stderr


def test_values_read_by_computed_names_through_aliases_are_never_stale_hits(
    qshpc_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "prog.py").write_text(PROG)
    (tmp_path / "gen.py").write_text(GEN)
    _run(tmp_path, 1)
    _run(tmp_path, 1)
    fresh, text = _run(tmp_path, 5)
    assert set(fresh.values()) == {5}, fresh
    assert "from the cache" not in text, text
    assert "are not cached" in text


def test_sys_beside_another_objects_modules_is_cached() -> None:
    """review56 M7: `print(..., file=sys.stderr)` beside PyTorch's `model.modules()` left
    the task uncached ("through sys.modules"); `sys.modules` itself still is not."""
    from qshpc.cache.keyreads import computed_reads

    def torchy(model: Any) -> int:
        print("n", file=sys.stderr)
        return len(list(model.modules()))

    def direct(name: str) -> Any:
        return sys.modules[name].V

    def imported(name: str) -> Any:
        from sys import modules

        return modules[name].V

    assert computed_reads(torchy.__code__) == (False, None)
    assert computed_reads(direct.__code__)[1] == "sys.modules"
    assert computed_reads(imported.__code__)[1] == "sys.modules"


CLASS_MOD = (
    "import sys, types\n_T = {k}\nclass _M(types.ModuleType):\n    @property\n"
    "    def X(self):\n        return _T * 10\nsys.modules[__name__].__class__ = _M\n"
)
STANDIN_MOD = (
    "import sys\n_T = {k}\nclass _M:\n    @property\n    def X(self):\n"
    "        return _T * 10\nsys.modules[__name__] = _M()\n"
)
USES = """\
from qshpc import distribute_task, get
import hclass, hstandin
@distribute_task()
def a(x):
    return hclass.X * x
@distribute_task()
def b(x):
    return hstandin.X * x
print("R", get(a(1)), get(b(1)))
"""


def test_a_module_whose_attributes_come_from_its_class_is_keyed(
    qshpc_home: Path, tmp_path: Path
) -> None:
    """review56 H3: a module whose class has a property (`__class__ = M`), and an object put
    in a module's place in sys.modules (taken for a library's: no __file__), gave the old
    result from the cache after `_T` was edited."""
    (tmp_path / "uses.py").write_text(USES)

    def run(k: int) -> str:
        (tmp_path / "hclass.py").write_text(CLASS_MOD.format(k=k))
        (tmp_path / "hstandin.py").write_text(STANDIN_MOD.format(k=k))
        out = run_cli(
            "run", "uses.py", "--cache", "--cache-dir", str(tmp_path / "c"), "--workers", "0",
            cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)},
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        return out.stdout

    assert "R 10 10" in run(1)
    assert "2 from the cache" in run(1)
    again = run(6)
    assert "R 60 60" in again and "from the cache" not in again, again
