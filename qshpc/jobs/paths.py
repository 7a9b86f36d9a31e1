"""Where jobs live: ``$QSHPC_HOME/jobs/<job_id>/`` (default ``~/.qshpc``), and job ids."""

from __future__ import annotations

import math
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from qshpc import settings
from qshpc.errors import JobNotFoundError, StoreError

JOB_FILE = "job.h5"
#: The Slurm job id of a job submitted to Slurm (written by qshpc.submit after sbatch).
SLURM_ID_FILE = "slurm_job_id"
#: Every Slurm job id the job had, one a line (review24 F3: after ``qshpc submit --resume``
#: the first id no longer found the job; a run of one's own sbatch script recorded none).
SLURM_IDS_FILE = "slurm_job_ids"
#: The job's id, beside a store whose folder is named otherwise (``--job-dir DIR``): what
#: :func:`created_key` and the id lookup read instead of opening the store (~4 ms a job).
JOB_ID_FILE = "job_id"
#: The Slurm cluster that job id belongs to (``scontrol show config``'s ClusterName).
SLURM_CLUSTER_FILE = "slurm_cluster"
#: ``qshpc submit --resume``'s new Slurm job, until its run starts (:func:`read_resubmitted`).
RESUBMITTED_FILE = "resubmitted.json"
#: Slurm's final answer about a job, kept so that a job Slurm forgot keeps its state.
SLURM_STATE_FILE = "slurm_state.json"


#: The homes whose path no other user can put a link on later (``store.trust.check_links``
#: said so), by ``$QSHPC_HOME``'s value, the absolute path (a relative one moves with the
#: working folder) and the user: checked once a process.
_LINKS_CHECKED: set[tuple[str | None, str, int]] = set()


def qshpc_home() -> Path:
    """The qshpc home folder (``$QSHPC_HOME``, default ``~/.qshpc``), checked to be the user's own.

    Raises:
        UnsafeStoreError: It exists and another user owns it or can write it
            (see :func:`qshpc.store.perms.check_private_dir`).
    """
    from qshpc.store.perms import check_private_dir
    from qshpc.store.trust import check_links

    env = settings.HOME.get()
    home = env or Path.home() / ".qshpc"
    what = "$QSHPC_HOME" if env else "the qshpc home folder"
    key = (None if env is None else str(env), os.path.abspath(home), os.geteuid())
    # (review54: through another user's link in /tmp, as --job-dir). An lstat a part of the
    # path, at each of ~19 callers' calls: memoed only where check_links found every part
    # there and none in a sticky folder every user can write another user's; as the sticky
    # bit keeps them from renaming or removing the user's parts, no link of theirs can come
    # later (a missing part is checked again at each call, as it could become one).
    if key not in _LINKS_CHECKED and check_links(home, what):
        _LINKS_CHECKED.add(key)
    check_private_dir(home, what)  # (a stat: each time, a mode can change)
    return home


def jobs_root() -> Path:
    """The folder holding one sub-folder per job, checked to be the user's own.

    Created (0700, whatever the umask) with the first job.

    Raises:
        UnsafeStoreError: It exists and another user owns it or can write it.
    """
    from qshpc.store.perms import check_private_dir

    root = qshpc_home() / "jobs"
    check_private_dir(root, "the jobs folder")
    return root


def ensure_jobs_root() -> Path:
    """:func:`jobs_root`, created (with ``$QSHPC_HOME``) if missing, each level 0700."""
    from qshpc.store.perms import ensure_private_dir, ensure_store_dir

    home = qshpc_home()
    ensure_private_dir(home, "$QSHPC_HOME")
    return ensure_store_dir(home / "jobs", "the jobs folder")


def data_root() -> Path:
    """The data folder of the files API (``$QSHPC_DATA``, default ``$QSHPC_HOME/data``)."""
    return settings.DATA.get() or qshpc_home() / "data"


