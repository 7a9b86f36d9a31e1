"""``mode=client``: one primitive call as a qshpc job of its own, from anywhere.

``SamplerV2(mode=LocalClient(workers=4)).run(pubs)`` stores the PUBs as the
arguments of a new job (:mod:`qshpc.primitives.arguments`), runs the built-in
program ``programs/primitive_job.py`` (:mod:`qshpc.primitives.builtin`) on that
client, and returns a
:class:`ClientJob` at once. The program runs the same primitive on the job's
ranks and saves the ``PrimitiveResult``; ``qshpc.open_job(job_id).result()``
returns it later from any process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qiskit.primitives.base.base_primitive_job import (  # type: ignore[import-untyped]
    BasePrimitiveJob,
)
from qiskit.providers import JobStatus  # type: ignore[import-untyped]

from qshpc.aer.v2.pubs import EstimatorWork, PubError, SamplerWork, unstorable_metadata
from qshpc.primitives.arguments import encode_estimator, encode_sampler
from qshpc.primitives.base import check_operations, check_widths
from qshpc.primitives.jobs import StatusChecks
from qshpc.primitives.options import block_config

PROGRAMS = Path(__file__).resolve().parent / "programs"
ENTRYPOINT = "primitive_job.py"
_STATES = {
    "QUEUED": JobStatus.QUEUED,
    "RUNNING": JobStatus.RUNNING,
    "SUCCEEDED": JobStatus.DONE,
    "FAILED": JobStatus.ERROR,
    "CANCELED": JobStatus.CANCELLED,
}


class ClientJob(StatusChecks, BasePrimitiveJob):  # type: ignore[misc]
    """A primitive call running as a qshpc job; ``job_id()`` is the qshpc job id.

    Attributes:
        job: The qshpc :class:`~qshpc.client.Job` (``logs()``, ``tasks()``, ``info()``...).
    """

    job: Any

    def __init__(self, job: Any) -> None:
        super().__init__(str(job.job_id))
        self.job = job

    def __repr__(self) -> str:
        return f"<ClientJob {self.job_id()}>"

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job and return its ``PrimitiveResult``.

        Raises:
            JobFailedError: The job failed or was cancelled (its error text inside).
            TimeoutError: Not finished within ``timeout`` seconds.
        """
        self.job.wait(timeout, poll=0.05)
        return self.job.result()

    def status(self) -> JobStatus:
        """The qshpc state as Qiskit's ``JobStatus`` (SUCCEEDED is DONE, FAILED is ERROR)."""
        return _STATES.get(self.job.status(), JobStatus.INITIALIZING)

    def in_final_state(self) -> bool:
        """True when it ended (done, failed or cancelled)."""
        return bool(self.job.done())

    def cancel(self) -> bool:
        """Cancel the job (finished tasks stay in the store); True when it was asked to stop."""
        return bool(self.job.stop())

    def logs(self) -> str:
        """The job's logs so far."""
        return str(self.job.logs())


def _program(title: str) -> Any:
    from qshpc.jobs.spec import Program

    return Program(title=title, entrypoint=ENTRYPOINT, working_dir=str(PROGRAMS))


def _start(
    primitive: Any, title: str, arguments: dict[str, Any], work: list[Any], kind: str
) -> ClientJob:
    mode = primitive.mode
    for w in work:  # the job stores its PUBs' circuits as QPY, metadata as JSON
        why = unstorable_metadata(w.circuit)
        if why is not None:
            raise PubError(
                f"PUB {w.index}: circuit {w.circuit.name!r} has metadata that the job cannot "
                f"store ({why}); mode= stores the PUBs in the job: give metadata of JSON types "
                "(int(x), float(x), x.tolist()) or run without mode="
            )
    # an operation no rank can run failed the job it had started: refuse it before
    config = block_config(primitive.options, estimator=kind == "estimator")
    check_operations([w.circuit for w in work], config)
    if type(mode).__name__ == "LocalClient":  # the ranks are this machine: check widths here
        workers = getattr(mode, "workers", None)
        ranks = None if workers is None else int(workers) + 1
        check_widths([w.circuit for w in work], config, kind, ranks)
    seed = primitive.seed if isinstance(primitive.seed, int) else None
    job = mode.run(_program(title), arguments=arguments, seed=seed)
    return ClientJob(job)


def _seed_argument(seed: Any) -> Any:
    import numpy as np

    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63))
    return seed


def submit_sampler(primitive: Any, work: list[SamplerWork]) -> ClientJob:
    """Start a SamplerV2 job on ``primitive.mode``."""
    seed = _seed_argument(primitive.seed)
    args = encode_sampler(work, seed, primitive.default_shots, primitive.options)
    rows = sum(w.size for w in work)
    return _start(primitive, f"SamplerV2: {len(work)} PUB(s), {rows} row(s)", args, work, "sampler")


def submit_estimator(primitive: Any, work: list[EstimatorWork]) -> ClientJob:
    """Start an EstimatorV2 job on ``primitive.mode``."""
    seed = _seed_argument(primitive.seed)
    args = encode_estimator(work, seed, primitive.default_precision, primitive.options)
    rows = sum(w.rows for w in work)
    return _start(
        primitive, f"EstimatorV2: {len(work)} PUB(s), {rows} row(s)", args, work, "estimator"
    )


__all__ = ["ClientJob", "submit_estimator", "submit_sampler"]
