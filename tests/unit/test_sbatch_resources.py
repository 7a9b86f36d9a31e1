"""Slurm resources: validation (every problem at once), site defaults, sbatch rendering. No cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from qshpc.errors import ResourceError
from qshpc.submit.config import resolve_resources
from qshpc.submit.resources import SlurmResources, parse_sbatch_options, safe_job_name
from qshpc.submit.sbatch import executor_parameters, render
from qshpc.submit.task import bind_gpu


def test_defaults_are_valid() -> None:
    res = SlurmResources()
    assert res.problems() == []
    assert res.ntasks == 2 and res.mpi == "pmi2"


def test_all_problems_in_one_message() -> None:
    res = SlurmResources(nodes=0, mem_gb=-1, time_min=0, name="x; rm -rf ~", partition="a b")
    with pytest.raises(ResourceError) as err:
        res.validate()
    text = str(err.value)
    for needle in (
        "nodes=0",
        "--nodes 1",
        "mem_gb=-1",
        "--mem-gb 4",
        "time_min=0",
        "name='x; rm -rf ~'",
        "partition='a b'",
    ):
        assert needle in text, text


@pytest.mark.parametrize("value", [True, 1.5, "2", None])
def test_nodes_must_be_whole_numbers(value: object) -> None:
    assert any("nodes=" in p for p in SlurmResources(nodes=value).problems())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    ["x; rm -rf ~", "$(reboot)", "`id`", "a\nb", "", "-x", "a'b", 'a"b', "a b", "x" * 129],
)
def test_unsafe_job_names_refused(name: str) -> None:
    assert SlurmResources(name=name).problems()


@pytest.mark.parametrize(
    "extra",
    [
        {"comment": "a\n#SBATCH --x\nrm -rf ~"},  # a newline would end the #SBATCH comment line
        {"foo;bar": "1"},
        {"Constraint": "x"},
        {"output": "/etc/passwd"},
        {"signal": "KILL@1"},
        {"job-name": "x"},
        {"comment": ""},
        {"comment": "tab\there"},
    ],
)
def test_sbatch_injection_refused(extra: dict[str, str]) -> None:
    assert SlurmResources(extra=extra).problems()


def test_sbatch_values_are_quoted(tmp_path: Path) -> None:
    res = SlurmResources(extra={"comment": "a b; rm -rf ~ $(id)"})
    res.validate()
    script = render(executor_parameters(res, "job", tmp_path), tmp_path / "slurm")
    assert "#SBATCH --comment='a b; rm -rf ~ $(id)'" in script


def test_parse_sbatch_options() -> None:
    assert parse_sbatch_options(["constraint=a=b", "--exclusive=user"]) == {
        "constraint": "a=b",
        "exclusive": "user",
    }
    with pytest.raises(ResourceError, match="KEY=VALUE"):
        parse_sbatch_options(["novalue"])


def test_unknown_resource_lists_the_valid_ones() -> None:
    with pytest.raises(ResourceError) as err:
        resolve_resources({"nodez": 2}, environ={})
    text = str(err.value)
    assert "nodez" in text and "ntasks_per_node (default: 2)" in text and "mem_gb" in text


def test_safe_job_name() -> None:
    assert safe_job_name("Program with distributed workflow") == "Program-with-distributed-workflow"
    assert safe_job_name("x; rm -rf ~") == "x-rm--rf"
    assert safe_job_name(";;;") == "qshpc"
    assert not SlurmResources(name=safe_job_name("ü/../$(x)")).problems()


def test_site_defaults_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("QSHPC_HOME", str(home))
    (home / "config.toml").write_text(
        '[slurm]\npartition = "home"\naccount = "acct"\nmodules = ["gcc/12"]\n'
        'extra = { constraint = "haswell" }\ntime_min = 30\n'
    )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "qshpc.toml").write_text('[slurm]\npartition = "project"\n')
    env = {
        "QSHPC_SLURM_ACCOUNT": "envacct",
        "QSHPC_SLURM_MEM_GB": "2.5",
        "QSHPC_SLURM_DIR": "/var/tmp/ignored",
    }
    res = resolve_resources({"time_min": None, "extra": {"exclusive": "user"}}, environ=env)
    assert res.partition == "project"  # ./qshpc.toml over $QSHPC_HOME/config.toml
    assert res.account == "envacct"  # environment over files
    assert res.mem_gb == 2.5 and res.time_min == 30 and res.modules == ["gcc/12"]
    assert res.extra == {"constraint": "haswell", "exclusive": "user"}
    assert resolve_resources({"partition": "cli"}, environ=env).partition == "cli"  # caller wins


def test_config_errors_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QSHPC_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "config.toml"
    cfg.write_text("[slurm]\npartiton = 'x'\n")
    with pytest.raises(ResourceError, match=r"partiton.*config\.toml"):
        resolve_resources({}, environ={})
    cfg.write_text("[slurm\n")
    with pytest.raises(ResourceError, match="not valid TOML"):
        resolve_resources({}, environ={})
    cfg.write_text("[slurm]\nnodes = 0\n")
    with pytest.raises(ResourceError, match=r"nodes=0(.|\n)*site defaults from: .*config.toml"):
        resolve_resources({}, environ={})
    cfg.unlink()
    with pytest.raises(ResourceError, match="QSHPC_SLURM_NODES"):
        resolve_resources({}, environ={"QSHPC_SLURM_NODES": "two"})
    with pytest.raises(ResourceError, match="bogus"):
        resolve_resources({}, environ={"QSHPC_SLURM_BOGUS": "1"})


def test_executor_parameters(tmp_path: Path) -> None:
    res = SlurmResources(
        nodes=2,
        ntasks_per_node=4,
        gpus_per_node=2,
        mem_gb=1.5,
        time_min=5,
        partition="gpu",
        account="a",
        qos="q",
        requeue=True,
        modules=["cuda/12"],
        setup=["echo hi"],
        extra={"constraint": "a100"},
    )
    p = executor_parameters(res, "n", tmp_path)
    assert (
        p["srun_args"] == ["--mpi=pmi2"] and p["signal_delay_s"] == 75
    )  # --requeue: warned at 1/4
    assert p["gpus_per_node"] == 2 and p["mem"] == "1536MB" and p["time"] == 5
    assert p["additional_parameters"] == {"constraint": "a100", "requeue": True}
    script = render(p, tmp_path / "slurm")
    assert "#SBATCH --mem=1536MB" in script and "#SBATCH --signal=USR2@75" in script
    assert "module load cuda/12\necho hi" in script
    assert script.splitlines()[-1].startswith("srun ") and "--mpi=pmi2" in script.splitlines()[-1]


def test_gpu_binding_per_local_rank() -> None:
    env = {"SLURM_LOCALID": "1", "CUDA_VISIBLE_DEVICES": "4,5"}
    assert bind_gpu(2, env) == "5" and env["CUDA_VISIBLE_DEVICES"] == "5"
    env = {"SLURM_LOCALID": "3"}
    assert bind_gpu(2, env) == "1"
    env = {"SLURM_LOCALID": "1", "CUDA_VISIBLE_DEVICES": "4,5", "QSHPC_GPU_BIND": "none"}
    assert bind_gpu(2, env) is None and env["CUDA_VISIBLE_DEVICES"] == "4,5"
    assert bind_gpu(0, {"SLURM_LOCALID": "0"}) is None


def test_a_cached_program_s_ranks_are_told_the_cache_is_on(tmp_path: Path) -> None:
    """``QSHPC_CACHE_JOB`` in the Slurm tasks' environment when the program's cache is on:
    the workers may then put off their preload (qshpc.runtime.start.preload_deferred)."""
    from qshpc import settings
    from qshpc.jobs.spec import Program
    from qshpc.submit.submission import _task_call

    (tmp_path / "p.py").write_text("print(1)\n")
    name = settings.CACHE_JOB.name
    for cache, cache_dir, on in ((True, None, True), (False, "c", True), (False, None, False)):
        staged = Program(title="t", entrypoint="p.py", working_dir=str(tmp_path),
                         env_vars={"A": "1"}, cache=cache, cache_dir=cache_dir)  # fmt: skip
        _, kwargs = _task_call(staged, tmp_path / "job", SlurmResources())
        env = kwargs["env"]
        assert (env.get(name) == "1") is on and env["A"] == "1"
        assert name not in staged.env_vars  # the program's own variables are left alone