def data_dir() -> Path:
    """The data folder, where programs write files for ``client.files()`` (created if missing).

    quantum-serverless programs wrote to ``/data``; on qshpc, write to
    ``qshpc.data_dir() / "name"``: the folder is on the job store's shared
    storage, the same for the program, the workers and the client.

    Raises:
        StoreError: It is missing and cannot be made (a read-only or full file system).
    """
    root = data_root()
    if not root.is_dir():
        from qshpc.store import perms

        try:
            root.parent.mkdir(parents=True, exist_ok=True)
            perms.make_dir(root)
        except OSError as exc:  # a read-only or full store: one line, not a traceback (hunt23b)
            raise StoreError(
                f"cannot create the data folder {root}: {exc.strerror or exc}. Check that "
                f"{root.parent} is writable and that its file system has free space "
                f"(df -h {root.parent})"
            ) from None
    return root


#: qiskit-serverless's variable (0.26 on) naming the data folder inside a job.
DATA_PATH_VAR = "DATA_PATH"


def export_data_path(create: bool) -> None:
    """Set ``DATA_PATH`` to the data folder in this rank's environment, as qiskit-serverless
    did in its jobs (``f"{os.environ['DATA_PATH']}/my_file.tar"``); one set already wins.

    Args:
        create: Make the folder when missing (rank 0; the workers only name it). A folder
            that cannot be made is named all the same: the program's own write then says why.
    """
    if os.environ.get(DATA_PATH_VAR):
        return
    root = data_root()
    if create:
        try:
            root = data_dir()
        except StoreError:
            pass
    os.environ[DATA_PATH_VAR] = str(root)


#: The last id this process made: (its second, its random part).
_last_id: tuple[str, int] = ("", 0)
_FIRST = 1 << 23  # the first id of a second draws below this: room for the later ones
_STEP = 1 << 16  # each later id of that second draws this far at most above the last
_ID_LOCK = threading.Lock()


def _forget_last_id() -> None:
    """In a forked child: start a sequence of its own, with a lock of its own.

    The child had the parent's last id, so its next id of that second continued the
    parent's sequence: ``P + 1 + draw % _STEP``, as did the parent's own next one and
    every other child's (a ``multiprocessing`` pool's children making jobs collided with
    probability 1/65536 per pair; the job created second was refused). A lock another
    thread held at the fork stays held in the child forever: a new one.
    """
    global _last_id, _ID_LOCK
    _last_id = ("", 0)
    _ID_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_last_id)


def new_job_id() -> str:
    """A sortable, unique job id such as ``20261125-143012-a1b2c3``.

    The ids one process makes sort in the order it made them, within one second
    too (``get_jobs()`` lists newest first by id): a later id of the same
    second draws its random part above the last one's. A forked child starts a
    sequence of its own (:func:`_forget_last_id`): its ids are as unlikely to meet the
    parent's as those of any other process.
    """
    global _last_id
    with _ID_LOCK:
        while True:
            # os.urandom as secrets.token_hex does, without importing secrets (hmac,
            # OpenSSL): every `qshpc run` makes an id on its way to starting the ranks.
            draw = int.from_bytes(os.urandom(3), "big")
            stamp = time.strftime("%Y%m%d-%H%M%S-")
            if stamp != _last_id[0]:
                n = draw % _FIRST
            else:
                n = _last_id[1] + 1 + draw % _STEP
                if n > 0xFFFFFF:  # this second is full: the next one
                    time.sleep(0.01)
                    continue
            _last_id = (stamp, n)
            return f"{stamp}{n:06x}"


_SLURM_ID = re.compile(r"\d+(_\d+)?")
#: What :func:`new_job_id` makes (a folder so named holds that job, unless made by hand).
JOB_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
#: An element of a map (``LocalClient.map``, ``qshpc submit --array``): its folder's name is
#: its id, ``<array id>-<index>``.
ELEMENT_ID = re.compile(r"(\d{8}-\d{6}-[0-9a-f]{6})-(\d+)")


def has_job_file(folder: Path) -> bool:
    """Does ``folder`` hold a job (a ``job.h5`` entry of any kind)?

    A ``job.h5`` that is not a regular file (a folder, a FIFO, a link to a
    device) is a damaged job, which ``qshpc status`` reports as DAMAGED and
    ``qshpc rm --force`` removes, not "no job".
    """
    return os.path.lexists(folder / JOB_FILE)


