"""Build qiskit-aer with MPI from its source distribution, beside the PyPI one.

``python -m qshpc.aer.distributed.build [--prefix DIR] [--mpicxx PATH] [--force]``
(``make install-aer-mpi`` runs it): downloads the sdist of the qiskit-aer
version installed here, applies qshpc's memory patch (:data:`PATCHES`), builds a
wheel with ``-DAER_MPI=True`` against the MPI of ``mpicxx`` (pip's build
isolation fetches cmake, ninja, scikit-build and pybind11; no conan), and
installs it with ``pip install --target <prefix>/lib/python``. The stamp
``<prefix>/build-info.json`` is written last; a later run with the same Aer
version, MPI and patch set does nothing.

Needs a C++ compiler, the MPI compiler wrappers, and the headers of OpenBLAS,
nlohmann-json and spdlog (Debian: ``libopenblas-dev nlohmann-json3-dev
libspdlog-dev``). The built module links ``libopenblas.so.0`` and the MPI
library, so the nodes that run steps need both.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from qshpc.aer.distributed.install import INFO_FILE, SITE, at_prefix, default_prefix, read_info
from qshpc.errors import UserError

#: Headers the build needs, and the Debian package that has each.
HEADERS = {
    "nlohmann/json.hpp": "nlohmann-json3-dev",
    "spdlog/spdlog.h": "libspdlog-dev",
    "cblas.h": "libopenblas-dev",
}
_INCLUDE_DIRS = ("/usr/include", "/usr/local/include", "/usr/include/x86_64-linux-gnu",
                 "/usr/include/aarch64-linux-gnu", "/usr/include/openblas")  # fmt: skip

_RELEASE_OLD = """void QubitVector<data_t>::release_recv_buffer(void) const {
  recv_buffer_.clear();
}"""
_RELEASE_NEW = """void QubitVector<data_t>::release_recv_buffer(void) const {
  cvector_t<data_t>().swap(recv_buffer_); // qshpc: free it, clear() kept the capacity
}"""
_SWAP_OLD = """            .apply_chunk_swap(qubits, iRemoteChunk);
      }"""
_SWAP_NEW = """            .apply_chunk_swap(qubits, iRemoteChunk);
        Base::states_[iLocalChunk - Base::global_state_index_]
            .qreg()
            .release_recv_buffer(); // qshpc: one chunk buffer at a time
      }"""
_MULTI_OLD = """#endif
    }
  }

  // restore qubits order"""
_MULTI_NEW = """#endif
    }
#ifdef AER_MPI
    for (uint_t ic = 0; ic < nchunk; ic++) { // qshpc: free this group's buffers
      if (chunk_procs[ic] == Base::distributed_rank_)
        Base::states_[baseChunk + chunk_offset[ic] - Base::global_state_index_]
            .qreg()
            .release_recv_buffer();
    }
#endif
  }

  // restore qubits order"""

#: qshpc's memory patch: each local chunk that swaps with another rank keeps a
#: receive buffer as large as itself for the rest of the run (``clear()`` keeps
#: a vector's capacity, and the CPU path never releases it), so a rank ends up
#: holding twice its share. The patch frees each buffer after its swap.
#: Entries: (file, old text, new text, expected count).
PATCHES: list[tuple[str, str, str, int]] = [
    ("src/simulators/statevector/qubitvector.hpp", _RELEASE_OLD, _RELEASE_NEW, 1),
    ("src/simulators/parallel_state_executor.hpp", _SWAP_OLD, _SWAP_NEW, 2),
    ("src/simulators/parallel_state_executor.hpp", _MULTI_OLD, _MULTI_NEW, 1),
]


def patch_digest() -> str:
    """A short digest of :data:`PATCHES` (a changed patch means a rebuild)."""
    h = hashlib.sha256()
    for path, old, new, count in PATCHES:
        h.update(f"{path}\0{old}\0{new}\0{count}\0".encode())
    return h.hexdigest()[:12]


def apply_patches(src: Path) -> list[str]:
    """Apply :data:`PATCHES` to an unpacked sdist; returns the files patched.

    Raises:
        UserError: When a patch's text is not found as expected (another Aer
            version); ``--no-patch`` builds it unpatched.
    """
    texts: dict[str, str] = {}
    for rel, old, new, count in PATCHES:
        text = texts.get(rel) or (src / rel).read_text()
        found = text.count(old)
        if found != count:
            raise UserError(
                f"qshpc's memory patch does not fit {src.name}: expected {count} match(es) of "
                f"its text in {rel}, found {found}; build with --no-patch (ranks then hold "
                "about twice their share of the statevector) or use the Aer version it knows"
            )
        texts[rel] = text.replace(old, new)
    for rel, text in texts.items():
        (src / rel).write_text(text)
    return sorted(texts)


def find_tool(name: str, given: str | None = None) -> str:
    """``given``, else ``name`` next to this Python (the PyPI MPI), else on PATH."""
    if given:
        return given
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if found is None:
        raise UserError(
            f"no {name} next to {sys.executable} or on PATH: pip install mpich, "
            f"or load your site's MPI module, or pass --{name} PATH"
        )
    return found


