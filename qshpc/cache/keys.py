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
  digest of each item; the dicts of a Qiskit ``Target`` (and the few library
  attributes built in set or hash-map order, :data:`~qshpc.cache.keywalk._LOOSE_STATE`)
  sorted by the digest of each key, as their order changes between processes
  (and the dates Aer stamps on a simulator's backend properties left out,
  :data:`~qshpc.cache.keywalk._UNDATED`);
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
  bytes of its file too. Code that calls ``globals()`` keys its own module
  whole; ``helpers.X`` that a module's PEP 562 ``__getattr__`` makes keys that
  function; code reaching a namespace by a name it computes (``sys.modules``,
  ``importlib.import_module``, ``eval``, ``f.__globals__``) is not cached
  (:func:`qshpc.cache.keyreads.computed_reads`);
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

import hashlib
import types
from typing import Any

from qshpc.cache.keycircuit import circuit_digest as _circuit_digest
from qshpc.cache.keyenv import (
    KEY_SCHEME,
    Put,
    environment,
    environment_digest,
    is_library,
    put_text,
)
from qshpc.cache.keywalk import (
    _CIRCUIT,
    Deps,
    Qpy,
    UncacheableError,
    _Walk,
    bindings_unchanged,
    changeable,
    put_circuit,
    walk_value,
)

#: Key length in hex digits.
KEY_HEX = 64


# -- keys ---------------------------------------------------------------------------------


def function_digest(func: Any, deps: Deps | None = None, env: bool = True) -> bytes:
    """Digest of a task function by value (see the module doc), with the environment.

    Args:
        func: The function.
        deps: A list that receives every name binding the walk read (for
            :func:`bindings_unchanged`).
        env: Hash the environment in too (False: the function alone, as a resumed
            job identifies its tasks: :func:`qshpc.program.backend.function_digest`).

    Raises:
        UncacheableError: It refers to something that cannot be hashed.
    """
    h = hashlib.blake2b(digest_size=32)
    if env:
        h.update(environment_digest())
    try:
        walk = _Walk(h.update, deps)
        walk.placed = True  # a global put reference: by its object's value
        walk.value(func)
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
        put_text(h.update, k)
        put_text(h.update, v)
    return _marked(h.digest(), bool(fn_digest[-1] & _ORDERED))


def call_key(fn_digest: bytes, args: tuple[Any, ...], kwargs: dict[str, Any] | None,
             seed: int | None, qpy: Qpy | None = None,
             named: list[Any] | None = None, standard: bool = False,
             fast: bool = True) -> str:  # fmt: skip
    """The key of one call: 64 hex digits.

    Args:
        fn_digest: :func:`function_digest` of the task function.
        args: Positional arguments.
        kwargs: Keyword arguments (order does not matter).
        seed: The task's seed, or None when the job has none.
        qpy: The QPY bytes of the arguments' circuits, written for this call a
            moment ago (its payload: :func:`qshpc.task.payload.dumps`); a
            circuit not in it is dumped here.
        named: A list that receives the functions and classes the arguments'
            walk met (see :func:`qshpc.cache.shipped.named_bindings`).
        standard: Every circuit among ``args`` (not nested) holds standard gates
            only: the caller counted their operations a moment ago
            (:func:`qshpc.runtime.intake.keyable`).
        fast: False: the general walk, even for arguments :func:`_flat` writes (the
            tests compare the two).

    Raises:
        UncacheableError: An argument cannot be hashed the same way in every process.
    """
    h = hashlib.blake2b(fn_digest, digest_size=32)
    put = h.update
    put(b"seed" if seed is None else b"seed%d;" % seed)
    try:
        if fast and not kwargs and _flat(put, args, qpy, standard):
            return h.hexdigest()
        walk = _Walk(put, None, qpy)
        walk.memo, walk.named = True, named
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


#: The types :func:`_flat` writes (exactly these: a subclass is walked as any object is).
_SCALARS = frozenset((str, int, float, type(None), bool, bytes, complex))


def _flat(put: Put, args: Any, qpy: Qpy | None, standard: bool) -> bool:
    """The tokens :class:`_Walk` writes for a tuple of scalars and Qiskit circuits (the
    commonest call: ``sample(circuit)``, ``run(circuit, shots)``), without the walk's
    set-up, container steps and type dispatch (perf20). False, having written nothing,
    for any other arguments (the walk writes them); the same bytes either way
    (tests/unit/test_perf20_flat_key.py)."""
    circuit = _CIRCUIT[0]  # QuantumCircuit, once a walk met one (None before: walked)
    if type(args) is not tuple or circuit is None:
        return False
    for a in args:
        t = type(a)
        if t is not circuit and t not in _SCALARS:
            return False
    put(b"(%d;" % len(args))
    scalars: _Walk | None = None
    for a in args:
        if type(a) is circuit:
            put_circuit(put, a, qpy, standard)
        else:  # a scalar: the walk's own tokens, by the walk (made once, only for these)
            if scalars is None:
                scalars = _Walk(put)
            scalars.value(a)
    put(b")")
    return True


def _unexpected(exc: Exception) -> UncacheableError:
    """A walk that failed in a way no rule foresaw (a library type's odd attributes):
    the call is not cached, rather than failed."""
    return UncacheableError(f"a value could not be hashed ({type(exc).__name__}: {exc})")


def circuit_digest(circuit: Any, data: bytes | None = None) -> bytes:
    """Digest of a circuit's QPY bytes, the same in every process (see
    :func:`qshpc.cache.keycircuit.circuit_digest`; ``data``: its QPY bytes, when known)."""
    return _circuit_digest(circuit, data, walk_value)


def value_digest(value: Any, qpy: Qpy | None = None, placed: bool = False) -> bytes:
    """Digest of one value, walked as arguments are (resume's identity of a call's
    arguments, :func:`qshpc.program.backend.task_key`; tests and tools).

    Args:
        value: The value.
        qpy: The QPY bytes of its circuits, when known (see :func:`call_key`).
        placed: An ``ObjectRef`` in it counts by the digest of the object this
            process placed (else it raises :class:`UncacheableError`).
    """
    h = hashlib.blake2b(digest_size=32)
    walk = _Walk(h.update, None, qpy)
    walk.placed, walk.memo = placed, True
    walk.value(value)
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
