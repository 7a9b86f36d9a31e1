"""What a pickle holds, read without unpickling it: the class it rebuilds, for a refusal's words.

A value qshpc has no encoding of its own for (an ndarray subclass such as
``numpy.char.chararray``, an instance of the program's class) is pickled, and
pickled data is loaded only with ``allow_pickle``. The refusal said "contains
pickled data" and not of what (mend24): :func:`pickled_class` names the class
from the pickle's opcodes (:mod:`pickletools` parses them; nothing is run or
imported).
"""

from __future__ import annotations

#: Globals a pickle calls to rebuild an object, not the object's own class.
_HELPERS = (
    "copyreg.",
    "copy_reg.",
    "numpy.core.multiarray._reconstruct",
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray.scalar",
    "numpy._core.multiarray.scalar",
    "_codecs.encode",
    "builtins.getattr",
)
_STRINGS = frozenset(
    ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
     "SHORT_BINSTRING", "BINSTRING", "STRING")
)  # fmt: skip
#: Opcodes read at most: the class comes first (a large pickle is not parsed through).
MAX_OPS = 256


def pickled_class(data: bytes) -> str | None:
    """``module.qualname`` of the first class the pickle ``data`` rebuilds, or None when that
    is not plain to see (a class cloudpickle wrote by value, a malformed pickle)."""
    import pickletools

    memo: dict[int, object] = {}
    strings: list[str] = []
    last: object = None  # what the last opcode pushed, as far as a name goes
    try:
        for i, (op, arg, _) in enumerate(pickletools.genops(data)):
            if i >= MAX_OPS:
                return None
            name = op.name
            found = None
            if name in _STRINGS:
                last = arg
                strings.append(str(arg))
            elif name == "MEMOIZE":
                memo[len(memo)] = last
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(str(arg))] = last
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                last = memo.get(int(str(arg)))
                if isinstance(last, str):
                    strings.append(last)
            elif name == "STACK_GLOBAL" and len(strings) >= 2:
                found = f"{strings[-2]}.{strings[-1]}"
            elif name in ("GLOBAL", "INST"):
                found = str(arg).replace(" ", ".", 1)
            else:
                last = None
            if found is not None:
                if found.startswith("cloudpickle"):
                    return None
                if not found.startswith(_HELPERS):
                    return found
                last = None
    except Exception:  # (not a pickle pickletools can read: no name, then)
        return None
    return None


__all__ = ["MAX_OPS", "pickled_class"]
