"""A number of seconds a user gives for a wait (``qshpc wait --timeout``, ``Job.wait``).

review30 F6: ``qshpc wait J --timeout nan`` and ``qshpc result J --wait nan`` waited for
good (no time is past NaN), and ``--timeout -1`` was taken ("still RUNNING after -1.0 s").
"""

from __future__ import annotations

import math
import numbers

from qshpc.errors import UserError


def seconds(value: float | None, name: str, unset: str) -> float | None:
    """``value`` when it is a finite number of seconds >= 0 (None passes).

    Args:
        value: The number given.
        name: How it was given, as the message shows it: ``--timeout``, ``timeout=``.
        unset: What leaving it out does, e.g. ``leave --timeout out to wait as long as it
            takes``.

    Raises:
        UserError: NaN, infinite or negative; the message names ``name`` and the fix.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # (numpy's pass)
        shown = f"{name}{value!r}" if name.endswith("=") else f"{name} {value!r}"
        raise UserError(
            f"{shown} is not a number of seconds: give one >= 0, such as 60, or {unset}"
        )
    value = float(value)
    if math.isfinite(value) and value >= 0:
        return value
    shown = f"{name}{value:g}" if name.endswith("=") else f"{name} {value:g}"
    raise UserError(
        f"{shown} is not a number of seconds >= 0 (a computed value gone wrong?): give one "
        f"such as 60, or {unset}"
    )


__all__ = ["seconds"]
