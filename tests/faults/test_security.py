"""Job data private by default, pickle only when allowed, nothing the user types reaches a shell unquoted.

Store-level checks live in tests/unit/test_store_job.py::test_permissions and
tests/unit/test_store_encoding.py::test_pickle_refused_without_allow_pickle;
resource validation in tests/unit/test_sbatch_resources.py. These tests go
through the CLI, as a user does.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import job_dir_of, run_cli

OK = """
from qshpc import distribute_task, get, save_result

@distribute_task()
def double(x):
    return 2 * x

save_result({"v": get([double(i) for i in range(4)])})
"""

PICKLED = """
from fractions import Fraction
from qshpc import distribute_task, get, save_result

@distribute_task()
def third(x):
    return Fraction(x, 3)   # no typed encoding holds it: stored pickled

save_result({"frac": get(third(1))})
"""

SENTINEL = "qshpc-SENTINEL"
#: Shell tricks, each of which would create the sentinel if a shell ran it unquoted.
TRICKS = [
    f"$(touch {SENTINEL}1)",
    f"`touch {SENTINEL}2`",
    f"x; touch {SENTINEL}3",
    f"x\ntouch {SENTINEL}4",
    f"x' ; touch {SENTINEL}5; '",
    f'x" ; touch {SENTINEL}6; "',
]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def sentinels(*roots: Path) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        if root.is_dir():
            found += [p for p in root.rglob(f"{SENTINEL}*") if p.is_file()]
    return found


# -- file modes ------------------------------------------------------------------


@pytest.mark.mpi
@pytest.mark.parametrize(("share", "dmode", "fmode"), [("", 0o700, 0o600), ("1", 0o750, 0o640)])
def test_job_files_private_by_default(
    tmp_path: Path, qshpc_home: Path, share: str, dmode: int, fmode: int
) -> None:
    old = os.umask(0o022)  # the usual umask: qshpc must not rely on a strict one
    try:
        out = run_cli(
            "run", str(write(tmp_path, "ok.py", OK)), "--workers", "1",
            env={"QSHPC_SHARE_GROUP": share},
        )  # fmt: skip
    finally:
        os.umask(old)
    assert out.returncode == 0, out.stderr
    job = job_dir_of(qshpc_home)
    assert mode(job) == dmode and mode(job / "logs") == dmode
    files = [job / "job.h5", *sorted((job / "logs").iterdir())]
    assert {f.name for f in files} >= {"job.h5", "rank-0.out", "rank-1.out", "dispatch.log"}
    for f in files:
        assert mode(f) == fmode, f"{f}: {oct(mode(f))}"
    assert not mode(job) & 0o007  # never anything for others


# -- pickle ------------------------------------------------------------------------


@pytest.mark.mpi
def test_pickled_result_needs_allow_pickle(tmp_path: Path, qshpc_home: Path) -> None:
    out = run_cli("run", str(write(tmp_path, "pk.py", PICKLED)), "--workers", "1")
    assert out.returncode == 0, out.stderr
    job = job_dir_of(qshpc_home)
    refused = run_cli("result", str(job))
    assert refused.returncode == 2
    assert "contains pickled data" in refused.stderr and "--allow-pickle" in refused.stderr
    assert "Traceback" not in refused.stderr
    allowed = run_cli("result", str(job), "--allow-pickle")
    assert allowed.returncode == 0 and "Fraction(1, 3)" in allowed.stdout
    from qshpc import open_job
    from qshpc.errors import StoreError

    with pytest.raises(StoreError, match="allow_pickle=True only if you trust"):
        open_job(job).result()


def test_pickled_arguments_in_a_writable_store_are_refused(
    tmp_path: Path, qshpc_home: Path
) -> None:
    """A store others can write is not trusted: rank 0 does not unpickle its arguments."""
    from fractions import Fraction

    from qshpc import Program
    from qshpc.jobs.spec import create_program_job

    write(
        tmp_path,
        "ok.py",
        "from qshpc import get_arguments, save_result\nsave_result(str(get_arguments()))\n",
    )
    program = Program(title="t", entrypoint="ok.py", working_dir=str(tmp_path))
    job_dir = create_program_job(program, {"f": Fraction(1, 3)}, None, tmp_path / "job")
    os.chmod(job_dir / "job.h5", 0o666)  # as if another user could have written it
    out = run_cli("run", str(tmp_path / "ok.py"), "--job-dir", str(job_dir), "--workers", "0")
    assert out.returncode != 0
    assert "pickled data" in out.stderr and str(job_dir / "job.h5") in out.stderr


@pytest.mark.parametrize("ranks", [None, 2])
def test_pickled_arguments_file_is_loaded_only_when_private(
    tmp_path: Path, qshpc_home: Path, ranks: int | None
) -> None:
    """`--arguments F` with pickled values: run when F is the user's alone; else exit 2
    with what to do, and no rank left waiting (2 ranks: the workers exit too)."""
    from fractions import Fraction

    from qshpc import save_arguments

    write(
        tmp_path,
        "ok.py",
        "from qshpc import get_arguments, save_result\nsave_result(str(get_arguments()))\n",
    )
    args = tmp_path / "args.h5"
    save_arguments(args, {"f": Fraction(1, 3)})
    os.chmod(args, 0o644)  # others may read it, only its owner can write it
    out = run_cli(
        "run", str(tmp_path / "ok.py"), "--arguments", str(args), ranks=ranks, timeout=120
    )
    assert out.returncode == 0, out.stderr
    os.chmod(args, 0o666)  # as if another user could have written it
    out = run_cli(
        "run", str(tmp_path / "ok.py"), "--arguments", str(args), ranks=ranks, timeout=120
    )
    assert out.returncode == 2, out.stderr
    assert f"arguments file {args} holds pickled values" in out.stderr
    assert "chmod go-w" in out.stderr and "Traceback" not in out.stderr


# -- injection -----------------------------------------------------------------------


@pytest.mark.parametrize("trick", TRICKS)
@pytest.mark.parametrize("option", ["--name", "--partition", "--account", "--qos", "--mpi"])
def test_injection_in_options_refused(
    tmp_path: Path, qshpc_home: Path, option: str, trick: str
) -> None:
    work = tmp_path / "w"
    prog = write(work, "ok.py", OK)
    out = run_cli("submit", str(prog), "--dry-run", f"{option}={trick}", cwd=work)
    assert out.returncode == 2, out.stdout
    assert not out.stdout and "Traceback" not in out.stderr
    assert not sentinels(tmp_path)
    assert not (qshpc_home / "jobs").exists()


@pytest.mark.parametrize("trick", TRICKS)
def test_injection_in_sbatch_values_quoted_or_refused(
    tmp_path: Path, qshpc_home: Path, trick: str
) -> None:
    work = tmp_path / "w"
    prog = write(work, "ok.py", OK)
    out = run_cli("submit", str(prog), "--dry-run", "--sbatch", f"comment={trick}", cwd=work)
    if "\n" in trick:
        assert out.returncode == 2 and "one line" in out.stderr
    else:
        assert out.returncode == 0, out.stderr
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("#SBATCH --comment="))
        import shlex

        assert shlex.split(line.split("=", 1)[1]) == [trick]  # one word, exactly the value
    # An injected key is refused whatever the value.
    bad_key = run_cli("submit", str(prog), "--dry-run", "--sbatch", f"{trick}=1", cwd=work)
    assert bad_key.returncode == 2
    assert not sentinels(tmp_path)


@pytest.mark.parametrize("trick", [t for t in TRICKS if "\n" not in t])
def test_injection_in_paths_quoted(
    tmp_path: Path, trick: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A working dir, a program file and QSHPC_HOME whose names hold shell code are quoted."""
    work = tmp_path / f"wd {trick.replace('/', '_')}"
    prog = write(work, f"p {trick.replace('/', '_')}.py", OK)
    home = tmp_path / f"home {trick.replace('/', '_')}"
    monkeypatch.setenv("QSHPC_HOME", str(home))
    out = run_cli("submit", str(prog), "--working-dir", str(work), "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    import shlex

    srun = out.stdout.splitlines()[-1]
    words = shlex.split(srun)
    assert any(w.startswith(str(home)) for w in words), srun  # the path is one quoted word
    assert not sentinels(tmp_path)


# -- a real submission (dev cluster) -------------------------------------------------


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="qshpc-security-test-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slurm
def test_real_submit_with_shell_code_in_paths(
    shared_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names with ``$(...)`` are refused (above); paths and --sbatch values carry it to Slurm, quoted."""
    from tests.early_jobs import slurm_plumbing

    slurm_plumbing().require_cluster(monkeypatch)

    name = f"$(touch {SENTINEL}A) `touch {SENTINEL}B`; touch {SENTINEL}C"
    home = shared_tmp / f"home {name}"
    monkeypatch.setenv("QSHPC_HOME", str(home))
    work = shared_tmp / f"work {name}"
    prog = write(work, f"prog {name}.py", OK)
    out = run_cli(
        "submit", str(prog), "--ntasks-per-node", "2", "--json",
        "--sbatch", f"comment=$(touch {SENTINEL}D)", cwd=shared_tmp, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    ids = json.loads(out.stdout)
    deadline = time.monotonic() + 180
    state = ""
    while time.monotonic() < deadline:
        state = json.loads(run_cli("status", ids["job_id"], "--json", timeout=60).stdout)["state"]
        if state in ("SUCCEEDED", "FAILED", "CANCELED"):
            break
        time.sleep(1)
    assert state == "SUCCEEDED", run_cli("logs", ids["job_id"], timeout=60).stdout[-3000:]
    assert json.loads(run_cli("result", ids["job_id"], "--json", timeout=60).stdout) == {
        "v": [0, 2, 4, 6]
    }
    assert not sentinels(shared_tmp, Path.cwd()), "shell code in a path or --sbatch value ran"
