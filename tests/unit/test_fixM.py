"""Session 27, fixM: a module of the user's own held as a value is keyed by its whole
namespace (review49 F6); code reading attributes by a computed name keys the module whole
(review49 L1)."""

from __future__ import annotations

import importlib
import threading
import types
from pathlib import Path

import pytest

import qshpc.cache as cache


def _modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    (tmp_path / "cfg27m.py").write_text(
        '"""Settings."""\nimport threading\nimport sub27m as _sub\n\n'
        "_SCALE = 2\nSHOTS = 100\n_lock = threading.Lock()\n\n\n"
        "def _scaled(x):\n    return _SCALE * x\n"
    )
    (tmp_path / "sub27m.py").write_text("import cfg27m\n\n_DEPTH = 3\n")  # a cycle
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module("cfg27m")


def _t(obj: object) -> object:
    return obj


def test_a_private_name_of_a_module_held_as_a_value_is_in_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review49 F6: only the public names were keyed; a lock (no hash) is keyed by its name
    and leaves the call cacheable; a module it imports (here in a cycle) is walked whole."""
    cfg = _modules(tmp_path, monkeypatch)
    first = cache.key(_t, (cfg,))
    assert first is not None and cache.key(_t, (cfg,)) == first
    monkeypatch.setattr(cfg, "_SCALE", 3)
    assert cache.key(_t, (cfg,)) not in (None, first)
    monkeypatch.setattr(cfg, "_SCALE", 2)
    assert cache.key(_t, (cfg,)) == first
    monkeypatch.setattr(cfg._sub, "_DEPTH", 4)  # a private name of a module it holds
    assert cache.key(_t, (cfg,)) not in (None, first)
    monkeypatch.setattr(cfg._sub, "_DEPTH", 3)
    monkeypatch.setattr(cfg, "_lock", threading.RLock())  # a lock decides no result
    assert cache.key(_t, (cfg,)) == first


def test_what_the_import_machinery_sets_at_run_time_keeps_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``__annotations__`` made when first read, ``__warningregistry__`` at a warning, the
    docstring (as a class's): none of them is in the key."""
    cfg = _modules(tmp_path, monkeypatch)
    first = cache.key(_t, (cfg,))
    assert cfg.__annotations__ == {}
    monkeypatch.setattr(cfg, "__warningregistry__", {"version": 1}, raising=False)
    monkeypatch.setattr(cfg, "__doc__", "Other settings.")
    assert cache.key(_t, (cfg,)) == first


def test_code_reading_a_module_by_a_computed_name_keys_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review49 L1: ``getattr(cfg, name)(x)`` read none of the module's names by name: an
    edit of the function it reached kept the key."""
    cfg = _modules(tmp_path, monkeypatch)
    namespace = {"cfg27m": cfg}
    exec(
        "def by_name(name, x):\n    return getattr(cfg27m, name)(x)\n\n"
        "def by_attr(x):\n    return cfg27m.SHOTS + x\n",
        namespace,
    )
    by_name, by_attr = namespace["by_name"], namespace["by_attr"]
    first, plain = cache.key(by_name, ("_scaled", 1)), cache.key(by_attr, (1,))
    monkeypatch.setattr(cfg, "_SCALE", 3)
    assert cache.key(by_name, ("_scaled", 1)) not in (None, first)
    assert cache.key(by_attr, (1,)) == plain  # reads SHOTS alone, by its name


def test_a_name_set_later_on_a_module_a_class_holds_changes_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The class's digest is memoized per process while nothing its walk read was rebound:
    a name added to a module it holds (``plain27m._EXTRA = 5``) is a change too."""
    (tmp_path / "plain27m.py").write_text("SHOTS = 100\n")  # no value that can change in place
    (tmp_path / "holder27m.py").write_text(
        "import plain27m\n\n\nclass Holder:\n    cfg = plain27m\n\n"
        "    def go(self):\n        return getattr(self.cfg, '_EXTRA', 0)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    holder = importlib.import_module("holder27m")
    first = cache.key(_t, (holder.Holder(),))
    assert first is not None and cache.key(_t, (holder.Holder(),)) == first
    monkeypatch.setattr(holder.Holder.cfg, "_EXTRA", 5, raising=False)
    assert cache.key(_t, (holder.Holder(),)) not in (None, first)


class _Conf:
    """An object holding a lock beside data read from outside (review51 F3)."""

    def __init__(self, k: int) -> None:
        self.lock = threading.Lock()
        self.k = k


def test_an_object_holding_a_lock_beside_data_leaves_the_call_uncached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review51 F3: such an object in a module held as a value (or in a class's namespace)
    was keyed by its name alone: its data edited, the cache and a resume gave the old
    result. It cannot be hashed, so the call is not cached (it runs); a bare lock still is
    keyed by its name (it decides no result)."""
    from qshpc.cache.keywalk import UncacheableError

    cfg = _modules(tmp_path, monkeypatch)
    monkeypatch.setattr(cfg, "_CONF", _Conf(2), raising=False)
    with pytest.raises(UncacheableError):
        cache.key(_t, (cfg,))
    holder = type("Holder", (), {"conf": _Conf(2), "lock": threading.Lock()})
    with pytest.raises(UncacheableError):
        cache.key(_t, (holder,))
    plain = type("Plain", (), {"k": 2, "lock": threading.Lock()})
    assert cache.key(_t, (plain,)) is not None
