"""Session 26, lead: the V1 Estimator's options are checked (a noise model was ignored)."""

from __future__ import annotations

from pathlib import Path

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


def test_aers_own_options_run_as_before_and_a_noise_model_set_later_is_refused() -> None:
    """review45 F2, F6: the check refused Aer options that ran (ignored: they change no
    exact value), and a noise model put in ``options`` after __init__ slipped past it."""
    est = Estimator(
        options={
            "max_parallel_threads": 1,
            "max_parallel_experiments": 1,
            "blocking_enable": False,
            "fusion_enable": True,
            "statevector_parallel_threshold": 14,
            "memory": False,
            "seed_simulator": 3,
            "backend_options": {"coupling_map": None, "max_parallel_shots": 1},
        }
    )
    assert est.options["max_parallel_threads"] == 1
    assert est.run(_plus(), SparsePauliOp("X"), seed_simulator=4).result().values.tolist() == [1.0]
    est.options["noise_model"] = object()
    with pytest.raises(UserError, match=r"Estimator\.run.*noise_model"):
        est.run(_plus(), SparsePauliOp("X"))


PARTIAL = """
import threading
from qshpc.store.encoding_blob import encode_blob
class Box:
    def __init__(self):
        self.x = 1
errors = []
def imp():
    import numpy  # noqa: F401
t = threading.Thread(target=imp)
t.start()
while t.is_alive() and not errors:
    try:
        encode_blob({"b": Box(), "s": {1, 2}})
    except Exception as exc:
        errors.append(repr(exc))
t.join()
print(errors)
"""


def test_a_value_encoded_while_another_thread_imports_numpy() -> None:
    """fixG/fix42e's flake of test_dispatcher: the encoder took numpy from sys.modules while
    another thread was still importing it (``partially initialized module 'numpy' has no
    attribute 'float64'``), and a task's result failed to store."""
    import subprocess
    import sys

    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", PARTIAL], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0 and out.stdout.strip() == "[]", (out.stdout, out.stderr)


SHAPES = """
class Shape:
    @staticmethod
    def make(kind):
        return Square(kind{plus})

    def area(self):
        return 0


class Square(Shape):
    def __init__(self, s):
        self.s = s

    def area(self):
        return self.s * self.s
"""

ORDER = """
import sys
sys.path.insert(0, sys.argv[2])
import shapes
import qshpc.cache as C
def f(x):
    return x
if sys.argv[1] == "shape":
    C.key(f, (shapes.Shape(),))
print(C.key(f, (shapes.Square(2),)), C.key(f, (shapes.Shape(),)))
"""


def test_classes_that_refer_to_each_other_are_keyed_the_same_in_any_order(tmp_path: Path) -> None:
    """review48 F1: the per-process class digest (fixH) walked two classes that refer to each
    other (a base whose factory builds a subclass) until a RecursionError: never cached,
    always run again on resume. Keys are now the same whichever class a process meets first,
    and hold both classes' code."""
    import os
    import subprocess
    import sys

    (tmp_path / "order.py").write_text(ORDER)

    def keys(order: str, plus: str = "") -> list[str]:
        (tmp_path / "shapes.py").write_text(SHAPES.format(plus=plus))
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
        out = subprocess.run(
            [sys.executable, str(tmp_path / "order.py"), order, str(tmp_path)],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    first = keys("shape")
    assert len(first) == 2 and first == keys("square")
    changed = keys("square", plus=" + 1")  # the other class's code: both keys change
    assert changed[0] != first[0] and changed[1] != first[1]


def test_a_module_held_as_a_value_is_keyed_by_its_attributes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review48 F3: a module of the user's held as a class attribute (``cfg = cfgmod``, read
    as ``self.cfg.SHOTS``) or passed as an argument was keyed by its name alone: an edited
    ``SHOTS``, in the file or set by the program, gave the old result from the cache."""
    import importlib

    import qshpc.cache as cache

    (tmp_path / "cfgmod26.py").write_text("SHOTS = 5\n")
    (tmp_path / "holder26.py").write_text(
        "import cfgmod26\n\n\nclass Holder:\n    cfg = cfgmod26\n\n"
        "    def f(self):\n        return self.cfg.SHOTS\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    cfgmod = importlib.import_module("cfgmod26")
    holder = importlib.import_module("holder26")

    def t(obj: object) -> object:
        return obj

    first = cache.key(t, (holder.Holder(),))
    as_argument = cache.key(t, (cfgmod,))
    assert cache.key(t, (holder.Holder(),)) == first  # unchanged: the same key
    monkeypatch.setattr(cfgmod, "SHOTS", 100)
    assert cache.key(t, (holder.Holder(),)) != first
    assert cache.key(t, (cfgmod,)) != as_argument
