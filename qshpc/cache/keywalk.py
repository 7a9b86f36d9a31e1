"""The walk of a value into a cache key: typed tokens, the same in every process.

See :mod:`qshpc.cache.keys` for what a key covers and how each kind of value is
walked. :class:`_Walk` feeds the tokens to a hash; :func:`bindings_unchanged` tells
whether what a function's walk read is still what it was.
"""

from __future__ import annotations

import copyreg
import datetime
import functools
import hashlib
import os
import struct
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from qshpc._lazy import loaded
from qshpc.cache import keycircuit as _kc
from qshpc.cache.keycircuit import _expression_text, _qpy_module, circuit_digest
from qshpc.cache.keyenv import (
    LIBRARY_TOPS,
    Put,
    is_library,
    is_library_path,
    put_text,
    version_of,
)
from qshpc.cache.keyreads import code_names, computed_reads, escaping

_PACK_D = struct.Struct("<d").pack
_PACK_DD = struct.Struct("<dd").pack
_MAX_DEPTH = 200
#: The method by which a value gives its own digest (see :mod:`qshpc.cache.keys`).
_OWN_DIGEST = "__qshpc_cache_digest__"
#: Qiskit's ``QuantumCircuit`` class, once a walk met one (see :meth:`_Walk._other`).
_CIRCUIT: list[Any] = [None]


class UncacheableError(Exception):
    """A value that cannot be hashed the same way in every process (the call is not cached)."""

    #: The global, module attribute or class attribute of the user's that holds the
    #: value, once named (:func:`_located`).
    where: str | None = None


def _computing() -> list[Any]:
    """The functions that read values by a name computed at run time (``eval``,
    ``globals``, ``importlib.import_module``, ``sys._getframe``, ...), of the modules this
    process has loaded: held as a value (an alias, a default, a closure cell, a class
    attribute, a partial's function), they reach what no key holds (review56 H1)."""
    import builtins

    found: list[Any] = [getattr(builtins, n) for n in _COMPUTING_BUILTINS]
    for mod, names in _COMPUTING_IN.items():
        module = sys.modules.get(mod)
        if module is not None:
            found.extend(getattr(module, n) for n in names if hasattr(module, n))
    return found


_COMPUTING_BUILTINS = ("eval", "exec", "globals", "locals", "vars", "__import__", "compile")
_COMPUTING_IN = {
    "importlib": ("import_module", "__import__"),
    "sys": ("_getframe",),
    "inspect": ("currentframe", "getmodule", "stack"),
    "pydoc": ("locate",),
    "pkgutil": ("resolve_name",),
}


def _computing_error(obj: Any) -> UncacheableError:
    name = f"{getattr(obj, '__module__', None) or 'builtins'}.{getattr(obj, '__name__', '?')}"
    return UncacheableError(
        f"it holds {name}, which reads values by a name it computes: what it reads cannot be keyed"
    )


def _located(exc: UncacheableError, where: str) -> UncacheableError:
    """``exc`` saying which name of the user's holds the value (review52 F4: "calls of f
    are not cached: a value of type lock cannot be hashed" named no value): the innermost
    name met, kept as the error goes up through the walks of what reads it."""
    if exc.where is not None:
        return exc
    out = UncacheableError(f"{exc} (in {where})")
    out.where = where
    return out


# -- tokens ----------------------------------------------------------------------------

#: ``id(circuit) -> (circuit, its QPY bytes)``, written for the call being keyed
#: (:func:`qshpc.task.payload.dumps`): those bytes are not dumped again.
Qpy = dict[int, tuple[Any, bytes]]
#: What a walk read, as ``(holder, name, value)``: ``holder[name]`` (a namespace)
#: or ``holder.name`` (a function's defaults, a closure cell) was ``value``.
Deps = list[tuple[Any, str, Any]]
_MISSING: Any = object()
#: The name of a dependency ``(namespace, _SHAPE, count)``: the namespace (a module
#: walked whole, a class's) held ``count`` names (:func:`_names_in`) when it was walked.
#: :func:`bindings_unchanged` compares the count: a name set later (``cfgmod.EXTRA = 5``,
#: ``Model.extra = 3``) is read by ``getattr(cfgmod, "EXTRA", 0)`` as much as one rebound
#: is, and the deps of the names walked see a rebinding or a removal, not an addition
#: (review52 F1: a function's memoized digest kept the old value, a wrong cache hit).
_SHAPE = "\x00shape"
#: Names a namespace gains at run time that decide no result: copyreg's ``__slotnames__``
#: (set on a class when an object of it is first pickled), a module's warning registry,
#: the annotations made when first read (see :data:`_MODULE_SKIP`).
_SHAPE_SKIP = (
    "__slotnames__", "__warningregistry__", "__annotations__", "__annotate__",
    "__conditional_annotations__",
)  # fmt: skip


def _names_in(ns: Any) -> int:
    """How many names a namespace holds, less those of :data:`_SHAPE_SKIP`."""
    n = len(ns)
    for name in _SHAPE_SKIP:
        if name in ns:
            n -= 1
    return n


def bindings_unchanged(deps: Deps) -> bool:
    """True when every name a walk read is still bound to the same object.

    A function runs with the globals, closure cells and defaults of the moment
    it is called; its digest covers their values when it was taken. This
    tells, in well under a microsecond a name, whether any was rebound since
    (``SHOTS = 200``, a helper redefined, a class attribute set), so a caller
    can take the digest again. A value that can change in place (a list, a
    dict, an array, an object: ``CONFIG["shots"] = 200``) counts as changed
    every time: only a fresh walk can tell.
    """
    for holder, name, value in deps:
        if name is _SHAPE:  # a name added (see :data:`_SHAPE`)
            if len(holder) != value and _names_in(holder) != value:
                return False
            continue
        if type(holder) is dict or type(holder) is types.MappingProxyType:
            now = holder.get(name, _MISSING)
        else:
            try:
                now = getattr(holder, name)
            except (AttributeError, ValueError):  # an empty closure cell: ValueError
                now = _MISSING
        if now is not value:
            return False
        if name == "__kwdefaults__" and type(value) is dict:  # rebound as a whole
            value = tuple(value.values())
        if not _fixed_value(value):
            return False
    return True


def changeable(deps: Deps) -> bool:
    """True when a name a walk read holds a value that can change in place."""
    return any(
        not _fixed_value(tuple(v.values()) if n == "__kwdefaults__" and type(v) is dict else v)
        for _, n, v in deps
    )


#: Values that cannot change in place. Functions, classes and modules can (an
#: attribute set), but every name the walk read in them is a dependency of its own.
_FIXED_TYPES = frozenset((
    type(None), bool, int, float, complex, str, bytes, types.FunctionType,
    types.BuiltinFunctionType, types.ModuleType, types.CodeType, type, range,
    type(Ellipsis), type(NotImplemented), staticmethod, classmethod, property,
))  # fmt: skip


def _fixed_value(value: Any, depth: int = 0) -> bool:
    """True when ``value`` cannot change without being rebound (see :func:`bindings_unchanged`)."""
    t = type(value)
    if t in _FIXED_TYPES or value is _MISSING:
        return True
    if depth > 4:
        return False
    if t is tuple or t is frozenset:  # a function's __defaults__; constants
        return len(value) <= 64 and all(_fixed_value(v, depth + 1) for v in value)
    import enum

    return isinstance(value, (enum.Enum, type))


