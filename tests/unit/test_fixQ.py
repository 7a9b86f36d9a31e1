"""Session 28, fixQ: review52's cache-key findings.

F1: a name added to a module walked whole, or to a class, kept a live call's memoized
digest (a wrong cache hit, and a wrong resume identity). F3: any ``getattr`` in a task
walked every module it names whole (a ``queue.Queue`` in a helper module left the call
uncached). F4: the "not cached" warning was said at every live call, naming no value.
F12: the QPY sizes memo held ``()``, falsy, and was read again at every key.
"""

from __future__ import annotations

import importlib
import types
from pathlib import Path
from typing import Any

import pytest

import qshpc.cache as cache
from qshpc.cache.jobcache import CacheConfig, FunctionDigests, JobCache


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str) -> Any:
    (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(name)


def _fn(source: str, name: str, **env: Any) -> Any:
    namespace: dict[str, Any] = {"__name__": "fixq_prog", **env}
    exec(source, namespace)
    return namespace[name]


def _quiet() -> FunctionDigests:
    return FunctionDigests(lambda n, e: None, lambda n, t: None, env=False)


# -- F1 ------------------------------------------------------------------------------------


def test_a_name_added_to_a_module_read_by_getattr_changes_a_live_calls_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review52 F1: ``getattr(cfgx, "EXTRA", 0)`` with ``cfgx.EXTRA = 5`` set between two
    calls run in the program's process: the memoized digest was kept, and the cache gave
    the first call's result to the second."""
    cfgx = _module(tmp_path, monkeypatch, "cfgx28q", "SCALE = 2\n")
    f = _fn('def f(x):\n    return getattr(cfgx28q, "EXTRA", 0) + x\n', "f", cfgx28q=cfgx)
    digests = _quiet()
    first = digests.get(f, live=True)
    assert first is not None and digests.get(f, live=True) == first  # the memo holds
    monkeypatch.setattr(cfgx, "EXTRA", 5, raising=False)
    now = digests.get(f, live=True)
    assert now not in (None, first)
    assert now == _quiet().get(f, live=True)  # what a fresh walk takes
    jc = JobCache(CacheConfig(enabled=True, dir=str(tmp_path / "c")), "job")
    key = jc.key(f, (1,), None, None, live=True)
    monkeypatch.setattr(cfgx, "MORE", 1, raising=False)
    assert jc.key(f, (1,), None, None, live=True) not in (None, key)


def test_a_name_added_to_a_class_changes_a_live_calls_digest_and_its_resume_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same through a class (``Cfg.EXTRA = 5``): review52 took it for caught (its run
    read the cache before the first result was written); the resume identity of a call
    run live uses the same memo (``_RESUME_LIVE``)."""
    from qshpc.program.backend import function_digest

    mod = _module(tmp_path, monkeypatch, "cls28q", "class Cfg:\n    SCALE = 2\n")
    f = _fn('def f(x):\n    return getattr(Cfg, "EXTRA", 0) + x\n', "f", Cfg=mod.Cfg)
    digests = _quiet()
    first, resume = digests.get(f, live=True), function_digest(f, live=True)
    assert function_digest(f, live=True) == resume
    monkeypatch.setattr(mod.Cfg, "EXTRA", 5, raising=False)
    assert digests.get(f, live=True) not in (None, first)
    assert function_digest(f, live=True) != resume


def test_a_name_added_to_a_class_an_argument_holds_changes_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The class memo of a walk of arguments checks the namespace's names the same way
    (it had a check of its own, now the one every memo makes)."""
    mod = _module(
        tmp_path,
        monkeypatch,
        "obj28q",
        "class Model:\n    k = 2\n\n    def go(self):\n        return getattr(self, 'extra', 0)\n",
    )
    t = _fn("def t(m):\n    return m.go()\n", "t")
    first = cache.key(t, (mod.Model(),))
    assert first is not None and cache.key(t, (mod.Model(),)) == first
    monkeypatch.setattr(mod.Model, "extra", 3, raising=False)
    assert cache.key(t, (mod.Model(),)) not in (None, first)


# -- F3 ------------------------------------------------------------------------------------

_HELPERS = (
    "import queue\n\n_jobs = queue.Queue()  # module state the task never reads\n"
    "_calls = [0]\n\n\ndef g(x):\n    return 2 * x\n"
)


def test_getattr_on_an_argument_keys_a_helper_module_by_the_names_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review52 F3: ``getattr(o, "real", 1)`` made ``helpers.g``'s module walked whole: its
    queue (a lock beside data) left the call uncached, and any name set in it changed the
    key. The module is now keyed by what the code names in it."""
    helpers = _module(tmp_path, monkeypatch, "help28q", _HELPERS)
    f = _fn(
        'def f(o):\n    scale = getattr(o, "real", 1)\n    return help28q.g(o) * scale\n',
        "f",
        help28q=helpers,
    )
    first = cache.key(f, (3,))
    assert first is not None
    monkeypatch.setattr(helpers, "_counter", 1, raising=False)  # a name it never reads
    assert cache.key(f, (3,)) == first
    monkeypatch.setattr(helpers, "g", lambda x: 3 * x)  # what it reads
    assert cache.key(f, (3,)) not in (None, first)
    # a name imported from it, handed on as a value: the module is not used as an object
    imported = _fn(
        "def f(o):\n    from help28q import g\n    h = g\n    return h(o) * getattr(o, 'real', 1)\n",
        "f",
    )
    assert cache.key(imported, (3,)) is not None


_CFG = "K = 2\n_SCALE = 3\n"


@pytest.mark.parametrize(
    "source",
    [
        # the module handed to a function that reads it by name (uncovered before: the
        # task had no getattr of its own)
        "def read(m, n):\n    return getattr(m, n)\n\n"
        "def f(x):\n    return read(cfg28q, '_SCALE') * x\n",
        # a local alias
        "def f(x):\n    m = cfg28q\n    return getattr(m, '_SCALE') * x\n",
        # in a list
        "def f(x):\n    return [getattr(m, '_SCALE') for m in [cfg28q]][0] * x\n",
        # through its namespace
        "def f(x):\n    return vars(cfg28q)['_SCALE'] * x\n",
        "def f(x):\n    return cfg28q.__dict__['_SCALE'] * x\n",
        # imported in the body, under another name
        "def f(x):\n    import cfg28q as c\n    return getattr(c, '_SCALE') * x\n",
        "def f(x):\n    from pkg28q import cfg as c\n    return getattr(c, '_SCALE') * x\n",
        "def f(x):\n    import pkg28q.cfg\n    return getattr(pkg28q.cfg, '_SCALE') * x\n",
        # a package's module, through the package (a global)
        "def f(x):\n    return getattr(pkg28q.cfg, '_SCALE') * x\n",
        # in a closure cell
        "def outer():\n    import cfg28q\n\n    def f(x):\n"
        "        return getattr(cfg28q, '_SCALE') * x\n\n    return f\n\n\nf = outer()\n",
    ],
)
def test_a_module_the_code_uses_as_an_object_is_keyed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """Wherever the module object itself can reach a read by a computed name, its whole
    namespace is in the key: ``_SCALE``, never named in the code, changes it."""
    cfg = _module(tmp_path, monkeypatch, "cfg28q", _CFG)
    (tmp_path / "pkg28q").mkdir()
    (tmp_path / "pkg28q" / "__init__.py").write_text("")
    (tmp_path / "pkg28q" / "cfg.py").write_text(_CFG)
    sub = importlib.import_module("pkg28q.cfg")
    f = _fn(source, "f", cfg28q=cfg, pkg28q=importlib.import_module("pkg28q"))
    first = cache.key(f, (1,))
    assert first is not None
    monkeypatch.setattr(cfg, "_SCALE", 4)
    monkeypatch.setattr(sub, "_SCALE", 4)
    assert cache.key(f, (1,)) not in (None, first)


def test_a_module_read_by_its_attributes_alone_keeps_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cfg.K * x`` beside a ``getattr`` on something else: ``_SCALE``, never read, is no
    part of the key (as before any getattr)."""
    cfg = _module(tmp_path, monkeypatch, "cfg28q", _CFG)
    f = _fn("def f(o):\n    return cfg28q.K * getattr(o, 'real', 1)\n", "f", cfg28q=cfg)
    first = cache.key(f, (1,))
    monkeypatch.setattr(cfg, "_SCALE", 4)
    assert cache.key(f, (1,)) == first
    monkeypatch.setattr(cfg, "K", 5)
    assert cache.key(f, (1,)) != first


# -- F4 ------------------------------------------------------------------------------------


def test_an_uncacheable_live_call_is_told_once_and_names_the_global(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review52 F4: under ``--workers 0`` a function reading a global that holds a lock
    beside data was walked again at every call, and every call said "not cached",
    naming no value."""
    import threading

    holder = types.SimpleNamespace(lock=threading.Lock(), k=2)
    f = _fn("def f(o):\n    return H.k * o\n", "f", H=holder)
    told: list[tuple[str, str]] = []
    digests = FunctionDigests(lambda n, e: told.append((n, str(e))), lambda n, t: None)
    assert [digests.get(f, live=True) for _ in range(5)] == [None] * 5
    assert len(told) == 1
    assert told[0][0] == "f" and "the global H of fixq_prog" in told[0][1]


def test_an_uncacheable_value_in_a_helper_module_is_named() -> None:
    """The innermost name that holds the value: the helper module's attribute."""
    import threading

    helpers = types.ModuleType("help28q_b")
    helpers.CONF = types.SimpleNamespace(lock=threading.Lock(), k=2)  # type: ignore[attr-defined]
    f = _fn("def f(o):\n    return help28q_b.CONF.k * o\n", "f", help28q_b=helpers)
    from qshpc.cache.keywalk import UncacheableError

    with pytest.raises(UncacheableError, match=r"\(in help28q_b\.CONF\)"):
        cache.key(f, (1,))


# -- F12 -----------------------------------------------------------------------------------


def test_the_qpy_sizes_are_read_once_when_qiskit_names_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """review52 F12: a Qiskit without the format names memoized ``()``, falsy: read
    again at every key. Read once, ``()`` stays (a renamed copy is dumped instead)."""
    pytest.importorskip("qiskit")
    from qiskit.qpy import formats

    from qshpc.cache import keycircuit

    monkeypatch.setattr(keycircuit, "_SIZES", None)
    with monkeypatch.context() as m:
        m.delattr(formats, "CIRCUIT_HEADER_V12_SIZE")  # a Qiskit that names it otherwise
        assert keycircuit._without_name(b"\0" * 64, "c") is None
    assert keycircuit._SIZES == ()
    assert keycircuit._without_name(b"\0" * 64, "c") is None
    assert keycircuit._SIZES == ()  # not read again
