"""``qshpc run``: run a program on MPI ranks (local default or inside mpiexec/srun)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qshpc.cli.common import cache_dir_option, errors
from qshpc.cli.runargv import check_cache_dir


def register(app: typer.Typer) -> None:
    """Add the command to ``app``."""

    @app.command(
        "run",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    @errors
    def run(
        ctx: typer.Context,
        program: Annotated[
            Path | None,
            typer.Argument(
                help="The program file to run (with --resume: the job's own, may be left out).",
                show_default=False,
            ),
        ] = None,
        arguments: Annotated[
            Path | None,
            typer.Option(
                "--arguments", "-a", help="Arguments file: .h5 (qshpc.save_arguments) or .json."
            ),
        ] = None,
        workers: Annotated[
            int | None,
            typer.Option(
                "--workers",
                "-w",
                help="Worker ranks to start (no mpiexec in front); default one per core; 0 = in-process.",
            ),
        ] = None,
        job_dir: Annotated[
            Path | None,
            typer.Option("--job-dir", help="Job directory (default $QSHPC_HOME/jobs/<id>)."),
        ] = None,
        title: Annotated[str | None, typer.Option("--title", help="Job title.")] = None,
        seed: Annotated[
            int | None,
            typer.Option("--seed", help="Job seed: each task gets a seed derived from it."),
        ] = None,
        resume: Annotated[
            str | None,
            typer.Option(
                "--resume", help="Job id or dir: reuse its stored task results, run the rest."
            ),
        ] = None,
        cache: Annotated[
            bool | None,
            typer.Option(
                "--cache/--no-cache",
                help="Result cache across jobs: a call computed by an earlier job is not run "
                "again (docs/cache.md). A task's own cache= wins.",
                show_default=False,
            ),
        ] = None,
        cache_dir: Annotated[
            str | None,
            typer.Option(
                "--cache-dir",
                help="The cache folder (default $QSHPC_CACHE_DIR, else $QSHPC_HOME/cache); "
                "implies --cache.",
                show_default=False,
            ),
        ] = None,
        job_id: Annotated[
            str | None,
            typer.Option(
                "--job-id", hidden=True, help="Id of the job to create (the local launcher's)."
            ),
        ] = None,
    ) -> None:
        """Run PROGRAM: rank 0 runs it, the other ranks run its distributed tasks.

        Under `mpiexec -n N` or `srun --mpi=pmi2`, joins the ranks the launcher
        started. Arguments after `--` go to the program's sys.argv (before it,
        an option that is one of qshpc's, or close to one, is refused).
        """
        from qshpc.jobs.prepare import RunSpec
        from qshpc.launch.local import run as run_job
        from qshpc.store import holders
        from qshpc.submit.slurm import job_over, scheduler

        holders.slurm_job_over = job_over  # a lock held by an ended Slurm job is taken over
        folder = cache_dir_option(cache_dir)
        spec = RunSpec(
            program=program if program is not None else _program_of(resume),
            arguments_file=arguments,
            job_dir=job_dir,
            title=title,
            seed=seed,
            resume=resume,
            program_args=list(ctx.args),
            cache=cache,
            cache_dir=folder,
            job_id=job_id,
        )
        if spec.cache or (spec.cache is None and folder is not None):
            check_cache_dir(folder)
        code = run_job(spec, workers, scheduler())
        from qshpc import settings
        from qshpc.runtime.leave import flush_open_files, leave_within

        leave_within(code, settings.EXIT_GRACE_S.get())  # threads the program left running
        flush_open_files()  # the program's unclosed files keep what it wrote
        if code:
            raise typer.Exit(code)


def _program_of(resume: str | None) -> Path:
    """The program of the job to resume, when PROGRAM is left out: the job records it (its
    ``entrypoint``), as ``qshpc submit --resume J`` reads it (review24 F10: the docs'
    ``qshpc run --resume J`` was a usage error).

    Raises:
        UserError: No PROGRAM and no ``--resume``, a job that records no program, or
            one whose store is damaged (the resume's refusal).
    """
    from qshpc.errors import UserError

    if resume is None:
        raise UserError("give the program file to run (or --resume JOB to resume a job)")
    from qshpc.errors import DamagedStoreError
    from qshpc.jobs.paths import resolve_job_dir
    from qshpc.jobs.prepare import resume_refusal
    from qshpc.store.reader import JobReader

    job_dir = resolve_job_dir(resume)
    try:
        with JobReader.open(job_dir) as reader:
            entry = reader.meta().get("entrypoint")
    except DamagedStoreError as exc:  # review52 F10: the damage line alone, no way on
        raise resume_refusal(job_dir, exc) from None
    if not entry:
        raise UserError(f"job {resume} records no program: give it, qshpc run PROGRAM --resume JOB")
    return Path(str(entry))
