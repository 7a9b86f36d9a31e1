"""Which names' values code uses as objects, not only through a static attribute.

A module of the user's own that code names is keyed by the attributes the code
names (``helpers.f`` covers ``f``), or by its whole namespace where the code can
reach its attributes by a name it computes: ``getattr(helpers, name)``,
``vars(helpers)``, ``helpers.__dict__``, or the module handed on as a value
(``read(cfg, "K")``, ``m = cfg``), whose reader is not known (review49 L1).

review52 F3: any ``getattr`` in the code (``getattr(o, "real", 1)`` on an argument)
made every module it names walked whole: one holding a ``queue.Queue`` left the call
uncacheable, and any name set in it changed the key. :func:`escaping` reads the
bytecode instead: a module is walked whole only where a load of its name is used
other than by an attribute named in the code.
"""

from __future__ import annotations

import functools
import types

#: Attribute names by which code reads a namespace by a name it computes.
BY_NAME = frozenset(("__dict__", "__getattribute__", "__getattr__"))
#: Instructions that use the value on top of the stack by an attribute named in the code.
_BY_ATTR = frozenset(("LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "DELETE_ATTR"))
#: Instructions between an ``import`` and the stores of the names it binds.
_IMPORT_STEPS = frozenset(("IMPORT_FROM", "SWAP", "COPY", "POP_TOP", "ROT_TWO", "NOP"))
_SKIP = frozenset(("EXTENDED_ARG", "CACHE", "NOP"))
#: Instructions that load a value by a name, but are no use of the value before them.
_NOT_LOADS = frozenset((
    "LOAD_CONST", "LOAD_METHOD", "LOAD_SUPER_ATTR", "LOAD_CLOSURE", "KW_NAMES",
))  # fmt: skip


@functools.lru_cache(maxsize=1024)
def escaping(code: types.CodeType) -> frozenset[str]:
    """The names (globals, locals, cells and attributes) whose values ``code``, or code
    nested in it, uses other than through an attribute it names: ``getattr(helpers, n)``,
    ``f(cfg)``, ``m = cfg``, ``helpers.__dict__`` put ``helpers`` and ``cfg`` in it;
    ``helpers.K * x`` puts ``K`` (its value is used) but not ``helpers``.

    A name bound by an ``import`` in the code whose value escapes puts the name of what
    it holds in it too: ``a`` for ``import a.b`` (it binds ``a``), ``b`` for ``import a.b
    as c``, ``y`` for ``from p import y as z``. The same name in two scopes, or as a
    global and an attribute, counts as one: a needless whole walk at worst, never a
    missed one.
    """
    import dis

    found: set[str] = set()
    ins = [i for i in dis.get_instructions(code) if i.opname not in _SKIP]
    imported: list[tuple[set[str], set[str]]] = []  # (names it reads, names it binds)
    for k, i in enumerate(ins):
        op, name = i.opname, i.argval
        if op == "IMPORT_NAME" and isinstance(name, str):
            attrs, binds = set(), set()
            for j in ins[k + 1 :]:
                if j.opname == "IMPORT_FROM" and isinstance(j.argval, str):
                    attrs.add(j.argval)  # ``from p import y``, ``import a.b as c``: p.y, a.b
                elif j.opname.startswith("STORE_") and isinstance(j.argval, str):
                    binds.add(j.argval)
                elif j.opname not in _IMPORT_STEPS:
                    break
            # ``import a.b`` binds ``a``; bound in a way not read here: every name it reads
            reads = attrs or {name.partition(".")[0]}
            if binds:
                imported.append((reads, binds))
            else:
                found |= reads | set(name.split("."))
            continue
        if "LOAD" not in op or op in _NOT_LOADS:
            continue
        if op == "LOAD_ATTR" and (i.arg or 0) & 1 and _METHOD_FLAG:
            continue  # Python 3.12+: ``obj.f(...)``, the attribute called
        names = name if isinstance(name, tuple) else (name,)
        if not names or not all(isinstance(n, str) for n in names):
            continue
        found.update(names[:-1])  # ``LOAD_FAST_LOAD_FAST``: the first is used as an object
        nxt = ins[k + 1] if k + 1 < len(ins) else None
        if nxt is None or nxt.opname not in _BY_ATTR or nxt.argval in BY_NAME:
            found.add(names[-1])
    for reads, binds in imported:
        if not found.isdisjoint(binds):
            found |= reads
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            found |= escaping(c)
    return frozenset(found)


#: Names by which code reads values by a name it computes in a namespace the walk cannot
#: tell: the modules in ``sys.modules`` (with ``sys`` named too), any module
#: (``importlib.import_module``, ``__import__``), code run from text (``eval``, ``exec``),
#: a function's or a frame's globals. Code naming one is not cached (:func:`computed_reads`).
_UNKNOWN_NS = {
    "import_module": "importlib.import_module",
    "__import__": "__import__",
    "eval": "eval",
    "exec": "exec",
    "__globals__": "a function's __globals__",
    "f_globals": "a frame's f_globals",
    "f_locals": "a frame's f_locals",
    "getmodule": "inspect.getmodule",
}


@functools.lru_cache(maxsize=1024)
def computed_reads(code: types.CodeType) -> tuple[bool, str | None]:
    """How ``code`` (or code nested in it) reads values by names it computes, beyond what
    :func:`escaping` follows (fixU; closing28: ``globals()[name]`` read a value of the
    user's that no key held, a wrong cache hit after an edit).

    Returns ``(own, unknown)``: ``own``, it calls ``globals`` (its own module's namespace,
    which the walk then keys whole); ``unknown``, what it uses to reach a namespace the
    walk cannot tell (``sys.modules``, ``importlib.import_module``, ``eval``, ...), None
    if nothing. Names met in any scope count (a needless miss at worst).
    """
    names = code_names(code)
    texts = code_texts(code)
    if names.isdisjoint(_CANDIDATES) and texts.isdisjoint(_TEXTS):
        return False, None  # (most code: no bytecode read)
    for name, how in _ANYHOW.items():  # (review56 H1: by any way of naming them)
        if name in names:
            return False, how
    if "locate" in names and "pydoc" in names:
        return False, "pydoc.locate"
    named = sorted(texts & _TEXTS)
    if named:  # ``getattr(f, "__globals__")``, ``builtins.__dict__["eval"]`` (review56 H1)
        return False, f"a name given as text ({named[0]!r})"
    bare = _bare_names(code) if not names.isdisjoint(_BUILTINS) else frozenset()
    via = "builtins" in names  # ``builtins.eval``, ``from builtins import exec``
    unknown = None
    for name, how in _UNKNOWN_NS.items():
        # a builtin by its bare name (``model.eval()`` is no ``eval``), or from builtins
        if name in names and (name not in _BUILTINS or name in bare or via):
            unknown = how
            break
    if unknown is None and "modules" in names and "sys" in names and _sys_modules(code):
        unknown = "sys.modules"
    return "globals" in names and ("globals" in bare or via), unknown


#: Names that reach a namespace by a computed name however they are named (an
#: attribute, an alias imported under them, review56 H1): code naming one is not cached.
_ANYHOW = {
    "__import__": "__import__",
    "__builtins__": "__builtins__",
    "_getframe": "sys._getframe (a frame's namespaces)",
    "currentframe": "inspect.currentframe (a frame's namespaces)",
    "resolve_name": "pkgutil.resolve_name",
    "import_module": "importlib.import_module",
}
#: String constants that name such a way (``getattr(sys, "modules")``,
#: ``vars(sys)["modules"]``, ``operator.attrgetter("__globals__")``): code holding one
#: is not cached (a needless miss where it meant something else).
_TEXTS = frozenset(
    ("__globals__", "modules", "f_globals", "f_locals", "eval", "exec", "globals",
     "__import__", "import_module", "__builtins__", "getmodule", "_getframe",
     "currentframe", "resolve_name", "locate", "__dict__")
)  # fmt: skip


def _sys_modules(code: types.CodeType) -> bool:
    """Whether ``code`` (or code nested in it) reads ``sys.modules``: ``sys`` loaded, then
    its ``modules`` attribute, or ``from sys import modules``; not ``sys`` and some other
    object's ``.modules`` (review56 M7: PyTorch's ``model.modules()`` beside a
    ``print(..., file=sys.stderr)`` left the task uncached, "through sys.modules")."""
    import dis

    ins = list(dis.get_instructions(code))
    for k, i in enumerate(ins[:-1]):
        nxt = ins[k + 1]
        if nxt.argval != "modules":
            continue
        if i.argval == "sys" and i.opname in _BARE and nxt.opname in ("LOAD_ATTR", "LOAD_METHOD"):
            return True
        if i.opname == "IMPORT_NAME" and i.argval == "sys" and nxt.opname == "IMPORT_FROM":
            return True
    return any(_sys_modules(c) for c in code.co_consts if isinstance(c, types.CodeType))


@functools.lru_cache(maxsize=1024)
def code_texts(code: types.CodeType) -> frozenset[str]:
    """The string constants of ``code`` and of the code nested in it."""
    texts = {c for c in code.co_consts if type(c) is str}
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            texts |= code_texts(c)
    return frozenset(texts)


#: Of :data:`_UNKNOWN_NS`, the builtins: counted where loaded by their bare name.
_BUILTINS = frozenset(("__import__", "eval", "exec", "globals"))
_CANDIDATES = frozenset((*_UNKNOWN_NS, *_ANYHOW, "globals", "modules", "locate"))
_BARE = frozenset(("LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_FAST", "IMPORT_FROM"))


@functools.lru_cache(maxsize=1024)
def code_names(code: types.CodeType) -> frozenset[str]:
    """Every name ``code`` and the code nested in it look up (globals and attributes)."""
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= code_names(c)
    return frozenset(names)


def _bare_names(code: types.CodeType) -> frozenset[str]:
    """The names ``code`` and the code nested in it load by a bare name (a global, a
    builtin, a local, ``from m import name``), not as an attribute."""
    import dis

    bare = {
        i.argval
        for i in dis.get_instructions(code)
        if i.opname in _BARE and isinstance(i.argval, str)
    }
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            bare |= _bare_names(c)
    return frozenset(bare)


def _method_flag() -> bool:
    """Whether ``LOAD_ATTR``'s low bit marks a method load (Python 3.12+)."""
    import sys

    return sys.version_info >= (3, 12)


_METHOD_FLAG = _method_flag()
