"""``qshpc report``: one self-contained HTML file that shows where a job's time went."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qshpc.cli.common import echo, errors, reads_store


def register(app: typer.Typer) -> None:
    """Add ``report`` to ``app``."""

    @app.command("report")
    @errors
    @reads_store  # reads the job (its HTML goes to JOB_DIR or --out): warned, not refused
    def report(
        job: Annotated[str, typer.Argument(help="Job id, job directory, or Slurm job id.")],
        out: Annotated[
            Path | None,
            typer.Option(
                "--out", "-o", help="The HTML file to write; default JOB_DIR/report.html."
            ),
        ] = None,
    ) -> None:
        """Write a job's report as ONE self-contained HTML file (no network needed to open it).

        It holds the job's card, the result plots, a timeline of task attempts
        per rank (grouped by host, coloured by function, failures red, retries
        marked, rank 0's program and its waits), throughput over time, the
        slowest tasks, failures with tracebacks, provenance and, for Slurm
        jobs, Slurm's accounting. A running job gives a snapshot.
        """
        from qshpc.client.job import open_job
        from qshpc.report.page import write_report

        j = open_job(job)
        echo(str(write_report(j.job_dir, out, j.info())))
