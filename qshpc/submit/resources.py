"""What a Slurm job asks for (:class:`SlurmResources`), validated once, all problems at once.

Every value here can end up in a batch script, so each is checked against a
strict pattern or range before anything is rendered; a bad value is refused
with one :class:`~qshpc.errors.ResourceError` that names each problem and its
fix. Site defaults come from :mod:`qshpc.submit.config`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from qshpc.errors import ResourceError

#: Job names, partitions, accounts, QOS and module names: no spaces, no shell syntax.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")
SAFE_LIST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*(,[A-Za-z0-9][A-Za-z0-9_.+-]*)*$")
MODULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+/-]{0,127}$")
SBATCH_KEY = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
MPI_PLUGIN = re.compile(r"^(none|pmi2|pmix(_v[0-9]+)?|cray_shasta)$")

#: sbatch options that qshpc writes itself: set them through their own option.
MANAGED_SBATCH = {
    "job-name": "--name",
    "nodes": "--nodes",
    "ntasks": "--nodes and --ntasks-per-node",
    "ntasks-per-node": "--ntasks-per-node",
    "cpus-per-task": "--cpus-per-task",
    "gpus-per-node": "--gpus-per-node",
    "mem": "--mem-gb",
    "time": "--time-min",
    "partition": "--partition",
    "account": "--account",
    "qos": "--qos",
    "requeue": "--requeue",
    "output": "qshpc writes the logs to JOB_DIR/slurm/ (see `qshpc logs`)",
    "error": "qshpc writes the logs to JOB_DIR/slurm/ (see `qshpc logs`)",
    "open-mode": "qshpc sets it",
    "signal": "qshpc sets it, so that a time limit ends the job TIMEOUT",
    "wrap": "it is not a batch script option",
    "array": "one qshpc job is one Slurm job",
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass
class SlurmResources:
    """Resources and placement of one Slurm job; every rank runs the qshpc runtime.

    Attributes:
        nodes: Nodes (>= 1).
        ntasks_per_node: MPI ranks per node (>= 1); rank 0 runs the program, the rest run tasks.
        cpus_per_task: Cores per rank (>= 1); Aer threads follow it.
        gpus_per_node: GPUs per node (>= 0); each rank sees one, from its local rank.
        mem_gb: Memory per node in GB (> 0), or None for the partition's default.
        time_min: Time limit in minutes (>= 1); the job ends FAILED (Slurm: TIMEOUT) past it.
        partition: Partition, or None for the cluster's default.
        account: Account to charge, or None.
        qos: Quality of service, or None.
        mpi: srun's ``--mpi`` plugin (``pmi2`` with the PyPI MPICH).
        extra: More ``#SBATCH --KEY=VALUE`` options (KEY without dashes).
        name: Job name (default: from the program's title).
        requeue: Let Slurm requeue the job after a node failure or preemption.
        setup: Shell lines run in the batch script before ``srun`` (site config only).
        modules: Environment modules loaded before ``srun`` (``module load ...``).
    """

    nodes: int = 1
    ntasks_per_node: int = 2
    cpus_per_task: int = 1
    gpus_per_node: int = 0
    mem_gb: float | None = None
    time_min: int = 60
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    mpi: str = "pmi2"
    extra: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    requeue: bool = False
    setup: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)

    @classmethod
    def field_names(cls) -> list[str]:
        """The valid keyword names, in declaration order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def build(cls, values: dict[str, Any], source: str = "resources") -> SlurmResources:
        """Build and validate from a dict, refusing unknown keys (with the valid ones listed).

        Raises:
            ResourceError: Unknown keys or bad values, all in one message.
        """
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ResourceError(unknown_keys_message(unknown, source))
        res = cls(**values)
        res.validate()
        return res

    @property
    def ntasks(self) -> int:
        """Total MPI ranks."""
        return self.nodes * self.ntasks_per_node

    def as_meta(self) -> dict[str, Any]:
        """A JSON-able copy for the job's meta."""
        return asdict(self)

    def problems(self) -> list[str]:
        """Every invalid value, each with what to do instead (empty when valid)."""
        p: list[str] = []
        for key, low, flag in (
            ("nodes", 1, "--nodes"),
            ("ntasks_per_node", 1, "--ntasks-per-node"),
            ("cpus_per_task", 1, "--cpus-per-task"),
            ("gpus_per_node", 0, "--gpus-per-node"),
            ("time_min", 1, "--time-min"),
        ):
            v = getattr(self, key)
            if not _is_int(v) or v < low:
                p.append(f"{key}={v!r}: must be a whole number >= {low} ({flag} {max(low, 1)})")
        if self.mem_gb is not None and (not _is_num(self.mem_gb) or not self.mem_gb > 0):
            p.append(
                f"mem_gb={self.mem_gb!r}: must be a number of GB > 0 (e.g. --mem-gb 4), "
                "or left out for the partition's default"
            )
        for key in ("partition", "account", "qos"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, str) or not SAFE_LIST.match(v)):
                p.append(
                    f"{key}={v!r}: use letters, digits and . _ + - only (see `sinfo`/`sacctmgr`)"
                )
        if self.name is not None and (
            not isinstance(self.name, str) or not SAFE_NAME.match(self.name)
        ):
            p.append(
                f"name={self.name!r}: a job name is 1-128 letters, digits, . _ + - "
                "(no spaces or shell characters), e.g. --name my-job"
            )
        if not isinstance(self.mpi, str) or not MPI_PLUGIN.match(self.mpi):
            p.append(f"mpi={self.mpi!r}: use an srun --mpi plugin such as pmi2 (`srun --mpi=list`)")
        if not isinstance(self.requeue, bool):
            p.append(f"requeue={self.requeue!r}: must be true or false")
        p += _extra_problems(self.extra)
        p += _list_problems(self.modules, "modules", MODULE_NAME, "module names such as gcc/12.2")
        if not isinstance(self.setup, list) or not all(
            isinstance(s, str) and _printable(s) for s in self.setup
        ):
            p.append("setup: must be a list of single-line shell commands")
        return p

    def validate(self) -> None:
        """Raise one error listing every problem.

        Raises:
            ResourceError: When any value is invalid.
        """
        p = self.problems()
        if p:
            raise ResourceError("invalid Slurm resources:\n  - " + "\n  - ".join(p))


