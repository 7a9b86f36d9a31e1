"""What the command line tells the job lock about the batch system (no Slurm code here).

The store runs no Slurm command (the layers point down), but a lock whose
holder ran in a Slurm job on another host can be known dead sooner than its
expiry: Slurm says the job ended. ``qshpc run`` sets :data:`slurm_job_over`
(``qshpc.submit.slurm.job_over``) before it takes or checks a job's lock.
"""

from __future__ import annotations

from collections.abc import Callable

#: ``f(slurm_job_id, cluster) -> True`` only when Slurm says that job (of that cluster,
#: when known) ended and none of its processes is left (not COMPLETING); None where
#: nobody set it (no Slurm asked).
slurm_job_over: Callable[[str, str | None], bool] | None = None
