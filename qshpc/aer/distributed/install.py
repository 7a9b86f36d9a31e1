"""Where the MPI build of Aer lives, and the environment of a process that uses it.

The MPI build is installed beside the PyPI qiskit-aer, never over it: an MPI
Aer calls ``MPI_Init_thread`` when imported and never finalizes, which would
change every rank and every plain Python program that imports Aer. It lives in
a prefix of its own::

    <prefix>/lib/python/qiskit_aer/...   pip install --target (the MPI build)
    <prefix>/build-info.json             what was built, against which MPI (the stamp)

and only the processes of a distributed step get ``<prefix>/lib/python`` first on
``PYTHONPATH`` and the MPI library's folder on ``LD_LIBRARY_PATH``
(:func:`step_env`).

The prefix is, in order: ``$QSHPC_AER_MPI``; ``<checkout>/.aer-mpi`` when qshpc
runs from a source checkout (what ``make install-aer-mpi`` builds); and
``$QSHPC_HOME/aer-mpi``. An environment whose own qiskit-aer is an MPI build
(a cluster's) is used as it is.

Nothing here imports qiskit_aer: whether a build links MPI is read from the
extension module's bytes.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Environment variable naming the prefix of an MPI Aer build.
ENV_PREFIX = "QSHPC_AER_MPI"
#: The stamp written last by a successful build.
INFO_FILE = "build-info.json"
_MODULE_GLOB = "controller_wrappers*.so"
#: Where the build sits under its prefix. Two levels down on purpose: Aer's
#: ``version.py`` runs ``git`` (and fails) when the folder three levels above
#: its package holds a ``.git``, which ``<checkout>/.aer-mpi/site`` would be.
SITE = Path("lib", "python")
_NEEDED_MPI = re.compile(rb"(libmpi[A-Za-z0-9_]*\.so(?:\.[0-9]+)*)\x00")


@dataclass(frozen=True)
class AerMPI:
    """An Aer build with MPI that a distributed step can load.

    Attributes:
        version: Its qiskit-aer version.
        module: Its extension module (``controller_wrappers*.so``).
        site: Folder to put first on ``PYTHONPATH``; None when it is this
            environment's own qiskit-aer.
        mpi_library: The MPI library it links (``libmpi.so.12``).
        mpi_lib_dir: Folder holding that library, for ``LD_LIBRARY_PATH``
            (None: the system's loader finds it).
        source: Where it was found: ``QSHPC_AER_MPI``, ``checkout``, ``home``
            or ``environment``.
        info: The build's stamp (empty for an environment's own Aer).
    """

    version: str
    module: Path
    site: Path | None
    mpi_library: str
    mpi_lib_dir: Path | None
    source: str
    info: dict[str, Any]

    @property
    def patched(self) -> bool:
        """True when built with qshpc's memory patch (see :mod:`.build`)."""
        return bool(self.info.get("patches"))


def checkout_root() -> Path | None:
    """The source checkout qshpc runs from (a folder with ``pyproject.toml``), else None."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "pyproject.toml").is_file() and (root / "qshpc").is_dir() else None


def prefixes() -> list[tuple[str, Path]]:
    """Candidate prefixes in lookup order, as ``(source, path)``."""
    from qshpc.jobs.paths import qshpc_home

    out: list[tuple[str, Path]] = []
    given = given_prefix()
    if given is not None:
        out.append((ENV_PREFIX, given))
    root = checkout_root()
    if root is not None:
        out.append(("checkout", root / ".aer-mpi"))
    out.append(("home", qshpc_home() / "aer-mpi"))
    return out


def default_prefix() -> Path:
    """Where a build goes when none is named: the first candidate prefix."""
    return prefixes()[0][1]


@functools.lru_cache(maxsize=16)
def mpi_needed(module: Path) -> str | None:
    """The MPI library an Aer extension module links (its ``DT_NEEDED`` name), else None."""
    try:
        data = module.read_bytes()
    except OSError:
        return None
    found = _NEEDED_MPI.search(data)
    return found.group(1).decode() if found else None


def _module_in(package_dir: Path) -> Path | None:
    found = sorted((package_dir / "backends").glob(_MODULE_GLOB))
    return found[0] if found else None


def environment_aer() -> Path | None:
    """This environment's qiskit_aer extension module, found without importing it."""
    try:
        spec = importlib.util.find_spec("qiskit_aer")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return _module_in(Path(next(iter(spec.submodule_search_locations))))


def _version_in(package_dir: Path) -> str:
    try:
        return (package_dir / "VERSION.txt").read_text().strip()
    except OSError:
        return "unknown"


