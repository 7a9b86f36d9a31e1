"""Session 8's hunt on the result cache: calls whose result differs must not share a key.

Each test here failed before its fix: a rerun got the result of code or
arguments that were not the ones it ran with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qshpc.cache import key
from tests.conftest import ROOT, run_cli

PROGRAMS = {
    # imported in the task: the workers import it, rank 0 never does
    "helper8": """\
from qshpc import distribute_task, get, save_result


@distribute_task(cache=True)
def scaled(x):
    import helper8

    return helper8.scale(x)


save_result(get([scaled(x) for x in range(3)]))
""",
    # the program's own module with a standard library's name, imported as usual
    "statistics": """\
import statistics

from qshpc import distribute_task, get, save_result


@distribute_task(cache=True)
def scaled(x):
    return statistics.scale(x)


save_result(get([scaled(x) for x in range(3)]))
""",
}

HELPER = """\
FACTOR = {factor}


def scale(x):
    return x * FACTOR
"""


def _run_job(folder: Path, *args: str) -> tuple[object, str]:
    out = run_cli("run", str(folder / "prog.py"), "--workers", "1", "--cache", *args,
                  cwd=folder, env={"PYTHONPATH": str(ROOT)})  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    job = [ln.split()[2] for ln in out.stdout.splitlines() if ln.startswith("qshpc: job ")][-1]
    res = run_cli("result", job, "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout), out.stdout


@pytest.mark.mpi
@pytest.mark.timeout(300)
@pytest.mark.parametrize("helper", ["helper8", "statistics"])
def test_a_helper_module_imported_inside_the_task_is_in_the_key(
    qshpc_home: Path, tmp_path: Path, helper: str
) -> None:
    # ``statistics``: a module of the program's own that has a standard library's
    # name was keyed by that name (and Python's version) alone.
    (tmp_path / "prog.py").write_text(PROGRAMS[helper])
    (tmp_path / f"{helper}.py").write_text(HELPER.format(factor=2))
    first, _ = _run_job(tmp_path)
    assert first == [0, 2, 4]
    (tmp_path / f"{helper}.py").write_text(HELPER.format(factor=3))
    second, stdout = _run_job(tmp_path)
    assert second == [0, 3, 6], "the cache returned the results of the old helper"
    assert "from the cache" not in stdout
    third, stdout = _run_job(tmp_path)  # unchanged since: all hits
    assert third == [0, 3, 6] and "3 from the cache" in stdout, stdout


KEYS_OF_LOCAL_IMPORTS = """\
import json
import sys

sys.path.insert(0, sys.argv[1])
{preload}
from qshpc.cache import key


def plain(x):
    import helperpkg.inner

    return helperpkg.inner.scale(x)


def from_import(x):
    from helperpkg.inner import scale

    return scale(x)


def nested(x):
    def inner(y):
        from helperpkg import inner as mod

        return mod.scale(y)

    return inner(x)


def factory():
    import helperpkg.inner as mod  # a closure cell of the task holds the module

    def closure(x):
        return mod.scale(x)

    return closure