class _Walk:
    """One walk: feeds the tokens of values to ``put``.

    ``refs`` numbers the functions, classes and modules already fed in this
    walk (a second meeting feeds the number: recursion and shared helpers);
    ``active`` holds the ids of the containers being walked (a cycle feeds a
    marker instead of looping).
    """

    __slots__ = (
        "active", "borrowed", "canon", "deps", "depth", "files", "in_pm", "keep", "memo",
        "modules", "named", "placed", "put", "qpy", "refs", "undated",
    )  # fmt: skip

    def __init__(self, put: Put, deps: Deps | None = None, qpy: Qpy | None = None) -> None:
        self.put = put
        #: QPY bytes of this call's circuits, dumped already (see :func:`call_key`).
        self.qpy = qpy
        self.refs: dict[int, int] = {}
        #: What ``refs`` numbers, kept alive for the walk: a function that a value's
        #: ``__reduce__`` made for the occasion dies after it, and the next one, made
        #: at the same address, was fed as a back-reference to it (its content unkeyed).
        self.keep: list[Any] = []
        #: For each module of the user's own the walk keyed: the names keyed (None: the
        #: whole namespace). A module met again keys the names not keyed yet (review54
        #: F1: ``cfg.A`` in the task and ``cfg.K`` in a helper: K was in no key). A set in
        #: it is never changed in place (a walk of a set's item may share it: ``borrowed``).
        self.modules: dict[int, set[str] | None] = {}
        #: ``refs`` and ``modules`` are those of the walk this one digests a set's item
        #: for, copied at the first change (:meth:`_own_maps`).
        self.borrowed = False
        self.active: set[int] = set()
        self.depth = 0
        #: Above 0 inside a value whose dicts are maps of no meaningful order (see
        #: :meth:`_unordered`): their items are fed sorted by the digest of each key.
        self.canon = 0
        #: Above 0 inside a value whose dates are when it was made (see :data:`_UNDATED`).
        self.undated = 0
        #: Above 0 inside a pass manager: its passes' run state is left out (:data:`_RUN_STATE`).
        self.in_pm = 0
        self.files: set[str] = set()  # modules keyed by their file (see :meth:`imported`)
        #: When a list: every name binding the walk read (see :func:`bindings_unchanged`).
        self.deps = deps
        #: A function's walk: an ObjectRef it reads (a global ``R = put(x)``) counts by
        #: its object's value, as a resume counts one among a call's arguments.
        self.placed = False
        #: A walk of arguments: a class of the user's own counts by its digest, taken
        #: once per process while nothing it read was rebound (:func:`_class_digest`).
        self.memo = False
        #: When a list: each function and class of a user's module (not ``__main__``)
        #: the walk met, which pickle sends by name (see :func:`named_bindings`).
        self.named: list[Any] | None = None

    # values -----------------------------------------------------------------------
    def value(self, obj: Any) -> None:
        put = self.put
        t = type(obj)
        if t is str:
            put_text(put, obj)
        elif t is int:
            put(b"i%d;" % obj)
        elif t is float:
            put(b"f" + _PACK_D(obj))
        elif obj is None:
            put(b"N")
        elif t is bool:
            put(b"T" if obj else b"F")
        elif t is tuple or t is list:
            self._items(b"(" if t is tuple else b"[", obj)
        elif t is dict:
            self._dict(b"{", obj)
        elif t is bytes:
            put(b"b%d:" % len(obj))
            put(obj)
        elif t is complex:
            put(b"c" + _PACK_DD(obj.real, obj.imag))
        else:
            self._other(obj)

    def _enter(self, obj: Any) -> bool:
        """Start walking a container; False when it is already being walked (a cycle)."""
        i = id(obj)
        if i in self.active:
            self.put(b"@cycle")
            return False
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise UncacheableError(f"values nested deeper than {_MAX_DEPTH} levels")
        self.active.add(i)
        return True

    def _leave(self, obj: Any) -> None:
        self.active.discard(id(obj))
        self.depth -= 1

    def _items(self, tag: bytes, items: Any) -> None:
        if not self._enter(items):
            return
        self.put(tag + b"%d;" % len(items))
        value = self.value
        for x in items:
            value(x)
        self.put(b")")
        self._leave(items)

    def _dict(self, tag: bytes, d: Any) -> None:
        if not self._enter(d):
            return
        if self.canon:
            self._sorted_dict(d)
            return
        self.put(tag + b"%d;" % len(d))
        value = self.value
        for k, v in d.items():
            value(k)
            value(v)
        self.put(b"}")
        self._leave(d)

    def _sorted_dict(self, d: Any) -> None:
        """A dict entered already, its items sorted by the digest of each key (see
        :meth:`_unordered`); its own tag, so it never meets an ordered dict's tokens."""
        put = self.put
        put(b"{s%d;" % len(d))
        digest_of = self._digest_of
        for key_digest, v in sorted(((digest_of(k), v) for k, v in d.items()),
                                    key=lambda kv: kv[0]):  # fmt: skip
            put(key_digest)
            self.value(v)
        put(b"}")
        self._leave(d)

    def _set(self, tag: bytes, s: Any) -> None:
        if not self._enter(s):
            return
        self.put(tag + b"%d;" % len(s))
        for d in sorted(self._digest_of(x) for x in s):
            self.put(d)
        self._leave(s)

    def _digest_of(self, obj: Any) -> bytes:
        # Each item starts from this walk's state, not from its siblings': the
        # items are met in set order, which differs between processes.
        h = hashlib.blake2b(digest_size=16)
        sub = _Walk(h.update, self.deps, self.qpy)
        # (Its refs and modules: this walk's, copied at its first change: most items, of no
        # function, class or module, change neither; a set of 2000 copied them 2000 times.)
        sub.refs, sub.modules, sub.borrowed = self.refs, self.modules, True
        sub.active, sub.depth = self.active, self.depth
        sub.keep, sub.placed = self.keep, self.placed
        sub.memo, sub.named = self.memo, self.named
        sub.canon, sub.undated, sub.in_pm = self.canon, self.undated, self.in_pm
        sub.value(obj)
        return h.digest()

    def _own_maps(self) -> None:
        """``refs`` and ``modules`` of this walk's own, before it changes them (the walk of
        a set's item starts with its parent's, :meth:`_digest_of`)."""
        if self.borrowed:
            self.refs, self.modules, self.borrowed = dict(self.refs), dict(self.modules), False

    def _circuit(self, obj: Any) -> None:
        """A ``QuantumCircuit`` (or a subclass): by its QPY bytes (:func:`put_circuit`)."""
        put_circuit(self.put, obj, self.qpy)

    def _other(self, obj: Any) -> None:
        t = type(obj)
        if t is _CIRCUIT[0]:
            # Qiskit's QuantumCircuit itself, met before (the commonest argument of a cached
            # call): what the checks below find for it, without them (~1.5 us a key).
            self._circuit(obj)
            return
        put = self.put
        if t is set or t is frozenset:
            self._set(b"S" if t is set else b"Z", obj)
            return
        if t is _DICT_KEYS or t is _DICT_ITEMS:  # set-like views: walked as sets are
            self._set(b"SK" if t is _DICT_KEYS else b"SI", obj)
            return
        if t is _DICT_VALUES:
            self._items(b"V", list(obj))
            return
        own = getattr(t, _OWN_DIGEST, None)
        if own is not None and callable(own):
            self._own_digest(t, obj, own)
            return
        np = loaded("numpy")
        if np is not None:
            if t is np.ndarray:
                self._array(obj, np)
                return
            if isinstance(obj, np.ndarray):  # a subclass: its class and state (a mask...)
                self._reduced(obj)
                return
            if isinstance(obj, np.generic):
                put(b"g")
                dt = obj.dtype
                if dt.fields is not None or dt.hasobject:  # a record: its fields, as arrays
                    self._array(np.asarray(obj), np)
                    return
                put_text(put, dt.str)
                put(obj.tobytes())
                return
        if t.__name__ == "ObjectRef" and getattr(t, "__module__", None) == "qshpc.program.refs":
            # Its id is per job: another job reuses the id for another object. Read by a
            # function: its object's digest by value, made at the put (review39 F4: a task
            # reading a global put reference ran again on every resume).
            placed = obj.placed_digest() if self.placed else None
            if placed is None:
                raise UncacheableError(
                    "an ObjectRef nested in the arguments"
                    if not self.placed
                    else "an ObjectRef whose object this process did not put"
                )
            put(b"O")
            put(placed)
            return
        if _module_of(t).startswith("qiskit"):
            circuit = sys.modules["qiskit.circuit"]
            if isinstance(obj, circuit.QuantumCircuit):
                if t is circuit.QuantumCircuit:  # (no digest of its own: looked up above)
                    _CIRCUIT[0] = t  # the next ones take the short way (see _other)
                self._circuit(obj)
                return
            if isinstance(obj, circuit.ParameterExpression):
                # By name and expression: a Parameter's UUID is new in every process.
                put(b"P")
                put_text(put, _expression_text(obj))
                return
            if isinstance(obj, circuit.ParameterVector):
                # By name and length, as its elements are: its UUID is new in every process.
                put(b"PV")
                put_text(put, obj.name)
                put(b"%d;" % len(obj))
                return
        if isinstance(obj, types.FunctionType):
            if obj in _computing():  # (review56 H1: an alias, ``f = importlib.import_module``)
                raise _computing_error(obj)
            self.function(obj)
        elif isinstance(obj, type):
            self.klass(obj)
        elif isinstance(obj, types.ModuleType):
            self.module(obj, None)  # met as a value: what of it is read is not known
        elif isinstance(obj, (types.BuiltinFunctionType, types.WrapperDescriptorType)):
            if obj in _computing():  # (review56 H1: ``ev = eval``, ``g = globals``, a default...)
                raise _computing_error(obj)
            self._named(b"B", obj)
            bound = getattr(obj, "__self__", None)
            if bound is not None and not isinstance(bound, types.ModuleType):
                self.value(bound)  # a bound method of a C type: ``table.get``, ``rng.random``
        elif isinstance(obj, types.MethodType):
            put(b"M")
            self.value(obj.__func__)
            self.value(obj.__self__)
            if self.deps is not None:  # its object can change in place (``model.k = 5``)
                self.deps.append((obj, "__self__", obj.__self__))
        elif isinstance(obj, (staticmethod, classmethod)):
            put(b"sm" if isinstance(obj, staticmethod) else b"cm")
            self.value(obj.__func__)
        elif isinstance(obj, property):
            put(b"prop")
            self.value((obj.fget, obj.fset, obj.fdel))
        elif isinstance(obj, types.CodeType):
            self.code(obj)
        elif isinstance(obj, types.MappingProxyType):
            self._dict(b"{", obj)
        elif isinstance(obj, functools.partial):
            put(b"partial")
            self.value((obj.func, obj.args, dict(sorted(obj.keywords.items()))))
            if self.deps is not None:  # ``partial(f, config)``: ``config["k"] = 9`` later
                self.deps.append((obj, "args", obj.args))
                if obj.keywords:
                    self.deps.append((obj, "keywords", obj.keywords))
        elif isinstance(obj, (types.MemberDescriptorType, types.GetSetDescriptorType)):
            put(b"desc")
            put_text(put, obj.__name__)
        elif isinstance(obj, bytearray | memoryview):
            # Not bytes: ``x + b"!"`` is a bytearray, a view reads its items by its format.
            if isinstance(obj, memoryview):
                put(b"mv")
                put_text(put, obj.format)
                put(b"%r;" % (obj.shape,))
            else:
                put(b"ba")
            b = bytes(obj)
            put(b"b%d:" % len(b))
            put(b)
        elif obj is Ellipsis or obj is NotImplemented:
            put(b"E" if obj is Ellipsis else b"NI")
        elif self.undated and t in _DATE_TYPES:
            put(b"date")
        else:
            mode = _walk_mode(t)
            if mode:
                self._mode(obj, mode)
            else:
                self._reduced(obj)

    def _mode(self, obj: Any, mode: int) -> None:
        """An object of a class of :data:`_UNORDERED` (its dicts walked sorted by the digest
        of each key) or :data:`_UNDATED` (its dates left out): its class and state."""
        unordered, undated = mode & _SORTED, mode & _NO_DATES
        self.put(b"U%d;" % mode)
        self.canon += 1 if unordered else 0
        self.undated += 1 if undated else 0
        try:
            self._reduced(obj)
        finally:
            self.canon -= 1 if unordered else 0
            self.undated -= 1 if undated else 0

    def _own_digest(self, t: type, obj: Any, own: Callable[[Any], bytes]) -> None:
        """A value that gives its own stable digest (see the module doc)."""
        try:
            digest = own(obj)
        except UncacheableError:
            raise
        except Exception as exc:
            raise UncacheableError(
                f"a value of type {t.__qualname__} gave no digest: {type(exc).__name__}: {exc}"
            ) from None
        if type(digest) is not bytes:
            raise UncacheableError(
                f"a value of type {t.__qualname__} gave a digest that is not bytes"
            )
        put = self.put
        put(b"D")
        put_text(put, f"{t.__module__}.{t.__qualname__}")
        put(b"%d:" % len(digest))
        put(digest)

    def _array(self, arr: Any, np: Any) -> None:
        put = self.put
        put(b"A")
        dt = arr.dtype
        put_text(put, dt.str if dt.fields is None else str(np.lib.format.dtype_to_descr(dt)))
        put(b"%r;" % (arr.shape,))
        if arr.dtype.hasobject:
            self._items(b"[", arr.ravel().tolist())
            return
        data = arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)
        if not data.size:
            put(b"")
        elif dt.kind in "Mm":  # datetime64, timedelta64: no buffer of their own
            put(data.view(np.uint8).data)
        else:
            put(data.data)

    def _reduced(self, obj: Any) -> None:
        """Any other object: its class and the state pickle would save."""
        try:
            reducer = copyreg.dispatch_table.get(type(obj))  # numpy's ufuncs, for one
            reduced = reducer(obj) if reducer is not None else obj.__reduce_ex__(4)
        except Exception as exc:
            raise UncacheableError(
                f"a value of type {type(obj).__qualname__} cannot be hashed: {exc}"
            ) from None
        if isinstance(reduced, str):  # a global: pickled by reference
            self._named(b"G", obj)
            wrapped = getattr(obj, "__wrapped__", None)
            if wrapped is not None:  # functools.cache and other wrappers: what they wrap
                self.value(wrapped)
            return
        if not self._enter(obj):
            return
        put = self.put
        put(b"R")
        self.value(type(obj))
        func, args, *rest = reduced
        self.value(func)
        self.value(args)
        state = rest[0] if rest else None
        pm = _is_pass_manager(type(obj))
        self.in_pm += pm
        if type(state) is dict:
            drop = _random_state(type(obj))
            if self.in_pm:
                drop = drop | _run_state(type(obj))
            if drop:
                state = {k: v for k, v in state.items() if k not in drop}
            loose = _loose_state(type(obj))
            if loose:
                self._loose_dict(state, loose)
            else:
                self._dict(b"{", state)
        else:
            self.value(state)
        if len(rest) > 1 and rest[1] is not None:
            self.value(list(rest[1]))
        if len(rest) > 2 and rest[2] is not None:
            self.value(list(rest[2]))
        self.in_pm -= pm
        self._leave(obj)

    def _loose_dict(self, state: dict[Any, Any], loose: frozenset[str]) -> None:
        """An object's state whose attributes named in ``loose`` hold collections in an
        order of no meaning (``"*"``: the order of the attributes themselves), see
        :data:`_LOOSE_STATE`: those lists and tuples walked as sets are, dicts sorted."""
        if not self._enter(state):
            return
        put = self.put
        put(b"{L%d;" % len(state))
        items: Iterable[tuple[Any, Any]] = state.items()
        if "*" in loose:
            digest_of = self._digest_of
            items = [(k, v) for _, k, v in sorted(((digest_of(k), k, v) for k, v in items),
                                                  key=lambda dkv: dkv[0])]  # fmt: skip
        for k, v in items:
            self.value(k)
            if k not in loose:
                self.value(v)
            elif type(v) is list or type(v) is tuple:
                self._set(b"SL", v)
            elif type(v) is dict:
                self.canon += 1
                try:
                    self._dict(b"{", v)
                finally:
                    self.canon -= 1
            else:
                self.value(v)
        put(b"}")
        self._leave(state)

    def _named(self, tag: bytes, obj: Any) -> None:
        """An object pickle saves by reference: its qualified name (and package version)."""
        put = self.put
        put(tag)
        mod = _module_of(obj)
        if is_library(mod):
            put_text(put, mod)
            put_text(put, version_of(mod))
        else:  # the user's own: "__main__" or not depends on how the file was run
            put(b"user")
            put(_compiled_digest(mod))  # a function of a compiled module: its file
        put_text(put, str(getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))))

    def _seen(self, obj: Any) -> bool:
        """True (and the back-reference fed) when ``obj`` was fed already in this walk."""
        n = self.refs.get(id(obj))
        if n is not None:
            self.put(b"@%d;" % n)
            return True
        if self.borrowed:
            self._own_maps()
        self.refs[id(obj)] = len(self.refs)
        self.keep.append(obj)
        return False

    # code ---------------------------------------------------------------------------
    def function(self, f: types.FunctionType) -> None:
        if is_library(getattr(f, "__module__", None)) and "<locals>" not in f.__qualname__:
            self._named(b"LF", f)
            return
        if self._seen(f):
            return
        if self.named is not None:
            self.named.append(f)
        put = self.put
        put(b"F")
        put_text(put, f.__qualname__)
        self.code(f.__code__)
        self.value(f.__defaults__)
        self.value(f.__kwdefaults__)
        deps = self.deps
        if deps is not None:
            for attr in ("__code__", "__defaults__", "__kwdefaults__"):
                deps.append((f, attr, getattr(f, attr)))
            if type(f.__kwdefaults__) is dict:  # a dict: ``f.__kwdefaults__["k"] = 5``
                deps.extend((f.__kwdefaults__, k, v) for k, v in f.__kwdefaults__.items())
        if f.__closure__:
            put(b"cells%d;" % len(f.__closure__))
            for at, cell in enumerate(f.__closure__):
                try:
                    contents = cell.cell_contents
                except ValueError:  # an empty cell
                    put(b"empty")
                    contents = _MISSING
                else:
                    if isinstance(contents, types.ModuleType):
                        # imported in the enclosing function: what this code reads in it
                        code = f.__code__
                        self.module(contents, _read_in(code, code.co_freevars[at]), escaping(code))
                    else:
                        self.value(contents)
                if deps is not None:
                    deps.append((cell, "cell_contents", contents))
        attrs = {k: v for k, v in f.__dict__.items() if k != "__module__"}
        if attrs:
            put(b"attrs")
            self._dict(b"{", dict(sorted(attrs.items())))
            if deps is not None:  # ``helper.factor = 3`` between two calls
                deps.extend((f.__dict__, k, v) for k, v in attrs.items())
        self.globals_of(f.__code__, f.__globals__)

    def globals_of(self, code: types.CodeType, namespace: dict[str, Any]) -> None:
        """Feed the value of every global ``code`` (or code nested in it) names; the
        whole namespace where the code calls ``globals()`` (see :meth:`_computed`)."""
        own = self._computed(code, namespace)
        names = _names(code)
        put = self.put
        put(b"globals")
        deps = self.deps
        table: Any = namespace.get("__builtins__")
        if isinstance(table, types.ModuleType):
            table = vars(table)
        for name in sorted(names):
            if deps is not None:
                deps.append((namespace, name, namespace.get(name, _MISSING)))
            if name not in namespace:
                if type(table) is dict and name in table:
                    self._builtin(table, name)
                continue
            value = namespace[name]
            put_text(put, name)
            try:
                if isinstance(value, types.ModuleType):
                    self.module(value, _read_in(code, name), escaping(code))
                else:
                    self.value(value)
            except UncacheableError as exc:
                raise _located(exc, f"the global {name} of {namespace.get('__name__')}") from None
        put(b";")
        if own:
            self._own_namespace(namespace)
        imports = _imports(code)
        if imports:
            self.imported(imports, _package_of(namespace), code)

    def _computed(self, code: types.CodeType, namespace: dict[str, Any]) -> bool:
        """Whether ``code`` reads its own module by names it computes (``globals()[name]``);
        raises :class:`UncacheableError` where it reads a namespace the walk cannot tell
        (``sys.modules[name].X``, ``importlib.import_module(name).X``, ``eval``,
        ``f.__globals__[name]``): a value that decides the result would be outside the
        key, and an edit of it a wrong hit (fixU)."""
        own, unknown = computed_reads(code)
        if unknown is not None:
            where = f"{namespace.get('__name__')}.{getattr(code, 'co_qualname', code.co_name)}"
            exc = UncacheableError(
                f"{where} reads values by a name it computes, through {unknown}: "
                "what it reads cannot be keyed"
            )
            exc.where = where
            raise exc
        return own

    def _own_namespace(self, namespace: dict[str, Any]) -> None:
        """The namespace of a function that calls ``globals()``: whole, as a module met as
        a value is (:meth:`_whole_module`), once a walk."""
        self.put(b"G*")
        mod = sys.modules.get(str(namespace.get("__name__")))
        if isinstance(mod, types.ModuleType) and vars(mod) is namespace:
            self.module(mod, None)
        elif not self._seen(namespace):
            self._whole_module(namespace)

    def _builtin(self, table: dict[str, Any], name: str) -> None:
        """A name the code finds in ``builtins`` (``table``) that is no builtin of
        Python's own.

        A program (or a tool: ``kernprof``'s ``profile``) can put a value there,
        ``builtins.SHOTS = 100``, which the code then reads as a global: it was
        left out of the key. Python's own builtins add nothing (keys stay as
        they were).
        """
        value = table[name]
        if name.startswith("__") or value is None or type(value) is bool:
            return
        if value is Ellipsis or value is NotImplemented:
            return
        mod = _module_of(value)
        if mod in ("builtins", "_sitebuiltins"):
            return
        if isinstance(value, (types.BuiltinFunctionType, type)) and is_library(mod):
            return  # ``open`` (io's), a library's own addition
        if self.deps is not None:
            self.deps.append((table, name, value))
        put = self.put
        put(b"builtin")
        put_text(put, name)
        self.value(value)

    def imported(self, imports: Imports, package: str, code: types.CodeType) -> None:
        """The modules that ``import`` statements in the code being walked name.

        A module imported inside a function (``import helpers`` in its body, so
        that the workers import it) is no global of the function: it is keyed
        here, like a global module (what ``code`` reads in it: :func:`_read_in`). One that
        this process has not imported (rank 0 of an MPI job does not run the task)
        is keyed by its file: a library's by name and version, the user's own by
        its source bytes and, the same way, the modules that source imports.
        """
        put = self.put
        put(b"imports")
        for name, level, fromlist in imports:
            full = _absolute(name, level, package)
            if full is not None:
                self._import(full, fromlist, code)
        put(b";")

    def _import(self, full: str, fromlist: tuple[str, ...], code: types.CodeType) -> None:
        """One ``import full`` (``from full import fromlist``), its parent packages first.

        ``import a.b`` runs ``a/__init__.py`` too and binds ``a``: the code reads
        ``a.X`` as well as ``a.b.Y``. Only ``a.b`` was keyed, so an edit to ``a``'s
        ``X`` kept the key.
        """
        dots = [i for i, c in enumerate(full) if c == "."]
        for i in dots:
            self._import_one(full[:i], (), code)
        self._import_one(full, fromlist, code)

    def _import_one(self, full: str, fromlist: tuple[str, ...], code: types.CodeType) -> None:
        """One module of an ``import`` (see :meth:`_import`); ``code``, the code importing it."""
        put_text(self.put, full)
        mod = sys.modules.get(full)
        if isinstance(mod, types.ModuleType):
            # (by its last name: ``import a.b as c`` puts ``b`` among the names escaping)
            self.module(mod, _read_in(code, full.rpartition(".")[2]), escaping(code))
            if is_library(full):
                return
            ns = vars(mod)
            subs = [s for s in fromlist if s not in ns and f"{full}.{s}" not in sys.modules]
        else:
            subs = list(fromlist) if self._module_file(full) else []
        for sub in subs:  # ``from package import module``: a module not imported yet
            self._module_file(f"{full}.{sub}")

    def _module_file(self, name: str) -> bool:
        """A module not imported in this process, by its file (see :meth:`imported`);
        True when it is the user's own."""
        put = self.put
        top = name.partition(".")[0]
        if top in LIBRARY_TOPS or top in sys.builtin_module_names:
            _library_module(put, name)
            return False
        seen = self.files
        if name in seen:
            put(b"@file")
            put_text(put, name)
            return True
        seen.add(name)
        origin, source = _find_source(name)
        if origin is None:
            put(b"nofile")  # the import fails in the task too (or a namespace package)
            return False
        if is_library_path(origin):
            _library_module(put, name)
            return False
        put(b"UF")
        put(hashlib.blake2b(source or b"", digest_size=32).digest())
        code = _compiled(origin, source)
        if code is not None:
            init = os.path.basename(origin).startswith("__init__.")
            package = name if init else name.rpartition(".")[0]
            for sub, level, fromlist in _imports(code):
                full = _absolute(sub, level, package)
                if full is not None:
                    self._import(full, fromlist, code)
        return True

    def module(
        self,
        mod: types.ModuleType,
        attrs: Iterable[str] | None,
        objects: frozenset[str] = frozenset(),
    ) -> None:
        """A module: by name and version; a module of the user's own, also the
        attributes named in the code being walked (``helpers.f`` covers ``f``), or its
        whole namespace (``attrs`` None: :meth:`_whole_module`) where it is met as a
        value: a class attribute ``cfg = cfgmod`` read as ``self.cfg.SHOTS``, a module
        passed as an argument (review48 F3: keyed by its name alone, an edited
        ``SHOTS`` gave the old result), or one the code uses as an object (see
        :func:`_read_in`). ``objects``: the names the code uses as objects
        (:func:`qshpc.cache.keyreads.escaping`), for a module an attribute holds."""
        put = self.put
        name = mod.__name__
        if is_library(name):
            _library_module(put, name)
            return
        ns = vars(mod)
        if self._seen(mod):
            keyed = self.modules.get(id(mod), None)
            if keyed is None:
                return  # keyed whole already (or not a module this walk keys by names)
            if attrs is None:
                put(b"UM+")
                self._own_maps()  # (met by the walk this one's set is in: maybe borrowed)
                self.modules[id(mod)] = None
                self._whole_module(ns)
                return
            more = set(attrs) - keyed
            if not more:
                return
            put(b"UM+")
            self._own_maps()
            self.modules[id(mod)] = keyed | more  # (a new set: the old may be shared)
            self._module_attrs(mod, ns, more, attrs, objects)
            return
        put(b"UM")
        put_text(put, name)
        put(_compiled_digest(name))
        if type(mod) is not types.ModuleType:
            # a module whose class is its own (``sys.modules[__name__].__class__ = M``):
            # its attributes may come from the class, its properties (review56 H3)
            put(b"MC")
            self.value(type(mod))
        if attrs is None:
            self.modules[id(mod)] = None
            self._whole_module(ns)
            return
        names = set(attrs)
        self.modules[id(mod)] = set(names)
        self._module_attrs(mod, ns, names, attrs, objects)

    def _module_attrs(
        self,
        mod: types.ModuleType,
        ns: dict[str, Any],
        names: set[str],
        attrs: Iterable[str],
        objects: frozenset[str],
    ) -> None:
        """The attributes ``names`` of a module of the user's own (:meth:`module`)."""
        put = self.put
        name = mod.__name__
        deps = self.deps
        hook = ns.get("__getattr__")
        if hook is not None and any(a not in ns and not a.startswith("__") for a in names):
            # PEP 562: ``mod.X`` with no ``X`` in the module is what its ``__getattr__``
            # returns: keyed by that function, and what it reads (fixU)
            if deps is not None:
                deps.append((ns, "__getattr__", hook))
            put(b"__getattr__")
            try:
                self.value(hook)
            except UncacheableError as exc:
                raise _located(exc, f"{name}.__getattr__") from None
        for attr in sorted(names):
            if deps is not None and not attr.startswith("__"):
                deps.append((ns, attr, ns.get(attr, _MISSING)))
            if attr in ns and not attr.startswith("__"):
                put_text(put, attr)
                value = ns[attr]
                try:
                    if isinstance(value, types.ModuleType):  # ``pkg.sub``: whole, or as named
                        self.module(value, None if attr in objects else attrs, objects)
                    else:
                        self.value(value)
                except UncacheableError as exc:
                    raise _located(exc, f"{name}.{attr}") from None
        put(b";")

    def _whole_module(self, ns: dict[str, Any]) -> None:
        """A module of the user's own met as a value: every name of its namespace but
        the import machinery's (:data:`_MODULE_SKIP`), ``_private`` ones too.

        What of it the code reads is not known there (``self.cfg._SCALE``, ``mod._K``;
        review49 F6: only the public names were keyed, an edited ``_SCALE`` gave the old
        result on ``--resume`` and from the cache). A value that cannot be hashed (a lock,
        an open file) is keyed by its name alone, as in a class's namespace: it decides
        no result. A module it holds is walked whole too (each module once a walk).
        """
        put = self.put
        put(b"*")
        deps = self.deps
        if deps is not None:  # a name set later (``cfgmod._EXTRA = 5``): see :data:`_SHAPE`
            deps.append((ns, _SHAPE, _names_in(ns)))
        for attr in sorted(list(ns)):
            if attr in _MODULE_SKIP:
                continue
            value = ns[attr]
            if deps is not None:
                deps.append((ns, attr, value))
            put_text(put, attr)
            depth = self.depth
            try:
                self.value(value)  # a module: whole (:meth:`_other`)
            except UncacheableError as exc:
                if not _no_data(value):  # (an object holding a lock and data: review51 F3)
                    raise _located(exc, f"{ns.get('__name__')}.{attr}") from None
                self.depth = depth
                put(b"?")
        put(b";")

    def code(self, co: types.CodeType) -> None:
        """A code object, without its file name and line numbers."""
        put = self.put
        put(b"C")
        put_text(put, co.co_name)
        put(
            b"%d,%d,%d,%d,%d;"
            % (co.co_argcount, co.co_posonlyargcount, co.co_kwonlyargcount, co.co_nlocals,
               co.co_flags)
        )  # fmt: skip
        put(b"%d:" % len(co.co_code))
        put(co.co_code)
        table = getattr(co, "co_exceptiontable", b"")
        put(b"%d:" % len(table))
        put(table)
        for names in (co.co_names, co.co_varnames, co.co_freevars, co.co_cellvars):
            put(b"n%d;" % len(names))
            for n in names:
                put_text(put, n)
        put(b"k%d;" % len(co.co_consts))
        for c in co.co_consts:
            if isinstance(c, types.CodeType):
                self.code(c)
            else:
                self.value(c)

    def klass(self, cls: type) -> None:
        if is_library(_module_of(cls)) and "<locals>" not in cls.__qualname__:
            self._named(b"LC", cls)
            return
        if self._seen(cls):
            return
        if self.named is not None:
            self.named.append(cls)
        if self.memo and not (self.canon or self.undated or self.in_pm) and not _unmemoized(cls):
            digest = _class_digest(cls, self)
            if digest is not None:
                self.put(b"K#")
                self.put(digest)
                return
        self.class_body(cls)

    def class_body(self, cls: type) -> None:
        """A class of the user's own, walked (see :meth:`klass`)."""
        put = self.put
        put(b"K")
        put_text(put, cls.__qualname__)
        put(_compiled_digest(_module_of(cls)))  # a class of a compiled module: its file
        self.value(cls.__bases__)
        meta = type(cls)
        if meta is not type:
            self.value(meta)
        put(b"ns")
        ns = vars(cls)
        if self.deps is not None:
            self.deps.append((ns, _SHAPE, _names_in(ns)))  # a name set later: see _SHAPE
            # A name this class inherits from a base of the user's own, set on the class
            # itself later (``A.x = 5`` over ``Base.x``), changes what the code reads.
            for base in cls.__mro__[1:]:
                if not is_library(_module_of(base)):
                    self.deps.extend((ns, n, _MISSING) for n in vars(base) if n not in ns)
        for name, value in sorted(ns.items()):
            if name in _CLASS_SKIP:
                continue
            if self.deps is not None:
                self.deps.append((ns, name, value))
            put_text(put, name)
            try:
                self.value(value)
            except UncacheableError as exc:
                # Machinery a metaclass or decorator added (ABC's _abc_impl), a lock:
                # its name is all the key keeps. Anything else (an object holding a lock
                # beside data, an open file, a module holding one) leaves the call
                # uncached: keyed by its name, an edit of its data gave the old result
                # (review51 F3).
                if not _no_data(value):
                    raise _located(exc, f"{cls.__qualname__}.{name}") from None
                put(b"?")
        put(b";")


