"""`python -m qshpc` runs the CLI.

A rank of a job (``python -m qshpc run`` under mpiexec/srun) remembers a
SIGINT/SIGTERM from here on, before any other import of qshpc
(:mod:`qshpc.runtime.stopsig`).
"""

import sys

from qshpc.runtime.stopsig import defer_if_rank

defer_if_rank(sys.argv)

from qshpc.runtime.forkserver import hand_over  # noqa: E402

hand_over()  # a rank of `qshpc run`'s launcher: forked by its fork server (no return then)

from qshpc import _timeline  # noqa: E402

_timeline.mark("qshpc")

from qshpc.cli import main  # noqa: E402

main()
