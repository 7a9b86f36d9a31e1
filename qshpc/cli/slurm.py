"""``qshpc submit``: send a program to Slurm (through submitit) and return at once."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from qshpc.cli.common import cache_dir_option, echo, errors


def _program(program: Path, working_dir: Path | None, name: str | None) -> Any:
    """The :class:`~qshpc.jobs.spec.Program` for PROGRAM inside its working directory."""
    from qshpc.errors import UserError
    from qshpc.jobs.prepare import expand_home
    from qshpc.jobs.spec import Program

    path = expand_home(program, "the program file")
    if working_dir is not None:
        working_dir = expand_home(working_dir, "--working-dir")
    if not path.exists() and working_dir is not None and not path.is_absolute():
        path = working_dir / path
    if not path.is_file():
        raise UserError(
            f"program file {program} does not exist: check the path (cwd is {Path.cwd()})"
        )
    path = path.resolve()
    wd = (working_dir if working_dir is not None else path.parent).resolve()
    if not wd.is_dir():
        raise UserError(f"--working-dir {working_dir} is not a directory")
    if not path.is_relative_to(wd):
        raise UserError(f"program {path} is not inside --working-dir {wd}: it is staged from there")
    return Program(
        title=name or path.name, entrypoint=str(path.relative_to(wd)), working_dir=str(wd)
    )


def register(app: typer.Typer) -> None:
    """Add ``submit`` to ``app``."""

    @app.command("submit", context_settings={"allow_extra_args": True})
    @errors
    def submit(
        ctx: typer.Context,
        program: Annotated[
            Path | None,
            typer.Argument(
                help="The program file to run (none with --resume).", show_default=False
            ),
        ] = None,
        resume: Annotated[
            str | None,
            typer.Option(
                "--resume",
                help="Submit an ended job (FAILED, CANCELED: a TIMEOUT, say) again as a new "
                "Slurm job that runs only its tasks without a stored result; its recorded "
                "resources, with the options given on top (--time-min ...).",
                show_default=False,
            ),
        ] = None,
        arguments: Annotated[
            Path | None,
            typer.Option(
                "--arguments", "-a", help="Arguments file: .h5 (qshpc.save_arguments) or .json."
            ),
        ] = None,
        array: Annotated[
            list[Path] | None,
            typer.Option(
                "--array",
                help="Submit a job array: one element per arguments file (.h5 or .json), in the "
                "order given (repeat the option); a .json file holding a list gives one element "
                "per entry.",
            ),
        ] = None,
        working_dir: Annotated[
            Path | None,
            typer.Option(
                "--working-dir", help="Folder staged with the program (default: its folder)."
            ),
        ] = None,
        name: Annotated[
            str | None, typer.Option("--name", help="Job name (letters, digits, . _ + -).")
        ] = None,
        nodes: Annotated[int | None, typer.Option("--nodes", "-N", help="Nodes.")] = None,
        ntasks_per_node: Annotated[
            int | None,
            typer.Option("--ntasks-per-node", help="MPI ranks per node (rank 0 runs the program)."),
        ] = None,
        cpus_per_task: Annotated[
            int | None, typer.Option("--cpus-per-task", help="Cores per rank.")
        ] = None,
        gpus_per_node: Annotated[
            int | None, typer.Option("--gpus-per-node", help="GPUs per node; each rank sees one.")
        ] = None,
        mem_gb: Annotated[
            float | None, typer.Option("--mem-gb", help="Memory per node in GB.")
        ] = None,
        time_min: Annotated[
            int | None, typer.Option("--time-min", "-t", help="Time limit in minutes.")
        ] = None,
        partition: Annotated[
            str | None, typer.Option("--partition", "-p", help="Slurm partition.")
        ] = None,
        account: Annotated[
            str | None, typer.Option("--account", "-A", help="Account to charge.")
        ] = None,
        qos: Annotated[str | None, typer.Option("--qos", help="Quality of service.")] = None,
        mpi: Annotated[
            str | None, typer.Option("--mpi", help="srun --mpi plugin (default pmi2).")
        ] = None,
        sbatch: Annotated[
            list[str] | None,
            typer.Option(
                "--sbatch", help="More sbatch options, KEY=VALUE (repeat), e.g. constraint=haswell."
            ),
        ] = None,
        seed: Annotated[
            int | None, typer.Option("--seed", help="Job seed (task seeds derive from it).")
        ] = None,
        requeue: Annotated[
            bool,
            typer.Option(
                "--requeue", help="Let Slurm requeue the job after a node failure or preemption."
            ),
        ] = False,
        cache: Annotated[
            bool,
            typer.Option(
                "--cache",
                help="Result cache across jobs: a call computed by an earlier job is not run "
                "again (docs/cache.md).",
            ),
        ] = False,
        cache_dir: Annotated[
            str | None,
            typer.Option(
                "--cache-dir",
                help="The cache folder, on storage every node sees (default $QSHPC_CACHE_DIR, "
                "else $QSHPC_HOME/cache); implies --cache.",
                show_default=False,
            ),
        ] = None,
        as_json: Annotated[
            bool,
            typer.Option("--json", help="Print the ids as a JSON object (a list for --array)."),
        ] = False,
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

        With --array FILE (repeatable), PROGRAM runs once per argument set as
        one Slurm job array: each element is a job of its own (own id,
        arguments and results; Slurm id ARRAYID_INDEX), all with the same
        resources and seed. A .json FILE holding a list gives one element per
        entry. One line is printed per element; `qshpc list --array ARRAY_ID`
        shows them together. A failed element never stops the others.

        What follows `--` goes to the program's sys.argv (every element alike;
        `--resume` keeps the job's own).
        """
        from qshpc.errors import UserError
        from qshpc.submit.config import resolve_resources
        from qshpc.submit.resources import parse_sbatch_options
        from qshpc.submit.submission import submit as do_submit

        overrides = {
            "nodes": nodes,
            "ntasks_per_node": ntasks_per_node,
            "cpus_per_task": cpus_per_task,
            "gpus_per_node": gpus_per_node,
            "mem_gb": mem_gb,
            "time_min": time_min,
            "partition": partition,
            "account": account,
            "qos": qos,
            "mpi": mpi,
            "extra": parse_sbatch_options(sbatch or []),
            "name": name,
            "requeue": True if requeue else None,
        }
        if resume is not None:
            given = [
                flag
                for flag, value in (
                    ("PROGRAM", program),
                    ("--arguments", arguments),
                    ("--array", array),
                    ("--working-dir", working_dir),
                    ("--seed", seed),
                    ("--cache", cache or None),
                    ("--cache-dir", cache_dir),
                )
                if value is not None
            ]
            if ctx.args or (program is not None and "--" in sys.argv):
                # click takes the first word after -- as PROGRAM when none came before it
                given = [g for g in given if g != "PROGRAM" or "--" not in sys.argv]
                given.append("the program's arguments after --")
            if given:
                raise UserError(
                    f"--resume runs the job's own staged program, arguments and seed: leave out "
                    f"{', '.join(given)} (resources such as --time-min may be given)"
                )
            _resubmit(resume, overrides, dry_run, as_json)
            return
        if program is None:
            raise UserError("give the program file to submit (or --resume JOB to resume a job)")
        res = resolve_resources(overrides)
        prog = _program(program, working_dir, name)
        if cache or cache_dir is not None:
            from qshpc.client.local import with_cache

            folder = cache_dir_option(cache_dir)
            if folder is not None and dry_run:  # a dry run makes nothing, but says this
                from qshpc.cache.folder import expand

                expand(folder)
            prog = with_cache(prog, cache, folder, check=not dry_run)
        if array:
            if arguments is not None:
                raise UserError(
                    "give either --arguments (one job) or --array (a job array), not both"
                )
            _submit_array(prog, array, seed, res, dry_run, as_json, list(ctx.args))
            return
        args: dict[str, Any] | None = None
        if arguments is not None:
            from qshpc.jobs.prepare import check_arguments_file

            check_arguments_file(arguments)
        if arguments is not None and not dry_run:
            from qshpc.jobs.prepare import load_arguments_file

            args = load_arguments_file(arguments)
        sub = do_submit(prog, args, seed, res, dry_run=dry_run, program_args=list(ctx.args))
        if dry_run:
            echo(sub.script.rstrip("\n"))
            return
        if as_json:
            echo(json.dumps(sub.as_dict()))
        else:
            echo(f"job {sub.job_id}  (slurm {sub.slurm_job_id})")
            echo(
                f"  status: qshpc status {sub.job_id}    result: qshpc result {sub.job_id} --wait 600"
            )


