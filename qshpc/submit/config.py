"""Site defaults for Slurm jobs: config files, then environment variables, then the caller.

Precedence, lowest first:

1. :class:`~qshpc.submit.resources.SlurmResources` defaults;
2. ``$QSHPC_HOME/config.toml``, table ``[slurm]``;
3. ``./qshpc.toml`` (the folder you submit from), table ``[slurm]``;
4. environment variables ``QSHPC_SLURM_<NAME>`` (e.g. ``QSHPC_SLURM_PARTITION``,
   ``QSHPC_SLURM_ACCOUNT``, ``QSHPC_SLURM_MODULES=gcc/12,cuda/12``,
   ``QSHPC_SLURM_EXTRA=constraint=haswell,exclusive=user``);
5. the command line or ``SlurmClient(**resources)``.

Example ``config.toml``::

    [slurm]
    partition = "batch"
    account = "proj42"
    modules = ["gcc/12.2", "openmpi/4.1"]
    setup = ["source /opt/venvs/qshpc/bin/activate"]
    extra = { constraint = "haswell" }
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from qshpc import settings
from qshpc.errors import ResourceError
from qshpc.jobs.paths import qshpc_home
from qshpc.submit.resources import SlurmResources, unknown_keys_message

ENV_PREFIX = settings.SLURM_PREFIX


def config_files() -> list[Path]:
    """The config files read, lowest precedence first (missing ones included)."""
    return [qshpc_home() / "config.toml", Path.cwd() / "qshpc.toml"]


def _read_trusted(path: Path) -> dict[str, Any] | None:
    """The ``[slurm]`` table of the config file ``path``; None when there is none.

    review50 F0: its ``setup``, ``modules`` and ``extra`` go into the batch script, which
    runs as the user: a file another user owns (root's is fine) or can write, or one in a
    folder another user could put theirs in, is refused (:mod:`qshpc.store.codetrust`),
    and so is something that is not a file (a folder, a FIFO: it was passed over).
    review53 L1: the file is opened once and read through that descriptor, and what was
    checked must be the file opened (its device and inode), so that a link flipped
    between the check and the read is caught.

    Raises:
        ResourceError: Which file, who owns or can write it (its mode), and the fix; or
            an unreadable or invalid file.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    other = (
        "point QSHPC_HOME at a folder of your own"
        if path.name == "config.toml"
        else "submit from a folder of your own"
    )
    not_file = (
        f"{path} is not a file (Slurm defaults are read from it): remove or rename it, or {other}"
    )
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # not opened: a FIFO would block
            raise ResourceError(not_file)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ResourceError(f"cannot read {path}: {exc.strerror}") from None
    from qshpc.store.codetrust import code_risk

    with os.fdopen(fd, "rb") as f:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode):
            raise ResourceError(not_file)
        risk = code_risk(path, opened=opened)
        if risk is not None:
            why, fix = risk
            raise ResourceError(
                f"refusing to read {path}: {why}, so another user could put shell lines "
                f"(setup, modules) or sbatch options into your batch script, run as you; "
                f"{fix}, or {other} (your own defaults can also go in {ENV_PREFIX}* "
                "variables: docs/slurm.md)"
            )
        try:
            data = tomllib.load(f)
        except OSError as exc:
            raise ResourceError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ResourceError(f"{path} is not valid TOML: {exc}") from None
    table = data.get("slurm", {})
    if not isinstance(table, dict):
        raise ResourceError(f"{path}: [slurm] must be a table")
    return table


def _from_env(environ: dict[str, str] | os._Environ[str]) -> dict[str, Any]:
    kinds = {f.name: str(f.type) for f in fields(SlurmResources)}
    out: dict[str, Any] = {}
    unknown: list[str] = []
    bad: list[str] = []
    for var, text in settings.slurm_defaults(environ).items():
        name = var[len(ENV_PREFIX) :].lower()
        kind = kinds.get(name)
        if kind is None:
            unknown.append(name)
            continue
        try:
            out[name] = _parse(kind, text.strip())
        except ValueError:
            bad.append(f"{var}={text!r} ({kind})")
    if unknown:
        raise ResourceError(unknown_keys_message(unknown, f"environment variables {ENV_PREFIX}*"))
    if bad:
        raise ResourceError("cannot parse environment variables: " + ", ".join(bad))
    return out


def _parse(kind: str, text: str) -> Any:
    if kind == "int":
        return int(text)
    if kind == "float | None":
        return float(text) if text else None
    if kind == "bool":
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(text)
    if kind == "list[str]":
        return [s.strip() for s in text.split(",") if s.strip()]
    if kind == "dict[str, str]":
        pairs = [s.split("=", 1) for s in text.split(",") if s.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(text)
        return {k.strip(): v.strip() for k, v in pairs}
    if kind == "str | None":
        return text or None
    return text


def site_defaults(environ: dict[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """Merged site values and the sources they came from.

    Raises:
        ResourceError: An unreadable file, an unknown key, or an unparsable variable.
    """
    merged: dict[str, Any] = {}
    sources: list[str] = []
    valid = set(SlurmResources.field_names())
    for path in config_files():
        table = _read_trusted(path)
        if table is None:
            continue
        unknown = sorted(set(table) - valid)
        if unknown:
            raise ResourceError(unknown_keys_message(unknown, f"{path} [slurm]"))
        merged.update(table)
        sources.append(str(path))
    env = _from_env(os.environ if environ is None else environ)
    if env:
        merged.update(env)
        sources.append("environment " + ", ".join(ENV_PREFIX + k.upper() for k in sorted(env)))
    return merged, sources


def merge_overrides(values: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Put ``overrides`` over ``values`` in place: None (or an empty extra, setup, modules)
    does not override; ``extra`` sbatch options are merged key by key."""
    for key, value in overrides.items():
        if value is None or (key in ("extra", "setup", "modules") and not value):
            continue
        if key == "extra":
            values["extra"] = {**values.get("extra", {}), **value}
        else:
            values[key] = value


def resolve_resources(
    overrides: dict[str, Any], environ: dict[str, str] | None = None
) -> SlurmResources:
    """Site defaults overridden by ``overrides`` (None values do not override), validated.

    Raises:
        ResourceError: Unknown keys or bad values, naming where each came from.
    """
    unknown = sorted(set(overrides) - set(SlurmResources.field_names()))
    if unknown:
        raise ResourceError(unknown_keys_message(unknown, "the given resources"))
    merged, sources = site_defaults(environ)
    merge_overrides(merged, overrides)
    try:
        return SlurmResources.build(merged)
    except ResourceError as exc:
        where = f"\n(site defaults from: {'; '.join(sources)})" if sources else ""
        raise ResourceError(f"{exc}{where}") from None
    except TypeError as exc:  # pragma: no cover - build checks the keys first
        raise ResourceError(str(exc)) from None
