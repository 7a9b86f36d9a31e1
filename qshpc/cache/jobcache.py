"""The cache as a running job uses it: which calls are cached, lookups, and writes off the hot path.

A job's ranks each hold one :class:`JobCache`: rank 0 looks calls up as they
are made (a hit never travels to a worker), and whichever rank holds a result
stores it, from a background thread (:class:`Writer`), so neither dispatch nor
the tasks wait for the file system. A cache that cannot be opened or written
never fails the job: the cache turns itself off for the job with one warning,
and the tasks run.
"""

from __future__ import annotations

import functools
import os
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the keys' and the folder's machinery load where used (not when off)
    from qshpc.cache.body import Encoded
    from qshpc.cache.keys import Deps, Qpy
    from qshpc.cache.store import CacheDir, Hit

#: Results waiting to be written beyond this many bytes are not cached (memory bound).
MAX_PENDING_BYTES = 256 << 20
#: A function walked at each call it runs in this process (see :meth:`JobCache.digest`)
#: whose walk takes longer than this runs those calls uncached.
LIVE_WALK_S = 0.05
#: At a job's end, the wait for the last writes gives up after this long without one done.
STALL_S = 60.0


@dataclass(frozen=True)
class CacheConfig:
    """What a job was asked to do with the cache.

    Attributes:
        enabled: Cache every task's calls (``--cache``); a task's own
            ``cache=True``/``False`` wins over this.
        dir: The cache folder (None: ``$QSHPC_CACHE_DIR`` or ``$QSHPC_HOME/cache``).
        shared: Group-sharing mode (None: ``QSHPC_SHARE_GROUP``).
    """

    enabled: bool = False
    dir: str | None = None
    shared: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form (job meta, messages to workers)."""
        return {"enabled": self.enabled, "dir": self.dir, "shared": self.shared}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> CacheConfig:
        """Inverse of :meth:`as_dict` (None: the cache off)."""
        if not d:
            return cls()
        return cls(bool(d.get("enabled")), d.get("dir") or None, d.get("shared"))


#: :mod:`qshpc.cache.keys`, once a key was taken (not imported while the cache is off; a
#: function-level import costs every call ~0.7 us, a tenth of a tiny hit's own work).
_KEYS: Any = None


def _keys() -> Any:
    global _KEYS
    from qshpc.cache import keys

    _KEYS = keys
    return keys


def _task_name(task: Any, func: Any) -> str:
    """A task's name for a message: its own, or its function's qualified name (the repr of a
    ``functools.partial`` holds its arguments: a 48 MB array printed whole, review23; a
    partial task's own default name is ``partial(f)`` since session 22, short already)."""
    name = getattr(task, "name", None)
    if isinstance(name, str) and name:
        return name
    inner = getattr(func, "func", func)  # (a partial's function)
    return str(getattr(inner, "__qualname__", None) or type(inner).__name__)


def _costly(func: Any, deps: Deps) -> bool:
    """Whether a live walk that took over :data:`LIVE_WALK_S` should turn the cache off.

    Only when the function reads a value that can change in place. A partial's own
    arguments are not counted: they are arguments, walked at each call as a call's are,
    with no cut-off (review23 F1: ``partial(f, table)`` with a 48 MB ``table`` was cached
    at its first call only). Its function's own walk, timed alone, must then be the
    costly part.
    """
    from qshpc.cache.keys import changeable, function_digest

    if not isinstance(func, functools.partial):
        return changeable(deps)
    own = [d for d in deps if not (d[0] is func and d[1] in ("args", "keywords"))]
    if not changeable(own):
        return False
    start = time.perf_counter()
    try:
        function_digest(func.func)
    except Exception:  # (it walked a moment ago, inside the partial)
        return True
    return time.perf_counter() - start > LIVE_WALK_S


def _warn(text: str) -> None:
    print(f"qshpc: cache: {text}", file=sys.stderr, flush=True)


#: :func:`_size` looks at this many items of a container (and scales up for the rest).
_SIZE_ITEMS = 64
_FLAT = frozenset((int, float, bool, complex, type(None)))


def _size(value: Any, depth: int = 0) -> int:
    """About how many bytes a result waiting to be encoded holds, for the queue's bound.

    hunt19: only ``value.nbytes`` was counted, so a dict or a list of arrays, or a
    ``Statevector`` (its ``data``), counted 0 bytes: a worker whose tasks returned
    such results faster than the file system took them held every one of them,
    past :data:`MAX_PENDING_BYTES` without bound. Numbers count 0, as before.
    """
    t = type(value)
    if t in _FLAT:
        return 0
    if t is bytes or t is str or t is bytearray:
        return len(value)
    try:
        if t is dict or t is list or t is tuple:
            if depth >= 3 or not value:
                return 0
            seen = islice(value.values() if t is dict else value, _SIZE_ITEMS)
            part = sum(_size(v, depth + 1) for v in seen)
            return part * len(value) // min(len(value), _SIZE_ITEMS)
        n = getattr(value, "nbytes", None)
        if isinstance(n, int):
            return n
        data = getattr(value, "data", None)  # Statevector, DensityMatrix, Operator...
        n = getattr(data, "nbytes", None)
        return n if isinstance(n, int) else 0
    except Exception:  # a value's own attribute that raises: counted 0, as before
        return 0


class Writer:
    """Writes entries from a background thread; never blocks its callers.

    Results queue up to :data:`MAX_PENDING_BYTES` (beyond, they are dropped and
    counted). The first write that fails (disk full, permissions) turns the
    writer off for the rest of the job, with one warning; one whose shard folder
    alone is at fault (a file in its place, wrong permissions) skips the entries of
    that shard only (one warning per shard).
    """

    def __init__(self, cache: CacheDir) -> None:
        self.cache = cache
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.off = False
        self.bad_shards: set[str] = set()
        self.stalled = False  # the end's wait gave up: no write ended for STALL_S
        self._q: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._pending = 0  # bytes queued (bodies; values count 0 until encoded)
        self._busy = 0  # items queued or being written
        self._finished = 0  # items taken off the queue (written, failed or skipped)
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(
        self,
        key: str,
        body: bytes | Encoded | None,
        value: Any,
        function: str,
        job: str | None,
        task: str | None,
    ) -> None:
        """Queue one result: its encoded ``body`` (plain blob bytes, or
        :func:`qshpc.cache.body.encode`'s answer), or the ``value`` to encode here."""
        if self.off:
            return
        size = (
            len(body[0] if isinstance(body, tuple) else body) if body is not None else _size(value)
        )
        if self._pending + size > MAX_PENDING_BYTES:
            self.dropped += 1
            return
        with self._idle:
            self._pending += size
            self._busy += 1
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="qshpc-cache-writer", daemon=True
            )
            self._thread.start()
        self._q.put((key, body, value, function, job, task, size))

    def _run(self) -> None:
        from qshpc.cache.body import Encoded, encode
        from qshpc.cache.store import CacheWriteError

        while True:
            item = self._q.get()
            if item is None:
                return
            key, body, value, function, job, task, size = item
            try:
                if not self.off:
                    enc = encode(value) if body is None else body
                    if not isinstance(enc, Encoded):
                        enc = Encoded(enc, "blob", None, True)
                    if self.cache.put(
                        key, enc.body, function, job, task,
                        form=enc.form, typed=enc.typed, plain=enc.plain, lazy=enc.lazy,
                    ):  # fmt: skip
                        self.written += 1
            except CacheWriteError as exc:
                self.failed += 1
                if exc.shard is not None:
                    if exc.shard not in self.bad_shards:
                        self.bad_shards.add(exc.shard)
                        _warn(
                            f"{exc}: results whose cache keys start with {exc.shard!r} are not "
                            "cached (the other keys are)"
                        )
                elif not self.off:
                    self.off = True
                    _warn(f"{exc}: results are not cached for the rest of this job")
            except Exception:  # a value that cannot be encoded is simply not cached
                self.failed += 1
            finally:
                with self._idle:
                    self._pending -= size
                    self._busy -= 1
                    self._finished += 1
                    if not self._busy:
                        self._idle.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued result is written (at most ``timeout`` s); True when done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    @property
    def left(self) -> int:
        """Results queued or being written now."""
        return self._busy

    def drain(
        self,
        tick: Callable[[int, float], bool] | None = None,
        every: float = 1.0,
        stall_s: float = STALL_S,
    ) -> bool:
        """Wait for every queued result while the writes progress (a job's end).

        Args:
            tick: Called as ``tick(left, seconds waited)`` when the wait starts and
                every ``every`` seconds; True from it stops the wait.
            every: Seconds between ticks.
            stall_s: Give up when no write ended for this long (a hung file system).

        Returns:
            True when every result is written (or failed); False when stopped or stalled.
        """
        t0 = last_t = time.monotonic()
        last = self._finished
        if tick is not None and self._busy and tick(self._busy, 0.0):
            return False
        while not self.flush(every):
            now = time.monotonic()
            if self._finished != last:
                last, last_t = self._finished, now
            elif now - last_t >= stall_s:
                self.stalled = True
                return False
            if tick is not None and tick(self._busy, now - t0):
                return False
        return True