closure = factory()
print(json.dumps({{f.__name__: key(f, (1,)) for f in (plain, from_import, nested, closure)}}))
"""


def _local_import_keys(folder: Path, factor: int, preload: bool) -> dict[str, str]:
    pkg = folder / "helperpkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    # inner.py takes FACTOR from a module it imports itself (relative import)
    (pkg / "inner.py").write_text("from .const import FACTOR\n\n\ndef scale(x):\n"
                                  "    return x * FACTOR\n")  # fmt: skip
    (pkg / "const.py").write_text(f"FACTOR = {factor}\n")
    prog = folder / "keys.py"
    prog.write_text(
        KEYS_OF_LOCAL_IMPORTS.format(preload="import helperpkg.inner" if preload else "")
    )
    out = subprocess.run(
        [sys.executable, str(prog), str(folder)],
        capture_output=True, text=True, timeout=120, cwd="/",
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    keys: dict[str, str] = json.loads(out.stdout)
    return keys


@pytest.mark.parametrize("preload", [False, True], ids=["not-imported", "imported"])
def test_keys_cover_modules_imported_in_the_function_body(tmp_path: Path, preload: bool) -> None:
    # Not imported by the program (rank 0 of an MPI job): keyed by the module's
    # source and the sources it imports; imported: walked as a global module is.
    base = _local_import_keys(tmp_path, 2, preload)
    again = _local_import_keys(tmp_path, 2, preload)
    assert again == base  # stable from one process to the next
    changed = _local_import_keys(tmp_path, 3, preload)
    assert all(changed[f] != base[f] for f in base), (base, changed)


def test_structured_numpy_scalars_are_keyed_by_their_fields() -> None:
    def f(x: object) -> object:
        return x

    raw = np.array([(1, 2)], dtype=[("a", "<i4"), ("b", "<i4")])
    swapped = raw.view([("b", "<i4"), ("a", "<i4")])  # the same bytes, the fields named apart
    assert raw[0]["a"] != swapped[0]["a"]
    assert key(f, (raw[0],)) != key(f, (swapped[0],))
    padded = np.zeros(1, dtype={"names": ["a", "b"], "formats": ["u1", "u1"],
                                "offsets": [0, 2], "itemsize": 4})  # fmt: skip
    packed = np.zeros(1, dtype={"names": ["a", "b"], "formats": ["u1", "u1"],
                                "offsets": [0, 1], "itemsize": 4})  # fmt: skip
    assert key(f, (padded[0],)) != key(f, (packed[0],))
    assert key(f, (raw[0],)) == key(f, (raw.copy()[0],))


def test_bytes_bytearray_and_memoryviews_are_keyed_apart() -> None:
    def f(x: object) -> object:
        return x + b"!" if not isinstance(x, memoryview) else x.tolist()

    assert type(f(b"a")) is not type(f(bytearray(b"a")))
    assert key(f, (b"a",)) != key(f, (bytearray(b"a"),))
    as_float = memoryview(b"\x00\x00\x80\x3f").cast("f")
    as_int = memoryview(b"\x00\x00\x80\x3f").cast("i")
    assert f(as_float) != f(as_int)
    assert key(f, (as_float,)) != key(f, (as_int,))
    assert key(f, (b"a",)) == key(f, (b"a",))


def test_cache_rm_all_with_a_filter_is_refused_not_everything_removed(qshpc_home: Path) -> None:
    from qshpc.cache import CacheDir

    def sq(x: int) -> int:
        return x * x

    cache = CacheDir()
    k = key(sq, (3,))
    cache.put_value(k, 9, "sq", job="j1", task="0")
    for extra in (["--function", "other"], ["--job", "j2"], [k[:8]]):
        out = run_cli("cache", "rm", "--all", *extra)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "--all" in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert cache.get(k) is not None, f"rm --all {extra} removed an entry it did not name"
    out = run_cli("cache", "rm", "--all")
    assert out.returncode == 0 and cache.get(k) is None


RETURNS_A_REFERENCE = """\
import sys

from qshpc import distribute_task, get, put


@distribute_task(cache=True)
def wrap(x):
    return {"ref": put([x])}  # an id of this run's objects


if sys.argv[1] == "2":
    other = put(["another object of run 2"])  # takes the id run 1 gave to [1]
print(get(get(wrap(1))["ref"]))
"""


def test_a_result_holding_an_object_reference_is_not_cached(
    tmp_path: Path, qshpc_home: Path
) -> None:
    prog = tmp_path / "ref.py"
    prog.write_text(RETURNS_A_REFERENCE)
    env = dict(os.environ, PYTHONPATH=str(ROOT), QSHPC_CACHE_DIR=str(tmp_path / "cache"))
    for run in ("1", "2"):
        out = subprocess.run([sys.executable, str(prog), run], capture_output=True, text=True,
                             timeout=120, env=env)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[1]", f"run {run} got another object: {out.stdout}"
    from qshpc.cache.body import encode
    from qshpc.errors import SerializationError
    from qshpc.program.refs import ObjectRef

    with pytest.raises(SerializationError, match="reference"):
        encode({"ref": ObjectRef(5)})
    assert encode({"n": 5}).form == "blob"


TARGET_ENV = """\
import os

from qshpc import distribute_task, get, save_result


@distribute_task(cache=True, target={{"env_vars": {{"H8_NOISE": "{noise}"}}}})
def noisy(x):
    return x + float(os.environ["H8_NOISE"])


