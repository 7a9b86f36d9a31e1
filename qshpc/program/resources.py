"""Resource requests of a task (``distribute_task(target=...)``), validated once."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from qshpc.errors import ResourceError

# Quantum-serverless took `mem` (and passed it to Ray as bytes); we take GB.
_ALIASES = {"mem": "mem_gb", "memory": "mem_gb"}


@dataclass(frozen=True)
class Target:
    """What one call of a task needs.

    Attributes:
        cpu: Cores per task (>= 1).
        gpu: GPUs per task (0 or 1: one device per rank).
        mem_gb: Memory per task in GB (0 = no check).
    """

    cpu: int = 1
    gpu: int = 0
    mem_gb: float = 0.0

    @classmethod
    def from_any(cls, target: Target | dict[str, Any] | None) -> Target:
        """Build a Target from None, a Target or a dict, naming any bad key or value.

        Raises:
            ResourceError: An unknown key, or a value of the wrong type or sign.
        """
        if target is None:
            return cls()
        if isinstance(target, Target):
            return target
        if not isinstance(target, dict):
            raise ResourceError(
                f"target must be a dict such as {{'cpu': 1, 'gpu': 0, 'mem': 2}}, "
                f"got {type(target).__name__}"
            )
        valid = [f.name for f in fields(cls)]
        problems: list[str] = []
        values: dict[str, Any] = {}
        for key, value in target.items():
            name = _ALIASES.get(key, key)
            if name not in valid:
                problems.append(f"unknown resource {key!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{key}={value!r} is not a number")
                continue
            if value < 0 or (name == "cpu" and value < 1):
                problems.append(f"{key}={value!r} must be {'>= 1' if name == 'cpu' else '>= 0'}")
                continue
            if name in ("cpu", "gpu") and int(value) != value:
                problems.append(f"{key}={value!r} must be a whole number")
                continue
            values[name] = int(value) if name in ("cpu", "gpu") else float(value)
        if problems:
            raise ResourceError(
                "bad task target: "
                + "; ".join(problems)
                + ". Valid keys: cpu (cores, default 1), gpu (devices, default 0), "
                "mem (GB, alias mem_gb, default 0 = unchecked)."
            )
        return cls(**values)
