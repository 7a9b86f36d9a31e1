"""review28 F8: `qshpc submit PROG -- ARGS` gives the program its sys.argv, as `qshpc run` does
(an argparse program could not be submitted with its options: 'unexpected extra argument')."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.slurm.test_submit import wait

PROGRAM = """\
import argparse, sys
from qshpc import get_arguments, save_result

p = argparse.ArgumentParser()
p.add_argument("--scale", type=float, default=1.0)
p.add_argument("name")
a = p.parse_args()
save_result({"scale": a.scale, "name": a.name, "argv": sys.argv[1:],
             "x": get_arguments().get("x")})
"""


def _submit(*args: str) -> list[dict[str, object]]:
    out = run_cli("submit", *args, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [json.loads(ln) for ln in out.stdout.splitlines() if ln.startswith(("{", "["))]
    flat: list[dict[str, object]] = []
    for item in lines:
        flat += item if isinstance(item, list) else [item]
    return flat


def test_submit_passes_what_follows_dashes_to_the_program(
    slurm_env: dict[str, str], tmp_path: Path
) -> None:
    prog = tmp_path / "argp.py"
    prog.write_text(PROGRAM)
    (tmp_path / "a1.json").write_text(json.dumps({"x": 1}))
    (tmp_path / "a2.json").write_text(json.dumps({"x": 2}))
    argv = ["--", "--scale", "2.5", "run one"]
    one = _submit(str(prog), "--ntasks-per-node", "1", "--json", *argv)
    array = _submit(
        str(prog), "--ntasks-per-node", "1", "--json",
        "--array", str(tmp_path / "a1.json"), "--array", str(tmp_path / "a2.json"), *argv,
    )  # fmt: skip
    jobs = [str(j["job_id"]) for j in one + array]
    assert len(jobs) == 3
    for i, job in enumerate(jobs):
        assert wait(job) == "SUCCEEDED", run_cli("status", job).stdout
        res = json.loads(run_cli("result", job, "--json", timeout=60).stdout)
        assert res == {
            "scale": 2.5, "name": "run one", "argv": ["--scale", "2.5", "run one"],
            "x": [None, 1, 2][i],
        }  # fmt: skip
    out = run_cli("submit", "--resume", jobs[0], "--", "--scale", "3", timeout=60)
    assert out.returncode == 2 and "after --" in out.stderr, out.stdout + out.stderr
