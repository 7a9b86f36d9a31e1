"""A job of 100k tasks: the report bins its timeline, stays small and opens cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qshpc.report.timeline import MARK_BUDGET
from tests.browser import Browser
from tests.conftest import PROGRAMS, run_cli

pytestmark = [pytest.mark.mpi, pytest.mark.slow]

N = 100_000


def test_report_of_100k_tasks(tmp_path: Path, browser: Browser) -> None:
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"n": N}))
    job_dir = tmp_path / "big"
    out = run_cli("run", str(PROGRAMS / "many_tiny.py"), "--arguments", str(args),
                  "--workers", "2", "--job-dir", str(job_dir), timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    out = run_cli("report", str(job_dir), "--out", str(tmp_path / "big.html"), timeout=300)
    assert out.returncode == 0, out.stderr
    html = tmp_path / "big.html"
    assert html.stat().st_size < 4_000_000
    page = browser.open(html.as_uri())
    assert page.errors == []
    svg = page.eval("Object.assign({}, document.querySelector('svg.qshpc-timeline').dataset)")
    # N tasks, plus one retry per 1000 ('tiny' fails first where i % 1000 == 7)
    assert svg["binned"] == "1" and int(svg["attempts"]) == N + N // 1000
    assert int(svg["lanes"]) == 3 and int(svg["drawn"]) == 0
    bins = page.eval("document.querySelectorAll('rect.bin').length")
    assert 0 < bins <= MARK_BUDGET * 1.2
    # every attempt is counted in exactly one bin
    total = page.eval(
        "[...document.querySelectorAll('rect.bin')].reduce((s, r) => s + +r.dataset.n, 0)"
    )
    assert total == int(svg["attempts"])
    assert int(svg["failed"]) == N // 1000 and int(svg["retries"]) == N // 1000
    assert page.eval("document.querySelectorAll('rect.failmark').length") > 0
    fails = page.eval("document.getElementById('failures').innerText")
    assert f"{N // 1000} failed attempt(s) in 1 group" in fails
