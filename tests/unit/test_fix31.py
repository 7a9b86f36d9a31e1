"""fix31's small parts (docs/bad-input.md, "Session 24, fix31")."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from qshpc.client.serverless import caller_folder, caller_path_env
from qshpc.submit.task import add_python_path


def test_add_python_path_puts_new_folders_after_the_first_entry() -> None:
    path = ["/first", "/b", "/lib"]
    assert add_python_path(os.pathsep.join(["/a", "", "/b", "/c", "/a"]), path) == ["/a", "/c"]
    assert path == ["/first", "/a", "/c", "/b", "/lib"]
    assert add_python_path("", path) == [] and len(path) == 5


def test_the_caller_folder_goes_last_on_the_job_pythonpath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path[1:]])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/x", "", "/y"]))
    assert caller_folder() == str(tmp_path)
    assert caller_path_env() == {"PYTHONPATH": os.pathsep.join(["/x", "/y", str(tmp_path)])}
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # there already: nothing to add
    assert caller_path_env() == {}
    monkeypatch.delenv("PYTHONPATH")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", ["", *sys.path[1:]])  # python -c, the prompt: here
    assert caller_path_env() == {"PYTHONPATH": str(tmp_path.resolve())}
    monkeypatch.setattr(sys, "path", [str(tmp_path / "app.zip"), *sys.path[1:]])
    assert caller_folder() is None and caller_path_env() == {}