def _resubmit(job: str, overrides: dict[str, Any], dry_run: bool, as_json: bool) -> None:
    """``qshpc submit --resume JOB``: the ended job again, as a new Slurm job."""
    from qshpc.client.job import open_job
    from qshpc.errors import JobNotFoundError
    from qshpc.submit.submission import resubmit

    try:
        j = open_job(job)
    except JobNotFoundError:
        _refuse_array(job)
        raise
    if dry_run:
        _check_resumable(j)
        sub = resubmit(j.job_dir, overrides, dry_run=True)
        echo(sub.script.rstrip("\n"))
        return
    from qshpc.store.lock import step_lock

    # One resume at a time, from the look at the job to the record of its new Slurm job
    # (hunt14a: two shells resuming one job each sbatched one).
    with step_lock(j.job_dir, "qshpc submit --resume"):
        state = _check_resumable(j)
        sub = resubmit(j.job_dir, overrides)
    if as_json:
        echo(json.dumps(sub.as_dict()))
    else:
        echo(f"job {sub.job_id} resumed  (slurm {sub.slurm_job_id}; it was {state})")
        echo(f"  status: qshpc status {sub.job_id}    result: qshpc result {sub.job_id} --wait 600")


def _number(text: str) -> bool:
    """Whether ``text`` is a number as qshpc and Slurm write one: ASCII digits (``"²"`` and
    ``"①"`` are ``isdigit()`` too, and ``int()`` refused them: a traceback, mend19)."""
    return text.isascii() and text.isdigit()


