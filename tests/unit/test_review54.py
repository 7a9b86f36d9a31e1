"""review54 F1 (session 28, lead): a module of the user's own read by two pieces of code
in one key (the task reads ``cfg.A``, a helper it calls reads ``cfg.K``) was keyed by
the names the first one read only: an edited ``K`` gave the old result from the cache
and on ``--resume``."""

from __future__ import annotations

import importlib
import types
from pathlib import Path
from typing import Any

import pytest

from qshpc.cache.jobcache import FunctionDigests


def _modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tag: str) -> tuple[Any, Any]:
    (tmp_path / f"cfg{tag}.py").write_text("K = 1\nA = 100\n")
    (tmp_path / f"helpers{tag}.py").write_text(
        f"import cfg{tag}\n\ndef g():\n    return cfg{tag}.K\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(f"cfg{tag}"), importlib.import_module(f"helpers{tag}")


def _digest(source: str, **env: Any) -> bytes | None:
    namespace: dict[str, Any] = {"__name__": "r54_prog", **env}
    exec(source, namespace)
    return FunctionDigests(lambda n, e: None, lambda n, t: None, env=False).get(namespace["f"])


@pytest.mark.parametrize(
    "body",
    [
        "x + cfg{t}.A + helpers{t}.g()",  # review54's s2
        'getattr(x, "real", x) + cfg{t}.A + helpers{t}.g()',  # s3: right before fixQ
        "helpers{t}.g() + cfg{t}.A + x",  # the helper first
    ],
)
def test_a_name_a_helper_reads_of_a_module_the_task_reads_too_is_keyed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    tag = f"r54_{abs(hash(body)) % 10_000}"
    cfg, helpers = _modules(tmp_path, monkeypatch, tag)
    source = f"def f(x):\n    return {body.format(t=tag)}\n"
    env = {f"cfg{tag}": cfg, f"helpers{tag}": helpers}
    before = _digest(source, **env)
    assert before is not None and _digest(source, **env) == before  # stable
    monkeypatch.setattr(cfg, "K", 7)
    after = _digest(source, **env)
    assert after not in (None, before)  # on main 0297cc5: the same digest
    monkeypatch.setattr(cfg, "A", 5)
    assert _digest(source, **env) not in (None, before, after)


def test_a_module_met_by_names_then_as_a_value_is_keyed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cfg.A`` read by name, then ``cfg`` handed to a helper as a value: its other
    names (``_K``) are keyed too."""
    tag = "r54_whole"
    cfg, _ = _modules(tmp_path, monkeypatch, tag)
    (tmp_path / f"use{tag}.py").write_text("def read(m):\n    return m._K\n")
    use = importlib.import_module(f"use{tag}")
    monkeypatch.setattr(cfg, "_K", 1, raising=False)
    source = f"def f(x):\n    return cfg{tag}.A + use{tag}.read(cfg{tag})\n"
    env: dict[str, types.ModuleType] = {f"cfg{tag}": cfg, f"use{tag}": use}
    before = _digest(source, **env)
    monkeypatch.setattr(cfg, "_K", 2)
    assert _digest(source, **env) not in (None, before)
