"""``SlurmClient``: the ``LocalClient`` interface, on Slurm.

from qshpc import SlurmClient, Program

serverless = SlurmClient(nodes=1, ntasks_per_node=2, time_min=30)
job = serverless.run(program, arguments={"circuits": circuits})
job.status(); job.result()
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qshpc.client.base import BaseProvider
from qshpc.client.job import Job, list_jobs, open_job
from qshpc.submit.config import resolve_resources
from qshpc.submit.resources import SlurmResources

if TYPE_CHECKING:
    from qshpc.jobs.spec import Configuration, Program


class SlurmClient(BaseProvider):
    """Submits programs as Slurm jobs; every task runs the qshpc runtime under ``srun --mpi=pmi2``.

    Args:
        **resources: :class:`~qshpc.submit.resources.SlurmResources` fields (nodes,
            ntasks_per_node, cpus_per_task, gpus_per_node, mem_gb, time_min,
            partition, account, qos, mpi, extra, name, requeue, setup, modules);
            site defaults (config.toml, ``QSHPC_SLURM_*``) fill the rest.
        cache: Use the result cache across jobs for every program this client
            submits (as ``Program(..., cache=True)``; see docs/cache.md).
        cache_dir: The cache folder, on storage every node sees (default
            ``$QSHPC_CACHE_DIR``, else ``$QSHPC_HOME/cache``); implies ``cache=True``.

    Raises:
        ResourceError: An unknown name (the valid ones are listed) or a bad value.
    """

    def __init__(
        self, cache: bool = False, cache_dir: str | os.PathLike[str] | None = None, **resources: Any
    ) -> None:
        super().__init__("slurm")
        self.resources: SlurmResources = resolve_resources(resources)
        self.cache = cache
        self.cache_dir = cache_dir

    def __repr__(self) -> str:
        r = self.resources
        return f"<SlurmClient | {r.nodes} node(s) x {r.ntasks_per_node} task(s), {r.time_min} min>"

    def run(
        self,
        program: Program | str,
        arguments: dict[str, Any] | None = None,
        config: Configuration | None = None,
        *,
        seed: int | None = None,
    ) -> Job:
        """Submit ``program`` with ``arguments``; return its :class:`~qshpc.client.job.Job` at once (QUEUED).

        Args:
            program: A :class:`Program` (``QiskitPattern``), or the title of an uploaded one.
            arguments: The program's ``get_arguments()``.
            config: quantum-serverless's ``Configuration``: ``workers`` ranks besides
                rank 0, spread over this client's nodes.
            seed: The job seed.
        """
        from qshpc.submit.submission import submit

        resources = self.resources
        if config is not None:
            config.check()
            if config.workers is not None:
                import dataclasses

                per_node = -(-(config.workers + 1) // resources.nodes)
                resources = dataclasses.replace(resources, ntasks_per_node=per_node)
                resources.validate()
        from qshpc.client.local import with_cache

        program = with_cache(self._program(program), self.cache, self.cache_dir)
        sub = submit(program, arguments, seed, resources)
        return self._mark(Job(sub.job_dir))

    def map(
        self,
        program: Program,
        arguments_list: Sequence[dict[str, Any] | None],
        seed: int | None = None,
    ) -> list[Job]:
        """Submit ``program`` once per argument set as ONE Slurm job array; return the jobs at once.

        Element ``i`` is a job of its own (own directory, arguments and store)
        whose meta holds ``array_id``, ``array_index`` and ``array_size``; its
        Slurm id is ``<array job id>_<i>``. Every element gets this client's
        resources and the same ``seed``. One element that fails or times out
        never stops the others' results.

        Raises:
            UserError: An empty list, an argument set that is not a dict, a bad program.
            ResourceError: sbatch refused the array.
        """
        from qshpc.client.job import read_infos
        from qshpc.client.local import with_cache
        from qshpc.notebook.display import JobList
        from qshpc.submit.submission import submit_array

        program = with_cache(program, self.cache, self.cache_dir)
        sub = submit_array(program, arguments_list, seed, self.resources)
        return JobList((Job(e.job_dir) for e in sub.elements), infos=read_infos)

    def jobs(
        self,
        state: str | None = None,
        *,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        function: Any = None,
    ) -> list[Job]:
        """The Slurm jobs in the store, newest first (optionally only one state).

        qiskit-serverless's keywords work too: ``status`` (= ``state``), ``limit``,
        ``offset``, ``function`` (a program or title: its jobs only).
        """
        from qshpc.client.base import page_jobs
        from qshpc.client.job import read_infos
        from qshpc.jobs.paths import SLURM_ID_FILE
        from qshpc.notebook.display import JobList

        state = state if status is None else status
        jobs = (j for j in list_jobs(state) if (j.job_dir / SLURM_ID_FILE).is_file())
        return page_jobs(
            JobList((self._mark(j) for j in jobs), infos=read_infos), limit, offset, function
        )

    def job(self, job_id: str) -> Job:
        """The job with this qshpc id (or Slurm id, or directory)."""
        return self._mark(open_job(job_id))
