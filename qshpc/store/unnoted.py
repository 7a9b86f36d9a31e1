"""What the blob encoding loses of a value without noting it (review45 F1, F3).

:func:`qshpc.store.encoding_blob.encode_blob_noting` notes a value stored as another
type when its encoder sees it (a ``defaultdict`` goes through ``default``). Two losses
it cannot see, since msgpack packs them itself:

- a ``bytearray`` (or ``memoryview``) is written as msgpack ``bin``: it reads back as
  ``bytes``;
- an object the value holds twice (``{"state": a, "view": a}``) is written twice: it
  reads back as two copies (pickle, which results travel with, keeps it one object).

:func:`unnoted_loss` finds either by one walk of the value. It is for results whose
encoding is large (read back from the store instead of kept in memory, or reused by
a resume): a walk costs about what encoding the same value costs, so the hot path of
small results only checks the top-level type (:data:`AS_BYTES`).
"""

from __future__ import annotations

from typing import Any

from qshpc._lazy import loaded

#: Values whose identity nothing can observe, nor hold anything (skipped).
_PLAIN = frozenset({float, int, str, bool, type(None), complex, bytes})
#: Types msgpack writes as ``bin``: read back as bytes.
AS_BYTES = (bytearray, memoryview)


def unnoted_loss(value: Any) -> str | None:
    """None when nothing in ``value`` is lost unnoted by the blob encoding, else the type
    lost (``module.qualname``, the :data:`~qshpc.store.chunk.INEXACT` note): a
    ``bytearray``/``memoryview`` anywhere in dicts, lists, tuples and sets, or an object
    (an array, a list, a dict...) met twice there.

    Call it on a value that encodes (no cycle: the encoder refuses those first).
    """
    # (getattr: numpy may be half imported by another thread; then none of its scalars exist)
    generic = getattr(loaded("numpy"), "generic", ())
    seen: set[int] = set()
    stack = [value]
    plain = _PLAIN
    while stack:
        v = stack.pop()
        t = type(v)
        if t in plain:
            continue
        if t is bytearray or t is memoryview:
            return f"builtins.{t.__qualname__}"
        if t is not tuple and t is not frozenset:  # immutable: their identity is not kept, nor seen
            if isinstance(v, generic):
                continue
            i = id(v)
            if i in seen:
                return f"{t.__module__}.{t.__qualname__}"
            seen.add(i)
        if t is dict:
            if not set(map(type, v)) <= plain:
                stack.extend(v)
            items: Any = v.values()
        elif t is list or t is tuple or t is set or t is frozenset:
            items = v
        else:
            continue
        if not set(map(type, items)) <= plain:  # a list of numbers: one pass in C
            stack.extend(items)
    return None


__all__ = ["AS_BYTES", "unnoted_loss"]
