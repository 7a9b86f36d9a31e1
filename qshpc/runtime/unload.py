"""Rank 0's second try at a worker's result message that did not unpickle.

A task's value can pickle on the worker and fail to unpickle on rank 0: its
class lives in a module only the worker imported (the task added a
``sys.path`` entry), or its ``__setstate__`` raises off the worker (a handle,
a device array). One such value made the whole message fail, and the
dispatcher with it: every call of the job failed and the job ended FAILED
(review28 F3). The message is loaded as before, by C pickle in one pass;
only when that fails does :func:`reload` read the same bytes again with a
pure-Python unpickler that puts an :class:`Unloaded` stand-in where a part
cannot be rebuilt, so the other values of the batch arrive, and
:func:`spoiled` tells which values hold a stand-in: those calls fail alone.
"""

from __future__ import annotations

import gc
import io
import pickle
import types
from typing import Any, ClassVar


class Unloadable(Exception):
    """A message received whose bytes did not unpickle (raised by a wiring's ``receive``).

    Args:
        data: The pickle's bytes.
        buffers: Its out-of-band buffers.
    """

    def __init__(self, data: Any, buffers: list[Any]) -> None:
        super().__init__("a message did not unpickle")
        self.data = data
        self.buffers = buffers


class Unloaded:
    """What rank 0 holds where part of a worker's value could not be rebuilt.

    Called (a class that could not be imported, as a constructor) it gives
    another; filled as a container, it takes nothing.
    """

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error

    def __call__(self, *args: Any, **kwargs: Any) -> Unloaded:
        return Unloaded(self.error)

    def append(self, item: Any) -> None:
        """Take nothing (pickle fills a list so)."""

    def extend(self, items: Any) -> None:
        """Take nothing (pickle fills a list so)."""

    def add(self, item: Any) -> None:
        """Take nothing (pickle fills a set so)."""

    def __setitem__(self, key: Any, value: Any) -> None:
        """Take nothing (pickle fills a dict so)."""


def _text(exc: BaseException, what: str) -> str:
    return f"{what}: {type(exc).__name__}: {exc}"


def _root(parts: Any) -> Unloaded | None:
    """The stand-in among ``parts`` (a call's function and arguments), if any."""
    for p in parts:
        if type(p) is Unloaded:
            return p
    return None


#: pickle's pure-Python unpickler: its opcodes are methods, in a table one can change.
_PyUnpickler: Any = pickle._Unpickler