#: Attributes that library classes set to a value of their own per process, which
#: decides no result: Aer's quantum errors draw a ``uuid4`` as their id (an
#: instruction label), and a transpiler pass keeps ``hash()`` of its arguments
#: (string hashing: per process), so a noise model, or a simulator holding one
#: (``NoiseModel.from_backend`` holds a pass), had a new key in every run. By the
#: qualified name of the class that sets them.
_RANDOM_ATTRS = {
    "qiskit_aer.noise.errors.base_quantum_error.BaseQuantumError": frozenset(("_id",)),
    "qiskit.transpiler.basepasses.BasePass": frozenset(("_hash",)),
}
_random_attrs: dict[type, frozenset[str]] = {}

#: What a pass manager's ``run`` leaves behind, which decides no later result: the
#: property set of the last run, on the pass manager and on each pass it ran (a new
#: one is made at each ``run`` and handed to every pass), and what a pass keeps
#: from one run for the next. Walked, a preset pass
#: manager that had run once had a new key in every process (review43 M2). A pass's
#: own is left out only inside a pass manager: a pass called alone (``pass_(qc)``)
#: starts from its last property set.
_RUN_STATE = {
    "qiskit.passmanager.base_passmanager.BasePassManager": frozenset(("property_set",)),
    "qiskit.passmanager.base_tasks.GenericPass": frozenset(("property_set",)),
    # what a run found per qubit, kept for the next (made from the qubit count alone)
    "qiskit.transpiler.passes.optimization.optimize_1q_decomposition."
    "Optimize1qGatesDecomposition": frozenset(("_state", "_local_decomposers_cache")),
}
_PASS_MANAGER = "qiskit.passmanager.base_passmanager.BasePassManager"
_run_states: dict[type, frozenset[str]] = {}
_pass_managers: dict[type, bool] = {}
_EMPTY: dict[Any, Any] = {}
_DICT_KEYS, _DICT_VALUES, _DICT_ITEMS = (
    type(_EMPTY.keys()),
    type(_EMPTY.values()),
    type(_EMPTY.items()),
)


