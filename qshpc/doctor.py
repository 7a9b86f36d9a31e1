"""``qshpc doctor``: check the environment and say what to fix.

Each check returns a :class:`Check` (OK, WARN or FAIL, a detail and what to
do). MPI is tested for real: ``mpiexec -n 2`` runs a tiny mpi4py allreduce in
a child process, with a timeout, so a hanging launcher cannot hang the doctor.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

OK, WARN, FAIL = "OK", "WARN", "FAIL"
PACKAGES = ("qiskit", "qiskit-aer", "h5py", "mpi4py", "submitit")
MPI_TIMEOUT_S = 60.0
SLURM_TIMEOUT_S = 15.0
_MPI_CODE = (
    "from mpi4py import MPI; c = MPI.COMM_WORLD; "
    "s = c.allreduce(c.Get_rank() + 1); "
    "c.Get_rank() == 0 and print(c.Get_size(), s, MPI.Get_library_version().splitlines()[0])"
)


@dataclass
class Check:
    """One line of the doctor's table.

    Attributes:
        name: What was checked.
        status: ``OK``, ``WARN`` or ``FAIL``.
        detail: What was found.
        fix: What to do about a WARN or FAIL (empty when OK).
    """

    name: str
    status: str
    detail: str
    fix: str = ""


def check_python() -> Check:
    """Python 3.10 or newer, and which qshpc."""
    from qshpc._version import __version__

    v = sys.version_info
    detail = f"Python {v.major}.{v.minor}.{v.micro} ({sys.executable}), qshpc {__version__}"
    if v < (3, 10):
        return Check("python", FAIL, detail, "use Python 3.10 or newer")
    return Check("python", OK, detail)


def check_package(name: str) -> Check:
    """An installed distribution and its version (qiskit-aer-gpu counts as qiskit-aer)."""
    from importlib.metadata import PackageNotFoundError, version

    names = (name, "qiskit-aer-gpu") if name == "qiskit-aer" else (name,)
    for dist in names:
        try:
            return Check(name, OK, f"{dist} {version(dist)}")
        except PackageNotFoundError:
            continue
    return Check(name, FAIL, "not installed", f"pip install {name} (or: pip install -e '.[dev]')")


def find_mpiexec() -> str | None:
    """The ``mpiexec`` next to this Python (the PyPI MPI), else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    if here.exists():
        return str(here)
    return shutil.which("mpiexec")


def check_mpi(timeout: float = MPI_TIMEOUT_S) -> Check:
    """``mpiexec -n 2`` runs an mpi4py allreduce across two ranks."""
    fix_install = "pip install mpich (or load your site's MPI module and rebuild mpi4py against it)"
    exe = find_mpiexec()
    if exe is None:
        return Check("mpi", FAIL, "no mpiexec next to Python or on PATH", fix_install)
    cmd = [exe, "-n", "2", sys.executable, "-c", _MPI_CODE]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Check(
            "mpi", FAIL, f"{exe} -n 2 hung for {timeout:.0f} s",
            "check that mpiexec and mpi4py come from the same MPI; on a login node try inside salloc",
        )  # fmt: skip
    except OSError as exc:
        return Check("mpi", FAIL, f"cannot start {exe}: {exc}", fix_install)
    lines = [ln.split(maxsplit=2) for ln in out.stdout.splitlines() if ln.strip()]
    if out.returncode != 0 or not lines:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return Check("mpi", FAIL, f"{exe} -n 2 failed (exit {out.returncode}): {last}", fix_install)
    if len(lines) != 1 or lines[0][:2] != ["2", "3"]:  # only rank 0 of a 2-rank world prints
        return Check(
            "mpi", FAIL, f"{exe} -n 2 started ranks that did not see each other: {out.stdout.strip()!r}",
            "mpi4py is built against another MPI than this mpiexec: use the matching mpiexec "
            "or reinstall mpi4py (pip install --force-reinstall --no-binary mpi4py mpi4py)",
        )  # fmt: skip
    vendor = " ".join(lines[0][2].split()) if len(lines[0]) > 2 else "MPI"
    return Check("mpi", OK, f"2 ranks allreduce OK with {exe} ({vendor})")


def check_slurm(timeout: float = SLURM_TIMEOUT_S) -> Check:
    """``sinfo`` answers (a WARN, not a FAIL: local runs need no Slurm)."""
    from qshpc.submit import slurm

    hint = "set SLURM_CONF to your cluster's slurm.conf; for a dev cluster run `make slurm-up`"
    conf = slurm.conf()
    where = f" (SLURM_CONF={conf})" if conf else " (SLURM_CONF not set)"
    try:
        out = slurm.sinfo(timeout)
    except subprocess.TimeoutExpired:
        return Check("slurm", WARN, f"sinfo did not answer in {timeout:.0f} s{where}", hint)
    except OSError as exc:
        return Check("slurm", WARN, f"sinfo cannot be run: {exc}{where}", hint)
    if out is None:
        return Check(
            "slurm", WARN, "sinfo not found: Slurm not installed here (local runs work)",
            "on a cluster, load the Slurm module; for a dev cluster run `make slurm-up`",
        )  # fmt: skip
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return Check("slurm", WARN, f"sinfo failed: {last}{where}", hint)
    rows = [ln.split() for ln in out.stdout.splitlines() if ln.strip()]
    parts = sorted({r[1] for r in rows if len(r) > 1})
    # Distinct node names: a node in two partitions was counted twice (review44 F6: the
    # dev cluster's 3 nodes, each in debug and batch, showed as 6)
    nodes = len({r[0] for r in rows if r})
    return Check("slurm", OK, f"partitions {', '.join(parts) or '-'}; {nodes} node(s){where}")


