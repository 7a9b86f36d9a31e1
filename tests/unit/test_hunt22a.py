"""hunt22a: cache keys of ``functools.partial`` tasks (review23 F1, F6).

Each test fails on e5f893c (session 21's main) and passes here.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

from qshpc import distribute_task
from qshpc.cache import jobcache, key
from qshpc.cache.jobcache import CacheConfig, JobCache


def _energy(table: Any, i: int) -> float:
    return float(table[i])


CONFIG = {"k": 1}


def _reads_config(table: Any, i: int) -> float:
    return float(table[i]) + CONFIG["k"]


def test_a_partial_s_arguments_are_walked_at_each_call_with_no_cut_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On e5f893c a partial's arguments were live dependencies under the LIVE_WALK_S
    # cut-off: `partial(f, table)` with a 48 MB table, called in plain python, was
    # cached at its first call only (0.06 s a walk). A cut-off of 0 makes any walk
    # "too long": the partial's arguments must not count.
    monkeypatch.setattr(jobcache, "LIVE_WALK_S", 0.0)
    table = np.arange(1000, dtype=np.float64)
    task = distribute_task()(functools.partial(_energy, table))
    cache = JobCache(CacheConfig(), None)
    keys = [cache.key(task, (1,), None, None, live=True) for _ in range(3)]
    assert keys[0] is not None and keys == [keys[0]] * 3
    table[1] = 5.0  # changed in place: a new key (hunt21c's forged hit stays mended)
    changed = cache.key(task, (1,), None, None, live=True)
    assert changed is not None and changed != keys[0]
    assert changed == key(task, (1,))  # the key lookup takes of it


def test_a_partial_whose_function_reads_a_changeable_global_keeps_the_cut_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The cut-off still holds for the function's own reads. On e5f893c the warning
    # named the task by the partial's repr (a 48 MB array printed, review23 F1).
    monkeypatch.setattr(jobcache, "LIVE_WALK_S", 0.0)
    task = distribute_task()(functools.partial(_reads_config, np.zeros(3)))
    cache = JobCache(CacheConfig(), None)
    assert cache.key(task, (1,), None, None, live=True) is not None
    assert cache.key(task, (1,), None, None, live=True) is not None  # (timed: too long)
    assert cache.key(task, (1,), None, None, live=True) is None
    # Named by its function (a partial task's default name is partial(f) since session 22;
    # it was the partial's repr, its array printed).
    err = capsys.readouterr().err
    assert "calls of partial(_reads_config) made in this process are not cached" in err


def test_the_key_of_a_raw_partial_holds_its_arguments() -> None:
    # On e5f893c qshpc.cache.key took `.func` of any object: key(partial(f, 1), (3,))
    # was key(partial(f, 2), (3,)) and key(f, (3,)), and not the key a job takes of a
    # task made from the partial (lookup missed what the job stored).
    one, two = functools.partial(_energy, [1.0, 2.0]), functools.partial(_energy, [3.0, 4.0])
    assert key(one, (1,)) != key(two, (1,))
    task = distribute_task()(one)
    job = JobCache(CacheConfig(), None)
    assert key(one, (1,)) == key(task, (1,)) == job.key(task, (1,), None, None)
    assert key(one, (1,)) == JobCache(CacheConfig(), None).key(task, (1,), None, None, live=True)
    assert key(one, (1,), seed=7) == job.key(task, (1,), None, 7)


def test_lookup_of_a_raw_partial_finds_what_a_job_stored(tmp_path: Any) -> None:
    from qshpc.cache import lookup

    part = functools.partial(_energy, [1.0, 2.0])
    task = distribute_task()(part)
    job = JobCache(CacheConfig(enabled=True, dir=str(tmp_path / "c")), "j1")
    k = job.key(task, (1,), None, None)
    assert k is not None
    job.store(k, "_energy", "t0", value=2.0)
    job.flush()
    hit = lookup(part, (1,), cache_dir=tmp_path / "c")
    assert hit is not None and hit.value == 2.0
    assert lookup(functools.partial(_energy, [1.0, 9.0]), (1,), cache_dir=tmp_path / "c") is None


def test_a_submit_whose_job_folder_cannot_be_made_is_one_user_error(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # review23 F3: `qshpc submit` and a Slurm map raised the raw OSError of a store
    # folder they could not make (a team's arrays/ another member made 2750).
    import os

    from qshpc.errors import UserError
    from qshpc.store import perms
    from qshpc.submit import submission

    folder = tmp_path / "arrays"
    folder.mkdir()

    def refused(path: Any) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(perms, "make_dir", refused)
    with pytest.raises(UserError) as err:
        submission._make_dir(folder / "A-0")
    assert str(err.value) == (
        f"cannot make the job's folder A-0: Permission denied ({folder}/A-0); make {folder} "
        f"writable by you (`chmod u+w {folder}`)"
    )
    assert folder.stat().st_uid == os.geteuid()