def _run_state(cls: type) -> frozenset[str]:
    """The attributes of ``cls``'s state that :data:`_RUN_STATE` names."""
    return _attrs_named(_RUN_STATE, _run_states, cls)


def _is_pass_manager(cls: type) -> bool:
    known = _pass_managers.get(cls)
    if known is None:
        names = {f"{_module_of(b)}.{b.__qualname__}" for b in cls.__mro__}
        known = _pass_managers[cls] = _PASS_MANAGER in names
    return known


def _random_state(cls: type) -> frozenset[str]:
    """The attributes of ``cls``'s state that :data:`_RANDOM_ATTRS` leaves out of keys."""
    return _attrs_named(_RANDOM_ATTRS, _random_attrs, cls)


def _attrs_named(
    table: dict[str, frozenset[str]], memo: dict[type, frozenset[str]], cls: type
) -> frozenset[str]:
    """The attributes that ``table`` names for ``cls`` and its bases (kept in ``memo``)."""
    found = memo.get(cls)
    if found is None:
        found = frozenset()
        for base in cls.__mro__:
            found |= table.get(f"{_module_of(base)}.{base.__qualname__}", frozenset())
        memo[cls] = found
    return found


#: Classes whose state holds dicts in an order that changes from one process to the
#: next, an order that is no part of their value: Qiskit's ``Target`` keeps its maps
#: (instruction name to qargs to properties, qargs to names, ...) in an order built
#: from Rust hash maps and Python sets (``PYTHONHASHSEED`` does not fix it), so a
#: target, and what holds one (a preset pass manager, ``AerSimulator().target``),
#: had a new key in every process. Their dicts are walked sorted by the digest of
#: each key: the same maps in another order are one key, another map is another.
#: By the qualified name of the class (or a base).
_UNORDERED = frozenset((
    "qiskit.transpiler.target.Target",
    # a gate error per qubit and gate name, from a Rust hash map (optimization passes)
    "qiskit._accelerate.euler_one_qubit_decomposer.OneQubitGateErrorMap",
    # the commutation library: pairs of gate names to their commutation, a Rust hash map
    "qiskit._accelerate.commutation_checker.CommutationChecker",
))  # fmt: skip
#: Classes whose state holds the time it was made, which decides no result: Aer's
#: ``AerSimulator.from_backend(backend)`` makes backend properties whose every gate
#: and qubit property is dated ``datetime.now()``, so such a simulator had a new key
#: in every run. Their dates are keyed as one token (their values, still keyed, say
#: what a simulation uses); their gates are listed, and their maps built, in the
#: order of the backend's target, so their dicts are walked sorted too.
_UNDATED = frozenset((
    "qiskit_aer.backends.backendproperties.AerBackendProperties",
    "qiskit_aer.backends.backendproperties.GateProperties",
    "qiskit_aer.backends.backendproperties.Nduv",
))  # fmt: skip
_SORTED, _NO_DATES = 1, 2
_DATE_TYPES = frozenset((datetime.datetime, datetime.date))
_walk_modes: dict[type, int] = {}


