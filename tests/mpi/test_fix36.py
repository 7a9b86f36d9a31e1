"""review36 F2, F3, F4: qiskit-serverless programs' DATA_PATH, result(maxwait=), 0.30's names.

(F4's import hints: tests/mpi/test_import_hint.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.mpi


def _run(tmp_path: Path, text: str, ranks: int | None) -> Path:
    """Run ``text`` as a job (``--workers 0``, or under ``mpiexec -n ranks``); its folder."""
    program = tmp_path / "program.py"
    program.write_text(text)
    job = tmp_path / "job"
    args = ["run", str(program), "--job-dir", str(job)]
    out = run_cli(*args, *(["--workers", "0"] if ranks is None else []), ranks=ranks, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    return job


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
    job = _run(tmp_path, DATA_PROGRAM, ranks)
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


LOGGER_PROGRAM = """
from qshpc import (ServerlessError, distribute_task, get, get_logger, get_provider_logger,
                   is_running_in_serverless, is_trial, save_result, send_error)

user_logger = get_logger()
print("Quasi distribution: {}")
get_logger().info("User log")
user_logger.info("User multiline\\nlog")
user_logger.warning("User log")
print("DELAY STARTS")
get_provider_logger().error("Provider log")

@distribute_task()
def inside():
    get_logger().info("from the task")
    return is_running_in_serverless()

@distribute_task()
def bad():
    raise ServerlessError("E1", "boom", {"a": 1})

try:
    get(bad())
except ServerlessError as e:
    caught = [e.code, e.message, e.details]
sent = send_error(1000, "My error message", "MyPersonalizedError", {"k": 1})
save_result({"job": is_running_in_serverless(), "task": get(inside()), "trial": is_trial(),
             "caught": caught, "sent": sent})
"""


@pytest.mark.parametrize("ranks", [None, 2])
def test_qiskit_serverless_0_30_names_work_in_a_job(
    tmp_path: Path, qshpc_home: Path, ranks: int | None
) -> None:
    """review36 F4: qs's gold_path_function.py / logger.py: ImportError get_logger before."""
    job = _run(tmp_path, LOGGER_PROGRAM, ranks)
    from qshpc import open_job

    assert open_job(str(job)).result() == {
        "job": True, "task": True, "trial": False, "caught": ["E1", "boom", {"a": 1}], "sent": True
    }  # fmt: skip
    log = (job / "logs" / "rank-0.out").read_text()
    assert (
        "Quasi distribution: {}\nINFO: User log\nINFO: User multiline\nINFO: log\nWARNING: User log\nDELAY STARTS\n"
        "ERROR: Provider log\n"
    ) in log, log
    assert "ERROR: Error 1000: MyPersonalizedError: My error message {'k': 1}\n" in log, log
    if ranks == 2:
        assert "INFO: from the task\n" in (job / "logs" / "rank-1.out").read_text()


def test_outside_a_job_is_running_in_serverless_is_false() -> None:
    import pickle

    import qshpc

    assert qshpc.is_running_in_serverless() is False and qshpc.is_trial() is False
    err = pickle.loads(pickle.dumps(qshpc.ServerlessError("E2", "msg", "more")))
    assert (err.code, err.message, err.details, str(err)) == ("E2", "msg", "more", "[E2] msg\nmore")