class _Tolerant(_PyUnpickler):  # type: ignore[misc]
    """pickle's pure-Python unpickler, with a stand-in wherever a part fails to rebuild.

    ``bad`` holds the id of every stand-in and of every object whose state could
    not be set (it stays in place, half built: other parts may share it).
    """

    dispatch: ClassVar[dict[int, Any]] = dict(_PyUnpickler.dispatch)

    def __init__(self, data: Any, buffers: list[Any]) -> None:
        super().__init__(io.BytesIO(data), buffers=buffers)
        self.bad: dict[int, str] = {}
        self.keep: list[Any] = []  # what ``bad`` names stays alive, so its ids stay unique

    def _mark(self, obj: Any, error: str) -> Any:
        self.bad[id(obj)] = error
        self.keep.append(obj)
        return obj

    def _stand_in(self, exc: BaseException, parts: Any, what: str) -> Unloaded:
        root = _root(parts)
        error = root.error if root is not None else _text(exc, what)
        out = Unloaded(error)
        self._mark(out, error)
        return out

    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except Exception as exc:
            return self._stand_in(exc, (), f"its class {module}.{name} cannot be imported here")

    def _reduce(self) -> None:
        stack = self.stack
        args = stack.pop()
        func = stack[-1]
        try:
            stack[-1] = func(*args)
        except Exception as exc:
            if func is pickle.loads and len(args) == 1:  # a value pickled apart (by value)
                stack[-1] = self._nested(args[0], exc)
                return
            what = f"rebuilding it by {getattr(func, '__qualname__', func)!s:.80} raised"
            stack[-1] = self._stand_in(exc, (func, *args), what)

    def _nested(self, data: Any, exc: BaseException) -> Any:
        """A pickle inside this one (qshpc's ``_ByValue``, ``_Pickled``), read as this one is."""
        inner = _Tolerant(data, [])
        try:
            obj = inner.load()
        except Exception:
            return self._stand_in(exc, (), "rebuilding it raised")
        self.bad.update(inner.bad)
        self.keep.extend(inner.keep)
        return obj

    def _newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        try:
            obj = cls.__new__(cls, *args)
        except Exception as exc:
            obj = self._stand_in(exc, (cls, *args), "creating it raised")
        self.append(obj)

    def _newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        try:
            obj = cls.__new__(cls, *args, **kwargs)
        except Exception as exc:
            obj = self._stand_in(exc, (cls, *args), "creating it raised")
        self.append(obj)

    def _build(self) -> None:
        inst = self.stack[-2]
        if type(inst) is Unloaded:
            self.stack.pop()
            return
        depth = len(self.stack)
        try:
            _PyUnpickler.load_build(self)
        except Exception as exc:
            del self.stack[depth - 1 :]
            name = type(inst).__qualname__
            self._mark(inst, _text(exc, f"setting the state of its {name} here raised"))

    def _instantiate(self, klass: Any, args: Any) -> None:
        try:
            super()._instantiate(klass, args)
        except Exception as exc:
            self.append(self._stand_in(exc, (klass, *args), "creating it raised"))


def _filling(op: Any) -> Any:
    """``op`` (an opcode that fills the container on top of the stack), marking it on failure."""

    def fill(self: _Tolerant) -> None:
        try:
            op(self)
        except Exception as exc:
            target = self.stack[-1] if self.stack else None
            self._mark(target, _text(exc, "filling a container of it raised"))

    return fill


_D = _Tolerant.dispatch
_D[pickle.REDUCE[0]] = _Tolerant._reduce
_D[pickle.NEWOBJ[0]] = _Tolerant._newobj
_D[pickle.NEWOBJ_EX[0]] = _Tolerant._newobj_ex
_D[pickle.BUILD[0]] = _Tolerant._build
for _op in (pickle.APPEND, pickle.APPENDS, pickle.SETITEM, pickle.SETITEMS, pickle.ADDITEMS):
    _D[_op[0]] = _filling(_D[_op[0]])


def reload(data: Any, buffers: list[Any]) -> tuple[Any, dict[int, str]]:
    """``data`` unpickled with stand-ins; also the ids of what failed to rebuild, and why.

    Raises:
        Exception: When the bytes cannot be read even so (not a pickle, cut short).
    """
    loader = _Tolerant(data, buffers)
    return loader.load(), loader.bad


#: Objects the walk does not enter: the program's code and classes, not the value's data.
_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType)
_ATOMS = frozenset({int, float, complex, bool, str, bytes, type(None)})


def spoiled(value: Any, bad: dict[int, str]) -> str | None:
    """Why ``value`` cannot be given to the program (the first failed part it holds), or None.

    A walk of what the value refers to (``gc.get_referents``, and the items of
    a numpy array of objects); only after a message failed to load.
    """
    seen: set[int] = set()
    todo = [value]
    while todo:
        obj = todo.pop()
        key = id(obj)
        if key in bad:
            return bad[key]
        if key in seen or type(obj) in _ATOMS or isinstance(obj, _OPAQUE):
            continue
        seen.add(key)
        todo.extend(gc.get_referents(obj))
        if getattr(getattr(obj, "dtype", None), "hasobject", False) and hasattr(obj, "flat"):
            todo.extend(obj.flat)
    return None


__all__ = ["Unloadable", "Unloaded", "reload", "spoiled"]