def _walk_mode(cls: type) -> int:
    """:data:`_SORTED` when ``cls`` (or a base) is in :data:`_UNORDERED`, with
    :data:`_NO_DATES` when it is in :data:`_UNDATED` (then sorted too); else 0."""
    known = _walk_modes.get(cls)
    if known is None:
        names = {f"{_module_of(b)}.{b.__qualname__}" for b in cls.__mro__}
        known = _SORTED if names & _UNORDERED else 0
        if names & _UNDATED:
            known = _SORTED | _NO_DATES
        _walk_modes[cls] = known
    return known


#: Attributes of library classes that hold a collection built in an order that
#: changes from one process to the next (from a set, a Rust hash map), an order of
#: no meaning to the class: a list or tuple there is walked as a set, a dict sorted
#: by the digest of each key; ``"*"``: the order of the attributes themselves (a
#: class that sets them looping over a set). ``StagedPassManager`` sets its stages
#: in set order; ``BasisTranslator`` keeps its target basis as the list it was given
#: (a target's operation names, in their changing order) and reads it as a set;
#: the preset pass managers' control-flow check lists names in a frozenset's order.
#: By the qualified name of the class that sets them.
_LOOSE_STATE = {
    "qiskit.transpiler.passmanager.StagedPassManager": frozenset(("*",)),
    "qiskit.transpiler.passes.basis.basis_translator.BasisTranslator": frozenset(
        ("_target_basis",)
    ),
    # its gates, listed in the order of the backend's target (see _UNDATED)
    "qiskit_aer.backends.backendproperties.AerBackendProperties": frozenset(("gates",)),
    # the control-flow names a backend lacks, listed in the order of a frozenset
    "qiskit.transpiler.preset_passmanagers.common._InvalidControlFlowForBackend": frozenset(
        ("unsupported",)
    ),
}
_loose_states: dict[type, frozenset[str]] = {}