def _refuse_array(job: str) -> None:
    """``--resume`` of a job array's id (qshpc's or Slurm's): refused, naming its elements
    (was "no job ...", though `qshpc list --array` knows the id)."""
    from qshpc.errors import UserError
    from qshpc.jobs.paths import has_job_file, jobs_root, read_slurm_id
    from qshpc.text import shown

    root = jobs_root()
    if not job or "/" in job or not root.is_dir():
        return
    elements = sorted(
        (d.name for d in root.iterdir()
         if (d.name.startswith(f"{job}-") and _number(d.name[len(job) + 1 :]))
         or (_number(job) and (read_slurm_id(d) or "").startswith(f"{job}_"))),
        key=lambda n: int(n.rsplit("-", 1)[1]) if _number(n.rsplit("-", 1)[1]) else 0,
    )  # fmt: skip
    elements = [e for e in elements if has_job_file(root / e)]
    if not elements:
        return
    array = elements[0].rsplit("-", 1)[0]
    shown_elements = ", ".join(shown(e) for e in elements[:3]) + (
        ", ..." if len(elements) > 3 else ""
    )
    raise UserError(
        f"{shown(job)} is a job array of {len(elements)} element(s) ({shown_elements}): "
        f"--resume takes one element; see which ended FAILED or CANCELED with "
        f"`qshpc list --array {shown(array)}`, then `qshpc submit --resume ELEMENT` for each"
    )