save_result(get([noisy(x) for x in range(2)]))
"""


@pytest.mark.mpi
@pytest.mark.timeout(300)
def test_the_env_vars_a_task_target_sets_are_in_the_key(qshpc_home: Path, tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(TARGET_ENV.format(noise="0.5"))
    first, _ = _run_job(tmp_path)
    assert first == [0.5, 1.5]
    (tmp_path / "prog.py").write_text(TARGET_ENV.format(noise="0.25"))
    second, _ = _run_job(tmp_path)
    assert second == [0.25, 1.25], "the cache returned results of the old env_vars"
    from qshpc import distribute_task

    def f(x: int) -> int:
        return x

    a = distribute_task(target={"env_vars": {"A": "1"}})(f)
    b = distribute_task(target={"env_vars": {"A": "2"}})(f)
    plain = distribute_task()(f)
    assert len({key(a, (1,)), key(b, (1,)), key(plain, (1,))}) == 3
    assert key(plain, (1,)) == key(f, (1,))


class _Base:
    x = 1


class _Sub(_Base):
    pass


def test_a_live_key_sees_function_attributes_and_class_attributes_set_over_a_base(
    tmp_path: Path,
) -> None:
    # In the program's process (plain python, --workers 0) each call is keyed as
    # the function is at that call: these two were keyed as at the first call.
    from qshpc.cache.jobcache import CacheConfig, JobCache

    def helper(x: int) -> int:
        return x * helper.factor  # type: ignore[attr-defined, no-any-return]

    helper.factor = 2  # type: ignore[attr-defined]

    def f(x: int) -> int:
        return helper(x)

    def g(x: int) -> int:
        return _Sub.x * x

    jc = JobCache(CacheConfig(True, str(tmp_path / "cache")), None)
    for fn, change in (
        (f, lambda: setattr(helper, "factor", 3)),
        (g, lambda: setattr(_Sub, "x", 5)),
    ):
        before = fn(1)
        k1 = jc.key(fn, (1,), None, None, live=True)
        assert jc.key(fn, (1,), None, None, live=True) == k1
        change()
        assert fn(1) != before
        assert jc.key(fn, (1,), None, None, live=True) != k1, fn.__name__
    del _Sub.x


def test_get_entry_of_a_path_never_removes_a_file_and_takes_the_key_ls_shows(
    qshpc_home: Path,
) -> None:
    import qshpc.cache
    from qshpc.cache import CacheDir
    from qshpc.errors import UserError

    def sq(x: int) -> int:
        return x * x

    cache = CacheDir()
    k = key(sq, (4,))
    cache.put_value(k, 16, "sq", job="j1", task="0")
    victim = qshpc_home / "notes.txt"  # a file of the user's, beside the cache
    victim.write_text("precious")
    # <cache>/<uid>/<k[:2]>/<k>: ".." and "../notes.txt" climb out of the cache
    rel = os.path.relpath(victim, cache.mine / "..")
    assert cache.get(rel) is None  # the store's own read: not an entry...
    assert victim.exists(), "a lookup of a path removed a file outside the cache"  # ...kept
    with pytest.raises(UserError, match="not a cache key"):
        qshpc.cache.get_entry(rel)
    assert victim.read_text() == "precious"
    # `qshpc cache ls` shows 16 digits: they find the entry, as the whole key does
    hit = qshpc.cache.get_entry(k[:16])
    assert hit is not None and hit.value == 16
    assert qshpc.cache.get_entry(k.upper()) is not None
    assert qshpc.cache.get_entry("0000" if not k.startswith("0000") else "ffff") is None


def test_lookup_and_table_refuse_bad_input_with_a_clear_error(qshpc_home: Path) -> None:
    import qshpc.cache
    from qshpc.cache import CacheDir
    from qshpc.errors import UserError

    def sq(x: int) -> int:
        return x * x

    assert qshpc.cache.table() is not None and not (qshpc_home / "cache").exists()  # none made
    CacheDir().put_value(key(sq, (4,)), 16, "sq")
    bad: list[tuple[dict[str, object], str]] = [
        ({"args": 4}, "args must be a tuple"),  # was: TypeError 'int' object is not iterable
        ({"args": "4"}, "args must be a tuple"),  # was: keyed as ('4',), a silent miss
        ({"args": (4,), "kwargs": [("x", 4)]}, "kwargs must be a dict"),  # was: None
        ({"args": (4,), "seed": "7"}, "seed must be"),  # was: TypeError %d format
        ({"args": (4,), "seed": True}, "seed must be"),
    ]
    for kw, what in bad:
        with pytest.raises(UserError, match=what):
            qshpc.cache.lookup(sq, **kw)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="not a function"):
        qshpc.cache.lookup(None, (4,))
    hit = qshpc.cache.lookup(sq, [4])
    assert hit is not None and hit.value == 16
    assert qshpc.cache.lookup(sq, (4,), seed=np.int64(3)) is None
    with pytest.raises(UserError, match="CacheDir or a cache folder"):
        qshpc.cache.table(5)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="empty path"):
        qshpc.cache.table("")
    assert len(qshpc.cache.table(str(qshpc_home / "cache"))) == 1  # was: AttributeError


@pytest.mark.timeout(300)
def test_gc_and_rm_running_while_writers_read_and_fill_the_cache(tmp_path: Path) -> None:
    # Coverage beside test_cache_kill: `qshpc cache gc/rm` (by size, by age, --verify,
    # --all) while processes read and write. A writer exits 3 on a wrong hit.
    import random
    import time

    from qshpc.cache import maint
    from qshpc.cache.store import CacheDir

    here = Path(__file__).parent
    root = tmp_path / "cache"
    cache = CacheDir(root)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen([sys.executable, str(here / "cache_writer_child.py"), str(root), str(s)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
        for s in range(4)
    ]  # fmt: skip
    rng = random.Random(8)
    rounds = 0
    try:
        time.sleep(1.5)
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline:
            r = rng.random()
            if r < 0.3:
                maint.gc(cache, max_size=2_000_000)
            elif r < 0.5:
                maint.remove(cache, everything=True)
            elif r < 0.75:
                maint.gc(cache, verify=True)
            else:
                maint.gc(cache, older_than=0.5)
            rounds += 1
            for p in procs:
                assert p.poll() is None, f"a writer found a wrong entry: {p.communicate()[1]}"
    finally:
        for p in procs:
            p.kill()
            p.wait()
    sys.path.insert(0, str(here))
    from cache_writer_child import expected, same

    for st in cache.scan():
        hit = cache.get(st.key)
        assert hit is not None and hit.header.task is not None
        assert same(hit.value, expected(int(hit.header.task)))
    assert cache.damaged == 0 and rounds > 5


TRANSPILE_THEN_BIND = """\
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Parameter, ParameterVector