def _loose_state(cls: type) -> frozenset[str]:
    """The attributes of ``cls``'s state that :data:`_LOOSE_STATE` names."""
    return _attrs_named(_LOOSE_STATE, _loose_states, cls)


def _no_data_types() -> tuple[type, ...]:
    import abc

    probe = abc.ABCMeta("probe", (), {})  # (its registry: ``_abc._abc_data``, no stub)

    return (
        type(threading.Lock()),
        type(threading.RLock()),
        threading.Condition,
        threading.Event,
        threading.Semaphore,
        type(vars(probe)["_abc_impl"]),
    )


_NO_DATA: tuple[type, ...] = _no_data_types()


def _no_data(value: Any) -> bool:
    """True for a value that cannot be hashed and holds nothing a result reads: a lock,
    a condition, an event, a semaphore, ABC's registry (keyed by its name alone)."""
    return isinstance(value, _NO_DATA)


#: ``__slotnames__``: copyreg's cache, set on the class when an object of it is first
#: pickled (rank 0 pickles the arguments, a worker only loads them), from ``__slots__``.
_CLASS_SKIP = frozenset(("__dict__", "__weakref__", "__module__", "__doc__", "__slotnames__"))
#: What a module's namespace holds for the import machinery, set per process or at run
#: time (``__warningregistry__`` at a warning, ``__annotations__`` when first read), and
#: its docstring (as a class's): left out of a module walked whole (:meth:`_Walk._whole_module`).
_MODULE_SKIP = frozenset((
    "__name__", "__file__", "__loader__", "__spec__", "__cached__", "__builtins__",
    "__package__", "__path__", "__doc__", "__warningregistry__", "__annotations__",
    "__annotate__", "__conditional_annotations__",
))  # fmt: skip