def resolve_job_dir(job: str | os.PathLike[str]) -> Path:
    """Find a job's directory from its id, a directory path, or a Slurm job id.

    Raises:
        JobNotFoundError: Nothing matches, with the places searched.
    """
    text = os.fspath(job)
    check_job_text(text)
    p = Path(text).expanduser()
    if has_job_file(p):
        return _check_folder(p)
    if p.name == JOB_FILE and p.is_file():
        return _check_folder(p.parent)
    root = jobs_root()
    cand = root / text
    if "/" not in text and has_job_file(cand):
        _check_owner(cand)
        return cand
    found = _scan(root, text) if "/" not in text and root.is_dir() else None
    if found is not None:
        return found
    _refuse_unreadable(p / JOB_FILE, text)
    if "/" not in text and JOB_ID.fullmatch(text) and root.is_dir():
        elements = sorted(
            (d.name for d in root.glob(f"{text}-*") if has_job_file(d)),
            key=lambda n: int(n.rsplit("-", 1)[1]) if n.rsplit("-", 1)[1].isdigit() else -1,
        )
        if elements:  # review26: `qshpc list` prints an array's id; status/report refused it
            raise JobNotFoundError(
                f"{text} is a job array, not one job: its {len(elements)} elements are the "
                f"jobs {elements[0]} … {elements[-1]}. `qshpc list --array {text}` shows them; "
                f"give one element's id (e.g. `qshpc status {elements[0]}`)"
            )
    if "/" not in text and text.isdigit() and root.is_dir():
        _refuse_slurm_array(root, text)
    _refuse_journal_alone(p if "/" in text else root / text, text)
    raise JobNotFoundError(
        f"no job {text!r}: not a job directory and not a job id under {root}. "
        "Run `qshpc list` to see the jobs (set QSHPC_HOME if they live elsewhere)."
    )


def _refuse_slurm_array(root: Path, text: str) -> None:
    """Refuse Slurm id ``text`` when it is a job array's (its elements' ids are ``text_N``),
    naming the elements, as the array's qshpc id is (review34 F6: ``qshpc status 325`` of
    the id ``qshpc submit --array`` printed said "no job '325'")."""
    elements: list[tuple[int, str, str]] = []
    for d in root.iterdir():
        ids = [s for s in (read_slurm_id(d), *read_slurm_ids(d)) if s]
        for s in ids:
            base, _, index = s.partition("_")
            if base == text and index.isdigit() and has_job_file(d):
                elements.append((int(index), s, d.name))
                break
    if not elements:
        return
    elements.sort()
    first, last = elements[0], elements[-1]
    raise JobNotFoundError(
        f"Slurm job {text} is a job array, not one job: its {len(elements)} elements are the "
        f"jobs {first[2]} (Slurm {first[1]}) … {last[2]} (Slurm {last[1]}); give one "
        f"element's id (e.g. `qshpc status {first[1]}`), or `qshpc list` to see them"
    )


def _scan(root: Path, text: str) -> Path | None:
    """The job folder in ``root`` that ``text`` names otherwise than by the folder's name:
    its Slurm id (the current one, else any it had, the newest job first), or its job id
    when the folder is named otherwise (``--job-dir $QSHPC_HOME/jobs/slurm-$SLURM_JOB_ID``,
    docs/sbatch.md). Only after the plain ``root/text`` missed; the id scan opens the
    store of the folders not named by an id only (the dated ones are their own id)."""
    if _SLURM_ID.fullmatch(text):
        # Slurm's ids restart with a new cluster (or its database): several jobs may have
        # had this one. The newest job whose current id it is, else the newest that had it
        # (review27 F6: the first folder listed was taken, often the oldest).
        folders = [d for d in root.iterdir() if has_job_file(d)]
        now = [d for d in folders if read_slurm_id(d) == text]
        had = now or [d for d in folders if text in read_slurm_ids(d)]
        if not had:
            return None
        newest = max(had, key=created_key)
        _check_owner(newest)
        return newest
    if JOB_ID.fullmatch(text):
        found = [d for d in root.iterdir() if _named_otherwise(d) and stored_id(d) == text]
        if len(found) > 1:  # a copy of the folder (X.bak): never guess which one is meant
            from qshpc.errors import UserError

            raise UserError(
                f"several folders under {root} hold job {text}: "
                + ", ".join(d.name for d in sorted(found))
                + "; give the folder's path"
            )
        if found:
            _check_owner(found[0])
            return found[0]
    return None


