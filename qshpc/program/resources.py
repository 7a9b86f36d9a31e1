"""Resource requests of a task (``distribute_task(target=...)``), validated once.

The fields are quantum-serverless 0.10.1's (``cpu``, ``gpu``, ``qpu``, ``mem``,
``resources``, ``env_vars``, ``pip``), each with a meaning on MPI ranks:

* ``cpu``: the threads the task gets (Aer's ``max_parallel_threads`` follows
  it); the task runs on a rank with at least that many cores, and a call no rank
  of the job can meet is refused. Unset: the rank's cores.
* ``mem``: GB per task (quantum-serverless passed Ray bytes); circuits that
  cannot fit are refused at the call. 0: unchecked.
* ``gpu``: 0 or 1 (one device per rank).
* A fraction of ``cpu`` or ``gpu`` (Ray's ``num_cpus=0.5``: tasks sharing a core
  or a device) rounds up: a rank runs its tasks one at a time, so each holds
  whole threads and its rank's device (``cpu=0.5``: one thread; ``gpu=0.25``:
  the rank's GPU, used by one task at a time).
* ``env_vars``: set in the task's environment while it runs.
* ``pip``: requirements checked when the function is decorated (qshpc never
  installs packages on compute nodes: it names the missing ones).
* ``qpu``: accepted and unused (quantum-serverless only traced it).
* ``resources``: custom Ray resources, refused unless empty.
* ``ranks`` (qshpc's own): the ranks one call runs on. A call with k > 1 holds
  k ranks' cores while it runs and starts a k-process step of its own
  (``qshpc.current_task().step``; docs/distributed.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from qshpc.errors import ResourceError
from qshpc.jobs.requirements import check_requirements

# Quantum-serverless took `mem` (and passed it to Ray as bytes); we take GB.
_ALIASES = {"mem": "mem_gb", "memory": "mem_gb"}
_VALID = "cpu, gpu, mem (GB; alias mem_gb), env_vars, pip, qpu, ranks (ranks one call runs on)"


@dataclass(frozen=True, init=False)
class Target:
    """What one call of a task needs.

    ``Target(cpu=4, mem=2)``, ``Target.from_dict({...})`` or a plain dict in
    ``distribute_task(target=...)``.

    Attributes:
        cpu: Threads per task, on a rank with that many cores (None: the rank's cores).
        gpu: GPUs per task (0 or 1: one device per rank).
        mem_gb: Memory per task in GB (0 = no check).
        qpu: Accepted for quantum-serverless programs; unused.
        env_vars: Environment variables set while the task runs.
        pip: Requirements that must be installed where the job runs (checked, not installed).
        resources: Custom resources (Ray's); only an empty dict is accepted.
        ranks: Ranks one call runs on (>= 1; docs/distributed.md).
    """

    cpu: int | None
    gpu: int
    mem_gb: float
    qpu: int
    env_vars: dict[str, str] | None = field(default=None, hash=False, compare=True)
    pip: list[str] | None = field(default=None, hash=False, compare=True)
    resources: dict[str, float] | None = field(default=None, hash=False, compare=True)
    ranks: int = 1

    def __init__(
        self,
        cpu: int | None = None,
        gpu: int = 0,
        qpu: int = 0,
        mem: float | None = None,
        resources: dict[str, float] | None = None,
        env_vars: dict[str, str] | None = None,
        pip: list[str] | None = None,
        *,
        mem_gb: float | None = None,
        ranks: int = 1,
    ) -> None:
        # Positional order as quantum-serverless 0.10.1's Target(cpu, gpu, qpu, mem,
        # resources, env_vars, pip): a program that passes them by position means the same.
        if mem is not None and mem_gb is not None and mem != mem_gb:
            raise ResourceError(
                f"bad task target: mem={mem!r} and mem_gb={mem_gb!r} name the same thing: give one"
            )
        values: dict[str, Any] = {
            "cpu": cpu,
            "gpu": gpu,
            "mem_gb": mem if mem is not None else (mem_gb if mem_gb is not None else 0.0),
            "qpu": qpu,
            "env_vars": env_vars,
            "pip": pip,
            "resources": resources,
            "ranks": ranks,
        }
        checked = _check(values)
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def mem(self) -> float:
        """quantum-serverless's name of :attr:`mem_gb` (in GB here)."""
        return self.mem_gb

    @property
    def threads(self) -> int:
        """The threads the task asked for (0: not given, the rank's cores)."""
        return self.cpu or 0

    @classmethod
    def from_dict(cls, dictionary: dict[str, Any]) -> Target:
        """quantum-serverless's ``Target.from_dict``: a Target from a dict, bad keys named."""
        return cls.from_any(dictionary)

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
        unknown = [k for k in target if _ALIASES.get(k, k) not in _FIELDS]
        if unknown:
            raise ResourceError(
                "bad task target: "
                + "; ".join(f"unknown resource {k!r}" for k in unknown)
                + f". Valid keys: {_VALID}."
            )
        given = [(k, target[k]) for k in ("mem", "mem_gb", "memory") if k in target]
        if any(v != given[0][1] for _, v in given[1:]):  # as Target(mem=1, mem_gb=2) is
            named = " and ".join(f"{k}={v!r}" for k, v in given)
            raise ResourceError(f"bad task target: {named} name the same thing: give one")
        return cls(**{_ALIASES.get(k, k): v for k, v in target.items()})


_FIELDS = ("cpu", "gpu", "mem_gb", "qpu", "env_vars", "pip", "resources", "ranks")


def _check(values: dict[str, Any]) -> dict[str, Any]:
    """Validate every field at once; the error lists every problem."""
    problems: list[str] = []
    out: dict[str, Any] = {}
    for name in ("cpu", "gpu", "mem_gb", "qpu", "ranks"):
        value = values[name]
        key = "mem" if name == "mem_gb" else name
        if value is None and name == "cpu":
            out[name] = None
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{key}={value!r} is not a number")
            continue
        if name in ("cpu", "gpu") and 0 < value and int(value) != value:
            # Ray's fractional num_cpus/num_gpus (quantum-serverless's Target(cpu=0.5)):
            # tasks share a resource. A rank runs its tasks one at a time, so a task holds
            # whole cores and its rank's device: a fraction rounds up (0.5 CPU: one thread).
            value = math.ceil(value)
        at_least_one = name in ("cpu", "ranks")
        if value < 0 or (at_least_one and value < 1):
            problems.append(f"{key}={value!r} must be {'>= 1' if at_least_one else '>= 0'}")
            continue
        if name != "mem_gb" and int(value) != value:
            problems.append(f"{key}={value!r} must be a whole number")
            continue
        out[name] = float(value) if name == "mem_gb" else int(value)
    if out.get("ranks", 1) > 1 and out.get("cpu") is not None:
        problems.append(
            f"cpu={out['cpu']} with ranks={out['ranks']}: a multi-rank call's processes use "
            "the cores of the ranks it holds (drop cpu; give the job's ranks more cores with "
            "--cpus-per-task)"
        )
    env = values["env_vars"]
    if env is not None and (
        not isinstance(env, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    ):
        problems.append("env_vars must be a dict of str to str")
    out["env_vars"] = dict(env) if isinstance(env, dict) and env else None
    pip = values["pip"]
    if pip is not None and (isinstance(pip, str) or not all(isinstance(p, str) for p in pip)):
        problems.append("pip must be a list of requirement strings")
    out["pip"] = list(pip) if pip and not isinstance(pip, str) else None
    res = values["resources"]
    if res:
        problems.append(
            f"resources={res!r}: custom Ray resources have no meaning on MPI ranks "
            "(ask for cpu, gpu or mem)"
        )
    out["resources"] = None
    if problems:
        raise ResourceError(f"bad task target: {'; '.join(problems)}. Valid keys: {_VALID}.")
    return out


__all__ = ["Target", "check_requirements"]
