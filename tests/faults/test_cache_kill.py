"""The cache under many concurrent writers and readers, killed at random moments.

Every hit a process gets is checked against the value its key stands for; at
the end every entry in the folder must be whole and right. Killed writers
leave only ``.tmp.*`` files, which no lookup reads and ``gc`` removes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qshpc.cache import maint
from qshpc.cache.store import TMP_GRACE_S, CacheDir

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from cache_writer_child import KEYS, expected, key, same  # noqa: E402

WRITERS = 6
SECONDS = 12.0


def _start(root: Path, seed: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "cache_writer_child.py"), str(root), str(seed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        text=True,
    )


@pytest.mark.timeout(300)
def test_concurrent_writers_killed_at_random_never_leave_a_bad_entry(tmp_path: Path) -> None:
    root = tmp_path / "cache ü"
    CacheDir(root)
    rng = random.Random(18)
    seed = 0
    procs = []
    for _ in range(WRITERS):
        procs.append(_start(root, seed))
        seed += 1
    kills = 0
    deadline = time.monotonic() + SECONDS
    time.sleep(1.5)  # let them import
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.02, 0.3))
        for p in procs:
            if p.poll() is not None:  # ended on its own: a wrong hit
                _, err = p.communicate()
                pytest.fail(f"a writer found a wrong entry: {err}")
        victim = rng.randrange(len(procs))
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait()
        kills += 1
        procs[victim] = _start(root, seed)
        seed += 1
    for p in procs:
        p.send_signal(signal.SIGKILL)
        p.wait()

    cache = CacheDir(root)
    entries = list(cache.scan())
    assert entries, "the writers stored nothing"
    index = {key(i): i for i in range(KEYS)}
    for st in entries:
        cache.verify(st.path)  # whole: lengths and checksum
        i = index[st.key]
        hit = cache.get(st.key)
        assert hit is not None and same(hit.value, expected(i))
    assert cache.damaged == 0
    left = list(cache.temporaries())
    # gc keeps the partial files of writers that may still run; an hour on, they go.
    out = maint.gc(cache, now=time.time() + TMP_GRACE_S + 60)
    assert out.temporaries == len(left) and not list(cache.temporaries())
    assert out.kept == len(entries)
    print(f"{kills} kills, {len(entries)}/{KEYS} entries, {len(left)} partial files left")
