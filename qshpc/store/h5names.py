"""HDF5 member names for any text: a dict key or a classical register's name.

"/" and a leading "." are no HDF5 member names as they are; they are escaped
here (no h5py import: :mod:`qshpc.store.qiskit_results` is loaded where
records are built without h5py).
"""

from __future__ import annotations

import re


def escape(key: str) -> str:
    """HDF5 member name for a str key ("/" and a leading "." are escaped)."""
    name = key.replace("%", "%25").replace("/", "%2F")
    if name.startswith("."):
        name = "%2E" + name[1:]
    return name or "%00"


def unescape(name: str) -> str:
    """Inverse of :func:`escape`."""
    if name == "%00":
        return ""
    return re.sub("%(25|2F|2E)", lambda m: {"25": "%", "2F": "/", "2E": "."}[m.group(1)], name)


__all__ = ["escape", "unescape"]
