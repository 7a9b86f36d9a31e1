"""``qshpc submit``: send a program to Slurm (through submitit) and return at once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from qshpc.cli.common import echo, errors


def _program(program: Path, working_dir: Path | None, name: str | None) -> Any:
    """The :class:`~qshpc.client.Program` for PROGRAM inside its working directory."""
    from qshpc.client import Program
    from qshpc.errors import UserError

    path = program.expanduser()
    if not path.exists() and working_dir is not None and not path.is_absolute():
        path = working_dir.expanduser() / path
    if not path.is_file():
        raise UserError(f"program file {program} does not exist: check the path (cwd is {Path.cwd()})")
    path = path.resolve()
    wd = (working_dir.expanduser() if working_dir is not None else path.parent).resolve()
    if not wd.is_dir():
        raise UserError(f"--working-dir {working_dir} is not a directory")
    if not path.is_relative_to(wd):
        raise UserError(f"program {path} is not inside --working-dir {wd}: it is staged from there")
    return Program(title=name or path.name, entrypoint=str(path.relative_to(wd)), working_dir=str(wd))


def register(app: typer.Typer) -> None:
    """Add ``submit`` to ``app``."""

    @app.command("submit")
    @errors
    def submit(
        program: Annotated[Path, typer.Argument(help="The program file to run.")],
        arguments: Annotated[
            Path | None,
            typer.Option("--arguments", "-a", help="Arguments file: .h5 (qshpc.save_arguments) or .json."),
        ] = None,
        working_dir: Annotated[
            Path | None,
            typer.Option("--working-dir", help="Folder staged with the program (default: its folder)."),
        ] = None,
        name: Annotated[str | None, typer.Option("--name", help="Job name (letters, digits, . _ + -).")] = None,
        nodes: Annotated[int | None, typer.Option("--nodes", "-N", help="Nodes.")] = None,
        ntasks_per_node: Annotated[
            int | None, typer.Option("--ntasks-per-node", help="MPI ranks per node (rank 0 runs the program).")
        ] = None,
        cpus_per_task: Annotated[int | None, typer.Option("--cpus-per-task", help="Cores per rank.")] = None,
        gpus_per_node: Annotated[
            int | None, typer.Option("--gpus-per-node", help="GPUs per node; each rank sees one.")
        ] = None,
        mem_gb: Annotated[float | None, typer.Option("--mem-gb", help="Memory per node in GB.")] = None,
        time_min: Annotated[int | None, typer.Option("--time-min", "-t", help="Time limit in minutes.")] = None,
        partition: Annotated[str | None, typer.Option("--partition", "-p", help="Slurm partition.")] = None,
        account: Annotated[str | None, typer.Option("--account", "-A", help="Account to charge.")] = None,
        qos: Annotated[str | None, typer.Option("--qos", help="Quality of service.")] = None,
        mpi: Annotated[str | None, typer.Option("--mpi", help="srun --mpi plugin (default pmi2).")] = None,
        sbatch: Annotated[
            list[str] | None,
            typer.Option("--sbatch", help="More sbatch options, KEY=VALUE (repeat), e.g. constraint=haswell."),
        ] = None,
        seed: Annotated[int | None, typer.Option("--seed", help="Job seed (task seeds derive from it).")] = None,
        requeue: Annotated[
            bool, typer.Option("--requeue", help="Let Slurm requeue the job after a node failure or preemption.")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the ids as a JSON object.")] = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print the batch script; submit nothing.")
        ] = False,
    ) -> None:
        """Submit PROGRAM to Slurm; print the qshpc job id and the Slurm job id.

        Every task runs the qshpc runtime under `srun --mpi=pmi2` (one
        COMM_WORLD): rank 0 runs the program, the other ranks its tasks. The
        working directory is copied into the job at submit time. Site defaults
        come from $QSHPC_HOME/config.toml, ./qshpc.toml ([slurm]) and
        QSHPC_SLURM_* variables; these options override them.
        """
        from qshpc.submit.config import resolve_resources
        from qshpc.submit.resources import parse_sbatch_options
        from qshpc.submit.slurm import submit as do_submit

        res = resolve_resources({
            "nodes": nodes, "ntasks_per_node": ntasks_per_node, "cpus_per_task": cpus_per_task,
            "gpus_per_node": gpus_per_node, "mem_gb": mem_gb, "time_min": time_min,
            "partition": partition, "account": account, "qos": qos, "mpi": mpi,
            "extra": parse_sbatch_options(sbatch or []), "name": name,
            "requeue": True if requeue else None,
        })
        prog = _program(program, working_dir, name)
        args: dict[str, Any] | None = None
        if arguments is not None:
            from qshpc.runtime.prepare import check_arguments_file

            check_arguments_file(arguments)
        if arguments is not None and not dry_run:
            from qshpc.store import load_arguments

            args = load_arguments(arguments)
        sub = do_submit(prog, args, seed, res, dry_run=dry_run)
        if dry_run:
            echo(sub.script.rstrip("\n"))
            return
        if as_json:
            echo(json.dumps(sub.as_dict()))
        else:
            echo(f"job {sub.job_id}  (slurm {sub.slurm_job_id})")
            echo(f"  status: qshpc status {sub.job_id}    result: qshpc result {sub.job_id} --wait 600")