def _printable(s: str) -> bool:
    """One line, no control characters (a newline would end an #SBATCH line)."""
    return all(c.isprintable() for c in s)


def _extra_problems(extra: Any) -> list[str]:
    if not isinstance(extra, dict):
        return [f"extra={extra!r}: must be a mapping of sbatch KEY to VALUE"]
    p: list[str] = []
    for key, value in extra.items():
        k = str(key)
        if not isinstance(key, str) or not SBATCH_KEY.match(k):
            p.append(
                f"--sbatch {k!r}: a key is a long sbatch option without dashes, "
                "lower-case letters, digits and '-' (e.g. --sbatch constraint=haswell)"
            )
        elif k in MANAGED_SBATCH:
            how = MANAGED_SBATCH[k]
            how = f"use {how}" if how.startswith("--") else how
            p.append(f"--sbatch {k}: not allowed, {how}")
        if not isinstance(value, str) or not _printable(value) or not value:
            p.append(f"--sbatch {k}={value!r}: the value must be one line of printable text")
    return p


def _list_problems(values: Any, key: str, pattern: re.Pattern[str], what: str) -> list[str]:
    if not isinstance(values, list):
        return [f"{key}={values!r}: must be a list of {what}"]
    return [
        f"{key}: {v!r} is not valid; use {what}"
        for v in values
        if not isinstance(v, str) or not pattern.match(v)
    ]


def unknown_keys_message(unknown: list[str], source: str) -> str:
    """``unknown Slurm resource(s) ... valid: ...`` with each valid key and its default."""
    defaults = SlurmResources()
    valid = "\n  - ".join(
        f"{n} (default: {getattr(defaults, n)!r})" for n in defaults.field_names()
    )
    return f"unknown Slurm resource(s) {unknown} in {source}\nvalid names are:\n  - {valid}"


def parse_sbatch_options(items: list[str]) -> dict[str, str]:
    """Turn ``--sbatch KEY=VALUE`` items into a dict (checked later by :meth:`SlurmResources.validate`).

    Raises:
        ResourceError: An item without ``=``.
    """
    out: dict[str, str] = {}
    bad = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            bad.append(item)
            continue
        out[key.strip().lstrip("-")] = value
    if bad:
        raise ResourceError(
            f"--sbatch takes KEY=VALUE (e.g. --sbatch constraint=haswell), got {bad}"
        )
    return out


def safe_job_name(title: str) -> str:
    """A valid job name made from a program title (unsafe characters become '-')."""
    name = re.sub(r"[^A-Za-z0-9_.+-]+", "-", title).strip("-._+")[:64]
    return name or "qshpc"
