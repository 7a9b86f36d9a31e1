"""The launcher this process's steps use when the caller gives none (no imports: the
ranks of every Slurm job set it, see :func:`qshpc.submit.slurm.scheduler`)."""

from __future__ import annotations

from typing import Any

_launcher: Any = None


def use_launcher(launcher: Any) -> None:
    """Make ``launcher`` (a :class:`qshpc.aer.distributed.launch.StepLauncher`, or None for a
    nested ``mpiexec``) how this process starts steps when none is given.

    Set for the ranks of a job inside a Slurm allocation (``SrunStep``): a nested
    ``mpiexec`` there would ask Slurm for a step without ``--overlap`` and wait for CPUs
    the job's ranks hold.
    """
    global _launcher
    _launcher = launcher


def chosen_launcher() -> Any:
    """What :func:`use_launcher` set (None: none)."""
    return _launcher


__all__ = ["chosen_launcher", "use_launcher"]
