"""review24's CLI findings for a new user (hunt22d): F2, F4, F8, F9, F10, F11.

Each bad input is one line naming the input and the fix, exit 2, no traceback, and no
job folder left (docs/bad-input.md).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import mpiexec, run_cli

ARGV = "import sys\nfrom qshpc import save_result\nsave_result({'argv': sys.argv[1:]})\n"
SEEDED = (
    "from qshpc import get_arguments, save_result\nsave_result({'n': get_arguments().get('n')})\n"
)


def _prog(tmp_path: Path, text: str = ARGV, name: str = "prog.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _jobs(home: Path) -> list[Path]:
    return sorted((home / "jobs").iterdir()) if (home / "jobs").is_dir() else []


def _refused(out: subprocess.CompletedProcess[str], *words: str) -> str:
    """The one ``qshpc: error:`` line of a refusal (exit 2, no traceback)."""
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    line = out.stderr.strip().splitlines()[-1]
    assert line.startswith("qshpc: error: "), out.stderr
    for word in words:
        assert word in line, line
    return line


# F2: an option meant for qshpc after PROGRAM went to the program's sys.argv


def test_a_typo_of_a_run_option_is_refused(tmp_path: Path, qshpc_home: Path) -> None:
    out = run_cli("run", str(_prog(tmp_path)), "--worker", "2")
    _refused(out, "--worker is not a qshpc run option", "did you mean --workers?", "after --")
    assert _jobs(qshpc_home) == []


def test_a_submit_option_given_to_run_is_refused(tmp_path: Path, qshpc_home: Path) -> None:
    out = run_cli("run", str(_prog(tmp_path)), "--nodes", "2", "--time-min", "30")
    _refused(out, "--nodes is a qshpc submit option", "--workers N")
    assert _jobs(qshpc_home) == []


def test_program_options_still_reach_the_program(tmp_path: Path, qshpc_home: Path) -> None:
    """A program's own option close to none of qshpc's passes without ``--``; anything
    after ``--`` passes, a qshpc-like option too; positional arguments too."""
    prog = _prog(tmp_path)
    out = run_cli("run", str(prog), "5", "--shots", "100", "--workers", "0", "--", "--worker")
    assert out.returncode == 0, out.stderr
    res = run_cli("result", _jobs(qshpc_home)[0].name, "--json")
    assert json.loads(res.stdout)["argv"] == ["5", "--shots", "100", "--worker"]


def test_the_submit_only_list_matches_qshpc_submit() -> None:
    """``SUBMIT_ONLY`` is every ``qshpc submit`` option ``qshpc run`` does not take."""
    import typer

    from qshpc.cli import app as cli_app
    from qshpc.cli.runargv import SUBMIT_ONLY

    cli_app._register()
    command = typer.main.get_command(cli_app.app)
    sub = command.commands  # type: ignore[attr-defined]

    def longs(name: str) -> set[str]:
        return {o for p in sub[name].params for o in p.opts + p.secondary_opts if o[:2] == "--"}

    assert longs("submit") - longs("run") == SUBMIT_ONLY


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        ("prog.py --worker 2", "--worker"),
        ("prog.py x --seeds=3", "--seeds"),
        ("prog.py --job_dir d", "--job_dir"),
        ("--partition p prog.py", "--partition"),
        ("prog.py --shots 5 --depth 3 --output o", None),
        ("prog.py -- --worker 2 --nodes 3", None),
        ("prog.py --title --worker", None),  # --worker is --title's value
        ("prog.py --help", None),
    ],
)
def test_which_options_are_refused(line: str, refused: str | None) -> None:
    from qshpc.cli.runargv import misplaced_option

    why = misplaced_option(line.split())
    assert (why is None) if refused is None else (why is not None and why.startswith(refused))


# F4: --resume with --arguments/--seed/--title dropped them without a word


def test_resume_with_new_arguments_seed_or_title_is_refused(tmp_path: Path) -> None:
    prog = _prog(tmp_path, SEEDED)
    (tmp_path / "a.json").write_text('{"n": 3}')
    (tmp_path / "b.json").write_text('{"n": 4}')
    job = tmp_path / "job"
    first = run_cli("run", str(prog), "--arguments", str(tmp_path / "a.json"), "--workers", "0",
                    "--job-dir", str(job))  # fmt: skip
    assert first.returncode == 0, first.stderr
    for extra, named in (
        (["--arguments", str(tmp_path / "b.json")], "leave out --arguments"),
        (["--seed", "3"], "leave out --seed"),
        (["--title", "new"], "leave out --title"),
    ):
        out = run_cli("run", str(prog), "--resume", str(job), "--workers", "0", *extra)
        _refused(out, "--resume runs the job's own program, arguments", named, "new job")


# F8: a notebook ran as Python (NameError: null), a job folder left


def test_a_notebook_is_refused_before_the_job_exists(tmp_path: Path, qshpc_home: Path) -> None:
    nb = tmp_path / "seed.ipynb"
    nb.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    out = run_cli("run", str(nb), "--workers", "0")
    _refused(out, "is a Jupyter notebook", "run it in Jupyter", "jupyter nbconvert --to script")
    assert _jobs(qshpc_home) == []


# F10: `qshpc run --resume JOB`, as the docs write it, was a usage error


def test_run_resume_without_program_runs_the_job_s_own(tmp_path: Path) -> None:
    from tests.conftest import FAIL, FAIL_AT_END

    prog = _prog(tmp_path, SEEDED + FAIL_AT_END)  # FAILED: a job to resume
    (tmp_path / "a.json").write_text('{"n": 3}')
    job = tmp_path / "job"
    first = run_cli("run", str(prog), "--arguments", str(tmp_path / "a.json"), "--workers", "0",
                    "--job-dir", str(job), env=FAIL)  # fmt: skip
    assert first.returncode == 1, first.stderr
    again = run_cli("run", "--resume", str(job), "--workers", "0")
    assert again.returncode == 0, again.stderr
    assert "Missing argument" not in again.stderr and "note: job" not in again.stderr
    res = run_cli("result", str(job), "--json")
    assert json.loads(res.stdout) == {"n": 3}


def test_run_without_program_or_resume_is_refused() -> None:
    _refused(run_cli("run", "--workers", "0"), "give the program file to run", "--resume JOB")


# F9: two sbatch refusals came without a hint


def test_sbatch_refusals_get_their_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from qshpc.submit import slurm, submission

    cpus = submission._explain(
        "sbatch: error: Batch job submission failed: More processors requested than permitted"
    )
    assert "ask for less (see `sinfo -o" in cpus
    monkeypatch.setattr(slurm, "conf", lambda: None)
    conf = submission._explain(
        "sbatch: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host\n"
        "sbatch: fatal: Could not establish a configuration source"
    )
    assert "set SLURM_CONF to your cluster's slurm.conf (it is not set)" in conf
    assert "qshpc doctor" in conf


# F11: smaller messages


def test_logs_of_a_rank_the_job_never_had_is_refused(tmp_path: Path) -> None:
    job = tmp_path / "job"
    first = run_cli("run", str(_prog(tmp_path)), "--workers", "1", "--job-dir", str(job))
    assert first.returncode == 0, first.stderr
    _refused(run_cli("logs", str(job), "--rank", "5"), "has ranks 0-1", "--rank 5")
    assert run_cli("logs", str(job), "--rank", "1").returncode == 0


def test_workers_under_mpiexec_is_noted_once(tmp_path: Path) -> None:
    cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "qshpc", "run", str(_prog(tmp_path))]
    out = subprocess.run([*cmd, "--workers", "5"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("--workers 5 is ignored under mpiexec") == 1, out.stderr


def test_a_world_writable_store_is_not_told_to_share_with_the_group(tmp_path: Path) -> None:
    home = tmp_path / "open"
    home.mkdir()
    os.chmod(home, 0o777)
    out = run_cli("list", env={"QSHPC_HOME": str(home), "QSHPC_SHARE_GROUP": "1"})
    line = _refused(out, "anybody can write it")
    assert "QSHPC_SHARE_GROUP" not in line
    os.chmod(home, stat.S_IRWXU | stat.S_IWGRP | stat.S_IRGRP | stat.S_IXGRP)
    assert "QSHPC_SHARE_GROUP=1" in run_cli("list", env={"QSHPC_HOME": str(home)}).stderr


def test_an_hdf5_arguments_file_not_made_by_qshpc_names_the_fix(tmp_path: Path) -> None:
    import h5py

    with h5py.File(tmp_path / "raw.h5", "w") as f:
        f["x"] = [1, 2]
    out = run_cli("run", str(_prog(tmp_path)), "--arguments", str(tmp_path / "raw.h5"),
                  "--workers", "0")  # fmt: skip
    _refused(out, "not a qshpc store", "qshpc.save_arguments(path, {...})", ".json")


def test_a_time_limit_names_the_resume_that_finishes_the_job() -> None:
    from qshpc.submit.state import SlurmView, _explained

    view = SlurmView(raw="TIMEOUT", exit_code="0:0", reason="TimeLimit")
    text = _explained(view, None, "20261205-1")
    assert "time limit" in text
    assert "`qshpc submit --resume 20261205-1 --time-min M` runs only the unfinished" in text
