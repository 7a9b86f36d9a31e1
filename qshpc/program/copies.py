"""Copying plain values without pickle: lists, tuples, dicts and numpy arrays over immutable values.

One walk for the two copies the program layer makes: ``get``'s copy of a
task's result (:func:`qshpc.program.refs.fresh`) and a placed object's copy per
thaw (:class:`qshpc.program.backend.Frozen`). What differs between them is a
parameter: how a numpy array is copied, how deep the walk goes, whether a
dict's keys must be of the immutable types, and what other objects it copies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Values of these types are immutable: kept as they are, never copied.
IMMUTABLE = frozenset({int, float, complex, bool, str, bytes, type(None)})
#: What :func:`plain_copy` (and an ``other`` it is given) returns for what it cannot copy.
CANNOT: Any = object()


def plain_copy(
    value: Any,
    memo: dict[int, Any],
    array: Callable[[Any], Any],
    other: Callable[[Any], Any],
    max_depth: int,
    plain_keys: bool,
    depth: int = 0,
) -> Any:
    """A copy of ``value`` sharing nothing mutable with it, or :data:`CANNOT`.

    Args:
        value: The value.
        memo: ``id -> copy`` of what was copied: what the value holds twice is copied
            once, as pickle keeps it (on 8076006 ``[inner, inner]`` came back as two
            lists, so a change to one no longer showed in the other).
        array: The copy of a numpy array (not of dtype object).
        other: The copy of an object of any other type, or :data:`CANNOT`.
        max_depth: An object other than an immutable one below this depth: :data:`CANNOT`.
        plain_keys: A dict's keys must be of the immutable types (else they are
            shared, as hashable keys are in practice immutable: a change to one in
            place would break the dict itself).
        depth: ``value``'s depth (0: the top).
    """
    kind = type(value)
    if kind in IMMUTABLE:
        return value
    key = id(value)
    if key in memo:
        return memo[key]
    if depth > max_depth:
        return CANNOT
    out: Any
    if kind is list or kind is tuple:
        if IMMUTABLE.issuperset(map(type, value)):
            out = list(value) if kind is list else value
        else:
            items = []
            for x in value:
                y = plain_copy(x, memo, array, other, max_depth, plain_keys, depth + 1)
                if y is CANNOT:
                    return CANNOT
                items.append(y)
            out = items if kind is list else tuple(items)
    elif kind is dict:
        if plain_keys and not IMMUTABLE.issuperset(map(type, value)):
            return CANNOT
        if IMMUTABLE.issuperset(map(type, value.values())):
            out = value.copy()
        else:
            out = {}
            for k, x in value.items():
                y = plain_copy(x, memo, array, other, max_depth, plain_keys, depth + 1)
                if y is CANNOT:
                    return CANNOT
                out[k] = y
    elif kind.__name__ == "ndarray" and kind.__module__ == "numpy":
        if value.dtype.hasobject:
            return CANNOT
        out = array(value)
    else:
        out = other(value)
        if out is CANNOT:
            return CANNOT
    memo[key] = out  # the caller holds ``value``: its id is not reused meanwhile
    return out


__all__ = ["CANNOT", "IMMUTABLE", "plain_copy"]
