"""The cache key of a task call: what decides its result, hashed alike in every process.

A key is a 256-bit BLAKE2b digest (64 hex digits) of, in order:

1. the key scheme and the *environment*: Python's version, the versions of
   qshpc (and, when qshpc runs from a source tree rather than an installed
   package, the names, sizes and times of its files), qiskit, qiskit-aer (or
   qiskit-aer-gpu: the distribution's name says which build) and numpy, and
   the Aer settings a rank takes from its environment (``QSHPC_AER_DEVICE``);
2. the task function *by value* (:func:`function_digest`), and the
   environment variables its target sets around each call (:func:`task_digest`);
3. the task's seed (None when the job has no seed);
4. the arguments by value: positional in order, keyword arguments sorted by
   name (``f(a=1, b=2)`` and ``f(b=2, a=1)`` are one call), or in the call's
   order for a function that takes ``**kwargs`` (its ``kwargs`` keeps it: the
   last bit of the function's digest says which, :func:`_orders_kwargs`).

Pickle bytes are not stable enough to be a key: set order follows string
hashing (random per process), code objects carry their file name and line
numbers, a circuit's default name (``circuit-41``) counts the circuits the
process made before it, and a ``Parameter`` carries a random UUID. So values
are walked here and fed to the hash as typed tokens:

* ``None``, bools, ints, floats (their IEEE bytes), complex, str, bytes;
  lists, tuples and dicts in their order; sets and frozensets sorted by the
  digest of each item;
* numpy arrays by dtype, shape and content (object arrays item by item),
  numpy scalars by dtype and bytes;
* circuits by their QPY bytes (those the call's payload holds already,
  when the caller passes them: ``qpy`` of :func:`call_key`), dumped from a copy whose default name is
  replaced by ``circuit`` and whose parameters are replaced, in the circuit's
  own (sorted) order, by parameters of the same names with fixed UUIDs; a
  transpiled circuit's layout, and operations of no standard gate when it
  has two or more, keyed apart (QPY writes those in an order that changes
  between dumps); a ``Parameter`` or expression met elsewhere by its text,
  a ``ParameterVector`` by name and length;
* functions of the user's own code (the program file, modules beside it,
  anything not installed in site-packages or the standard library) by their
  code: bytecode, constants (nested code the same way), names, defaults,
  closure cells, attributes, and the value of every global the code names
  (and of ``module.attribute`` for the user's own modules). File names, line
  numbers and ``__module__`` are left out, so moving a function down a file
  or running the file from another folder keeps its key. A module the code
  imports in its body (``import helpers`` in the task) is keyed as a global
  module is; one this process has not imported, by its source file and the
  files of the user's own modules that it imports. Classes of the
  user's own code by their bases and namespace, the same way; what a
  compiled module of the user's own holds (no code Python reads) by the
  bytes of its file too;
* functions, classes and modules of installed packages by their qualified
  name and their package's version;
* an object whose class defines ``__qshpc_cache_digest__(self) -> bytes``
  by its class's qualified name and those bytes, not by its content: for an
  argument that knows a digest stable across processes when its own bytes
  are not (a circuit's QPY bytes, which hold each Parameter's random UUID;
  see :mod:`qshpc.primitives.blocks`);
* any other object by what pickle's ``__reduce_ex__`` returns for it (its
  class, and its state walked as above, less what a library draws anew for
  each object: :data:`_RANDOM_ATTRS`).

A value that cannot be walked (a lock, an open file, a generator) raises
:class:`UncacheableError`: such a call simply runs (it is not cached).
"""

from __future__ import annotations

import copyreg
import functools
import hashlib
import os
import re
import struct
import sys
import types
import weakref
from collections.abc import Callable, Iterable
from typing import Any

#: Part of every key; bump it when what a key covers changes.
KEY_SCHEME = b"qshpc-cache-key/3"
#: Key length in hex digits.
KEY_HEX = 64

_PACK_D = struct.Struct("<d").pack
_PACK_DD = struct.Struct("<dd").pack
_AUTO_NAME = re.compile(r"circuit-\d+")
_MAX_DEPTH = 200
#: The method by which a value gives its own digest (see the module doc).
_OWN_DIGEST = "__qshpc_cache_digest__"


class UncacheableError(Exception):
    """A value that cannot be hashed the same way in every process (the call is not cached)."""


# -- the environment -----------------------------------------------------------------