def _not_cached(name: str, exc: Exception) -> None:
    _warn(f"calls of {name} are not cached: {exc}")


def _too_costly(name: str, took: float) -> None:
    _warn(costly_walk(name, took, "made in this process are not cached"))


def costly_walk(name: str, took: float, outcome: str) -> str:
    """What a walk too costly at each live call (:class:`FunctionDigests`) leads to, and why."""
    return (
        f"calls of {name} {outcome}: they read values that can change in place (a dict, "
        f"an array, an object), and walking them for the key takes {took:.2f} s a call"
    )


class FunctionDigests:
    """Digests of task functions by value (:func:`qshpc.cache.keys.function_digest`), each
    taken once per task object, or again at a live call when what it reads changed.

    The result cache's (:meth:`JobCache.digest`) and a job's resume identity's
    (:func:`qshpc.program.backend.function_digest`, where a call runs live: fix35a) alike.

    Args:
        unkeyed: Told once per task object, with its name and the error, when its
            function refers to something that cannot be hashed (its digest is None).
        costly: Told once with its name and the walk's seconds when a live call's walk
            became too costly (see :meth:`get`).
        env: Hash the environment in (:func:`qshpc.cache.keys.function_digest`).
    """

    def __init__(
        self,
        unkeyed: Callable[[str, Exception], None],
        costly: Callable[[str, float], None],
        env: bool = True,
    ) -> None:
        self._unkeyed = unkeyed
        self._costly = costly
        self._env = env
        #: ``id(task) -> (weak reference, digest, what its walk read, too costly, told)``:
        #: told, its None digest was said already (review52 F4: a live call whose
        #: function reads a value that can change in place walks again at every call,
        #: and said "not cached" at every call).
        self._known: dict[int, tuple[Callable[[], Any], bytes | None, Deps, bool, bool]] = {}
        #: ``(id(function), reason) -> the function``: the "not cached" said once per
        #: function and reason, not per task object (fixU: a ``functools.partial`` built
        #: per call, ``distribute_task()(partial(f, i))`` in a loop, said it at each call).
        self._said: dict[tuple[int, str], Any] = {}

    def get(self, task: Any, live: bool = False) -> bytes | None:
        """The digest of a task's function (None: it cannot be hashed).

        Args:
            task: The task (or plain function).
            live: The call runs the function object itself, in this process (an
                inline run, a nested call): the digest is taken again when a
                global, closure cell or default it reads was rebound since.
                Otherwise the digest is taken once per task object: the
                dispatcher ships a function to the workers once, at its first
                call, and the digest taken then is the one of the code that runs.
                A function that reads a value changeable in place (a dict, an
                object) is walked at each live call; when such a walk (the
                second: the first has one-time costs) takes more than
                :data:`LIVE_WALK_S` (a pass manager, a big object graph), its
                later live calls run uncached instead (one warning). A
                ``functools.partial``'s own arguments are walked at each call too,
                but with no cut-off, as a call's arguments are (see :func:`_costly`).
        """
        known = self._known.get(id(task))
        again = told = False
        if known is not None and known[0]() is task:
            if not live:
                return known[1]  # every call of a dispatched task: before any import
            if (_KEYS or _keys()).bindings_unchanged(known[2]):
                return known[1]  # a live call, nothing rebound (no import either)
            if known[3]:
                return None  # too costly to walk at each call: see above
            again = True  # timed as a walk at each call is (a first walk has one-time costs)
            told = known[4]
        from qshpc.cache.keys import UncacheableError, function_digest, task_digest

        func = task if isinstance(task, functools.partial) else getattr(task, "func", task)
        deps: Deps = []
        start = time.perf_counter()
        try:
            digest: bytes | None = task_digest(function_digest(func, deps, self._env), task)
        except UncacheableError as exc:
            digest = None
            if not told:
                told = True
                self._tell(task, func, exc)
        took = time.perf_counter() - start
        costly = again and took > LIVE_WALK_S and _costly(func, deps)
        if costly:
            self._costly(_task_name(task, func), took)
        try:
            ref: Callable[[], Any] = weakref.ref(task)
        except TypeError:
            return digest
        self._known[id(task)] = (ref, digest, deps, costly, told)
        return digest  # taken now: right for this call, costly or not

    def _tell(self, task: Any, func: Any, exc: Exception) -> None:
        """Say that ``task``'s calls are not cached, unless said already for its function
        (a partial's own function) with the same reason."""
        inner = func.func if isinstance(func, functools.partial) else func
        said = (id(inner), f"{_task_name(task, func)}: {exc}")
        if self._said.get(said) is inner:
            return
        self._said[said] = inner  # (held: an id is not reused while it is held)
        self._unkeyed(_task_name(task, func), exc)

    def deps(self, task: Any) -> Deps | None:
        """The name bindings the walk of ``task``'s digest read (None: not taken)."""
        known = self._known.get(id(task))
        return known[2] if known is not None and known[0]() is task else None


