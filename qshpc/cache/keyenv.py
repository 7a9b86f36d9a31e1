"""What every cache key covers besides the call: the environment (versions, Aer
settings, qshpc's own source tree), and which code is a library's (keyed by name and
version) and which the user's own (keyed by value). See :mod:`qshpc.cache.keys`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import types
from collections.abc import Callable
from typing import Any

#: Part of every key; bump it when what a key covers changes.
KEY_SCHEME = b"qshpc-cache-key/3"

#: What a key's hash takes its tokens through (``hashlib``'s ``update``).
Put = Callable[[bytes], None]


def put_text(put: Put, s: str) -> None:
    """A string as a token: its length, then its UTF-8 bytes."""
    b = s.encode("utf-8", "surrogatepass")
    put(b"s%d:" % len(b))
    put(b)


# -- the environment -----------------------------------------------------------------


def _dist_version(*names: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return f"{name}=={version(name)}"
        except PackageNotFoundError:
            continue
    return f"{names[0]}: not installed"


@functools.cache
def environment() -> tuple[tuple[str, str], ...]:
    """What every key of this process covers besides the call: versions, Aer options and
    qiskit's own user settings (:func:`qiskit_settings`).

    Read once per process from package metadata and one settings file (nothing is imported).
    """
    from qshpc._version import __version__

    env = [
        ("scheme", KEY_SCHEME.decode()),
        ("python", f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}"),
        ("qshpc", __version__),
        ("qshpc-tree", _source_tree()),
        ("qiskit", _dist_version("qiskit")),
        ("qiskit-aer", _dist_version("qiskit-aer", "qiskit-aer-gpu")),
        ("numpy", _dist_version("numpy")),
        *qiskit_settings(),
    ]
    from qshpc import settings

    for s in settings.ALL.values():  # the Aer layer's settings (the device)
        if s.name.startswith(_AER_SETTINGS):
            try:
                env.append((s.name, str(s.get())))
            except settings.SettingError:
                env.append((s.name, "?"))
    return tuple(env)


_AER_SETTINGS = "QSHPC" + "_AER_"

#: The environment variables qiskit reads that change what it returns (the transpiler's
#: seed, Sabre's trial count: all threads, and how many) or which settings file it reads.
_QISKIT_ENV = (
    "QISKIT_TRANSPILER_SEED",
    "QISKIT_SABRE_ALL_THREADS",
    "QISKIT_NUM_PROCS",
)


def qiskit_settings() -> list[tuple[str, str]]:
    """Qiskit's user settings, as :func:`qiskit.user_config.get_config` finds them: the
    ``[default]`` section of ``$QISKIT_SETTINGS`` or ``~/.qiskit/settings.conf`` (none
    under ``QISKIT_IGNORE_USER_SETTINGS=true``), and the variables of :data:`_QISKIT_ENV`.

    They change results: ``transpile_optimization_level`` and ``transpiler_seed`` are
    the defaults of ``transpile()`` and the preset pass managers, ``sabre_all_threads``
    and ``num_processes`` set Sabre's trial count, ``min_qpy_version`` the QPY a task
    writes, the drawer settings what ``circuit.draw()`` returns. Every setting of the
    section is keyed (a setting that changes nothing only makes a miss). Read with
    ``configparser`` (qiskit is not imported); a file that does not parse is keyed by
    its bytes. With Sabre on all threads, this host's CPU count is keyed too.
    """
    out: list[tuple[str, str]] = []
    if os.environ.get("QISKIT_IGNORE_USER_SETTINGS", "false").lower() != "true":
        path = os.environ.get("QISKIT_SETTINGS") or os.path.join(
            os.path.expanduser("~"), ".qiskit", "settings.conf"
        )
        out.extend(_settings_file(path))
    for name in _QISKIT_ENV:
        if name in os.environ:
            out.append((f"env:{name}", os.environ[name]))
    if os.environ.get("QISKIT_SABRE_ALL_THREADS") or any(
        k == "qiskit:sabre_all_threads" and v.strip().lower() in ("true", "1", "yes", "on")
        for k, v in out
    ):
        out.append(("qiskit:cpus", str(os.cpu_count())))
    return out


def _settings_file(path: str) -> list[tuple[str, str]]:
    """The ``[default]`` settings of qiskit's settings file at ``path`` (none: no file)."""
    import configparser

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []  # qiskit reads no file either (not a file, or unreadable: it fails too)
    parser = configparser.ConfigParser()
    try:
        parser.read_string(data.decode("utf-8"))
    except (configparser.Error, UnicodeDecodeError):
        return [("qiskit:settings-file", hashlib.blake2b(data, digest_size=16).hexdigest())]
    if not parser.has_section("default"):
        return []
    return sorted((f"qiskit:{k}", v.strip()) for k, v in parser.items("default", raw=True))


