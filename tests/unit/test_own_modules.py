"""The modules a program imports from its own folder (review42 F4: checked on resume)."""

from __future__ import annotations

from pathlib import Path

from qshpc.store.ownmodules import own_modules


def test_own_modules_follow_imports_of_the_program_and_of_each_module(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text(
        "import helpers, os\nfrom pkg.sub import m\ndef f():\n    from pkg import other\n"
    )
    (tmp_path / "helpers.py").write_text("import deep\n")
    for name in ["deep.py", "unrelated.py", "pkg/__init__.py", "pkg/other.py", "pkg/sub/m.py",
                 "pkg/sub/__init__.py", "pkg/sub/rel.py", "pkg/alone.py"]:  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "pkg/sub/m.py").write_text("from . import rel\nfrom .. import other\n")
    found = {p.relative_to(tmp_path).as_posix() for p in own_modules(tmp_path / "prog.py")}
    assert found == {"helpers.py", "deep.py", "pkg", "pkg/__init__.py", "pkg/sub",
                     "pkg/sub/__init__.py", "pkg/sub/m.py", "pkg/sub/rel.py", "pkg/other.py"}  # fmt: skip


def test_a_program_that_cannot_be_parsed_imports_nothing_here(tmp_path: Path) -> None:
    (tmp_path / "prog.py").write_text("import (\n")
    assert own_modules(tmp_path / "prog.py") == []
    assert own_modules(tmp_path / "missing.py") == []
