"""Lazy re-exports (PEP 562): a package names what it offers, modules load on first use."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def loaded(name: str) -> Any:
    """The module ``name`` when some thread imported it, else None; never a half-made one.

    ``sys.modules.get("numpy")`` returns numpy while another thread is still importing
    it, without ``numpy.float64`` yet: the store's encoder then failed a task's result
    (``SerializationError ... partially initialized module 'numpy' has no attribute
    'float64'``; test_dispatcher's threads, or a program importing numpy while the
    dispatcher encodes). An import of a module being initialized waits for it.
    """
    module = sys.modules.get(name)
    if module is not None and getattr(getattr(module, "__spec__", None), "_initializing", False):
        module = importlib.import_module(name)  # waits on the module's import lock
    return module


def lazy_exports(
    package: str, exports: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for a package whose names load on first use.

    Args:
        package: The package's name, for the error message.
        exports: Name -> module that defines it.
        namespace: The package's ``globals()``; a loaded name is cached there.
    """

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted([*namespace, *exports])

    return getattr_, dir_
