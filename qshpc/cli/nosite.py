"""The launcher a ``LocalClient`` starts: ``qshpc run`` in a Python started without ``site``.

``LocalClient.run`` starts ``python -S -c BOOT <folder of qshpc> run ...``
(:data:`BOOT`): the launcher then starts ``mpiexec`` without first processing
the environment's ``.pth`` files (editable installs' finders, whatever else
they import: 0.04-0.05 CPU s and 0.1-0.3 s of wall time on a busy 2-core
machine, spent before the ranks could start). Until ``mpiexec`` runs it needs
only the standard library and qshpc, found where the client found it
(appended to ``sys.path``, as an editable install's finder comes last).

``site`` is completed the first time anything else is imported (h5py for the
store, typer for a command line :mod:`qshpc.cli.runargv` leaves to it): a
finder at the end of ``sys.meta_path`` runs ``site.main()`` then looks again,
so every import the launcher makes resolves as it would with ``site``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

#: ``python -S -c BOOT <folder of qshpc> ARGS...``: runs :func:`main` with ``ARGS``.
BOOT = "import sys;sys.path.append(sys.argv.pop(1));from qshpc.cli.nosite import main;main()"


class _SiteOnDemand:
    """A meta path finder, last: a module nothing else finds completes ``site`` first."""

    #: Names the standard library probes for and may not find (Jython's, in ``copy``).
    PROBES = frozenset({"org"})

    def find_spec(self, name: str, path: Sequence[str] | None, target: Any = None) -> Any:
        top = name.partition(".")[0]
        if top in sys.stdlib_module_names or top in self.PROBES or top == "qshpc":
            return None  # not in site's folders (msvcrt, nt, _winapi: another system's)
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        complete_site()
        for finder in list(sys.meta_path):  # those site added too (editable installs)
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                return spec
        return None


_completed = False


def complete_site() -> None:
    """Do what ``site`` does at a normal start (once; nothing when it ran then)."""
    global _completed
    if _completed or not sys.flags.no_site:
        return
    _completed = True
    import site

    site.main()


def main() -> None:
    """``qshpc`` with ``sys.argv[1:]``, ``site`` completed on demand (see the module).

    ``sys.argv[1:]`` may start with ``--ranks N WORD...``: the ranks' command,
    ``N`` words, that the client wrote; it is started first
    (:mod:`qshpc.launch.early`), the rest of the command line read after.
    """
    sys.meta_path.append(_SiteOnDemand())
    sys.argv[0] = "qshpc"
    started = None
    if len(sys.argv) > 2 and sys.argv[1] == "--ranks":
        from qshpc.launch import early

        n = int(sys.argv[2])
        words, sys.argv[1:] = sys.argv[3 : 3 + n], sys.argv[3 + n :]
        started = early.spawn(words)
    from qshpc import _timeline

    _timeline.mark("qshpc")
    if started is not None:
        _timeline.mark("mpiexec started", started.at, started.cpu)
    from qshpc.cli import main as cli_main

    cli_main()
