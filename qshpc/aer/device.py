"""Which device Aer runs on in this rank, and which GPU it binds.

The choice, in order: an explicit ``device=`` option, then the environment
variable ``QSHPC_AER_DEVICE`` (``CPU``, ``GPU`` or ``auto``), then ``auto``:
the GPU when Aer was built with one (``qiskit-aer-gpu``), else the CPU. A rank
binds one GPU, ``local_rank % n_gpus``, so the ranks of a node share its GPUs
evenly. Asking for a GPU where none is usable warns once and runs on the CPU.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import warnings

from qshpc import settings
from qshpc.errors import UserError
from qshpc.task.context import rank_info

ENV_DEVICE = settings.AER_DEVICE.name
DEVICES = ("auto", "CPU", "GPU")

_warned: set[str] = set()


@functools.cache
def aer_devices() -> tuple[str, ...]:
    """Devices this qiskit-aer build can use, e.g. ``("CPU",)`` or ``("CPU", "GPU")``.

    Cached per process (asking Aer probes CUDA, which is slow the first time).
    """
    from qiskit_aer import AerSimulator

    return tuple(str(d) for d in AerSimulator().available_devices())


@functools.cache
def gpu_count() -> int:
    """Number of GPUs visible to this process; 0 when none.

    Read from ``CUDA_VISIBLE_DEVICES`` when it is set (Slurm sets it for
    ``--gpus-per-task``), else counted from ``nvidia-smi -L``. Cached per process.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = [e.strip() for e in visible.split(",") if e.strip()]
        if any(e in {"-1", "NoDevFiles"} for e in entries):
            return 0
        return len(entries)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def gpus_hidden() -> bool:
    """True when ``CUDA_VISIBLE_DEVICES`` is set and names no GPU (``""``, ``-1``, ``NoDevFiles``).

    qiskit-aer-gpu still lists ``GPU`` then (0.18.2, seen on an H200 node); a run on it fails.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return visible is not None and gpu_count() == 0


def warn_once(key: str, message: str) -> None:
    """Emit ``message`` as a RuntimeWarning the first time ``key`` is seen in this process."""
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def requested_device(option: str | None = None) -> str:
    """The device asked for: the ``option`` when given, else ``$QSHPC_AER_DEVICE``, else auto.

    Args:
        option: ``"auto"``, ``"CPU"`` or ``"GPU"`` (any case), or None.

    Returns:
        One of ``"auto"``, ``"CPU"``, ``"GPU"``.

    Raises:
        UserError: If the value is none of those.
    """
    if option is None or option.lower() == "auto":
        return settings.AER_DEVICE.get()
    normalized = "auto" if option.lower() == "auto" else option.upper()
    if normalized not in DEVICES:
        raise UserError(f"device option is {option!r}; use one of {', '.join(DEVICES)}")
    return normalized


def resolve_device(option: str | None = None) -> tuple[str, int | None]:
    """Pick the device for this rank and the GPU ordinal it binds.

    Args:
        option: The ``device`` option of the caller, or None.

    Returns:
        ``("CPU", None)`` or ``("GPU", ordinal)``.
    """
    wanted = requested_device(option)
    if wanted == "CPU":
        return "CPU", None
    has_gpu = "GPU" in aer_devices() and not gpus_hidden()
    if has_gpu:
        return "GPU", _gpu_ordinal()
    if wanted == "GPU":
        warn_once(
            "no-gpu",
            _no_gpu_message(),
        )
    return "CPU", None


def _no_gpu_message() -> str:
    if gpus_hidden():
        return (
            "a GPU was asked for (device='GPU' or QSHPC_AER_DEVICE=GPU) but CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r} hides every GPU from this rank (ask your "
            "batch system for GPUs, e.g. --gpus-per-task=1); running on the CPU"
        )
    return (
        "a GPU was asked for (device='GPU' or QSHPC_AER_DEVICE=GPU) but this qiskit-aer "
        f"build offers only {list(aer_devices())} (install qiskit-aer-gpu in place of "
        "qiskit-aer and run on a GPU node); running on the CPU"
    )


def _gpu_ordinal() -> int:
    """The GPU this rank binds: the runtime's choice, else ``local_rank % n_gpus``."""
    info = rank_info()
    bound = getattr(info, "gpu", None)
    if isinstance(bound, int):
        return bound
    n = gpu_count()
    return info.local_rank % n if n > 0 else 0


def reset_caches() -> None:
    """Forget cached device facts and warnings (for tests)."""
    for cached in (aer_devices, gpu_count):
        clear = getattr(cached, "cache_clear", None)  # tests may have patched it
        if clear is not None:
            clear()
    _warned.clear()


__all__ = [
    "DEVICES",
    "ENV_DEVICE",
    "aer_devices",
    "gpu_count",
    "gpus_hidden",
    "requested_device",
    "reset_caches",
    "resolve_device",
    "warn_once",
]
