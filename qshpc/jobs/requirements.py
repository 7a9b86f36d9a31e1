"""Requirements a program or task names (pip strings): checked against this Python, never installed.

quantum-serverless pip-installed a program's ``dependencies`` and a task's
``Target(pip=[...])`` per job; on shared clusters the job's environment is
prepared once, so qshpc only checks that they are there and names the missing
ones with the command that installs them.
"""

from __future__ import annotations

import shlex

from qshpc.errors import ResourceError


def missing_requirements(requirements: list[str]) -> list[str]:
    """The requirements (pip strings) that the running Python does not satisfy."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for text in requirements:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            missing.append(text)
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = version(req.name)
        except PackageNotFoundError:
            missing.append(text)
            continue
        if req.specifier and not req.specifier.contains(have, prereleases=True):
            missing.append(f"{text} (installed: {have})")
    return missing


def check_requirements(requirements: list[str] | None, what: str) -> None:
    """Refuse ``requirements`` that are not installed, naming them and the pip command.

    Raises:
        ResourceError: Some are missing or at the wrong version.
    """
    if not requirements:
        return
    missing = missing_requirements(requirements)
    if missing:
        names = " ".join(shlex.quote(m.split(" (")[0]) for m in missing)
        raise ResourceError(
            f"{what} needs packages not installed in this Python: {', '.join(missing)}. "
            f"qshpc does not install packages for jobs; install them once: pip install {names}"
        )


__all__ = ["check_requirements", "missing_requirements"]
