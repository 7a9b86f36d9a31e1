"""A worker stores a result only under a key that describes what it computed (review43 H2).

Rank 0 keys a dispatched call with the task function as rank 0 sees it
(:func:`qshpc.cache.keys.function_digest`), including the value of every
attribute of the user's own modules the function reads (``helpers.FACTOR``,
``helpers.f``, the globals of a function defined in ``helpers``). A worker runs
the function as shipped, with those modules imported afresh from their files:
a module attribute the program set (``helpers.FACTOR = 10``) or a function it
patched into a module (``helpers.f = g``) is rank 0's alone, and the worker
computes with the file's. Stored, such a result would sit under a key that says
what the worker did not compute, and a run that computes in the program's
process (``--workers 0``, plain ``python``, a notebook) would get the worker's
value back, or the reverse.

So rank 0 sends, with the calls of a function, the digest of each such binding
as its key read it (:func:`module_bindings`, taken with the function's digest);
a worker compares them, once per function, with its own modules
(:class:`ShippedDigests`). Where one differs, the results are returned as
computed but not stored, and the worker names the attribute once.
The rest of the function (code, ``__main__``'s globals, closures) travels by
value, as rank 0 keyed it.
"""

from __future__ import annotations

import sys
import types
from typing import Any

#: ``(module, attribute, digest)``: a binding of a user's module as a key read it
#: (digest None: a value that cannot be hashed here, an ObjectRef, say; None on both sides).
Binding = tuple[str, str, "bytes | None"]


def _digest(value: Any, missing: Any) -> bytes | None:
    from qshpc.cache.keys import value_digest

    if value is missing:
        return b"missing"
    try:
        return value_digest(value)
    except Exception:  # the same on every rank: compared as None
        return None


def module_bindings(deps: list[tuple[Any, str, Any]]) -> list[Binding]:
    """The bindings of user modules (not ``__main__``, not installed packages) among
    the name bindings a function's walk read (``deps``), each with its value's digest.

    Taken when the function's digest is (the values its key holds); a module
    attribute that holds a module is left out (its attributes read are bindings too).
    """
    from qshpc.cache.keyenv import is_library
    from qshpc.cache.keywalk import _MISSING, _SHAPE

    out: dict[tuple[str, str], bytes | None] = {}
    for holder, name, value in deps:
        if type(holder) is not dict or name.startswith("__") or name is _SHAPE:
            continue  # (a name added: every name of the module is a binding of its own)
        mod_name = holder.get("__name__")
        if not isinstance(mod_name, str) or mod_name == "__main__" or is_library(mod_name):
            continue
        mod = sys.modules.get(mod_name)
        if mod is None or getattr(mod, "__dict__", None) is not holder:
            continue
        if isinstance(value, types.ModuleType) or (mod_name, name) in out:
            continue
        out[mod_name, name] = _digest(value, _MISSING)
    return [(m, a, d) for (m, a), d in sorted(out.items(), key=lambda kv: kv[0])]


def named_bindings(named: list[Any]) -> list[Binding]:
    """The bindings of user modules behind the functions and classes a call's
    arguments' walk met (``named``: :func:`qshpc.cache.keys.call_key`), each with
    its value's digest (review46 H1).

    Pickle sends such a function or class by name (``helpers.mul``, the class of a
    ``helpers.Model`` object): a worker runs its own module's, which reads the file's
    values (``helpers.K``, ``Model.scale``), not those the program set and the key
    names. So each is compared as a binding of its module is: the module attribute
    that holds it (its outermost class, for a method or a nested class).
    """
    from qshpc.cache.keyenv import is_library
    from qshpc.cache.keywalk import _MISSING

    out: dict[tuple[str, str], bytes | None] = {}
    for obj in named:
        mod_name = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
        if not isinstance(mod_name, str) or not isinstance(qualname, str):
            continue
        if mod_name == "__main__" or "<locals>" in qualname or is_library(mod_name):
            continue  # sent by value, or not the user's
        mod = sys.modules.get(mod_name)
        top = qualname.partition(".")[0]
        if mod is None or (mod_name, top) in out:
            continue
        value = vars(mod).get(top, _MISSING)
        if value is _MISSING or ("." not in qualname and value is not obj):
            continue  # not found by that name: pickle sends it by value
        out[mod_name, top] = _digest(value, _MISSING)
    return [(m, a, d) for (m, a), d in sorted(out.items(), key=lambda kv: kv[0])]