def _named_otherwise(d: Path) -> bool:
    """A job folder that may hold a job not named by the folder: one qshpc made so (its
    :data:`JOB_ID_FILE`) or an own-sbatch ``slurm-N`` folder (docs/sbatch.md). Not a map's
    element (its name is its id), nor a copy of a job's folder under another name
    (``cp -a X X.bak``: once X was removed, a second ``qshpc rm X`` removed the copy,
    review27)."""
    name = d.name
    if JOB_ID.fullmatch(name) or ELEMENT_ID.fullmatch(name):
        return False
    if not (os.path.lexists(d / JOB_ID_FILE) or name.startswith("slurm-")):
        return False
    return has_job_file(d)


def note_job_id(job_dir: Path, job_id: str) -> None:
    """Write :data:`JOB_ID_FILE` beside a new job whose folder is not named by its id, so
    that sorting and finding it need no read of its store. Best effort: without it (or for
    a job made before it existed) :func:`stored_id` reads the store."""
    if job_dir.name == job_id or not JOB_ID.fullmatch(job_id):
        return
    from qshpc.store import perms

    try:
        perms.write_atomic(job_dir / JOB_ID_FILE, f"{job_id}\n".encode())
    except OSError:
        pass


def stored_id(job_dir: Path) -> str | None:
    """The job's id: :data:`JOB_ID_FILE` when there, else the id in its store's meta (one
    read of the store), or None when neither can be read."""
    try:
        text = read_small(job_dir / JOB_ID_FILE, 64).decode().strip()
    except (OSError, ValueError):
        text = ""
    if JOB_ID.fullmatch(text):
        return text
    from qshpc.errors import QshpcError
    from qshpc.store import JobReader

    try:
        with JobReader.open(job_dir) as r:
            value = r.meta().get("id")
    except (QshpcError, OSError):
        return None
    if not isinstance(value, str):
        return None
    if job_dir.name.startswith("slurm-"):
        _keep_id(job_dir, value)
    return value


def other_job(job_dir: Path, jid: object) -> tuple[str, str] | None:
    """When the ``job.h5`` in ``job_dir`` holds job ``jid``, not the job the folder was made
    for (:func:`qshpc.store.jobref.made_for`; review49 F3, review53 N1: another job's file
    put in its place, or a folder copied under a new name): the line that says so, and how
    to take the folder as job ``jid``'s if that is meant; else None."""
    from qshpc.store.jobref import made_for

    want = made_for(job_dir)
    # Not an id qshpc makes: the folder's name, where a damaged store's meta is unreadable
    if want is None or not isinstance(jid, str) or not JOB_ID.fullmatch(jid) or jid == want:
        return None
    from qshpc.text import shown

    named = job_dir.name == want
    line = (
        f"the job.h5 in folder {shown(job_dir)} holds job {shown(jid)}, not job {want}, the "
        f"one the folder was made for ({'its name' if named else f'its {JOB_ID_FILE} file'}): "
        "another job's file put in its place, or a job folder copied under a new name"
    )
    fix = (
        f"move it to a name of its own (`mv {shown(job_dir)} {shown(job_dir)}.copy`) and give "
        "that path"
        if named
        else f"remove its {JOB_ID_FILE} file (`rm {shown(job_dir / JOB_ID_FILE)}`)"
    )
    return line, fix


