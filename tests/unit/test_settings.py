"""Settings: every QSHPC_* variable declared once, parsed when used, documented in docs/settings.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from qshpc import settings
from qshpc.errors import UserError
from tests.conftest import ROOT, run_cli

PAGE = ROOT / "docs" / "settings.md"
NAME = re.compile(r"QSHPC_[A-Z0-9_]*[A-Z0-9]")


def _page_table() -> str:
    text = PAGE.read_text()
    start = text.index("<!-- settings-table -->\n") + len("<!-- settings-table -->\n")
    return text[start : text.index("<!-- /settings-table -->")]


def test_the_docs_table_is_the_code_table() -> None:
    assert _page_table() == settings.markdown_table(), (
        "docs/settings.md is out of date: paste qshpc.settings.markdown_table() between its "
        "settings-table markers"
    )


def test_every_variable_the_code_names_is_declared_and_documented() -> None:
    named: dict[str, list[str]] = {}
    for path in sorted((ROOT / "qshpc").rglob("*.py")):
        for name in NAME.findall(path.read_text()):
            named.setdefault(name, []).append(str(path.relative_to(ROOT)))
    family = {n for n in named if n.startswith(settings.SLURM_PREFIX)}
    undeclared = {n: w for n, w in named.items() if n not in settings.ALL and n not in family}
    undeclared.pop(settings.SLURM_PREFIX.rstrip("_"), None)
    assert not undeclared, f"QSHPC_* variables read outside qshpc.settings: {undeclared}"
    page = PAGE.read_text()
    assert all(f"`{n}`" in page for n in settings.ALL)
    assert all(f"`{n}`" in page or n in page for n in settings.DEV_CLUSTER)


def test_only_the_settings_module_reads_qshpc_variables() -> None:
    """A QSHPC_* name may appear elsewhere (docs, messages), but os.environ reads are here."""
    pattern = re.compile(r"environ(?:\.get)?\s*[\(\[]\s*[\"']QSHPC_")
    readers = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "qshpc").rglob("*.py")
        if pattern.search(p.read_text()) and p.name != "settings.py"
    ]
    assert not readers


def test_parsing_is_lazy_and_errors_name_the_variable_and_the_fix() -> None:
    env = {"QSHPC_CHECKPOINT_S": "abc"}
    with pytest.raises(UserError) as err:
        settings.CHECKPOINT_S.get(env)
    text = str(err.value)
    assert "QSHPC_CHECKPOINT_S='abc'" in text and "seconds >= 0" in text and "(30)" in text
    assert settings.CHECKPOINT_S.get({}) == 30.0
    assert settings.CHECKPOINT_S.get({"QSHPC_CHECKPOINT_S": " "}) == 30.0  # empty = unset
    assert settings.PRELOAD.get({"QSHPC_PRELOAD": ""}) == ()  # here empty means "none"
    assert settings.GC.get({"QSHPC_GC": "default"}) is None
    assert settings.ROOT_WORKS.get({"QSHPC_ROOT_WORKS": "AUTO"}) == "auto"
    assert settings.AER_DEVICE.get({"QSHPC_AER_DEVICE": "gpu"}) == "GPU"
    for setting, bad in [
        (settings.HEARTBEAT_S, "0"),
        (settings.WORKER_TIMEOUT_S, "nan"),
        (settings.COOP_WIDTH, "0"),
        (settings.GC, "-3"),
        (settings.SHARE_GROUP, "maybe"),
        (settings.ROOT_WORKS, "2"),
        (settings.IDLE_SLEEP_S, "-1"),
    ]:
        with pytest.raises(settings.SettingError, match=setting.name):
            setting.get({setting.name: bad})


def test_check_reports_every_bad_variable_at_once() -> None:
    with pytest.raises(settings.SettingError) as err:
        settings.check({"QSHPC_DRAIN_S": "x", "QSHPC_COOP_WIDTH": "none", "QSHPC_HOME": "/tmp"})
    assert "QSHPC_DRAIN_S" in str(err.value) and "QSHPC_COOP_WIDTH" in str(err.value)
    settings.check({"QSHPC_ARGUMENTS": ""})


def test_a_bad_value_does_not_break_import(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from qshpc import get, distribute_task, save_result; import qshpc.aer",
        ],
        env={**__import__("os").environ, "QSHPC_CHECKPOINT_S": "abc", "QSHPC_COOP_WIDTH": "x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("ranks", [None, 2])
def test_cli_reports_a_bad_value_with_exit_code_2(tmp_path: Path, ranks: int | None) -> None:
    prog = tmp_path / "ok.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    args = ["run", str(prog)] + (["--workers", "0"] if ranks is None else [])
    out = run_cli(*args, ranks=ranks, timeout=120, env={"QSHPC_WORKER_TIMEOUT_S": "soon"})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "QSHPC_WORKER_TIMEOUT_S='soon'" in out.stderr and "Traceback" not in out.stderr


def test_a_bad_distribute_value_is_one_line_exit_2(tmp_path: Path) -> None:
    prog = tmp_path / "ok.py"
    prog.write_text("from qshpc import save_result\nsave_result(1)\n")
    out = run_cli("run", str(prog), "--workers", "0", env={"QSHPC_DISTRIBUTE": "sometimes"})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "QSHPC_DISTRIBUTE='sometimes' is not valid: it takes auto, never, always" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    for bad in ("0", "-3", "2.5", "yes"):
        with pytest.raises(settings.SettingError):
            settings.DISTRIBUTE.get({"QSHPC_DISTRIBUTE": bad})
    assert settings.DISTRIBUTE.get({"QSHPC_DISTRIBUTE": "ALWAYS"}) == "always"
    assert settings.DISTRIBUTE.get({"QSHPC_DISTRIBUTE": "28"}) == 28


def test_version() -> None:
    from qshpc import __version__
    from qshpc._version import __version__ as own

    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"qshpc {own}" and own == __version__