def read_info(prefix: Path) -> dict[str, Any]:
    """The stamp of a build under ``prefix`` (empty when absent or unreadable)."""
    try:
        info = json.loads((prefix / INFO_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def at_prefix(prefix: Path, source: str = ENV_PREFIX) -> AerMPI | None:
    """The MPI Aer installed under ``prefix``, if a complete one is there."""
    info = read_info(prefix)
    package = prefix / SITE / "qiskit_aer"
    module = _module_in(package)
    if not info or module is None:
        return None
    lib = mpi_needed(module)
    if lib is None:
        return None
    lib_dir = info.get("mpi_lib_dir")
    return AerMPI(
        version=_version_in(package),
        module=module,
        site=prefix / SITE,
        mpi_library=lib,
        mpi_lib_dir=Path(lib_dir) if lib_dir else None,
        source=source,
        info=info,
    )


def missing_at(prefix: Path) -> str:
    """What keeps ``prefix`` from being an MPI Aer build (:func:`at_prefix` gives None)."""
    package = prefix / SITE / "qiskit_aer"
    module = _module_in(package)
    if not prefix.is_dir():
        return "no such folder"
    if module is None:
        return f"no {package / 'backends' / _MODULE_GLOB}"
    if mpi_needed(module) is None:
        return f"its {module.name} links no MPI library (a build without MPI)"
    if not read_info(prefix):
        return f"no {INFO_FILE} (a build that did not finish, or not made by qshpc)"
    return "an unreadable build"


def given_prefix() -> Path | None:
    """``$QSHPC_AER_MPI``, expanded, when set."""
    from qshpc import settings

    given = settings.AER_MPI.get()
    return None if given is None else given.expanduser()


def locate() -> AerMPI | None:
    """The MPI Aer a distributed step would use, or None (see :func:`why_missing`).

    A ``$QSHPC_AER_MPI`` that holds no build is not passed over for another one
    (review32 F6: a typo ran steps with a build made against another MPI): None.
    """
    given = given_prefix()
    if given is not None:
        return at_prefix(given, ENV_PREFIX)
    for source, prefix in prefixes():
        found = at_prefix(prefix, source)
        if found is not None and (source != "home" or _home_build_trusted(prefix)):
            return found
    module = environment_aer()
    if module is not None:
        lib = mpi_needed(module)
        if lib is not None:
            return AerMPI(
                _version_in(module.parents[1]), module, None, lib, None, "environment", {}
            )
    return None


#: ``$QSHPC_HOME/aer-mpi`` builds passed over, and why (:func:`_home_build_trusted`).
_untrusted: dict[Path, str] = {}


def _home_build_trusted(prefix: Path) -> bool:
    """True when the build at ``$QSHPC_HOME/aer-mpi`` is the user's own; else one warning,
    and :func:`why_missing` says why it is passed over.

    review50 F0b: its ``lib/python`` goes first on every distributed step's ``PYTHONPATH``
    (a ``sitecustomize.py`` there runs in each rank, as the user), and in a team's store
    (3770) any member could put one there. A build another user owns (root's is fine) or
    could write, anywhere in its tree, is not used: a team that shares one build names it
    with ``$QSHPC_AER_MPI`` (that one is the user's choice, and not checked), as do the
    checkout's ``.aer-mpi`` (the user's own code).
    """
    from qshpc.store.codetrust import code_risk

    risk = code_risk(prefix, tree=True)
    if risk is None:
        _untrusted.pop(prefix, None)
        return True
    why, fix = risk
    text = (
        f"the MPI build of Aer at {prefix} is not used: {why}, so another user could have put "
        f"their code in it (it would run as you in every distributed step); {fix}; or build "
        f"one of your own elsewhere (`python -m qshpc.aer.distributed.build --prefix DIR`, "
        f"docs/distributed.md) and name it, or a build you trust, with ${ENV_PREFIX}=DIR"
    )
    if prefix not in _untrusted:
        import sys

        print(f"qshpc: warning: {text}", file=sys.stderr, flush=True)
    _untrusted[prefix] = text
    return False


def _home_site_at_use(aer: AerMPI) -> Path | None:
    """The site folder of the ``$QSHPC_HOME/aer-mpi`` build ``aer``, checked again now a
    step is to use it (review53 L1: :func:`locate` may have run long before), and named by
    its real path, so that no link on the way is followed after this check.

    Raises:
        UserError: The build is no longer the user's alone (:func:`_home_build_trusted`).
    """
    if aer.site is None:
        return None
    prefix = aer.site.parents[len(SITE.parts) - 1]
    if not _home_build_trusted(prefix):
        from qshpc.errors import UserError

        raise UserError(_untrusted[prefix])
    return prefix.resolve() / SITE


def why_missing() -> str:
    """What was looked at when :func:`locate` found nothing."""
    given = given_prefix()
    if given is not None:
        return (
            f"no MPI build of Aer at ${ENV_PREFIX}={given} ({missing_at(given)}); no other "
            f"place is looked at while it is set: point it at a build's prefix (the folder "
            f"holding {INFO_FILE} and {SITE}), build one there, or unset it"
        )
    looked = ", ".join(f"{p} ({s})" for s, p in prefixes())
    module = environment_aer()
    env = (
        "no qiskit-aer installed" if module is None else "this environment's qiskit-aer has no MPI"
    )
    refused = "".join(f"; {text}" for text in _untrusted.values())
    return f"no MPI build of Aer under {looked}; {env}{refused}"


def step_env(aer: AerMPI, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a distributed step's processes.

    ``PYTHONPATH`` starts with the MPI build's site folder, then the folder
    holding this qshpc (so the step runs the same qshpc as its parent);
    ``LD_LIBRARY_PATH`` starts with the MPI library's folder.
    """
    env = dict(os.environ if base is None else base)
    site = _home_site_at_use(aer) if aer.source == "home" else aer.site
    parts = [str(site)] if site is not None else []
    parts.append(str(Path(__file__).resolve().parents[3]))  # the folder holding this qshpc
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    if aer.mpi_lib_dir is not None:
        libs = [str(aer.mpi_lib_dir)] + (
            [env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []
        )
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    return env


__all__ = [
    "ENV_PREFIX",
    "INFO_FILE",
    "SITE",
    "AerMPI",
    "at_prefix",
    "checkout_root",
    "default_prefix",
    "environment_aer",
    "given_prefix",
    "locate",
    "missing_at",
    "mpi_needed",
    "prefixes",
    "read_info",
    "step_env",
    "why_missing",
]