def _keep_id(job_dir: Path, job_id: str) -> None:
    """Write :data:`JOB_ID_FILE` into an own-sbatch ``slurm-N`` folder made before it
    existed (session 22), the first time its id is read from its store, when the folder
    is this user's and writable: each such folder cost every ``qshpc list`` a store read
    (~4 ms, hunt22e). Only ``slurm-N`` folders: one named otherwise without the file
    (a copy, ``X.bak``) must stay out of the id lookup (:func:`_named_otherwise`)."""
    try:
        if job_dir.stat().st_uid != os.geteuid() or not os.access(job_dir, os.W_OK):
            return  # another's store (or a read-only one): listing it changes nothing
    except OSError:
        return
    note_job_id(job_dir, job_id)


def created_key(job_dir: Path) -> str:
    """A key that sorts job folders by when their job was made: the job id (which sorts by
    its creation time, :func:`new_job_id`). The folder's name when it is one; else the id
    in its store (one read, for the folders named otherwise only), else its time stamp
    (the folder's mtime). ``sorted(root.iterdir())`` put every ``slurm-*`` folder before
    the dated ones (review24 F3): ``jobs()[0]`` was not the newest job."""
    name = job_dir.name
    if JOB_ID.fullmatch(name):
        return name
    element = ELEMENT_ID.fullmatch(name)
    if element:  # its own id (no store read: review27, 400 elements made `list` 3.4 s)
        return f"{element.group(1)}-{int(element.group(2)):09d}"
    sid = stored_id(job_dir) if has_job_file(job_dir) else None
    if sid is not None and JOB_ID.fullmatch(sid):
        return sid
    try:
        stamp = job_dir.stat().st_mtime
    except OSError:
        stamp = 0.0
    return time.strftime("%Y%m%d-%H%M%S-", time.localtime(stamp)) + "~"


def job_ref(job_dir: str | os.PathLike[str]) -> str:
    """How a later qshpc command finds the job in ``job_dir`` (:func:`qshpc.store.jobref.job_ref`;
    imported here when used: ``qshpc.jobs.paths`` stays free of ``qshpc.store`` at import)."""
    from qshpc.store.jobref import job_ref as ref

    return ref(job_dir)


def small_store(job_dir: Path) -> bool:
    """True when the job's store files hold at most ``QSHPC_STATUS_VERIFY_MAX`` bytes
    (256 MiB, ~0.15 s at 0.6 s/GB): ``qshpc status`` then checks every byte, so damage in
    a value is seen where it costs little; a bigger store needs ``--verify``. ``qshpc rm``
    and ``gc`` check such a store so before they remove it (review50 F3), and a resume
    of a SUCCEEDED job before it says there is nothing to resume (review52 F12)."""
    from qshpc.store.records import JOURNAL_FILE  # (no h5py)

    limit = settings.STATUS_VERIFY_MAX.get()
    if limit <= 0:
        return False
    total = 0
    for name in (JOB_FILE, JOURNAL_FILE):
        try:
            total += (job_dir / name).stat().st_size
        except OSError:
            pass
    return total <= limit


def _refuse_journal_alone(folder: Path, text: str) -> None:
    """Say so when ``folder`` holds a job's journal but no ``job.h5`` (review52 F12: "no job
    ...: not a job directory", of a folder whose journal held every result)."""
    from qshpc.store.records import JOURNAL_FILE  # (no h5py)

    try:
        alone = (folder / JOURNAL_FILE).is_file() and not (folder / JOB_FILE).exists()
    except OSError:
        return
    if alone:
        raise JobNotFoundError(
            f"job {text!r} has lost its {JOB_FILE}: {folder} holds only its journal "
            f"({JOURNAL_FILE}), which cannot be read without the {JOB_FILE} it continues. Put "
            f"{JOB_FILE} back (mv it back, or from a backup) to read the job; nothing was "
            f"changed (to remove the folder: rm -r {folder})"
        )


def _refuse_unreadable(path: Path, text: str) -> None:
    """Say so when a job folder given as a path cannot be looked into (hunt21b: another
    member's job behind a folder one may not enter was "no job ...: not a job directory")."""
    try:
        os.lstat(path)
    except PermissionError as exc:
        raise JobNotFoundError(
            f"cannot read the job {text!r}: {exc.strerror} ({path.parent}); another user's "
            "job is readable only when they share it with your group (QSHPC_SHARE_GROUP=1, "
            "docs/store.md)"
        ) from None
    except OSError:
        pass