#: ``id(cls) -> (weak reference, placed, digest, what its walk read, misses)``
#: (:func:`_class_digest`; what it read None: walked at each meeting; a name added to a
#: namespace it read: a ``_SHAPE`` dep of it).
_CLASS_DIGESTS: dict[int, tuple[Any, bool, bytes, Deps | None, int]] = {}
#: A class whose digest was taken again this many times in a row is walked at each
#: meeting, without the bookkeeping: a class of ``__main__`` that cloudpickle sends by
#: value gets new methods at each load on a worker, and its memo never held.
_MEMO_TRIES = 3


class _ClassCycle(Exception):
    """A class met again while its own memoized digest is being taken (a base class whose
    factory builds a subclass, two classes whose methods use each other): ``members``,
    the classes of the cycle, the first one first."""

    def __init__(self, members: list[type]) -> None:
        super().__init__()
        self.members = members


#: Classes whose memoized digest is being taken, in this thread.
_DIGESTING = threading.local()
#: Classes found in a cycle (by id, with a weak reference): each is walked whole where it
#: is met (the walk's own ``_seen`` ends the cycle), never memoized: whichever class of
#: the cycle a process meets first, the same bytes are walked, and every class's code
#: is in them.
_CYCLIC: dict[int, Any] = {}


def _unmemoized(cls: type) -> bool:
    known = _CYCLIC.get(id(cls))
    return known is not None and known() is cls


def _class_digest(cls: type, walk: _Walk) -> bytes | None:
    """:func:`_memo_class_digest`, or None when ``cls`` is in a cycle of classes (the
    caller then walks it whole, as before the memo).

    review48 F1: each class's digest was a walk of its own; two classes that refer to
    each other walked each other until a RecursionError, so their calls were never
    cached and always ran again on resume.
    """
    stack: list[type] | None = getattr(_DIGESTING, "stack", None)
    if stack is None:
        stack = _DIGESTING.stack = []
    for i, c in enumerate(stack):
        if c is cls:
            raise _ClassCycle(stack[i:])
    stack.append(cls)
    try:
        return _memo_class_digest(cls, walk)
    except _ClassCycle as cycle:
        if cycle.members[0] is not cls:
            raise  # up to the walk of the cycle's first class
        for c in cycle.members:
            try:
                _CYCLIC[id(c)] = weakref.ref(c)
            except TypeError:  # pragma: no cover - classes take weak references
                pass
        return None
    finally:
        stack.pop()