def check_aer() -> list[Check]:
    """Aer's CPU device, and a GPU device (a WARN when none: CPU runs work)."""
    try:
        from qshpc.aer.device import aer_devices, gpu_count

        devices = aer_devices()
    except Exception as exc:
        fix = "pip install qiskit-aer"
        return [Check("aer cpu", FAIL, f"cannot load qiskit_aer: {exc}", fix)]
    cpu = Check("aer cpu", OK if "CPU" in devices else FAIL, f"devices {', '.join(devices)}")
    if cpu.status == FAIL:
        cpu.fix = "reinstall qiskit-aer"
    if "GPU" in devices:
        gpu = Check("aer gpu", OK, f"Aer GPU build; {gpu_count()} GPU(s) visible")
    elif gpu_count():
        gpu = Check(
            "aer gpu", WARN, f"{gpu_count()} GPU(s) visible but Aer is a CPU-only build",
            "install qiskit-aer-gpu in place of qiskit-aer (`make install-gpu`)",
        )  # fmt: skip
    else:
        gpu = Check("aer gpu", WARN, "no GPU visible (CPU only)", "run on a GPU node for GPU jobs")
    return [cpu, gpu]


def check_aer_mpi(timeout: float = 2 * MPI_TIMEOUT_S) -> Check:
    """An MPI build of Aer, and a 2-rank run of one statevector with it (a WARN when absent)."""
    from qshpc.aer.distributed.install import ENV_PREFIX, given_prefix, locate, why_missing

    fix = "make install-aer-mpi (a cluster's own MPI: see docs/distributed.md)"
    aer = locate()
    if aer is None and given_prefix() is not None:  # named, and wrong: not an optional part
        return Check("aer mpi", FAIL, why_missing(), f"correct or unset ${ENV_PREFIX}; {fix}")
    if aer is None:
        return Check(
            "aer mpi", WARN, why_missing() + ": circuits wider than one rank are refused", fix
        )
    from importlib.metadata import PackageNotFoundError, version

    from qshpc.aer.distributed.check import self_test

    where = f"Aer {aer.version} with MPI ({aer.mpi_library}) from {aer.site or 'this environment'}"
    test = self_test(aer, ranks=2, timeout=timeout)
    if not test.ok:
        return Check(
            "aer mpi", FAIL, f"{where}: {test.detail}", "rebuild: make install-aer-mpi FORCE=1"
        )
    notes = []
    try:
        if version("qiskit-aer") != aer.version:
            notes.append(f"differs from the installed qiskit-aer {version('qiskit-aer')}")
    except PackageNotFoundError:
        pass
    if aer.site is not None and not aer.patched:
        notes.append("built without qshpc's memory patch (ranks hold ~2x their share)")
    detail = f"{where}; tested over {test.ranks} ranks: {test.detail}"
    if notes:
        return Check(
            "aer mpi", WARN, detail + "; " + "; ".join(notes), "make install-aer-mpi FORCE=1"
        )
    return Check("aer mpi", OK, detail)


def check_store() -> Check:
    """``$QSHPC_HOME/jobs`` can be created and written (a temp file made and removed)."""
    from qshpc.jobs.paths import ensure_jobs_root, qshpc_home
    from qshpc.store.perms import UnsafeStoreError

    fix = "set QSHPC_HOME to a writable folder (on shared storage for Slurm jobs)"
    try:
        root = ensure_jobs_root()  # 0700 at every level it creates; refused when not yours
    except UnsafeStoreError as exc:
        return Check("store", FAIL, str(exc), fix)
    try:
        home = qshpc_home()
    except UnsafeStoreError as exc:  # pragma: no cover - ensure_jobs_root checked it
        return Check("store", FAIL, str(exc), fix)
    root = home / "jobs"
    try:
        fd, name = tempfile.mkstemp(prefix=".doctor-", dir=root)
        os.write(fd, b"ok")
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return Check("store", FAIL, f"{root} is not writable: {exc.strerror or exc}", fix)
    return Check("store", OK, f"{root} writable")


def run_checks(
    slurm_timeout: float = SLURM_TIMEOUT_S, mpi_timeout: float = MPI_TIMEOUT_S
) -> list[Check]:
    """Every check, in table order."""
    steps: list[Callable[[], Check | list[Check]]] = [
        check_python,
        *[functools.partial(check_package, n) for n in PACKAGES],
        functools.partial(check_mpi, mpi_timeout),
        functools.partial(check_slurm, slurm_timeout),
        check_aer,
        check_aer_mpi,
        check_store,
    ]
    out: list[Check] = []
    for step in steps:
        got = step()
        out.extend(got if isinstance(got, list) else [got])
    return out


def healthy(checks: list[Check]) -> bool:
    """True when no check FAILed."""
    return all(c.status != FAIL for c in checks)


def as_json(checks: list[Check]) -> dict[str, Any]:
    """``{"ok": bool, "checks": [{name, status, detail, fix}, ...]}``."""
    return {"ok": healthy(checks), "checks": [asdict(c) for c in checks]}


def format_table(checks: list[Check]) -> str:
    """A plain-text table: CHECK, STATUS, DETAIL, then the fix on its own line."""
    width = max(len(c.name) for c in checks)
    lines = [f"{'CHECK'.ljust(width)}  STATUS  DETAIL"]
    for c in checks:
        lines.append(f"{c.name.ljust(width)}  {c.status.ljust(6)}  {c.detail}")
        if c.fix and c.status != OK:
            lines.append(f"{''.ljust(width)}          -> {c.fix}")
    bad = [c for c in checks if c.status == FAIL]
    warn = [c for c in checks if c.status == WARN]
    lines.append(
        f"{len(bad)} failed, {len(warn)} warning(s): "
        + ("fix the FAIL lines above." if bad else "qshpc can run here.")
    )
    return "\n".join(lines)