#: The most :func:`read_small` reads of one of qshpc's small files beside a store.
SMALL_FILE_MAX = 1 << 16


def read_small(path: Path, limit: int = SMALL_FILE_MAX) -> bytes:
    """The bytes of one of qshpc's small files beside a store (a Slurm id, a marker...).

    Raises:
        OSError: Missing, unreadable, or not a regular file (a FIFO made ``qshpc status``
            wait for good, a link to ``/dev/zero`` read until memory ran out: hunt14a).
        ValueError: Longer than ``limit`` bytes: not a file qshpc wrote.
    """
    from qshpc.store.seal import open_regular

    with open(open_regular(path), "rb", closefd=True) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} holds over {limit} bytes")
    return data


def read_slurm_id(job_dir: Path) -> str | None:
    """The Slurm job id recorded at submit time (``JOB_DIR/slurm_job_id``), or None."""
    try:
        text = read_small(job_dir / SLURM_ID_FILE).decode().strip()
    except (OSError, ValueError):  # damaged bytes: every command on the job was a traceback
        return None
    return text or None


def read_slurm_ids(job_dir: Path) -> list[str]:
    """Every Slurm job id recorded for the job (:data:`SLURM_IDS_FILE`), oldest first."""
    try:
        text = read_small(job_dir / SLURM_IDS_FILE).decode()
    except (OSError, ValueError):
        return []
    return [s for s in text.split() if _SLURM_ID.fullmatch(s)]


def note_slurm_id(job_dir: Path, slurm_id: str | None) -> None:
    """Add ``slurm_id`` to the job's Slurm ids (:data:`SLURM_IDS_FILE`), so that each id the
    job had finds it (``qshpc status 1518`` after a ``qshpc submit --resume`` made 1519;
    the Slurm job of one's own sbatch script). Best effort: a file it cannot write is
    a lookup less, never a failed run."""
    if not slurm_id or not _SLURM_ID.fullmatch(slurm_id):
        return
    ids = read_slurm_ids(job_dir)
    if slurm_id in ids:
        return
    from qshpc.store import perms

    try:
        perms.write_atomic(
            job_dir / SLURM_IDS_FILE, "".join(f"{s}\n" for s in [*ids, slurm_id]).encode()
        )
    except OSError:
        pass


def read_resubmitted(job_dir: Path) -> tuple[str, float] | None:
    """The Slurm id and time of ``qshpc submit --resume``'s new Slurm job, or None."""
    import json

    try:
        data = json.loads(read_small(job_dir / RESUBMITTED_FILE))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    sid, when = data.get("slurm_job_id"), data.get("time")
    if not isinstance(sid, str) or not _SLURM_ID.fullmatch(sid):
        return None
    if isinstance(when, bool) or not isinstance(when, (int, float)):
        return None
    return sid, float(when)


def read_slurm_cluster(job_dir: Path) -> str | None:
    """The Slurm cluster the recorded job id belongs to (``JOB_DIR/slurm_cluster``), or None
    (a job submitted before qshpc recorded it, or a cluster that did not say)."""
    try:
        text = read_small(job_dir / SLURM_CLUSTER_FILE).decode().strip()
    except (OSError, ValueError):  # damaged bytes: as no name (never a traceback)
        return None
    return text if text and text.isprintable() and len(text) <= 256 else None


def _shown(text: str) -> str:
    from qshpc.text import shown

    return shown(text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)")


def check_job_text(text: str) -> None:
    """Refuse a job id or path that no file system could hold (before touching one).

    Raises:
        JobNotFoundError: A NUL byte, over 4096 bytes, or a name part over 255 bytes.
    """
    raw = os.fsencode(text)
    if not raw.strip():
        raise JobNotFoundError("no job given: pass a job id (see `qshpc list`) or a job directory")
    why = None
    if b"\0" in raw:
        why = "it holds a NUL byte"
    elif len(raw) > 4096 or any(len(part) > 255 for part in raw.split(b"/")):
        why = "it is longer than any file name can be"
    if why:
        raise JobNotFoundError(
            f"no job {_shown(text)!s}: {why}. Job ids look like 20261125-143012-a1b2c3; "
            "run `qshpc list` to see them"
        )


