"""Session 23's leftovers (mend23): review25's F7 and F8, hunt22e's old own-sbatch folders.

Each test failed on db7f14c (what it did there is said in the test); see
docs/bad-input.md, "Session 23, mend23".
"""

from __future__ import annotations

import py_compile
from pathlib import Path

from tests.conftest import run_cli


def test_a_pyc_program_is_refused_in_words_before_the_job_exists(
    tmp_path: Path, qshpc_home: Path
) -> None:
    # On db7f14c: "program hi.pyc has a syntax error at line None: source code string
    # cannot contain null bytes" (review25 F8). Also by its header under another name.
    (tmp_path / "hi.py").write_text("print('hi')\n")
    pyc = py_compile.compile(str(tmp_path / "hi.py"), cfile=str(tmp_path / "hi.pyc"))
    renamed = tmp_path / "hi.bin"
    renamed.write_bytes(Path(pyc).read_bytes())
    for program in (Path(pyc), renamed):
        out = run_cli("run", str(program), "--workers", "0")
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip() == (
            f"qshpc: error: program {program} is compiled Python (a .pyc file): a job runs its "
            "program from the source; give the .py file it was compiled from"
        )
    assert not (qshpc_home / "jobs").exists() or not list((qshpc_home / "jobs").iterdir())