def _check_resumable(j: Any) -> str:
    """The state of job ``j``, refused (UserError) unless ``--resume`` may submit it again."""
    from qshpc.errors import UserError
    from qshpc.jobs.paths import job_ref
    from qshpc.store.lock import holder_alive
    from qshpc.text import shown

    ref = job_ref(j.job_dir)  # what a later command finds (review24 F3)
    meta = j.info()
    state = str(meta.get("state"))
    if state == "SUCCEEDED":
        raise UserError(
            f"job {shown(j.job_id)} already SUCCEEDED: nothing to resume (`qshpc result {ref}`)"
        )
    if state not in ("FAILED", "CANCELED", "DAMAGED"):  # QUEUED, RUNNING, UNKNOWN...
        slurm = (
            f" (Slurm job {shown(str(meta['slurm_job_id']))})" if meta.get("slurm_job_id") else ""
        )
        raise UserError(
            f"job {shown(j.job_id)} is {shown(state)}{slurm}: wait for it to end, or "
            f"`qshpc cancel {ref}` first; then resume it"
        )
    if state == "DAMAGED":
        _refuse_damaged(j.job_dir)  # review52 F5: the one refusal of a resume, as `qshpc run`'s
        raise UserError(
            f"job {shown(j.job_id)}'s store is damaged: see `qshpc status {ref}` "
            "(what is recoverable) before resuming it"
        )
    holder = holder_alive(j.job_dir, runs_only=True)
    if holder is not None:
        # The store's end is an earlier run's: a run (`qshpc run --resume` in the user's own
        # batch script) holds the job now; a new Slurm job's run would be refused.
        raise UserError(
            f"job {shown(j.job_id)} is being run ({holder.describe()}): wait for it to end "
            f"(`qshpc wait {ref}`), or `qshpc cancel {ref}` first"
        )
    return state


def _refuse_damaged(job_dir: Path) -> None:
    """Raise the refusal ``qshpc run --resume`` gives for the damaged store in ``job_dir``
    (what is damaged, what is readable, the way on); nothing when it reads now."""
    from qshpc.errors import DamagedStoreError
    from qshpc.jobs.paths import small_store
    from qshpc.jobs.prepare import resume_refusal
    from qshpc.store.reader import JobReader

    try:
        with JobReader.open(job_dir) as r:
            r.meta()
            if small_store(job_dir):  # as `qshpc status` found it DAMAGED
                r.verify()
    except DamagedStoreError as exc:
        raise resume_refusal(job_dir, exc) from None


def load_array_arguments(files: list[Path], read: bool = True) -> list[dict[str, Any]]:
    """The argument sets of ``--array FILE...``: one per file, or one per entry of a JSON list.

    With ``read=False`` (a dry run) the files are checked, .h5 files not loaded ({} stands in).

    Raises:
        UserError: A missing file, or a JSON list entry that is not an object.
    """
    from qshpc.errors import UserError
    from qshpc.jobs.prepare import check_arguments_file, load_arguments_file

    sets: list[dict[str, Any]] = []
    for path in files:
        check_arguments_file(path)
        if path.suffix.lower() == ".json":
            try:
                value = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UserError(f"arguments file {path}: not valid JSON ({exc})") from None
            if isinstance(value, list):
                if not value:
                    raise UserError(f"arguments file {path} holds an empty list: no element to run")
                for i, entry in enumerate(value):
                    if not isinstance(entry, dict):
                        raise UserError(
                            f"arguments file {path}: entry {i} is {type(entry).__name__}, "
                            "not an object of arguments"
                        )
                    sets.append(entry)
                continue
        sets.append(load_arguments_file(path) if read else {})
    return sets


def _submit_array(
    prog: Any,
    files: list[Path],
    seed: int | None,
    res: Any,
    dry_run: bool,
    as_json: bool,
    program_args: list[str],
) -> None:
    from qshpc.submit.submission import submit_array

    sets = load_array_arguments(files, read=not dry_run)
    sub = submit_array(prog, sets, seed, res, dry_run=dry_run, program_args=program_args)
    if dry_run:
        echo(f"# job array {sub.array_id}: {len(sub.elements)} element(s)")
        echo(sub.script.rstrip("\n"))
        return
    if as_json:
        echo(json.dumps(sub.as_list()))
        return
    echo(f"array {sub.array_id}  (slurm {sub.slurm_array_id}, {len(sub.elements)} elements)")
    for e in sub.elements:
        echo(f"job {e.job_id}  (slurm {e.slurm_job_id})")
    echo(f"  status: qshpc list --array {sub.array_id}")
