"""``qshpc report`` and ``qshpc plot --timeline`` on real jobs, opened in headless Chromium."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.browser import Browser
from tests.conftest import PROGRAMS, run_cli

pytestmark = pytest.mark.mpi


def run_job(name: str, tmp_path: Path, workers: int = 2, args: dict | None = None) -> Path:
    job_dir = tmp_path / name
    cmd = [
        "run",
        str(PROGRAMS / f"{name}.py"),
        "--workers",
        str(workers),
        "--job-dir",
        str(job_dir),
    ]
    if args is not None:
        (tmp_path / f"{name}.json").write_text(json.dumps(args))
        cmd += ["--arguments", str(tmp_path / f"{name}.json")]
    out = run_cli(*cmd, timeout=180)
    assert out.returncode == 0, out.stderr
    return job_dir


def count(page: object, selector: str) -> int:
    return int(page.eval(f"document.querySelectorAll({json.dumps(selector)}).length"))  # type: ignore[attr-defined]


def test_report_of_a_job_with_failures_and_retries(tmp_path: Path, browser: Browser) -> None:
    job_dir = run_job("report_mix", tmp_path)
    out = run_cli("report", str(job_dir), "--out", str(tmp_path / "r.html"))
    assert out.returncode == 0, out.stderr
    html = Path(out.stdout.strip())
    assert html == tmp_path / "r.html"
    text = html.read_text()
    # self-contained: nothing to fetch, no script
    assert "<script" not in text and 'src="http' not in text and 'href="http' not in text
    page = browser.open(html.as_uri())
    assert page.errors == []
    assert page.eval("document.querySelector('main').dataset.state") == "SUCCEEDED"
    # one lane per rank (3 ranks on one host), every attempt drawn
    assert count(page, "svg.qshpc-timeline g.lane") == 3
    assert count(page, "svg.qshpc-timeline g.host") == 1
    assert count(page, "rect.task") == 19
    assert count(page, "rect.task.failed") == 4
    assert count(page, "rect.task.retry") == 3
    assert count(page, "rect.program") == 1
    # rank 0's waits in get: 12 squares, 3 flaky ones, 1 broken (neighbours may merge)
    assert count(page, "rect.wait") >= 1
    waited = page.eval(
        "[...document.querySelectorAll('rect.wait')].reduce((s, r) => s + +r.dataset.n, 0)"
    )
    assert waited == 16
    functions = page.eval(
        "[...document.querySelectorAll('rect.task')].map(r => r.querySelector('title').textContent.split(' · ')[1])"
    )
    assert set(functions) == {"square", "flaky", "broken"}
    # the failures, with their tracebacks
    assert count(page, "details.failure") == 2
    fails = page.eval("document.getElementById('failures').innerText")
    assert "ValueError: bad input 7" in fails and "3 succeeded on a retry" in fails
    assert re.search(r"flaky \d fails on its first try", fails)  # the first to fail, any of 3
    # the other sections
    assert count(page, "img.result-plot") == 1 and count(page, "img.throughput") == 1
    assert count(page, "#slowest tbody tr") == 15
    assert "SUCCEEDED" in page.eval("document.querySelector('.qshpc-job').innerText")
    assert count(page, "#slurm") == 0  # not a Slurm job
    assert "qiskit" in page.eval("document.getElementById('provenance').innerText")


def test_report_of_a_failed_job_shows_its_error(tmp_path: Path, browser: Browser) -> None:
    job_dir = tmp_path / "fails"
    run_cli("run", str(PROGRAMS / "task_fails.py"), "--workers", "2", "--job-dir", str(job_dir))
    out = run_cli("report", str(job_dir))
    assert out.returncode == 0, out.stderr
    page = browser.open(Path(out.stdout.strip()).as_uri())
    assert page.errors == []
    assert page.eval("document.querySelector('main').dataset.state") == "FAILED"
    assert "bad input 3" in page.eval("document.querySelector('.qshpc-job').innerText")
    assert "bad input 3" in page.eval("document.querySelector('.job-error').innerText")
    assert count(page, "rect.task.failed") == 1


def test_report_of_a_running_job_is_a_snapshot(tmp_path: Path, browser: Browser) -> None:
    # 40 waves: two of 0.2 s tasks, then the rest wait for the gate, opened once the report
    # was read (was 40 waves of 0.2 s tasks, 16 s, so it would still run when read)
    gate = tmp_path / "gate"
    job = open_job_started("slow_steps", tmp_path, {"waves": 40, "gate": str(gate), "hold": 2})
    deadline = time.monotonic() + 60
    # two waves stored: the first wave's wait span rides with the second wave's commit
    while job.info()["task_counts"]["SUCCEEDED"] < 8:
        assert time.monotonic() < deadline, job.logs()
        time.sleep(0.2)
    from qshpc.report import write_report

    path = write_report(job.job_dir, tmp_path / "snap.html", job.info())
    page = browser.open(path.as_uri())
    assert page.errors == []
    assert page.eval("document.querySelector('main').dataset.state") == "RUNNING"
    assert count(page, "p.snapshot") == 1
    assert page.eval("document.querySelector('svg.qshpc-timeline').dataset.snapshot") == "1"
    drawn = count(page, "rect.task")
    assert 8 <= drawn < 160
    assert count(page, "rect.program") == 1 and count(page, "rect.wait") >= 1
    assert job.status() == "RUNNING"
    gate.touch()
    assert job.wait(timeout=120) == "SUCCEEDED"  # the read disturbed nothing
    assert job.result()["steps"] == 160


def open_job_started(name: str, tmp_path: Path, args: dict) -> object:
    from qshpc import LocalClient, Program

    program = Program(title=name, entrypoint=f"{name}.py", working_dir=str(PROGRAMS))
    return LocalClient(workers=2).run(program, arguments=args, job_dir=tmp_path / name)


def test_plot_timeline_png_and_svg(tmp_path: Path, browser: Browser) -> None:
    job_dir = run_job("report_mix", tmp_path)
    png = run_cli("plot", str(job_dir), "--timeline")
    assert png.returncode == 0, png.stderr
    assert Path(png.stdout.strip()) == job_dir / "timeline.png"
    assert (job_dir / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = run_cli("plot", str(job_dir), "--timeline", "--out", str(tmp_path / "t.svg"))
    assert out.returncode == 0, out.stderr
    page = browser.open((tmp_path / "t.svg").as_uri())
    assert page.errors == []
    assert count(page, "rect.task") == 19 and count(page, "g.lane") == 3


def test_report_bad_input(tmp_path: Path) -> None:
    out = run_cli("report", "no-such-job")
    assert out.returncode == 2 and "Traceback" not in out.stderr and "no-such-job" in out.stderr
    job_dir = run_job("report_mix", tmp_path, workers=1)
    out = run_cli("report", str(job_dir), "--out", str(tmp_path / "missing" / "r.html"))
    assert out.returncode == 2 and "does not exist" in out.stderr
    out = run_cli("plot", str(job_dir), "--timeline", "--out", str(tmp_path / "t.nope"))
    assert out.returncode == 2 and "as --out suffix" in out.stderr