class ShippedDigests:
    """Per worker: whether each shipped function's module bindings here are rank 0's."""

    def __init__(self) -> None:
        self._agrees: dict[int, bool] = {}
        self._holds: dict[Binding, bool] = {}

    def agrees(self, fn_id: int, name: str, bindings: list[Binding] | None) -> bool:
        """Whether this worker's modules hold ``bindings`` (rank 0's, for function
        ``fn_id``); decided once per function, and said once where they do not."""
        known = self._agrees.get(fn_id)
        if known is not None:
            return known
        differs = "its bindings were not sent" if bindings is None else _differs(bindings)
        self._agrees[fn_id] = differs is None
        if differs is not None:
            _say(name, differs)
        return differs is None

    def holds(self, name: str, bindings: list[Binding]) -> bool:
        """Whether this worker's modules hold ``bindings`` (rank 0's, those a call's
        arguments' key read: :func:`named_bindings`); each decided once, and said
        once where it does not hold."""
        for b in bindings:
            known = self._holds.get(b)
            if known is None:
                differs = _differs([b])
                known = self._holds[b] = differs is None
                if differs is not None:
                    _say(name, differs)
            if not known:
                return False
        return True

    def keys(
        self,
        keys: list[Any],
        fn_ids: Any,
        funcs: dict[int, Any],
        sent: dict[int, Any],
        by_call: dict[int, list[Binding]] | None = None,
    ) -> Any:
        """A batch's cache keys, with None for each call whose function's bindings
        differ here, or whose arguments' (None for all: none is stored).
        ``funcs``: fn_id -> (runner, name, ...); ``sent``: rank 0's bindings per
        fn_id; ``by_call``: those of the arguments of the calls at these positions."""
        single = type(fn_ids) is int
        if single:
            if not self.agrees(fn_ids, funcs[fn_ids][1], sent.get(fn_ids)):
                return None
            out = keys
        else:
            bad = {i for i in set(fn_ids) if not self.agrees(i, funcs[i][1], sent.get(i))}
            out = keys if not bad else [
                None if i in bad else k for k, i in zip(keys, fn_ids, strict=True)
            ]  # fmt: skip
        for pos, bindings in (by_call or {}).items():
            fn_id = fn_ids if single else fn_ids[pos]
            if out[pos] is not None and not self.holds(funcs[fn_id][1], bindings):
                out = list(out) if out is keys else out
                out[pos] = None
        return out


def _say(name: str, differs: str) -> None:
    """The worker's note that results of ``name`` are not stored (once per cause)."""
    print(
        f"qshpc: cache: results of {name} computed on this worker are not cached: "
        f"{differs} (the workers import the module from its file, so a value the "
        "program assigns to a module attribute, e.g. `helpers.FACTOR = 10` or "
        "`helpers.Model.scale = 2`, is not seen there); the results are returned as "
        "computed. To cache them, define the value in the module's file, or pass it to "
        "the task as an argument",
        file=sys.stderr,
        flush=True,
    )


def _differs(bindings: list[Binding]) -> str | None:
    """What differs between ``bindings`` and this process's modules (None: nothing)."""
    import importlib

    from qshpc.cache.keywalk import _MISSING

    for mod_name, attr, theirs in bindings:
        try:
            mod = sys.modules.get(mod_name) or importlib.import_module(mod_name)
        except Exception as exc:  # the call fails on its import too
            return f"module {mod_name} cannot be imported here ({type(exc).__name__})"
        if _digest(vars(mod).get(attr, _MISSING), _MISSING) != theirs:
            return f"{mod_name}.{attr} differs here from the program's"
    return None
