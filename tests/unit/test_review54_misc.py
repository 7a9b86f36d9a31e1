"""review54 LOWs (session 28, lead): the way on named for a folder at ``report.html``
(``rm -r``, not ``rm``), and a UTF-16 JSON arguments file named as such (it was "a
binary file, or a damaged one")."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.faults.test_bad_input import no_internals


def test_a_utf16_arguments_file_is_named_as_such(tmp_path: Path, qshpc_home: Path) -> None:
    prog = tmp_path / "p.py"
    prog.write_text("from qshpc import get_arguments, save_result\nsave_result(get_arguments())\n")
    args = tmp_path / "a.json"
    args.write_bytes(json.dumps({"n": 1}).encode("utf-16"))
    out = run_cli("run", str(prog), "--workers", "0", "--arguments", str(args))
    assert out.returncode == 2, out.stderr
    assert f"cannot load arguments from {args}: it is UTF-16 text" in out.stderr
    assert "iconv -f UTF-16 -t UTF-8" in out.stderr
    no_internals(out.stderr)


def test_a_folder_at_report_html_names_rm_r(tmp_path: Path, qshpc_home: Path) -> None:
    prog = tmp_path / "p.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    job = tmp_path / "job"
    assert run_cli("run", str(prog), "--workers", "0", "--job-dir", str(job)).returncode == 0
    (job / "report.html").mkdir()
    out = run_cli("report", str(job))
    assert out.returncode == 2, out.stderr
    assert f"(rm -r {job / 'report.html'})" in out.stderr, out.stderr
    no_internals(out.stderr)
