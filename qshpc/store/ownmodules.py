"""The modules a program imports from its own folder: what a resume runs besides the file.

``qshpc run prog.py`` puts the program's folder first on ``sys.path`` (as
``python prog.py`` does), so ``import helpers`` there runs ``helpers.py`` beside
it, whatever an installed ``helpers`` holds. A resume runs those files as the user
too, so :func:`qshpc.store.trust.check_program` applies to them the rule it applies
to the program (review42 F4). They are found by reading the import statements of
the program and, in turn, of each module found (``import a.b``, ``from a import
b``, ``from . import c`` in a package), at any depth in the code (an import inside
a function or a ``try`` counts: it may run). A name built at run time
(``importlib.import_module(name)``, ``__import__``) is not seen.

What Python may run for such a module counts too (review46 M2): a compiled module
of the name (``helpers.cpython-311-x86_64-linux-gnu.so``, imported before
``helpers.py``; a lone ``helpers.pyc``), and the ``__pycache__`` folder beside an
imported source file with its compiled copies (run when their header matches the
source's date and size, which anyone who can write there can forge).
"""

from __future__ import annotations

import ast
import importlib.machinery
import sys
from pathlib import Path

#: Files read at most (a program beside a large tree of its own: the first ones).
_MAX_FILES = 500


def own_modules(program: Path) -> list[Path]:
    """The ``.py`` files (modules, packages' ``__init__.py``) and the package folders
    that ``program`` imports from its own folder, directly or through one another."""
    root = program.resolve().parent
    found: dict[Path, None] = {}
    todo: list[tuple[Path, tuple[str, ...]]] = [(program, ())]
    seen: set[Path] = set()
    while todo and len(seen) < _MAX_FILES:
        path, package = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for dotted in _imports(path, package):
            for target, pkg in _resolve(root, dotted):
                if target not in found:
                    found[target] = None
                    if target.suffix == ".py":
                        todo.append((target, pkg))
                        for cached in _cached(target):
                            found.setdefault(cached)
    return list(found)


def _compiled(folder: Path, stem: str) -> list[Path]:
    """The compiled modules ``stem`` in ``folder`` that an import may run (an extension
    module, which Python takes before ``stem.py``; a lone ``stem.pyc``)."""
    suffixes = [*importlib.machinery.EXTENSION_SUFFIXES, ".pyc"]
    return [p for p in (folder / f"{stem}{s}" for s in suffixes) if p.is_file()]


def _cached(source: Path) -> list[Path]:
    """The ``__pycache__`` folder beside ``source`` and its compiled copies of it."""
    cache = source.parent / "__pycache__"
    if not cache.is_dir():
        return []
    tag = sys.implementation.cache_tag or ""
    try:
        copies = sorted(cache.glob(f"{source.stem}.{tag}*.pyc"))
    except OSError:  # pragma: no cover - unreadable: importing it says so
        copies = []
    return [cache, *copies]


def _imports(path: Path, package: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The dotted names ``path`` imports (``package``: its own, for relative imports)."""
    try:
        tree = ast.parse(path.read_bytes(), str(path))
    except (OSError, SyntaxError, ValueError):
        return []  # unreadable or not Python: running it says so
    names: list[tuple[str, ...]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(tuple(a.name.split(".")) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > len(package):
                    continue  # beyond the top package: Python refuses it
                base = package[: len(package) - node.level + 1]
            else:
                base = ()
            mod = base + tuple((node.module or "").split(".")) if node.module else base
            if mod:
                names.append(mod)
                names.extend((*mod, a.name) for a in node.names if a.name != "*")
    return names


def _resolve(root: Path, dotted: tuple[str, ...]) -> list[tuple[Path, tuple[str, ...]]]:
    """The files and folders under ``root`` that import of ``dotted`` runs or reads,
    each with the package its code is in: ``a/`` and ``a/__init__.py``, then ``a/b.py``."""
    out: list[tuple[Path, tuple[str, ...]]] = []
    folder = root
    for i, part in enumerate(dotted):
        if not part.isidentifier():
            break
        here = dotted[: i + 1]
        module, pkg = folder / f"{part}.py", folder / part
        init = pkg / "__init__.py"
        compiled = _compiled(folder, part)
        if init.is_file() or (pkg.is_dir() and not module.is_file() and not compiled):
            # a package (a folder with no __init__.py: a namespace package, when no
            # module of the name is there), as Python's finder takes them
            out.append((pkg, here))
            if init.is_file():
                out.append((init, here))
            out.extend((p, here) for p in _compiled(pkg, "__init__"))
            folder = pkg
            continue
        out.extend((p, here[:-1]) for p in compiled)
        if module.is_file():
            out.append((module, here[:-1]))
        break
    return out
