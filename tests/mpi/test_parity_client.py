"""quantum-serverless 0.10.1's client and job names, over qshpc's clients (issue 14, point 6)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import qshpc
from qshpc import (
    Configuration,
    Job,
    LocalClient,
    LocalProvider,
    QiskitPattern,
    QuantumServerless,
    Target,
    UserError,
    distribute_qiskit_pattern,
)
from tests.conftest import PROGRAMS

pytestmark = pytest.mark.mpi

PARITY = str(PROGRAMS / "parity")


def test_job_names_of_quantum_serverless(qshpc_home: Path) -> None:
    client = LocalClient(workers=1)
    job = client.run(
        QiskitPattern(title="talk", entrypoint="talk.py", working_dir=PARITY), {"n": 3}
    )
    assert isinstance(job, Job)
    assert job.result(wait=True, cadence=0.2, verbose=True) == {"values": [0, 1, 2]}
    assert job.in_terminal_state()
    assert job.status() == "SUCCEEDED" and job.status() == "DONE"  # both vocabularies
    assert job.status() in ["CANCELED", "DONE", "ERROR"]  # quantum-serverless's in_terminal_state
    hello = job.filtered_logs(include="hello from task")
    assert hello.count("hello from task") == 3 and "program starts" not in hello
    quiet = job.filtered_logs(exclude="WARNING|==>")
    assert "WARNING" not in quiet and "program starts" in quiet
    assert job.filtered_logs(include="hello", exclude="task 1").count("hello") == 2
    assert client.get_job_by_id(job.job_id).job_id == job.job_id
    assert job.job_id in [j.job_id for j in client.get_jobs()]
    assert len(client.get_jobs(limit=1)) == 1
    assert job.raw_data["title"] == "talk"
    with pytest.raises(qshpc.JobNotFoundError):
        client.get_job_by_id("20000101-000000-000000")


def test_upload_then_run_by_title(qshpc_home: Path) -> None:
    client = LocalClient(workers=1)
    assert (
        client.upload(QiskitPattern(title="talk", entrypoint="talk.py", working_dir=PARITY))
        == "talk"
    )
    assert [p.title for p in client.get_programs()] == ["talk"]
    job = client.run("talk", arguments={"n": 2})
    assert job.result() == {"values": [0, 1]}
    with pytest.raises(UserError, match=r"no program titled 'nope'.*upload"):
        client.run("nope")
    with pytest.raises(UserError, match="entrypoint"):
        client.upload(QiskitPattern(title="ghost", entrypoint="ghost.py", working_dir=PARITY))


def test_result_without_waiting_and_configuration(qshpc_home: Path) -> None:
    client = LocalClient(workers=1)
    job = client.run(
        QiskitPattern(title="slow", entrypoint="slow.py", working_dir=str(PROGRAMS)),
        config=Configuration(workers=2),
    )
    deadline = time.monotonic() + 120
    while not job.tasks() and time.monotonic() < deadline:  # running (stopping a job that
        time.sleep(0.2)  # is still starting is issue 17's)
    assert job.result(wait=False) is None and not job.in_terminal_state()
    assert job.info()["mpi_size"] == 3  # Configuration(workers=2): rank 0 and two workers
    job.stop()
    deadline = time.monotonic() + 60
    while not job.in_terminal_state() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.status() == "CANCELED"


def test_files_api_is_a_data_folder(qshpc_home: Path, tmp_path: Path) -> None:
    client = LocalClient(workers=1)
    src = tmp_path / "input.tar"
    src.write_bytes(b"\x00payload\xff")
    assert client.file_upload(str(src)) == "input.tar"
    assert client.files() == ["input.tar"]
    job = client.run(
        QiskitPattern(title="talk", entrypoint="talk.py", working_dir=PARITY), {"n": 4}
    )
    job.result()
    assert client.files() == ["input.tar", "produced-4.txt"]
    out = tmp_path / "down"
    out.mkdir()
    name = client.file_download("input.tar", download_location=str(out))
    assert name.startswith("downloaded_") and name.endswith("_input.tar")
    assert (out / name).read_bytes() == b"\x00payload\xff"
    assert client.file_download("produced-4.txt", "mine.txt", str(out)) == "mine.txt"
    assert (out / "mine.txt").read_text() == "4 values\n"
    client.file_delete("input.tar")
    assert client.files() == ["produced-4.txt"]
    for bad in ("../jobs", "/etc/passwd", "a/b", "..", "", "x\x00y"):
        with pytest.raises(UserError, match="file name"):
            client.file_download(bad, download_location=str(out))
        with pytest.raises(UserError, match="file name"):
            client.file_delete(bad)
    with pytest.raises(UserError, match=r"no file 'missing\.txt'"):
        client.file_download("missing.txt", download_location=str(out))
    with pytest.raises(UserError, match="not a file"):
        client.file_upload(str(tmp_path))
    # A link planted in the data folder is not followed out of it.
    (qshpc.data_dir() / "link.txt").symlink_to(src)
    assert "link.txt" not in client.files()
    with pytest.raises(UserError, match="not a regular file"):
        client.file_download("link.txt", download_location=str(out))


def test_quantum_serverless_over_a_qshpc_client(qshpc_home: Path) -> None:
    serverless = QuantumServerless(LocalClient(workers=1))
    assert "local" in repr(serverless)
    job = serverless.run(
        QiskitPattern(title="talk", entrypoint="talk.py", working_dir=PARITY), {"n": 1}
    )
    assert job.result() == {"values": [0]}
    assert job.status() == "DONE"  # quantum-serverless 0.10.1's names from its own client
    assert job.status() == "SUCCEEDED"
    again = serverless.get_job_by_id(job.job_id)
    assert again.in_terminal_state() and again.status() == "DONE"
    assert isinstance(job.stop(), bool)
    with serverless.context():
        pass
    assert len(serverless.providers()) == 1
    serverless.add_provider(LocalProvider())
    assert len(serverless.providers()) == 2
    assert serverless.set_provider(0) is serverless
    with pytest.raises(qshpc.QuantumServerlessException, match=r"is not in the providers"):
        serverless.set_provider("nowhere")


def test_distribute_qiskit_pattern_runs_a_function_as_a_program(qshpc_home: Path) -> None:
    @distribute_qiskit_pattern(provider=LocalClient(workers=1))
    def my_program(n: int) -> dict[str, int]:
        from qshpc import distribute_task, get

        @distribute_task()
        def double(x: int) -> int:
            return 2 * x

        return {"total": sum(get([double(i) for i in range(n)]))}

    job = my_program(n=4)
    assert job.result() == {"total": 12}
    with pytest.raises(qshpc.QuantumServerlessException, match="named arguments"):
        my_program(4)


def test_target_from_dict_and_pip() -> None:
    t = Target.from_dict({"cpu": 2, "mem": 1, "pip": ["pytest"], "env_vars": {"A": "1"}})
    assert (t.cpu, t.mem_gb, t.pip, t.env_vars) == (2, 1.0, ["pytest"], {"A": "1"})
    assert Target(pip=["pytest"]).pip == Target.from_dict({"pip": ["pytest"]}).pip
    with pytest.raises(
        qshpc.ResourceError, match=r"not installed.*pip install 'no-such-package-qshpc>=1'"
    ):
        qshpc.distribute_task(target={"pip": ["no-such-package-qshpc>=1"]})(len)
    with pytest.raises(
        qshpc.ResourceError, match=r"dependencies.*not installed.*pip install nope-x"
    ):
        LocalClient().run(
            QiskitPattern(
                title="t", entrypoint="talk.py", working_dir=PARITY, dependencies=["nope-x"]
            )
        )


@pytest.mark.parametrize(
    "make",
    [
        lambda: qshpc.ServerlessProvider(host="http://gateway", token="t"),
        lambda: qshpc.IBMServerlessProvider(token="t"),
        lambda: qshpc.GatewayProvider(username="u", password="p", host="http://localhost:8000"),
        lambda: qshpc.Provider(host="http://gateway", token="t"),
        lambda: qshpc.RayProvider("http://localhost:8265"),
        lambda: qshpc.get_auto_discovered_provider("http://manager"),
    ],
)
def test_gateway_names_fail_at_once_naming_the_equivalent(make: object) -> None:
    with pytest.raises(UserError) as info:
        make()  # type: ignore[operator]
    text = str(info.value)
    assert "\n" not in text and "LocalClient" in text and "SlurmClient" in text
