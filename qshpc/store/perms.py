"""File modes of job directories and store files.

By default a job directory is private to its owner (0700, files 0600). Set
``QSHPC_SHARE_GROUP=1`` in the environment to let the owner's group read jobs
(directories 0750, files 0640), e.g. for a team sharing one ``QSHPC_HOME``.
"""

from __future__ import annotations

import os
from pathlib import Path

from qshpc import settings

SHARE_GROUP_ENV = settings.SHARE_GROUP.name


def _shared() -> bool:
    return settings.SHARE_GROUP.get()


def dir_mode() -> int:
    """Mode for job directories: 0700, or 0750 with ``QSHPC_SHARE_GROUP=1``."""
    return 0o750 if _shared() else 0o700


def file_mode() -> int:
    """Mode for store files: 0600, or 0640 with ``QSHPC_SHARE_GROUP=1``."""
    return 0o640 if _shared() else 0o600


def make_dir(path: Path) -> None:
    """Create ``path`` (and parents) and give it :func:`dir_mode` (parents keep the umask)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, dir_mode())


def set_file_mode(path: Path) -> None:
    """Give ``path`` :func:`file_mode`."""
    os.chmod(path, file_mode())


def private_to_me(path: Path) -> bool:
    """True when this user owns ``path`` and nobody else can write it.

    Pickled data (which runs code when loaded) is loaded only from such files.
    """
    st = path.stat()
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022