def _memo_class_digest(cls: type, walk: _Walk) -> bytes:
    """The digest of a user's class met in a walk of arguments: walked alone, once per
    process, and again when a name its walk read was rebound or holds a value that can
    change in place (``Model.scale = 2``, a method replaced: :func:`bindings_unchanged`).

    Walking a class (its methods' code, what they read) at every call of a task taking
    one of its objects cost ~50-65 us a call (review46 M4). ``walk``'s deps, when it
    takes them, receive what the class's walk read.
    """
    known = _CLASS_DIGESTS.get(id(cls))
    misses = 0
    if known is not None and known[0]() is cls and known[1] == walk.placed:
        if known[3] is not None and bindings_unchanged(known[3]):
            if walk.deps is not None:
                walk.deps.extend(known[3])
            return known[2]
        misses = known[4] + 1
    memo = misses < _MEMO_TRIES
    h = hashlib.blake2b(digest_size=32)
    deps: Deps | None = (
        [(cls, "__bases__", cls.__bases__)] if memo or walk.deps is not None else None
    )
    sub = _Walk(h.update, deps, walk.qpy)
    sub.placed, sub.memo = walk.placed, True
    sub._seen(cls)
    sub.class_body(cls)
    digest = h.digest()
    try:
        ref = weakref.ref(cls)
    except TypeError:  # pragma: no cover - classes take weak references
        return digest
    _CLASS_DIGESTS[id(cls)] = (ref, walk.placed, digest, deps if memo else None, misses)
    if walk.deps is not None and deps is not None:
        walk.deps.extend(deps)
    return digest


def _module_of(obj: Any) -> str:
    """The module ``obj`` comes from ("" when it does not say).

    Some classes made at run time name none (``__module__`` is None: Qiskit's
    singleton gates, ``_SingletonHGate``): such a class is taken to come from
    the module of its first base that names one, whose version then keys it.
    """
    mod = getattr(obj, "__module__", None)
    if isinstance(mod, str) and mod:
        return mod
    if isinstance(obj, type):
        for base in obj.__mro__[1:]:
            mod = getattr(base, "__module__", None)
            if isinstance(mod, str) and mod and mod != "builtins":
                return mod
        return ""
    mod = getattr(getattr(obj, "__objclass__", None), "__module__", None)
    return mod if isinstance(mod, str) else ""


def _read_in(code: types.CodeType, name: str) -> frozenset[str] | None:
    """What ``code`` reads in a module of the user's own it holds under ``name``: the
    names it looks up, or the whole module (None: :meth:`_Walk._whole_module`) where it
    uses the module as an object: ``getattr(helpers, name)`` (review49 L1: an edit of
    the function it reached kept its key), ``vars(helpers)``, ``read(helpers, "K")``.

    review52 F3: a ``getattr`` on anything (``getattr(o, "real", 1)``) made every module
    the code names whole, so one holding a ``queue.Queue`` left the call uncached, and
    any name set in it changed the key (:func:`qshpc.cache.keyreads.escaping`)."""
    return None if name in escaping(code) else _names(code)


#: Every name code and the code nested in it look up (:func:`qshpc.cache.keyreads.code_names`).
_names = code_names


#: ``(module name, level, names imported from it)`` of the ``import`` statements of code.
Imports = tuple[tuple[str, int, tuple[str, ...]], ...]


@functools.lru_cache(maxsize=1024)
def _imports(code: types.CodeType) -> Imports:
    """The ``(module name, level, names imported from it)`` of every ``import`` in ``code``
    and the code nested in it."""
    found: list[tuple[str, int, tuple[str, ...]]] = []
    consts: list[Any] = []
    import dis

    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_CONST", "LOAD_SMALL_INT"):
            consts = [*consts[-1:], ins.argval]
        elif ins.opname == "IMPORT_NAME":
            level = consts[0] if len(consts) == 2 and type(consts[0]) is int else 0
            names = consts[-1] if consts and type(consts[-1]) is tuple else ()
            found.append((str(ins.argval), level, tuple(n for n in names if n != "*")))
            consts = []
        else:
            consts = []
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            found.extend(_imports(c))
    return tuple(dict.fromkeys(found))


def _package_of(namespace: dict[str, Any]) -> str:
    """The package a module's relative imports start from."""
    package = namespace.get("__package__")
    if isinstance(package, str):
        return package
    name = namespace.get("__name__")
    return name.rpartition(".")[0] if isinstance(name, str) else ""


def _absolute(name: str, level: int, package: str) -> str | None:
    """The absolute name of ``import`` ``name`` at ``level`` in ``package`` (None: none)."""
    if not level:
        return name or None
    parts = package.split(".") if package else []
    if level - 1 > len(parts) or (level - 1 == len(parts) and not name):
        return None
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{name}" if base and name else (base or name or None)


def _compiled_digest(module: str) -> bytes:
    """The digest of the file of a compiled module of the user's own (a Cython or
    pybind11 build beside the program), b"" for any other module.

    Its functions and classes hold no code that Python can read, so they were
    keyed by their names alone: a rebuilt module with other results gave the
    old ones back. Read once per file and process: a process runs the build it
    loaded first (Python does not load an extension module twice), so a file
    rebuilt after the process's first key of it keeps that key.
    """
    known = _compiled_files.get(module)
    if known is not None:
        return known
    path = getattr(sys.modules.get(module), "__file__", None)
    digest = b""
    if isinstance(path, str) and not path.endswith((".py", ".pyc")):
        from importlib.machinery import EXTENSION_SUFFIXES

        if path.endswith(tuple(EXTENSION_SUFFIXES)):
            h = hashlib.blake2b(b"so", digest_size=32)
            try:
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
            except OSError as exc:
                raise UncacheableError(f"compiled module {module}: {exc}") from None
            digest = h.digest()
    _compiled_files[module] = digest
    return digest


_compiled_files: dict[str, bytes] = {}


def _find_source(name: str) -> tuple[str | None, bytes | None]:
    """The file of module ``name`` and its bytes, found without running any code of it
    (nor of its parent packages): ``(None, None)`` when there is none."""
    from importlib.machinery import PathFinder

    path: list[str] | None = None
    spec = None
    parts = name.split(".")
    for i in range(len(parts)):
        here = ".".join(parts[: i + 1])
        loaded = sys.modules.get(here)
        if loaded is not None and i < len(parts) - 1:
            path = list(getattr(loaded, "__path__", None) or [])
            continue
        try:
            spec = PathFinder.find_spec(here, path)
        except (ImportError, ValueError, OSError):
            return None, None
        if spec is None:
            return None, None
        path = list(spec.submodule_search_locations or [])
    origin = getattr(spec, "origin", None)
    if not isinstance(origin, str) or not os.path.isfile(origin):
        return None, None
    try:
        with open(origin, "rb") as f:
            return origin, f.read()
    except OSError:
        return origin, None


def _compiled(origin: str, source: bytes | None) -> types.CodeType | None:
    """The module code of a source file, to find what it imports (None: not Python source)."""
    if source is None or not origin.endswith(".py"):
        return None
    try:
        return compile(source, origin, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None


# -- circuits -----------------------------------------------------------------------------


def _library_module(put: Put, name: str) -> None:
    """A library's module in a key: by its name and its distribution's version."""
    put(b"LM")
    put_text(put, name)
    put_text(put, version_of(name))


def put_circuit(put: Put, obj: Any, qpy: Qpy | None, standard: bool = False) -> None:
    """The tokens of a ``QuantumCircuit`` (or a subclass) met in a value: by its QPY bytes
    (:func:`~qshpc.cache.keycircuit.circuit_digest`; ``standard``: see there), those of
    ``qpy`` when it holds them (else dumped, and kept there when ``qpy`` is a dict)."""
    put(b"Q")
    known = qpy.get(id(obj)) if qpy is not None else None
    data = known[1] if known is not None and known[0] is obj else None
    if data is None and qpy is not None:
        # The caller pickles the call after this (a miss): it takes these bytes.
        data = (_kc._QPY or _qpy_module()).dump(obj)
        qpy[id(obj)] = (obj, data)
    put(circuit_digest(obj, data, walk_value, standard))


def walk_value(put: Put, value: Any) -> None:
    """``value`` walked into ``put`` as a call's arguments are."""
    _Walk(put).value(value)