class JobCache:
    """One rank's view of the cache during a job.

    Args:
        config: The job's cache settings.
        job_id: The job's id (entries name it as their source).
        open_now: Open the folder now (rank 0 at job start: an unusable folder is
            reported before any task runs); otherwise at first use.
        worker: A worker rank's: in a job run with the cache on, a user folder another
            user took or that cannot be made (:class:`~qshpc.cache.folder.CacheUnusable`)
            is left to rank 0 to report, at the job's start (review30 F7: one warning a job, not one a rank).

    Raises:
        UserError: With ``open_now``, when the folder is unsafe or cannot be made.
    """

    def __init__(
        self,
        config: CacheConfig,
        job_id: str | None,
        open_now: bool = False,
        worker: bool = False,
    ) -> None:
        self.config = config
        self.job_id = job_id
        self._worker = worker
        self.hits = 0
        self.misses = 0
        self.uncacheable = 0
        self._damaged_said = 0  # damaged entries said already (:meth:`_say_damaged`)
        self._dir: CacheDir | None = None
        self._writer: Writer | None = None
        self._broken = False
        self._digests = FunctionDigests(_not_cached, _too_costly)
        self._bindings: dict[int, tuple[Callable[[], Any], list[Any]]] = {}
        self._lock = threading.Lock()
        if open_now and self.wanted():
            from qshpc.cache.store import CacheDir

            self._dir = CacheDir(config.dir, config.shared)

    def prepare(self) -> None:
        """Take the job's one-time costs of a cached call now, at the job's start.

        Rank 0 calls it before the program runs when the cache is on: the
        versions read from package metadata, qshpc's source tree stat'ed and
        the digest of both (:func:`qshpc.cache.keys.environment_digest`), the
        modules a lookup imports (not qiskit: a program may never import it) and
        the folder, checked (one that cannot be used is left to the first
        lookup, which warns that the tasks run without the cache; a user folder
        another user took is said now, once for the job). Taken at the
        first cached call instead, they were 7-9 ms of a rerun's task phase
        (512 hits take ~60 ms). Anything that fails here is met again at that
        call, which says what it is.
        """
        if not self.config.enabled:
            return
        try:
            keys = _KEYS or _keys()
            keys.environment_digest()
            from qshpc.cache import store

            store.prepare()  # what a lookup imports (never qiskit)
        except Exception:  # reported by the first cached call, which meets it again
            return
        self._open_dir(warn=False)

    def wanted(self, task_cache: bool | None = None) -> bool:
        """Whether calls of a task with ``cache=task_cache`` are cached in this job."""
        return self.config.enabled if task_cache is None else task_cache

    @property
    def dir(self) -> CacheDir | None:
        """The folder, opened on first use (None when it cannot be used: warned once)."""
        if self._dir is None and not self._broken:
            self._open_dir(warn=True)
        return self._dir

    def _open_dir(self, warn: bool) -> None:
        """Open the folder once, under the lock. One that cannot be used: with ``warn``, said
        once and the cache off for the job; without (:meth:`prepare`), left to the first
        lookup, which meets it again and says so; a folder another user took is said now
        (the workers leave it to rank 0)."""
        from qshpc.cache.store import CacheDir  # here: an import a call costs ~0.7 us

        with self._lock:
            if self._dir is None and not self._broken:
                try:
                    self._dir = CacheDir(self.config.dir, self.config.shared)
                except Exception as exc:
                    from qshpc.cache.folder import CacheUnusable

                    taken = isinstance(exc, CacheUnusable)  # said at the job's start, by rank 0
                    if warn or taken:
                        self._broken = True
                        if not (taken and self._worker and self.config.enabled):
                            _warn(f"{exc}: tasks run without the cache")

    # -- keys ------------------------------------------------------------------------
    def digest(self, task: Any, live: bool = False) -> bytes | None:
        """The digest of a task's function (None: uncacheable; see :class:`FunctionDigests`).

        Not ``live`` (a call dispatched to the workers), the bindings of the user's
        modules its key read are taken with it (:meth:`bindings`)."""
        digest = self._digests.get(task, live)
        if not live and digest is not None:
            known = self._bindings.get(id(task))
            if known is None or known[0]() is not task:
                from qshpc.cache.shipped import module_bindings

                found = module_bindings(self._digests.deps(task) or [])
                try:
                    self._bindings[id(task)] = (weakref.ref(task), found)
                except TypeError:  # pragma: no cover - tasks take weak references
                    pass
        return digest

    def bindings(self, task: Any) -> list[Any] | None:
        """The bindings of the user's modules that ``task``'s key read, with their
        values' digests (:func:`qshpc.cache.shipped.module_bindings`): a worker stores
        a result only where its modules hold the same (None: not taken)."""
        known = self._bindings.get(id(task))
        return known[1] if known is not None and known[0]() is task else None

    def key(
        self,
        task: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        seed: int | None,
        live: bool = False,
        qpy: Qpy | None = None,
        binds: list[Any] | None = None,
        standard: bool = False,
    ) -> str | None:
        """The call's key, or None when it cannot be cached (``live``: see :meth:`digest`;
        ``qpy``: the QPY bytes of its circuits, ``standard``: the caller found standard
        gates only in its circuits, see :func:`qshpc.cache.keys.call_key`).

        ``binds``, a list (a dispatched call), receives the bindings of the user's
        modules behind the functions and classes its arguments' key read
        (:func:`qshpc.cache.shipped.named_bindings`): the worker stores its result
        only where its modules hold the same."""
        digest = self.digest(task, live)
        if digest is None:
            return None
        keys = _KEYS or _keys()
        named: list[Any] | None = [] if binds is not None else None
        try:
            key: str = keys.call_key(digest, args, kwargs, seed, qpy, named, standard)
        except keys.UncacheableError:
            self.uncacheable += 1
            return None
        if named and binds is not None:
            from qshpc.cache.shipped import named_bindings

            binds.extend(named_bindings(named))
        return key

    # -- lookups and writes --------------------------------------------------------------
    def lookup(self, key: str) -> Hit | None:
        """The stored result of ``key`` (counted as a hit or a miss); a large one of this
        user's may be left undecoded (``lazy``: :meth:`Hit.load` decodes it)."""
        d = self._dir
        if d is None:
            d = self.dir  # (opened at the first lookup)
        hit = d.get(key, lazy=True) if d is not None else None
        if hit is None:
            self.misses += 1
        else:
            self.hits += 1
        return hit

    def store(
        self,
        key: str,
        function: str,
        task_id: str,
        body: bytes | Encoded | None = None,
        value: Any = None,
        shared: bool = False,
    ) -> None:
        """Store a successful result in the background (its encoded ``body``, or ``value``).

        ``shared``: the program holds ``value`` too (the task ran in its process)
        and may change it in place once it has it: it is encoded now, on the
        caller's thread, so that the entry is the result the task returned.
        """
        w = self._writer
        if w is None:
            d = self.dir
            if d is None:
                return
            w = self._writer = Writer(d)
        if shared and body is None and not w.off:
            from qshpc.cache.body import encode

            try:
                body = encode(value)
            except Exception:  # a value that cannot be encoded is simply not cached
                w.failed += 1
                return
            value = None
        w.submit(key, body, value, function, self.job_id, task_id)

    def flush(self, timeout: float | None = 60.0) -> None:
        """Wait for the queued writes (at most ``timeout`` s; what is left is not cached)."""
        if self._writer is not None and not self._writer.flush(timeout):
            _warn(
                f"gave up waiting for the cache after {timeout:.0f} s: some results are not cached"
            )

    @property
    def written(self) -> int:
        """Results this process wrote to the cache."""
        return self._writer.written if self._writer is not None else 0

    @property
    def left(self) -> int:
        """Results queued for the cache and not written yet."""
        return self._writer.left if self._writer is not None else 0

    def drain(
        self,
        tick: Callable[[int, float], bool] | None = None,
        every: float = 1.0,
        stall_s: float = STALL_S,
    ) -> bool:
        """Wait for the queued writes while they progress (see :meth:`Writer.drain`)."""
        w = self._writer
        return True if w is None else w.drain(tick, every, stall_s)

    def finish(self, stop: Callable[[], bool] | None = None, every: float = 5.0) -> bool:
        """The job's end in this process: wait for the last writes, saying so on stderr.

        Nothing is dropped because the job ends: the wait lasts as long as the
        writes progress (:data:`STALL_S` without one gives up). After a second a
        line says how many are left, then every ``every`` seconds, and the time
        it took at the end. A Ctrl-C (KeyboardInterrupt, or ``stop()`` True)
        stops the wait: what is left is not cached, and the line says how many.

        Returns:
            True when every queued result was written (or failed on its own).
        """
        self._say_damaged()
        w = self._writer
        if w is None or not w.left:
            return True
        t0 = time.monotonic()
        said = [False, t0 + 1.0]

        def tick(left: int, waited: float) -> bool:
            if stop is not None and stop():
                return True
            now = time.monotonic()
            if now >= said[1]:
                said[0], said[1] = True, now + every
                _warn(
                    f"writing the last {left:,} result(s) to the cache ({waited:.0f} s so far; "
                    "Ctrl-C stops the wait, and those are then not cached)"
                )
            return False

        try:
            done = w.drain(tick, every=0.2 if stop is not None else 1.0)
        except KeyboardInterrupt:
            done = False
        took = time.monotonic() - t0
        if not done:
            why = f"given up: no write ended for {STALL_S:.0f} s" if w.stalled else "stopped"
            _warn(f"{w.left:,} result(s) not cached: the wait for the cache was {why}")
        elif said[0]:
            _warn(f"the last results reached the cache {took:.1f} s after the job's end")
        return done

    def _say_damaged(self) -> None:
        """One line a job for the entries its lookups found damaged (review49 L5: torn,
        altered or another key's entry copied over, each a silent miss): how many, and
        the folder. Said once: a second ``finish`` says only those found since."""
        d = self._dir
        n = d.damaged if d is not None else 0
        if d is None or n <= self._damaged_said:
            return
        new, self._damaged_said = n - self._damaged_said, n
        _warn(
            f"{new:,} damaged entr{'y' if new == 1 else 'ies'} (torn, altered or another "
            f"key's) in {d.root} were read as misses and their calls ran again (your own "
            "were removed); `qshpc cache gc --verify` checks every entry"
        )

    def summary(self) -> dict[str, int]:
        """Counts for the job's log."""
        w = self._writer
        return {
            "hits": self.hits,
            "misses": self.misses,
            "uncacheable": self.uncacheable,
            "written": w.written if w else 0,
            "dropped": w.dropped if w else 0,
            "failed": w.failed if w else 0,
        }


def provenance(hit: Hit) -> dict[str, Any]:
    """What a task record says of a result that came from the cache."""
    # The key is the record's own key field: not repeated here.
    cache: dict[str, Any] = {"job": hit.header.job, "task": hit.header.task,
                             "stored": hit.header.created, "host": hit.header.host}  # fmt: skip
    if hit.owner != _UID:
        cache["user"] = hit.owner
    return {"cache": cache}


_UID = os.geteuid()


def resolve_dir(path: str | os.PathLike[str] | None) -> str | None:
    """An absolute cache folder for a job's meta (None stays None: the default at run time)."""
    if path is None:
        return None
    from qshpc.cache.folder import expand

    return str(expand(path).absolute())


__all__ = [
    "MAX_PENDING_BYTES",
    "STALL_S",
    "CacheConfig",
    "JobCache",
    "Writer",
    "provenance",
    "resolve_dir",
]