def _check_folder(job_dir: Path) -> Path:
    """A job folder given by its path, resolved, once checked as the store's are (review35
    F3: it was trusted whoever owned it or could write the folder holding it)."""
    from qshpc.store.trust import check_job_folder

    check_job_folder(job_dir)
    return job_dir.resolve()


def _check_owner(job_dir: Path) -> None:
    """Refuse a job folder under the store that another user owns (unless the store is shared)."""
    from qshpc.store.perms import UnsafeStoreError, shared

    try:
        uid = job_dir.stat().st_uid
    except OSError:
        return
    if uid not in (os.geteuid(), 0) and not shared():
        raise UnsafeStoreError(
            f"refusing to read job folder {job_dir}: another user (uid {uid}) owns it, so its "
            "results may be forged. Remove it if it is not yours; to share a store with your "
            "group on purpose, set QSHPC_SHARE_GROUP=1 (docs/store.md)"
        )


STATUS_OVERRIDE = "status.json"


def mark_terminal(
    job_dir: Path, state: str, why: str, when: float | None = None, found: bool = False
) -> float:
    """Record a terminal state for a job whose ranks died before finalizing the store.

    Written atomically next to the store (the store itself may still be open
    by a dead writer); readers prefer the store's own terminal state. ``when``
    (default: now) is the job's ``finished`` from then on; ``found``: it is when a
    reader found the run gone (a crash seen later), not when the job ended.

    Returns:
        ``when``.
    """
    import json

    when = time.time() if when is None else when
    data: dict[str, Any] = {"state": state, "error": why, "time": when}
    if found:
        data["found"] = True
    from qshpc.store import perms

    perms.write_atomic(job_dir / STATUS_OVERRIDE, json.dumps(data).encode())
    return when


def ended_at(meta: dict[str, Any], when: object, found: object = False) -> None:
    """Give ``meta`` of a job whose end its run did not record ``finished`` = ``when``
    (the store's own finish time wins), and ``found_ended`` = True when ``when`` is when
    a reader found the run gone (review38: `qshpc status` of a crash found later showed
    ``-``; it now says ``found FAILED <time>``)."""
    if meta.get("finished") or not isinstance(when, (int, float)) or isinstance(when, bool):
        return
    meta["finished"] = float(when)
    if found is True:
        meta["found_ended"] = True


def last_activity(job_dir: Path, default: float) -> float:
    """The last time the job's store, journal or logs were written (a crashed run's last
    sign of life), at most ``default``; ``default`` when none can be looked at."""
    times: list[float] = []
    for name in (JOB_FILE, "job.journal"):
        try:
            times.append(os.stat(job_dir / name).st_mtime)
        except OSError:
            pass
    try:
        with os.scandir(job_dir / "logs") as it:
            for entry in it:
                try:
                    if entry.is_file(follow_symlinks=False):
                        times.append(entry.stat(follow_symlinks=False).st_mtime)
                except OSError:
                    pass
    except OSError:
        pass
    return min(max(times), default) if times else default


def read_override(job_dir: Path) -> dict[str, object] | None:
    """The terminal state written by :func:`mark_terminal`, if any."""
    import json

    p = job_dir / STATUS_OVERRIDE
    try:
        data = json.loads(read_small(p))
    except (OSError, ValueError):
        return None
    # As mark_terminal writes it, or nothing (the store's own state then shows): on
    # 8cc329b a damaged file was taken as it was: '[1, 2]' or an error that was no text
    # made `qshpc status` and `result` print a traceback, a state of ESC bytes reached
    # the terminal, and {"state": "SUCCEEDED"} on a job that never ran made
    # `qshpc result` print None, exit 0.
    if (
        not isinstance(data, dict)
        or data.get("state") not in ("FAILED", "CANCELED")
        or not isinstance(data.get("error"), (str, type(None)))
    ):
        return None
    t = data.get("time")
    if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
        data.pop("time", None)  # (1e400 is JSON's infinity: no time; review30 F5)
    return data
