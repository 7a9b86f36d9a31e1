"""`python -m qshpc` runs the CLI.

A rank of a job (``python -m qshpc run`` under mpiexec/srun) remembers a
SIGINT/SIGTERM from here on, before any other import of qshpc
(:mod:`qshpc.runtime.stopsig`).
"""

import os
import sys

from qshpc.runtime.stopsig import defer_if_rank

defer_if_rank(sys.argv)

from qshpc.runtime.forkserver import hand_over  # noqa: E402

hand_over()  # a rank of `qshpc run`'s launcher: forked by its fork server (no return then)

from qshpc import _timeline  # noqa: E402

_timeline.mark("qshpc")

if sys.argv[1:2] == ["run"] and "MPI_LOCALNRANKS" in os.environ:
    from qshpc.cli.runargv import join_forks_early

    join_forks_early(sys.argv[2:])  # a user's mpiexec: its host's fork server (no return then)

from qshpc.cli import main  # noqa: E402

main()
