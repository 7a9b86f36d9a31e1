"""review36 F2, F4: qiskit-serverless programs' DATA_PATH, loggers and import hints in a job."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.mpi

DATA_PROGRAM = """
import json, os, tarfile
from qshpc import distribute_task, get, save_result

@distribute_task()
def where():
    return os.environ.get("DATA_PATH")

with open("my_file.txt", "w") as f:
    f.write("Hello!")
with tarfile.open(f"{os.environ['DATA_PATH']}/my_file.tar", "w:gz") as tar:
    tar.add("my_file.txt")
save_result({"rank0": os.environ["DATA_PATH"], "task": get(where())})
"""


@pytest.mark.parametrize("ranks", [None, 2])
def test_a_job_has_data_path_naming_the_data_folder(
    tmp_path: Path, qshpc_home: Path, ranks: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """qs 0.26's produce_files.py wrote to f"{DATA_PATH}/my_file.tar": 'None/my_file.tar' before."""
    monkeypatch.delenv("DATA_PATH", raising=False)
    program = tmp_path / "produce.py"
    program.write_text(DATA_PROGRAM)
    job = tmp_path / "job"
    args = ["run", str(program), "--job-dir", str(job)]
    out = run_cli(*args, *(["--workers", "0"] if ranks is None else []), ranks=ranks, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    data = qshpc_home / "data"
    assert (data / "my_file.tar").is_file()
    from qshpc import open_job

    assert open_job(str(job)).result() == {"rank0": str(data), "task": str(data)}
    from qshpc import LocalClient

    assert LocalClient().files() == ["my_file.tar"]


def test_a_data_path_of_ones_own_wins(tmp_path: Path, qshpc_home: Path) -> None:
    program = tmp_path / "produce.py"
    program.write_text(DATA_PROGRAM)
    mine = tmp_path / "mine"
    mine.mkdir()
    out = run_cli("run", str(program), "--workers", "0", "--job-dir", str(tmp_path / "job"),
                  cwd=tmp_path, env={"DATA_PATH": str(mine)})  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert (mine / "my_file.tar").is_file()
    assert os.listdir(mine) == ["my_file.tar"]


def test_result_maxwait_returns_none_while_the_job_runs_then_the_result(tmp_path: Path) -> None:
    """review36 F3: qs 0.12's ``result(maxwait=N)`` was a TypeError (unexpected keyword)."""
    from qshpc import LocalClient, Program, UserError

    go = tmp_path / "go"
    (tmp_path / "p.py").write_text(
        "import os, time\nfrom qshpc import save_result\n"
        f"while not os.path.exists({str(go)!r}):\n    time.sleep(0.05)\nsave_result({{'x': 1}})\n"
    )
    program = Program(title="mw", entrypoint="p.py", working_dir=str(tmp_path))
    job = LocalClient(workers=0).run(program)
    assert job.result(wait=True, cadence=0.05, verbose=False, maxwait=2) is None
    assert job.result(cadence=0.05, maxwait=1, timeout=60) is None  # the smaller limit
    go.write_text("")
    assert job.result(cadence=0.2, maxwait=0) == {"x": 1}  # 0: no limit
    assert job.result(maxwait=1) == {"x": 1}
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(UserError, match="maxwait= must be a whole number"):
            job.result(maxwait=bad)
