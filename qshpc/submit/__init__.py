"""Slurm through submitit: resources, site config, sbatch rendering, submission, state mapping.

The only package importing submitit (lazily, at submit time). Modules:

- :mod:`~qshpc.submit.resources`: ``SlurmResources`` and its validation;
- :mod:`~qshpc.submit.config`: site defaults (config.toml, ``QSHPC_SLURM_*``);
- :mod:`~qshpc.submit.sbatch`: resources to submitit parameters, the batch script;
- :mod:`~qshpc.submit.staging`: copying the working directory into the job;
- :mod:`~qshpc.submit.slurm`: ``submit`` and ``cancel``;
- :mod:`~qshpc.submit.task`: what runs in every Slurm task;
- :mod:`~qshpc.submit.state`: Slurm states mapped onto the seed's.

``SlurmClient`` (:mod:`qshpc.client.slurm`) sits a layer up and calls these.
"""
