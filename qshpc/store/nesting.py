"""One depth limit for everything the store writes: arguments, task results, the saved result.

review38 F2: a result nested 450-1000 levels deep was saved (the blob encoder and
HDF5 writer took it), the job SUCCEEDED, and no reader could read it back
(``RecursionError``); arguments were capped at 100 levels, task results at
msgpack's 512 or pickle's recursion limit, ``--workers 0`` at neither. Now every
value the store encodes is checked here, before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from qshpc.errors import SerializationError

MAX_DEPTH = 100
MAX_CONTAINERS = 10_000_000
_NEST_HINT = f"at most {MAX_DEPTH} levels of lists and dicts are stored"
CONTAINERS = (dict, list, tuple, set, frozenset)
_CONTAINERS = CONTAINERS
T = TypeVar("T")


def _kids(node: Any) -> list[Any]:
    if isinstance(node, dict):  # map/set run in C: a million numbers cost milliseconds here
        types = set(map(type, node.keys()))
        types.update(map(type, node.values()))
        items: Any = (*node.keys(), *node.values()) if _nests(types) else ()
    else:
        items = node if _nests(set(map(type, node))) else ()
    return [k for k in items if isinstance(k, _CONTAINERS)]


def _nests(types: set[type]) -> bool:
    return any(issubclass(t, _CONTAINERS) for t in types)


def check_nesting(
    value: Any,
    what: str,
    limit: int = MAX_DEPTH,
    max_containers: int | None = MAX_CONTAINERS,
    plural: bool = True,
) -> None:
    """Refuse a value that nests lists/dicts/tuples/sets deeper than ``limit``, holds itself,
    or would expand (shared parts counted every time they appear) past ``max_containers``
    containers (None: no such cap).

    Checked without recursion, in time linear in the distinct objects (shared
    parts are measured once), before anything is written: a refused value leaves
    no job folder behind, and a value built to explode when written (a list of
    itself twice, sixty times over) is refused at once.

    Args:
        what: Names the value in the message ("the arguments"; ``plural=False``: "the result").

    Raises:
        SerializationError: Naming how deep it goes, the cycle, or the size, and the limit.
    """
    if not isinstance(value, _CONTAINERS):
        return
    first = _kids(value)
    if not first:  # flat (the commonest task result): one look at its items' types
        return
    nest, hold, contain = ("nest", "hold", "contain themselves") if plural else (
        "nests", "holds", "contains itself"
    )  # fmt: skip
    size: dict[int, int] = {}  # id -> containers it expands to
    height: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, list[Any] | None]] = [(value, None)]
    while stack:
        node, children = stack.pop()
        i = id(node)
        if children is not None:  # all its children are measured: close it
            size[i] = 1 + sum(size[id(k)] for k in children)
            height[i] = 1 + max((height[id(k)] for k in children), default=0)
            on_path.discard(i)
            if height[i] > limit:
                raise SerializationError(
                    f"{what} {nest} more than {limit} levels of lists and dicts deep: "
                    f"{_NEST_HINT}; flatten them, or store the deep part as a string or array"
                )
            if max_containers is not None and size[i] > max_containers:
                raise SerializationError(
                    f"{what} {hold} more than {max_containers:,} lists and dicts (counting "
                    "each shared one every time it appears): store the data as arrays"
                )
            continue
        if i in size:
            continue  # shared: measured already
        if i in on_path:
            raise SerializationError(
                f"{what} {contain} (a list or dict that holds itself): store a copy "
                "without the cycle"
            )
        children = first if node is value else _kids(node)
        if not children:
            size[i], height[i] = 1, 1
            continue
        on_path.add(i)
        stack.append((node, children))
        stack.extend((k, None) for k in children if id(k) not in size)


def check_stored(value: Any, what: str = "the value") -> None:
    """:func:`check_nesting` for a value the store encodes (a task's result, the saved
    result): the depth limit and cycles, no cap on the count of containers (a result of
    ten million pairs is stored, as it always was).

    Raises:
        SerializationError: It nests more than :data:`MAX_DEPTH` levels, or holds itself.
    """
    if isinstance(value, _CONTAINERS) and _deeper_than(value, MAX_DEPTH):
        check_nesting(value, what, max_containers=None, plural=False)  # the words: cycle or depth


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` holds a container ``limit`` levels down (a cycle does): one level at
    a time, flattened and its types looked at in C (a million pairs: ~0.05 s, ~msgpack's
    time for them; :func:`check_nesting`'s bookkeeping took 5 s)."""
    from itertools import chain

    level: list[Any] = [value]
    seen = 0
    for _ in range(limit):
        if any(issubclass(t, dict) for t in set(map(type, level))):
            dicts = [n for n in level if isinstance(n, dict)]
            rest = [n for n in level if not isinstance(n, dict)]
            flat = list(chain.from_iterable(rest))
            flat += chain.from_iterable(d.keys() for d in dicts)
            flat += chain.from_iterable(d.values() for d in dicts)
        else:
            flat = list(chain.from_iterable(level))
        kinds = set(map(type, flat))
        nested = [t for t in kinds if issubclass(t, _CONTAINERS)]
        if not nested:
            return False
        level = (
            flat if len(nested) == len(kinds) else [k for k in flat if isinstance(k, _CONTAINERS)]
        )
        seen += len(level)
        if seen > 2_000_000:  # a part shared many times (a bomb): looked at once per level
            level = list({id(k): k for k in level}.values())
    return True


def deep_stack(fn: Callable[[], T]) -> T:
    """``fn()`` in a thread with a big stack and a high recursion limit: a value an older
    qshpc stored nested up to ~1000 levels deep (before :data:`MAX_DEPTH` held for results)
    is read back, printed and converted to JSON instead of ending in ``RecursionError``.

    Exceptions of ``fn`` are raised here as they are.
    """
    import sys
    import threading

    box: list[Any] = []

    def run() -> None:
        try:
            box.append((True, fn()))
        except BaseException as exc:  # handed to the caller
            box.append((False, exc))

    old_limit, old_size = sys.getrecursionlimit(), threading.stack_size()
    try:
        threading.stack_size(_DEEP_STACK)
        sys.setrecursionlimit(max(old_limit, _DEEP_LIMIT))
        t = threading.Thread(target=run, name="qshpc-deep-read", daemon=True)
        t.start()
        t.join()
    finally:
        threading.stack_size(old_size)
        sys.setrecursionlimit(old_limit)
    ok, out = box[0]
    if not ok:
        raise out
    return out  # type: ignore[no-any-return]


def read_deep(fn: Callable[[], T]) -> T:
    """``fn()``; again under :func:`deep_stack` when it ran out of recursion (a result an
    older qshpc stored too deep for the default stack)."""
    try:
        return fn()
    except RecursionError:
        return deep_stack(fn)


_DEEP_STACK = 256 << 20
_DEEP_LIMIT = 100_000
