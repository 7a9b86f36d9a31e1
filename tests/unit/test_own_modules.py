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


# -- session 26, fixH (review46 M2, M3) ----------------------------------------------------


def _job_made_before(tmp_path: Path) -> float:
    import time

    return time.time() - 100  # every file below changed after the job was made


def test_a_compiled_module_beside_the_program_is_checked_as_its_source(tmp_path: Path) -> None:
    import importlib.machinery

    import pytest

    from qshpc.store import trust

    prog = tmp_path / "prog.py"
    prog.write_text("import fast, helpers\n")
    (tmp_path / "helpers.py").write_text("X = 1\n")
    ext = tmp_path / f"fast{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    ext.write_bytes(b"\x7fELF")  # Python imports it before a fast.py
    tmp_path.chmod(0o755)
    found = {p.relative_to(tmp_path).as_posix() for p in own_modules(prog)}
    assert found == {"helpers.py", ext.name}
    trust.check_program(prog, "JOB", _job_made_before(tmp_path))  # the user's own: fine
    ext.chmod(0o666)
    with pytest.raises(trust.UnsafeStoreError, match=f"imports {ext}"):
        trust.check_program(prog, "JOB", _job_made_before(tmp_path))
    ext.chmod(0o644)
    lone = tmp_path / "old.pyc"  # a compiled module with no source
    lone.write_bytes(b"")
    prog.write_text("import old\n")
    assert own_modules(prog) == [lone]


def test_a_pycache_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    import sys

    import pytest

    from qshpc.store import trust

    prog = tmp_path / "prog.py"
    prog.write_text("import helpers\n")
    (tmp_path / "helpers.py").write_text("X = 1\n")
    tmp_path.chmod(0o755)
    cache = tmp_path / "__pycache__"
    cache.mkdir(mode=0o755)
    copy = cache / f"helpers.{sys.implementation.cache_tag}.pyc"
    copy.write_bytes(b"")
    found = {p.relative_to(tmp_path).as_posix() for p in own_modules(prog)}
    assert found == {"helpers.py", "__pycache__", f"__pycache__/{copy.name}"}
    trust.check_program(prog, "JOB", _job_made_before(tmp_path))
    cache.chmod(0o1777)  # sticky, yet another user can add the compiled copy Python runs
    with pytest.raises(trust.UnsafeStoreError, match="__pycache__"):
        trust.check_program(prog, "JOB", _job_made_before(tmp_path))
    cache.chmod(0o755)
    copy.chmod(0o666)
    with pytest.raises(trust.UnsafeStoreError, match=copy.name):
        trust.check_program(prog, "JOB", _job_made_before(tmp_path))


def test_the_folder_of_a_linked_modules_target_is_checked(tmp_path: Path) -> None:
    import pytest

    from qshpc.store import trust

    here, there = tmp_path / "prog", tmp_path / "shared"
    here.mkdir(mode=0o755)
    there.mkdir(mode=0o755)
    (there / "h.py").write_text("X = 1\n")
    (here / "helpers.py").symlink_to(there / "h.py")
    prog = here / "prog.py"
    prog.write_text("import helpers\n")
    trust.check_program(prog, "JOB", _job_made_before(tmp_path))
    there.chmod(0o777)  # anyone can replace h.py, which the import runs
    with pytest.raises(trust.UnsafeStoreError, match=f"the folder holding it, {there}"):
        trust.check_program(prog, "JOB", _job_made_before(tmp_path))