def _source_tree(root: str | None = None) -> str:
    """What qshpc's own code is, beyond its version, when it runs from a source tree.

    An installed qshpc (site-packages) is the code its version names: "". One
    run from a checkout (``pip install -e``, ``PYTHONPATH``) changes without a
    new version: a digest of the name, size and modification time of each of
    its ``.py`` files (one ``stat`` each, ~1 ms, once per process), so that an
    edit to qshpc makes new keys instead of returning results of the old code.
    """
    if root is None:  # the qshpc package folder: .../qshpc/cache/keyenv.py
        root = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    if os.path.join(root, "").startswith(_library_dirs()):
        return ""
    h = hashlib.blake2b(digest_size=16)
    for here, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(here, root)
        for name in sorted(files):
            if name.endswith(".py"):
                try:
                    st = os.stat(os.path.join(here, name))
                except OSError:
                    continue
                h.update(f"{rel}/{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


@functools.cache
def environment_digest() -> bytes:
    """Digest of :func:`environment`."""
    h = hashlib.blake2b(digest_size=32)
    for k, v in environment():
        put_text(h.update, k)
        put_text(h.update, v)
    return h.digest()


# -- which code is the user's ----------------------------------------------------------


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    import site
    import sysconfig

    dirs: set[str] = set()
    paths = sysconfig.get_paths()
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(name):
            dirs.add(paths[name])
    try:
        dirs.update(site.getsitepackages())
    except AttributeError:  # pragma: no cover - virtualenv's old site.py
        pass
    user = site.getusersitepackages()
    if isinstance(user, str):
        dirs.add(user)
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs if d)


LIBRARY_TOPS = frozenset(("qshpc", "qiskit", "qiskit_aer", "numpy", "scipy", "builtins"))
_library: dict[str, bool] = {}


def is_library(module: str | None) -> bool:
    """True when ``module`` belongs to an installed package or the standard library.

    Such code is keyed by name and version; everything else (the program
    file, ``__main__``, modules beside it, packages installed in editable
    mode) is the user's own code and is keyed by value.
    """
    if not module:
        return False
    top = module.partition(".")[0]
    known = _library.get(top)
    if known is None:
        known = _library[top] = _decide_library(top)
    return known


def _decide_library(top: str) -> bool:
    if top == "__main__":
        return False
    if top in LIBRARY_TOPS or top in sys.builtin_module_names:
        return True
    mod = sys.modules.get(top)
    if mod is None:
        return top in sys.stdlib_module_names
    # A standard-library name is decided by where the module loaded comes from, as
    # any other: a program's own ``statistics.py`` or ``trace.py`` beside it is its code.
    places = [getattr(mod, "__file__", None), *list(getattr(mod, "__path__", None) or [])]
    places = [p for p in places if isinstance(p, str)]
    if not places:
        # built into the interpreter; but an object a module put in its own place
        # (``sys.modules[__name__] = M()``) is the user's code (review56 H3)
        return isinstance(mod, types.ModuleType)
    libs = _library_dirs()
    return all(os.path.realpath(p).startswith(libs) for p in places)


_versions: dict[str, str] = {}


def version_of(module: str) -> str:
    top = module.partition(".")[0]
    v = _versions.get(top)
    if v is None:
        if top in sys.builtin_module_names or (top in sys.stdlib_module_names and is_library(top)):
            v = ""  # the Python version is in the environment
        else:
            v = str(getattr(sys.modules.get(top), "__version__", "") or "") or _dist_of(top)
        _versions[top] = v
    return v


def _dist_of(top: str) -> str:
    """The installed version of the distribution that holds package ``top`` (many
    packages have no ``__version__``: their upgrades must change the keys too)."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    global _dists
    if _dists is None:
        try:
            _dists = packages_distributions()
        except Exception:  # pragma: no cover - a broken metadata folder
            _dists = {}
    found = []
    for dist in _dists.get(top, ()):
        try:
            found.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return ",".join(sorted(found)) or "?"


_dists: Any = None


def is_library_path(path: str) -> bool:
    """True when ``path`` lies in site-packages or the standard library."""
    return os.path.realpath(path).startswith(_library_dirs())