from qshpc import distribute_task, get, save_result

theta = Parameter("θ")  # a new UUID in every run
v = ParameterVector("v", 2)


@distribute_task(cache=True)
def build(p, vec, n):
    qc = QuantumCircuit(n)
    qc.h(0)
    qc.rx(p, 0)
    qc.ry(vec[0] + 2 * vec[1], 1)
    qc.measure_all()
    return {"tc": transpile(qc, basis_gates=["rx", "rz", "sx", "cx"]), "expr": p * 3}


out = get(build(theta, list(v), 2))
bound = out["tc"].assign_parameters({theta: 0.3, v[0]: 0.1, v[1]: 0.2})
assert not bound.parameters
assert float(out["expr"].bind({theta: 1.0})) == 3.0
save_result("bound")
"""


@pytest.mark.mpi
@pytest.mark.timeout(300)
def test_a_hit_holds_the_calls_own_parameters(qshpc_home: Path, tmp_path: Path) -> None:
    # Transpile a parameterized circuit in a task, bind it in the program: the rerun's
    # hit held the first run's Parameter (another UUID) and binding failed.
    (tmp_path / "prog.py").write_text(TRANSPILE_THEN_BIND)
    first, _ = _run_job(tmp_path)
    second, stdout = _run_job(tmp_path)
    assert first == second == "bound" and "1 from the cache" in stdout
    env = dict(os.environ, PYTHONPATH=str(ROOT), QSHPC_CACHE_DIR=str(tmp_path / "plain"))
    for _ in range(2):  # plain python: the hits of the inline backend
        out = subprocess.run([sys.executable, str(tmp_path / "prog.py")], capture_output=True,
                             text=True, timeout=120, env=env)  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]


RESUME_THEN_BIND = """\
import os

from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Parameter

from qshpc import distribute_task, get, save_result

theta = Parameter("θ")


@distribute_task()
def build(p, n):
    qc = QuantumCircuit(n)
    qc.h(0)
    qc.rx(p, 0)
    qc.measure_all()
    return transpile(qc, basis_gates=["rx", "rz", "sx", "cx"])


tc = get(build(theta, 2))
if os.path.exists("fail-once"):
    os.remove("fail-once")
    raise SystemExit("the first run fails after its task")
save_result(len(tc.assign_parameters({theta: 0.3}).parameters))
"""


@pytest.mark.mpi
@pytest.mark.timeout(300)
def test_a_resumed_job_binds_its_stored_circuits_with_its_own_parameters(
    qshpc_home: Path, tmp_path: Path
) -> None:
    # The same as a cache hit, for `qshpc run --resume`: the stored circuit held
    # the first run's Parameter.
    (tmp_path / "prog.py").write_text(RESUME_THEN_BIND)
    (tmp_path / "fail-once").touch()
    out = run_cli("run", str(tmp_path / "prog.py"), "--workers", "1", cwd=tmp_path)
    assert out.returncode != 0
    lines = (out.stdout + out.stderr).splitlines()
    job = [ln.split()[2] for ln in lines if ln.startswith("qshpc: job ")][-1]
    out = run_cli("run", str(tmp_path / "prog.py"), "--workers", "1", "--resume", job,
                  cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
    assert "1 reused from the store" in out.stdout + out.stderr
    res = run_cli("result", job, "--json")
    assert json.loads(res.stdout) == 0