def _dist_version(*names: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return f"{name}=={version(name)}"
        except PackageNotFoundError:
            continue
    return f"{names[0]}: not installed"


@functools.cache
def environment() -> tuple[tuple[str, str], ...]:
    """What every key of this process covers besides the call: versions and Aer options.

    Read once per process from package metadata (nothing is imported).
    """
    from qshpc._version import __version__

    env = [
        ("scheme", KEY_SCHEME.decode()),
        ("python", f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}"),
        ("qshpc", __version__),
        ("qshpc-tree", _source_tree()),
        ("qiskit", _dist_version("qiskit")),
        ("qiskit-aer", _dist_version("qiskit-aer", "qiskit-aer-gpu")),
        ("numpy", _dist_version("numpy")),
    ]
    from qshpc import settings

    for s in settings.ALL.values():  # the Aer layer's settings (the device)
        if s.name.startswith(_AER_SETTINGS):
            try:
                env.append((s.name, str(s.get())))
            except settings.SettingError:
                env.append((s.name, "?"))
    return tuple(env)


_AER_SETTINGS = "QSHPC" + "_AER_"


def _source_tree(root: str | None = None) -> str:
    """What qshpc's own code is, beyond its version, when it runs from a source tree.

    An installed qshpc (site-packages) is the code its version names: "". One
    run from a checkout (``pip install -e``, ``PYTHONPATH``) changes without a
    new version: a digest of the name, size and modification time of each of
    its ``.py`` files (one ``stat`` each, ~1 ms, once per process), so that an
    edit to qshpc makes new keys instead of returning results of the old code.
    """
    if root is None:  # the qshpc package folder: .../qshpc/cache/keys.py
        root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    if os.path.join(root, "").startswith(_library_dirs()):
        return ""
    h = hashlib.blake2b(digest_size=16)
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(here, root)
        for name in sorted(files):
            if name.endswith(".py"):
                try:
                    st = os.stat(os.path.join(here, name))
                except OSError:
                    continue
                h.update(f"{rel}/{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


@functools.cache
def environment_digest() -> bytes:
    """Digest of :func:`environment`."""
    h = hashlib.blake2b(digest_size=32)
    for k, v in environment():
        _str(h.update, k)
        _str(h.update, v)
    return h.digest()


# -- which code is the user's ----------------------------------------------------------


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    import site
    import sysconfig

    dirs: set[str] = set()
    paths = sysconfig.get_paths()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(name):
            dirs.add(paths[name])
    try:
        dirs.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - virtualenv's old site.py
        pass
    user = site.getusersitepackages()
    if isinstance(user, str):
        dirs.add(user)
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs if d)


_LIBRARY_TOPS = frozenset(("qshpc", "qiskit", "qiskit_aer", "numpy", "scipy", "builtins"))
_library: dict[str, bool] = {}


def is_library(module: str | None) -> bool:
    """True when ``module`` belongs to an installed package or the standard library.

    Such code is keyed by name and version; everything else (the program
    file, ``__main__``, modules beside it, packages installed in editable
    mode) is the user's own code and is keyed by value.
    """
    if not module:
        return False
    top = module.partition(".")[0]
    known = _library.get(top)
    if known is None:
        known = _library[top] = _decide_library(top)
    return known


def _decide_library(top: str) -> bool:
    if top == "__main__":
        return False
    if top in _LIBRARY_TOPS or top in sys.builtin_module_names:
        return True
    mod = sys.modules.get(top)
    if mod is None:
        return top in sys.stdlib_module_names
    # A standard-library name is decided by where the module loaded comes from, as
    # any other: a program's own ``statistics.py`` or ``trace.py`` beside it is its code.
    places = [getattr(mod, "__file__", None), *list(getattr(mod, "__path__", None) or [])]
    places = [p for p in places if isinstance(p, str)]
    if not places:
        return True  # built into the interpreter
    libs = _library_dirs()
    return all(os.path.realpath(p).startswith(libs) for p in places)


_versions: dict[str, str] = {}


def _version_of(module: str) -> str:
    top = module.partition(".")[0]
    v = _versions.get(top)
    if v is None:
        if top in sys.builtin_module_names or (top in sys.stdlib_module_names and is_library(top)):
            v = ""  # the Python version is in the environment
        else:
            v = str(getattr(sys.modules.get(top), "__version__", "") or "") or _dist_of(top)
        _versions[top] = v
    return v


def _dist_of(top: str) -> str:
    """The installed version of the distribution that holds package ``top`` (many
    packages have no ``__version__``: their upgrades must change the keys too)."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    global _dists
    if _dists is None:
        try:
            _dists = packages_distributions()
        except Exception:  # pragma: no cover - a broken metadata folder
            _dists = {}
    found = []
    for dist in _dists.get(top, ()):
        try:
            found.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return ",".join(sorted(found)) or "?"


_dists: Any = None


# -- tokens ----------------------------------------------------------------------------

Put = Callable[[bytes], None]
#: ``id(circuit) -> (circuit, its QPY bytes)``, written for the call being keyed
#: (:func:`qshpc.task.payload.dumps`): those bytes are not dumped again.
Qpy = dict[int, tuple[Any, bytes]]
#: What a walk read, as ``(holder, name, value)``: ``holder[name]`` (a namespace)
#: or ``holder.name`` (a function's defaults, a closure cell) was ``value``.
Deps = list[tuple[Any, str, Any]]
_MISSING: Any = object()


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
    type(Ellipsis), type(NotImplemented),
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


def _str(put: Put, s: str) -> None:
    b = s.encode("utf-8", "surrogatepass")
    put(b"s%d:" % len(b))
    put(b)


class _Walk:
    """One walk: feeds the tokens of values to ``put``.

    ``refs`` numbers the functions, classes and modules already fed in this
    walk (a second meeting feeds the number: recursion and shared helpers);
    ``active`` holds the ids of the containers being walked (a cycle feeds a
    marker instead of looping).
    """

    __slots__ = ("active", "deps", "depth", "files", "keep", "put", "qpy", "refs")

    def __init__(self, put: Put, deps: Deps | None = None, qpy: Qpy | None = None) -> None:
        self.put = put
        #: QPY bytes of this call's circuits, dumped already (see :func:`call_key`).
        self.qpy = qpy
        self.refs: dict[int, int] = {}
        #: What ``refs`` numbers, kept alive for the walk: a function that a value's
        #: ``__reduce__`` made for the occasion dies after it, and the next one, made
        #: at the same address, was fed as a back-reference to it (its content unkeyed).
        self.keep: list[Any] = []
        self.active: set[int] = set()
        self.depth = 0
        self.files: set[str] = set()  # modules keyed by their file (see :meth:`imported`)
        #: When a list: every name binding the walk read (see :func:`bindings_unchanged`).
        self.deps = deps

    # values -----------------------------------------------------------------------
    def value(self, obj: Any) -> None:
        put = self.put
        t = type(obj)
        if t is str:
            _str(put, obj)
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
        self.put(tag + b"%d;" % len(d))
        value = self.value
        for k, v in d.items():
            value(k)
            value(v)
        self.put(b"}")
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
        sub.refs, sub.active, sub.depth = dict(self.refs), self.active, self.depth
        sub.keep = self.keep
        sub.value(obj)
        return h.digest()

    def _other(self, obj: Any) -> None:
        put = self.put
        t = type(obj)
        if t is set or t is frozenset:
            self._set(b"S" if t is set else b"Z", obj)
            return
        own = getattr(t, _OWN_DIGEST, None)
        if own is not None and callable(own):
            self._own_digest(t, obj, own)
            return
        np = sys.modules.get("numpy")
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
                _str(put, dt.str)
                put(obj.tobytes())
                return
        if t.__name__ == "ObjectRef" and getattr(t, "__module__", None) == "qshpc.program.refs":
            # Its id is per job: another job reuses the id for another object.
            raise UncacheableError("an ObjectRef nested in the arguments")
        if _module_of(t).startswith("qiskit"):
            circuit = sys.modules["qiskit.circuit"]
            if isinstance(obj, circuit.QuantumCircuit):
                put(b"Q")
                known = self.qpy.get(id(obj)) if self.qpy is not None else None
                data = known[1] if known is not None and known[0] is obj else None
                if data is None and self.qpy is not None:
                    # The caller pickles the call after this (a miss): it takes these bytes.
                    from qshpc.store import _qpy

                    data = _qpy.dump(obj)
                    self.qpy[id(obj)] = (obj, data)
                put(circuit_digest(obj, data))
                return
            if isinstance(obj, circuit.ParameterExpression):
                # By name and expression: a Parameter's UUID is new in every process.
                put(b"P")
                _str(put, _expression_text(obj))
                return
            if isinstance(obj, circuit.ParameterVector):
                # By name and length, as its elements are: its UUID is new in every process.
                put(b"PV")
                _str(put, obj.name)
                put(b"%d;" % len(obj))
                return
        if isinstance(obj, types.FunctionType):
            self.function(obj)
        elif isinstance(obj, type):
            self.klass(obj)
        elif isinstance(obj, types.ModuleType):
            self.module(obj, ())
        elif isinstance(obj, (types.BuiltinFunctionType, types.WrapperDescriptorType)):
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
            _str(put, obj.__name__)
        elif isinstance(obj, bytearray | memoryview):
            # Not bytes: ``x + b"!"`` is a bytearray, a view reads its items by its format.
            if isinstance(obj, memoryview):
                put(b"mv")
                _str(put, obj.format)
                put(b"%r;" % (obj.shape,))
            else:
                put(b"ba")
            b = bytes(obj)
            put(b"b%d:" % len(b))
            put(b)
        elif obj is Ellipsis or obj is NotImplemented:
            put(b"E" if obj is Ellipsis else b"NI")
        else:
            self._reduced(obj)

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
        _str(put, f"{t.__module__}.{t.__qualname__}")
        put(b"%d:" % len(digest))
        put(digest)

    def _array(self, arr: Any, np: Any) -> None:
        put = self.put
        put(b"A")
        dt = arr.dtype
        _str(put, dt.str if dt.fields is None else str(np.lib.format.dtype_to_descr(dt)))
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
        if type(state) is dict:
            drop = _random_state(type(obj))
            if drop:
                state = {k: v for k, v in state.items() if k not in drop}
            self._dict(b"{", state)
        else:
            self.value(state)
        if len(rest) > 1 and rest[1] is not None:
            self.value(list(rest[1]))
        if len(rest) > 2 and rest[2] is not None:
            self.value(list(rest[2]))
        self._leave(obj)

    def _named(self, tag: bytes, obj: Any) -> None:
        """An object pickle saves by reference: its qualified name (and package version)."""
        put = self.put
        put(tag)
        mod = _module_of(obj)
        if is_library(mod):
            _str(put, mod)
            _str(put, _version_of(mod))
        else:  # the user's own: "__main__" or not depends on how the file was run
            put(b"user")
            put(_compiled_digest(mod))  # a function of a compiled module: its file
        _str(put, str(getattr(obj, "__qualname__", getattr(obj, "__name__", repr(obj)))))

    def _seen(self, obj: Any) -> bool:
        """True (and the back-reference fed) when ``obj`` was fed already in this walk."""
        n = self.refs.get(id(obj))
        if n is not None:
            self.put(b"@%d;" % n)
            return True
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
        put = self.put
        put(b"F")
        _str(put, f.__qualname__)
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
            for cell in f.__closure__:
                try:
                    contents = cell.cell_contents
                except ValueError:  # an empty cell
                    put(b"empty")
                    contents = _MISSING
                else:
                    if isinstance(contents, types.ModuleType):
                        # imported in the enclosing function: what this code reads in it
                        self.module(contents, _names(f.__code__))
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
        """Feed the value of every global ``code`` (or code nested in it) names."""
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
            _str(put, name)
            if isinstance(value, types.ModuleType):
                self.module(value, names)
            else:
                self.value(value)
        put(b";")
        imports = _imports(code)
        if imports:
            self.imported(imports, _package_of(namespace), names)

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
        _str(put, name)
        self.value(value)

    def imported(self, imports: Imports, package: str, names: Iterable[str]) -> None:
        """The modules that ``import`` statements in the code being walked name.

        A module imported inside a function (``import helpers`` in its body, so
        that the workers import it) is no global of the function: it is keyed
        here, like a global module (``names``: what the code reads in it). One that
        this process has not imported (rank 0 of an MPI job does not run the task)
        is keyed by its file: a library's by name and version, the user's own by
        its source bytes and, the same way, the modules that source imports.
        """
        put = self.put
        put(b"imports")
        for name, level, fromlist in imports:
            full = _absolute(name, level, package)
            if full is not None:
                self._import(full, fromlist, names)
        put(b";")

    def _import(self, full: str, fromlist: tuple[str, ...], names: Iterable[str]) -> None:
        """One ``import full`` (``from full import fromlist``), its parent packages first.

        ``import a.b`` runs ``a/__init__.py`` too and binds ``a``: the code reads
        ``a.X`` as well as ``a.b.Y``. Only ``a.b`` was keyed, so an edit to ``a``'s
        ``X`` kept the key.
        """
        dots = [i for i, c in enumerate(full) if c == "."]
        for i in dots:
            self._import_one(full[:i], (), names)
        self._import_one(full, fromlist, names)

    def _import_one(self, full: str, fromlist: tuple[str, ...], names: Iterable[str]) -> None:
        """One module of an ``import`` (see :meth:`_import`)."""
        _str(self.put, full)
        mod = sys.modules.get(full)
        if isinstance(mod, types.ModuleType):
            self.module(mod, names)
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
        if top in _LIBRARY_TOPS or top in sys.builtin_module_names:
            _library_module(put, name)
            return False
        seen = self.files
        if name in seen:
            put(b"@file")
            _str(put, name)
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
                    self._import(full, fromlist, _names(code))
        return True

    def module(self, mod: types.ModuleType, attrs: Iterable[str]) -> None:
        """A module: by name and version; a module of the user's own, also the
        attributes named in the code being walked (``helpers.f`` covers ``f``)."""
        put = self.put
        name = mod.__name__
        if is_library(name):
            _library_module(put, name)
            return
        if self._seen(mod):
            return
        put(b"UM")
        _str(put, name)
        put(_compiled_digest(name))
        ns = vars(mod)
        deps = self.deps
        for attr in sorted(set(attrs)):
            if deps is not None and not attr.startswith("__"):
                deps.append((ns, attr, ns.get(attr, _MISSING)))
            if attr in ns and not attr.startswith("__"):
                _str(put, attr)
                value = ns[attr]
                if isinstance(value, types.ModuleType):
                    self.module(value, attrs)
                else:
                    self.value(value)
        put(b";")

    def code(self, co: types.CodeType) -> None:
        """A code object, without its file name and line numbers."""
        put = self.put
        put(b"C")
        _str(put, co.co_name)
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
                _str(put, n)
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
        put = self.put
        put(b"K")
        _str(put, cls.__qualname__)
        put(_compiled_digest(_module_of(cls)))  # a class of a compiled module: its file
        self.value(cls.__bases__)
        meta = type(cls)
        if meta is not type:
            self.value(meta)
        put(b"ns")
        ns = vars(cls)
        if self.deps is not None:
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
            _str(put, name)
            try:
                self.value(value)
            except UncacheableError:
                # Machinery a metaclass or decorator added (ABC's _abc_impl), a lock:
                # its name is all the key keeps.
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


def _random_state(cls: type) -> frozenset[str]:
    """The attributes of ``cls``'s state that :data:`_RANDOM_ATTRS` leaves out of keys."""
    drop = _random_attrs.get(cls)
    if drop is None:
        drop = frozenset()
        for base in cls.__mro__:
            drop |= _RANDOM_ATTRS.get(f"{_module_of(base)}.{base.__qualname__}", frozenset())
        _random_attrs[cls] = drop
    return drop


_CLASS_SKIP = frozenset(("__dict__", "__weakref__", "__module__", "__doc__"))


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


@functools.lru_cache(maxsize=1024)
def _names(code: types.CodeType) -> frozenset[str]:
    """Every name ``code`` and the code nested in it look up (globals and attributes)."""
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _names(c)
    return frozenset(names)


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


def is_library_path(path: str) -> bool:
    """True when ``path`` lies in site-packages or the standard library."""
    return os.path.realpath(path).startswith(_library_dirs())


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


def circuit_digest(circuit: Any, data: bytes | None = None) -> bytes:
    """Digest of a circuit's QPY bytes, with what differs between processes made fixed.

    ``data``: the circuit's QPY bytes (``qshpc.store._qpy.dump(circuit)``) when
    the caller has them already (the call's payload holds them): not dumped again.

    A default name (``circuit-41``) becomes ``circuit``. In a parameterized
    circuit every parameter is replaced by one of the same name with a UUID
    derived from the name (a ``Parameter``'s own UUID is random), and every
    compound expression by a parameter named after the expression's text:
    QPY writes the terms of an expression in an order that can change from
    one dump to the next, while ``str`` of an expression is canonical
    (``v[1] + 2*v[0]``). That rewrite costs about a millisecond, so the
    digest of a parameterized circuit is kept per circuit object and reused
    while the circuit's own QPY bytes stay the same (a sweep passes one
    ansatz to every call). A circuit with a layout, or with two or more
    operations of no standard gate, is keyed in parts (see
    :func:`_laid_out_digest`, :func:`_split_digest`).
    """
    from qshpc.store import _qpy

    odd = _odd_positions(circuit)
    if odd:
        return _split_digest(circuit, odd)
    if data is None:
        data = _qpy.dump(circuit)
    layout = getattr(circuit, "_layout", None)
    if not circuit.num_parameters and layout is None:
        if _AUTO_NAME.fullmatch(circuit.name):
            unnamed = _without_name(data, circuit.name)
            data = unnamed if unnamed is not None else _qpy.dump(circuit.copy(name="circuit"))
        return hashlib.blake2b(data, digest_size=32).digest()
    own = hashlib.blake2b(data, digest_size=32).digest()
    memo = _memo.get(id(circuit))
    if memo is not None and memo[0]() is circuit and memo[1] == own:
        return memo[2]
    if layout is None:
        digest = hashlib.blake2b(_qpy.dump(_fixed_parameters(circuit)), digest_size=32).digest()
    else:
        digest = _laid_out_digest(circuit, layout)
    try:
        ref = weakref.ref(circuit)
    except TypeError:  # pragma: no cover - circuits take weak references
        return digest
    if len(_memo) >= _MEMO_SIZE:
        _memo.pop(next(iter(_memo)))
    _memo[id(circuit)] = (ref, own, digest)
    return digest


#: Operations of no standard gate that are no custom gate either: QPY writes them
#: in the circuit's own stream (their blocks as circuits).
_CONTROL_FLOW = frozenset(("if_else", "while_loop", "for_loop", "switch_case", "box", "break_loop",
                           "continue_loop"))  # fmt: skip


def _odd_positions(circuit: Any) -> list[int]:
    """The positions of a circuit's operations that are no standard gate, when it
    has two or more, or one whose definition holds such operations (else none):
    see :func:`_split_digest`. Taken for every circuit a key holds: ~1 µs for a
    small one (the names counted in Rust; ``count_ops()`` would copy them into
    an ``OrderedDict`` too)."""
    rust: Any = getattr(circuit, "_data", None)
    counts = rust.count_ops() if hasattr(rust, "count_ops") else circuit.count_ops()
    std = _standard_names or _standard()
    for name in counts:
        if name not in std and name not in _CONTROL_FLOW:
            break
    else:
        return []  # standard gates only: QPY writes them in order
    odd = {n for n in counts if n not in std and n not in _CONTROL_FLOW}
    found = [i for i, inst in enumerate(circuit.data) if inst.operation.name in odd]
    if len(found) == 1 and _nested(circuit.data[found[0]].operation) is None:
        return []
    return found


def _nested(op: Any) -> Any:
    """The definition of ``op`` when it holds operations of no standard gate itself
    (a gate of gates): keyed in parts too (else None)."""
    from qiskit.circuit import QuantumCircuit  # type: ignore[import-untyped]

    definition = getattr(op, "_definition", None)  # not built here: QPY builds it
    if isinstance(definition, QuantumCircuit) and any(
        n not in _CONTROL_FLOW for n in definition.count_ops() if n not in _standard()
    ):
        return definition
    return None


def _standard() -> frozenset[str]:
    """The names of Qiskit's standard gates and instructions (QPY writes them by name)."""
    global _standard_names
    if _standard_names is None:
        from qiskit.circuit.library import (  # type: ignore[import-untyped]
            get_standard_gate_name_mapping,
        )

        _standard_names = frozenset(get_standard_gate_name_mapping()) | {"barrier"}
    return _standard_names


_standard_names: frozenset[str] | None = None


def _split_digest(circuit: Any, odd: list[int]) -> bytes:
    """Digest of a circuit with two or more operations of no standard gate, in parts.

    QPY writes such operations (a ``to_gate()`` subcircuit, a
    ``PauliEvolutionGate``, an ``Instruction("kraus")`` of an Aer noise model's
    error, a custom controlled gate) in a table of definitions whose order
    changes from one dump to the next (Qiskit's Rust writer: a hash map), so the
    same circuit had a new key at nearly every call. So the circuit without
    them is keyed as any circuit is, and each of them by its position, its bits
    and the digest of a circuit that holds it alone (one such operation has one
    QPY). Parameters are keyed by name in both, as always.
    """
    from qiskit.circuit import CircuitInstruction, QuantumCircuit

    skip = set(odd)
    rest = circuit.copy_empty_like()
    data = circuit.data
    for i, inst in enumerate(data):
        if i not in skip:
            rest._append(inst)
    h = hashlib.blake2b(digest_size=32)
    h.update(b"split")
    h.update(circuit_digest(rest))
    plain = _plain_operations()
    for i in odd:
        inst = data[i]
        op = inst.operation
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        clbits = [circuit.find_bit(c).index for c in inst.clbits]
        h.update(b"%d;%r;%r;" % (i, qubits, clbits))
        if type(op) in plain:
            # A plain Gate or Instruction (to_gate(), Aer's kraus): its name, sizes,
            # params, label and definition are its whole state, walked at half the cost
            # of a circuit's QPY (a noise model holds hundreds of them).
            h.update(b"op")
            _Walk(h.update).value(op)
            continue
        definition = _nested(op)
        if definition is None:
            alone = QuantumCircuit(op.num_qubits, op.num_clbits, name="op")
            alone._append(CircuitInstruction(op, alone.qubits, alone.clbits))
            h.update(circuit_digest(alone))
            continue
        # A gate of gates: what QPY writes of it besides its definition, and that apart.
        h.update(b"nested")
        _Walk(h.update).value(
            (type(op), op.name, op.num_qubits, op.num_clbits, op.label, list(op.params))
        )
        h.update(circuit_digest(definition))
    return h.digest()


def _plain_operations() -> tuple[type, ...]:
    """Qiskit's ``Gate`` and ``Instruction`` themselves (not their subclasses)."""
    from qiskit.circuit import Gate, Instruction

    return (Gate, Instruction)


def _laid_out_digest(circuit: Any, layout: Any) -> bytes:
    """Digest of a circuit with a layout (a transpiled one): its QPY bytes without
    the layout, and the layout walked as a value.

    QPY writes the registers of a layout's virtual qubits (``q``, ``ancilla``) in
    the order of a ``set`` of them, which follows the process's string hashing:
    the same transpiled circuit had one of two keys, by chance, in each run (a
    rerun missed about half the time). The layout decides results all the same
    (``observable.apply_layout(circuit.layout)``), so it is keyed apart.
    """
    from qshpc.store import _qpy

    bare = _fixed_parameters(circuit) if circuit.num_parameters else circuit.copy()
    bare.name = "circuit" if _AUTO_NAME.fullmatch(circuit.name) else circuit.name
    bare._layout = None
    h = hashlib.blake2b(_qpy.dump(bare), digest_size=32)
    h.update(b"layout")
    try:
        h.update(_layout_digest(circuit, layout))
    except Exception:  # a layout of another shape than Qiskit 2's: walked as any value
        _Walk(h.update).value(layout)
    return h.digest()


def _layout_digest(circuit: Any, layout: Any) -> bytes:
    """What QPY writes of a ``TranspileLayout``, in a fixed order.

    Each physical qubit of the initial layout by its virtual qubit (register name,
    size and index, and its index in the circuit given to the transpiler), the
    final layout and the output qubits by their index in the circuit, and the
    number of input qubits: ~0.2 ms for 127 qubits, where walking the layout
    object took 6.5 ms.
    """
    h = hashlib.blake2b(digest_size=32)
    inputs = layout.input_qubit_mapping or {}

    def virtual(q: Any) -> bytes:
        reg, index = q._register, q._index
        name = b"-" if reg is None else b"%s/%d" % (reg.name.encode(), reg.size)
        return b"%s:%r:%r;" % (name, index, inputs.get(q))

    initial = layout.initial_layout
    if initial is not None:
        h.update(b"initial")
        for phys, q in sorted(initial.get_physical_bits().items()):
            h.update(b"%d=" % phys)
            h.update(virtual(q))
    h.update(b"inputs%d;" % len(inputs))
    final = layout.final_layout
    if final is not None:
        h.update(b"final")
        for phys, q in sorted(final.get_physical_bits().items()):
            h.update(b"%d=%d;" % (phys, circuit.find_bit(q).index))
    h.update(b"count%r;" % (layout._input_qubit_count,))
    out = layout._output_qubit_list
    if out is not None:
        h.update(b"out%r;" % ([circuit.find_bit(q).index for q in out],))
    return h.digest()


def _without_name(data: bytes, name: str) -> bytes | None:
    """QPY bytes of one circuit with its name (and the name's length) cut out.

    Cheaper than dumping a renamed copy. The offsets come from Qiskit's own
    format constants and are checked against the name: None (dump a renamed
    copy) when a QPY version places the name elsewhere.
    """
    try:
        from qiskit.qpy import formats  # type: ignore[import-untyped]

        start = formats.FILE_HEADER_V10_SIZE + formats.TYPE_KEY_SIZE
        if data[6] >= 16:  # QPY 16 and later: a table of circuit offsets first
            start += formats.CIRCUIT_TABLE_ENTRY_SIZE
        at = start + formats.CIRCUIT_HEADER_V12_SIZE
    except (AttributeError, IndexError):
        return None
    raw = name.encode()
    if data[start : start + 2] != struct.pack("!H", len(raw)) or data[at : at + len(raw)] != raw:
        return None
    return b"".join((data[:start], data[start + 2 : at], data[at + len(raw) :]))


_MEMO_SIZE = 256
_memo: dict[int, tuple[Callable[[], Any], bytes, bytes]] = {}
_fixed: dict[str, Any] = {}  # "type:text" -> the parameter that replaces it


def _expression_text(p: Any) -> str:
    """A parameter or expression as a key knows it: its kind and text, and an
    expression's parameters by kind and name too.

    The text alone names its parameters by name only: ``2*v[0]`` of a
    ``ParameterVector`` and of a ``Parameter("v[0]")`` read alike, and so do
    ``a*b + 1`` and ``Parameter("a*b") + 1``. Their circuits differ: a vector's
    elements sort by index, parameters by name (``v[10]`` before ``v[2]``), so
    ``assign_parameters(values)`` binds them to other values.
    """
    text = f"{type(p).__name__}:{p}"
    if type(p).__name__ != "ParameterExpression":
        return text  # a Parameter, a ParameterVectorElement: their kind is there
    kinds = sorted(f"{type(q).__name__}:{q}" for q in p.parameters)
    return f"{text}|{','.join(kinds)}"


def _fix(p: Any) -> Any:
    """The parameter with a fixed UUID that replaces parameter or expression ``p``."""
    text = _expression_text(p)
    q = _fixed.get(text)
    if q is None:
        import uuid

        from qiskit.circuit import Parameter

        if len(_fixed) >= 65536:
            _fixed.clear()
        q = _fixed[text] = Parameter(str(p), uuid=uuid.uuid5(uuid.NAMESPACE_OID, text))
    return q


def _fixed_parameters(circuit: Any) -> Any:
    """A copy of ``circuit`` whose QPY bytes are the same in every process (see above)."""
    from qiskit.circuit import CircuitInstruction, ParameterExpression

    name = "circuit" if _AUTO_NAME.fullmatch(circuit.name) else circuit.name
    compound = type(circuit.global_phase) is ParameterExpression or any(
        type(p) is ParameterExpression for inst in circuit.data for p in inst.params
    )
    if not compound:  # parameters only: Qiskit swaps them in Rust
        out = circuit.assign_parameters(
            {p: _fix(p) for p in circuit.parameters}, inplace=False, flat_input=True
        )
        out.name = name
        return out
    out = circuit.copy_empty_like(name=name)
    phase = circuit.global_phase
    out.global_phase = _fix(phase) if isinstance(phase, ParameterExpression) else phase
    for inst in circuit.data:
        params = inst.params
        if any(isinstance(p, ParameterExpression) for p in params):
            op = inst.operation.copy()
            op.params = [_fix(p) if isinstance(p, ParameterExpression) else p for p in params]
            inst = CircuitInstruction(op, inst.qubits, inst.clbits)
        out._append(inst)
    return out


# -- keys ---------------------------------------------------------------------------------


def function_digest(func: Any, deps: Deps | None = None) -> bytes:
    """Digest of a task function by value (see the module doc), with the environment.

    Args:
        func: The function.
        deps: A list that receives every name binding the walk read (for
            :func:`bindings_unchanged`).

    Raises:
        UncacheableError: It refers to something that cannot be hashed.
    """
    h = hashlib.blake2b(digest_size=32)
    h.update(environment_digest())
    try:
        _Walk(h.update, deps).value(func)
        ordered = _orders_kwargs(func)  # (an odd object's attributes may raise too: review23)
    except RecursionError:
        raise UncacheableError("the function refers to values nested too deeply") from None
    except UncacheableError:
        raise
    except Exception as exc:  # a value whose walk failed: the call runs, uncached
        raise _unexpected(exc) from None
    return _marked(h.digest(), ordered)


#: The last bit of a function digest: its calls' keyword arguments are keyed in
#: their order (see :func:`_orders_kwargs`). In the digest itself, so that every
#: key of it, in any process and by any caller, follows the same rule.
_ORDERED = 1
_CO_VARKEYWORDS = 0x08  # inspect.CO_VARKEYWORDS (inspect costs ~4 ms to import)


def _marked(digest: bytes, ordered: bool) -> bytes:
    """``digest`` with its last bit saying whether keyword arguments keep their order."""
    last = digest[-1] | _ORDERED if ordered else digest[-1] & ~_ORDERED
    return digest[:-1] + bytes((last,))


def _orders_kwargs(func: Any) -> bool:
    """Whether the order of a call's keyword arguments can decide its result.

    It can for a function that takes ``**kwargs``: ``kwargs`` keeps the order
    of the call (``build(rx=0.1, rz=0.2)`` applies its gates in that order), so
    such calls are keyed in their order; any other function's keyword arguments
    are keyed by name (``f(a=1, b=2)`` and ``f(b=2, a=1)`` are one call). A
    callable that is no plain function (a ``partial``, an object) keeps the
    order too: a miss at worst.
    """
    code = getattr(getattr(func, "__func__", func), "__code__", None)
    if not isinstance(code, types.CodeType):
        return True
    return bool(code.co_flags & _CO_VARKEYWORDS)


def _library_module(put: Put, name: str) -> None:
    """A library's module in a key: by its name and its distribution's version."""
    put(b"LM")
    _str(put, name)
    _str(put, _version_of(name))


def task_digest(fn_digest: bytes, task: Any) -> bytes:
    """:func:`function_digest` of a task's function, with what its target sets while it runs.

    ``@distribute_task(target={"env_vars": {...}})`` sets those variables in
    ``os.environ`` around each call (:class:`qshpc.task.execute.TargetedCall`):
    part of the task as the program defines it, and read by its code (or by Aer,
    ``QSHPC_AER_DEVICE``) as an argument is. A task without them keeps its digest.
    """
    env = getattr(getattr(task, "target", None), "env_vars", None)
    if not env or not isinstance(env, dict):
        return fn_digest
    h = hashlib.blake2b(fn_digest, digest_size=32)
    h.update(b"env_vars")
    for k, v in sorted((str(k), str(v)) for k, v in env.items()):
        _str(h.update, k)
        _str(h.update, v)
    return _marked(h.digest(), bool(fn_digest[-1] & _ORDERED))


def call_key(fn_digest: bytes, args: tuple[Any, ...], kwargs: dict[str, Any] | None,
             seed: int | None, qpy: Qpy | None = None) -> str:  # fmt: skip
    """The key of one call: 64 hex digits.

    Args:
        fn_digest: :func:`function_digest` of the task function.
        args: Positional arguments.
        kwargs: Keyword arguments (order does not matter).
        seed: The task's seed, or None when the job has none.
        qpy: The QPY bytes of the arguments' circuits, written for this call a
            moment ago (its payload: :func:`qshpc.task.payload.dumps`); a
            circuit not in it is dumped here.

    Raises:
        UncacheableError: An argument cannot be hashed the same way in every process.
    """
    h = hashlib.blake2b(fn_digest, digest_size=32)
    put = h.update
    put(b"seed" if seed is None else b"seed%d;" % seed)
    walk = _Walk(put, None, qpy)
    try:
        walk.value(args)
        if kwargs:  # by name, or in their order (see :func:`_orders_kwargs`)
            ordered = fn_digest[-1] & _ORDERED and len(kwargs) > 1
            walk.value(dict(kwargs) if ordered else dict(sorted(kwargs.items())))
    except RecursionError:
        raise UncacheableError("an argument is nested too deeply") from None
    except UncacheableError:
        raise
    except Exception as exc:  # a value whose walk failed: the call runs, uncached
        raise _unexpected(exc) from None
    return h.hexdigest()


def _unexpected(exc: Exception) -> UncacheableError:
    """A walk that failed in a way no rule foresaw (a library type's odd attributes):
    the call is not cached, rather than failed."""
    return UncacheableError(f"a value could not be hashed ({type(exc).__name__}: {exc})")


def value_digest(value: Any) -> bytes:
    """Digest of one value, walked as arguments are (for tests and tools)."""
    h = hashlib.blake2b(digest_size=32)
    _Walk(h.update).value(value)
    return h.digest()


def is_key(text: str) -> bool:
    """True for a well-formed key (64 lowercase hex digits)."""
    return len(text) == KEY_HEX and all(c in "0123456789abcdef" for c in text)


__all__ = [
    "KEY_HEX",
    "KEY_SCHEME",
    "Deps",
    "Qpy",
    "UncacheableError",
    "bindings_unchanged",
    "call_key",
    "changeable",
    "circuit_digest",
    "environment",
    "environment_digest",
    "function_digest",
    "is_key",
    "is_library",
    "task_digest",
    "value_digest",
]