def mpi_lib_dir(mpicxx: str) -> str | None:
    """The MPI library's folder, from the wrapper's link line (MPICH ``-show``, Open MPI ``--showme``)."""
    for flag in ("-show", "--showme"):
        try:
            out = subprocess.run([mpicxx, flag], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0:
            for word in shlex.split(out.stdout):
                if word.startswith("-L") and len(word) > 2:
                    return word[2:]
    return None


def missing_headers() -> list[str]:
    """Debian packages whose headers are missing (empty when all are found)."""
    extra = [p for p in os.environ.get("CPATH", "").split(os.pathsep) if p]
    dirs = [*extra, *_INCLUDE_DIRS]
    return sorted(
        {pkg for hdr, pkg in HEADERS.items() if not any((Path(d) / hdr).exists() for d in dirs)}
    )


def wanted_info(aer_version: str, mpicxx: str, patched: bool) -> dict[str, Any]:
    """What the stamp must say for a build to be reused."""
    return {
        "aer_version": aer_version,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "mpicxx": mpicxx,
        "mpi_lib_dir": mpi_lib_dir(mpicxx),
        "patches": patch_digest() if patched else "",
    }


def _run(
    cmd: Sequence[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> None:
    with log.open("a") as out:
        out.write(f"\n$ {shlex.join(cmd)}\n")
        out.flush()
        rc = subprocess.run(
            list(cmd), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd
        ).returncode
    if rc != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        raise UserError(f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} failed (exit {rc}); "
                        f"last lines of {log}:\n{tail}")  # fmt: skip


def build(
    prefix: Path | None = None,
    mpicxx: str | None = None,
    mpicc: str | None = None,
    aer_version: str | None = None,
    patch: bool = True,
    force: bool = False,
    jobs: int | None = None,
) -> Path:
    """Build and install the MPI Aer under ``prefix``; returns the prefix.

    Does nothing when ``prefix`` already holds a build with the same stamp.

    Raises:
        UserError: A missing tool or header (with the package to install), or a
            failed step (with the end of its log).
    """
    prefix = (prefix or default_prefix()).resolve()
    if aer_version is None:
        try:
            aer_version = version("qiskit-aer")
        except PackageNotFoundError:
            raise UserError("qiskit-aer is not installed: pip install qiskit-aer") from None
    cxx, cc = find_tool("mpicxx", mpicxx), find_tool("mpicc", mpicc)
    want = wanted_info(aer_version, cxx, patch)
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two builds into one prefix take turns
        have = read_info(prefix)
        if not force and at_prefix(prefix) and all(have.get(k) == v for k, v in want.items()):
            print(
                f"MPI Aer {aer_version} already built in {prefix} (stamp {INFO_FILE}); --force rebuilds"
            )
            return prefix
        lacking = missing_headers()
        if lacking:
            raise UserError(
                "the Aer build needs these headers: apt-get install -y " + " ".join(lacking)
                + " (or set CPATH to where your site installs them)"
            )  # fmt: skip
        _build(prefix, aer_version, cxx, cc, patch, jobs or os.cpu_count() or 1, want)
    return prefix


def _build(prefix: Path, aer_version: str, cxx: str, cc: str, patch: bool, jobs: int,
           want: dict[str, Any]) -> None:  # fmt: skip
    log = prefix / "build.log"
    log.write_text(f"qshpc: building qiskit-aer {aer_version} with MPI ({cxx})\n")
    start = time.monotonic()
    sdists = prefix / "sdist"
    sdist = sdists / f"qiskit_aer-{aer_version}.tar.gz"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    if not sdist.exists():
        print(f"downloading the qiskit-aer {aer_version} source distribution ...", flush=True)
        _run([*pip, "download", "--no-deps", "--no-binary", "qiskit-aer",
              f"qiskit-aer=={aer_version}", "-d", str(sdists)], log)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="build-", dir=prefix) as tmp:
        work = Path(tmp)
        with tarfile.open(sdist) as tar:
            tar.extractall(work, filter="data")
        src = next(p for p in work.iterdir() if p.is_dir())
        patched = apply_patches(src) if patch else []
        env = dict(os.environ)
        env.update({
            "DISABLE_CONAN": "ON",
            "CMAKE_BUILD_PARALLEL_LEVEL": str(jobs),
            "CMAKE_ARGS": f"-DAER_MPI=True -DDISABLE_CONAN=ON -DMPI_CXX_COMPILER={cxx} "
                          f"-DMPI_C_COMPILER={cc}",
        })  # fmt: skip
        print(f"building (about 3 min on 2 cores; log: {log}) ...", flush=True)
        _run([*pip, "wheel", "--no-deps", "-w", str(work / "dist"), str(src)], log, env=env)
        wheel = next((work / "dist").glob("qiskit_aer-*.whl"))
        site_new = work / "site"
        _run(
            [*pip, "install", "--no-deps", "--no-compile", "--target", str(site_new), str(wheel)],
            log,
        )
        (prefix / INFO_FILE).unlink(missing_ok=True)
        old = prefix / SITE
        if old.exists():
            shutil.rmtree(old)
        old.parent.mkdir(parents=True, exist_ok=True)
        site_new.rename(old)
    info = dict(want, patched_files=patched, built_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
                build_s=round(time.monotonic() - start, 1))  # fmt: skip
    tmp_info = prefix / (INFO_FILE + ".tmp")
    tmp_info.write_text(json.dumps(info, indent=1) + "\n")
    tmp_info.rename(prefix / INFO_FILE)
    print(f"MPI Aer {aer_version} installed in {prefix / SITE} ({info['build_s']:.0f} s)")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(
        prog="python -m qshpc.aer.distributed.build", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--prefix", type=Path, help=f"install prefix (default {default_prefix()})")
    p.add_argument("--mpicxx", help="MPI C++ compiler wrapper (default: next to Python, else PATH)")
    p.add_argument("--mpicc", help="MPI C compiler wrapper")
    p.add_argument("--aer-version", help="qiskit-aer version (default: the installed one)")
    p.add_argument("--no-patch", action="store_true", help="build without qshpc's memory patch")
    p.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    p.add_argument("--jobs", type=int, help="parallel compile jobs (default: all cores)")
    a = p.parse_args(argv)
    try:
        build(a.prefix, a.mpicxx, a.mpicc, a.aer_version, not a.no_patch, a.force, a.jobs)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
