"""A cache hit must be the result a run without the cache gives: never a stale one.

Found by review (issue 18): in a run where calls execute in the program's own
process, a key taken once per function missed a global rebound between calls,
and a result the program changed in place after ``get`` could be stored
changed. The keys also left out the object behind a bound method of a C type,
the version of a package without ``__version__``; and a hit changed a
``numpy.float64`` into a ``float``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from qshpc.cache import keyenv, keys
from qshpc.cache.body import encode
from qshpc.cache.jobcache import CacheConfig, JobCache
from qshpc.store.encoding_blob import decode_blob
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(120)

REBOUND = """\
import numpy as np
from qshpc import distribute_task, get

SCALE = 1

@distribute_task(cache=True)
def f(x):
    return [x * SCALE]

@distribute_task(cache=True)
def ones(n):
    return np.ones(n)

CONF = {"s": 1}

@distribute_task(cache=True)
def g(x):
    return x * CONF["s"]

a = get(f(3))
SCALE = 10          # rebound between two calls of f: the second call must see it
b = get(f(3))
a.append("changed in place after get")
arr = get(ones(2))
arr /= 2
c = get(g(3))
CONF["s"] = 2       # changed in place between two calls of g: seen too
d = get(g(3))
print("RESULT", a[0], b[0], len(a), arr.tolist(), c, d)
"""


def _run_plain(prog: Path, home: Path) -> str:
    env = {"PYTHONPATH": str(ROOT), "QSHPC_HOME": str(home), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, str(prog)], capture_output=True, text=True, env=env,
                         timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))


def test_plain_python_rerun_sees_rebound_globals_and_unchanged_results(tmp_path: Path) -> None:
    prog = tmp_path / "rebound.py"
    prog.write_text(REBOUND)
    cold = _run_plain(prog, tmp_path / "home")
    warm = _run_plain(prog, tmp_path / "home")  # every call a hit now
    assert cold == warm == "RESULT 3 30 2 [0.5, 0.5] 3 6"


def test_a_rebound_global_changes_the_digest_of_a_live_function(tmp_path: Path) -> None:
    ns: dict = {}
    exec("K = 1\ndef h():\n    return K\ndef f(x):\n    return x + h()\n", ns)
    cache = JobCache(CacheConfig(True, str(tmp_path / "c")), None)
    f = ns["f"]
    d1 = cache.digest(f, live=True)
    assert cache.digest(f, live=True) == d1
    ns["K"] = 2  # read by a helper, not by f itself
    d2 = cache.digest(f, live=True)
    assert d2 != d1
    assert cache.digest(f) == d2  # shipped functions keep the digest of their first call
    ns["K"] = 1
    assert cache.digest(f) == d2
    assert cache.digest(f, live=True) == d1


def test_bindings_unchanged_covers_cells_defaults_and_class_attributes() -> None:
    def outer() -> types.FunctionType:
        n = 1

        def g(x=2):  # type: ignore[no-untyped-def]
            return x + n + Box.k

        def rebind() -> None:
            nonlocal n
            n = 5

        g.rebind = rebind  # type: ignore[attr-defined]
        return g  # type: ignore[return-value]

    class Box:
        k = 3

    g = outer()
    for change in (
        lambda: g.rebind(),  # type: ignore[attr-defined]
        lambda: setattr(g, "__defaults__", (7,)),
        lambda: setattr(Box, "k", 4),
    ):
        deps: keys.Deps = []
        keys.function_digest(g, deps)
        assert keys.bindings_unchanged(deps)
        change()
        assert not keys.bindings_unchanged(deps)


def test_a_value_that_can_change_in_place_is_walked_again() -> None:
    conf = {"s": 1}
    table = np.zeros(3)

    def f(x=(1, "a"), *, y=2):  # type: ignore[no-untyped-def]
        return x, y, conf["s"]

    def t() -> float:
        return float(table[0])

    deps: keys.Deps = []
    d1 = keys.function_digest(f, deps)
    assert not keys.bindings_unchanged(deps)  # conf: a dict, read through a cell
    conf["s"] = 2
    assert keys.function_digest(f) != d1
    deps = []
    keys.function_digest(t, deps)
    assert not keys.bindings_unchanged(deps)  # an array
    frozen: keys.Deps = []
    keys.function_digest(lambda x=(1, 2.5, None), *, y="s": (x, y, len, np.pi), frozen)
    assert keys.bindings_unchanged(frozen)  # constants, builtins, modules: the digest stays


def test_a_live_function_too_costly_to_walk_at_each_call_is_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from qshpc.cache import jobcache

    monkeypatch.setattr(jobcache, "LIVE_WALK_S", 0.0)  # every walk "too costly"
    table = {"a": 1}

    def reads_a_dict(x: int) -> int:
        return x + table["a"]

    def plain(x: int) -> int:
        return x + 1

    cache = JobCache(CacheConfig(True, str(tmp_path / "c")), None)
    first = cache.digest(reads_a_dict, live=True)  # a first walk: one-time costs, not judged
    assert first is not None
    assert cache.digest(reads_a_dict, live=True) == first  # walked again: "too costly"
    assert cache.digest(reads_a_dict, live=True) is None  # from now on: uncached
    assert cache.digest(reads_a_dict) == first  # shipped once: keyed once
    assert cache.digest(plain, live=True) is not None  # nothing changeable in place
    assert cache.digest(plain, live=True) is not None
    err = capsys.readouterr().err
    assert err.count("made in this process are not cached") == 1 and "reads_a_dict" in err


def test_bound_builtin_methods_are_keyed_with_their_object() -> None:
    a, b = {"x": 1}, {"x": 2}
    assert keys.value_digest(a.get) != keys.value_digest(b.get)
    r1, r2 = np.random.default_rng(1), np.random.default_rng(2)
    assert keys.value_digest(r1.random) != keys.value_digest(r2.random)
    import math

    assert keys.value_digest(math.sqrt) == keys.value_digest(math.sqrt)


def test_object_references_are_never_keyed_by_their_id() -> None:
    from qshpc.program.refs import ObjectRef

    with pytest.raises(keys.UncacheableError):
        keys.value_digest([[ObjectRef(1)]])


def test_a_package_without_version_attribute_is_keyed_by_its_distribution() -> None:
    import rich  # installed, no __version__

    assert not getattr(rich, "__version__", None)
    assert keyenv.version_of("rich").startswith("rich==")


@pytest.mark.parametrize(
    "value",
    [
        np.float64(0.25),
        [np.float64(1.5)],
        (np.float64(1.0), 2.0),
        {"e": np.float64(3.0)},
        bytearray(b"ab"),
    ],
    ids=["float64", "in-list", "in-tuple", "in-dict", "bytearray"],
)
def test_a_hit_keeps_numpy_scalars_and_bytearrays(value: object) -> None:
    enc = encode(value)
    back = decode_blob(enc.body, allow_pickle=True, source="entry")
    assert repr(back) == repr(value)
    assert type(back) is type(value)
    # these bytes are what the job store keeps for the task (a numpy.float64 too since
    # session 24; a bytearray is pickled: the store gives bytes back)
    assert enc.plain == (type(value) is not bytearray)


def test_a_hit_with_numpy_scalars_is_recorded_as_the_job_store_would(tmp_path: Path) -> None:
    """The entry keeps numpy.float64, and so does the hit's job-store record, like the
    record of a computed call (the entry's bytes reused; mend24: the store made them
    plain floats before session 24, and the entry's bytes were not reused)."""
    from qiskit.result import QuasiDistribution

    from qshpc.cache.store import CacheDir
    from qshpc.store.encoding_blob import encode_blob

    cache = CacheDir(tmp_path / "c")
    key = "ab" * 32
    qd = QuasiDistribution({0: np.float64(0.25), 3: np.float64(0.75)}, shots=10)
    for k, value in ((key, {"e": np.float64(0.5)}), (key[::-1], qd), ("cd" * 32, {"e": 0.5})):
        cache.put_value(k, value, "f")
        hit = cache.get(k)
        assert hit is not None and type(hit.value) is type(value) and hit.value == value
        assert hit.blob == encode_blob(value)
    assert type(cache.get(key).value["e"]) is np.float64  # type: ignore[union-attr]
    assert type(cache.get(key[::-1]).value[3]) is np.float64  # type: ignore[union-attr]


def test_qshpc_run_from_a_checkout_is_keyed_by_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit to qshpc's own code without a new version changes the keys (a
    checkout: pip install -e, PYTHONPATH); an installed qshpc is keyed by its version."""
    assert keyenv._source_tree()  # the tests run qshpc from its checkout
    pkg = tmp_path / "src" / "qshpc"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "m.py").write_text("X = 1\n")
    first = keyenv._source_tree(str(pkg))
    assert first and keyenv._source_tree(str(pkg)) == first
    (pkg / "sub" / "m.py").write_text("X = 22\n")
    assert keyenv._source_tree(str(pkg)) != first
    monkeypatch.setattr(keyenv, "_library_dirs", lambda: (str(tmp_path / "src") + os.sep,))
    assert keyenv._source_tree(str(pkg)) == ""
