"""``Job``: a job in the store, local or on Slurm; ``open_job`` finds one, ``list_jobs`` lists them.

Mirrors quantum-serverless's notebook flow::

    job = LocalClient(workers=2).run(program, arguments={"circuits": circuits})
    job.status()   # 'QUEUED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'CANCELED'
    job.result()   # waits, returns what the program passed to save_result
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from qshpc.client.logread import (
    LogReader,
    _rank_of,
    _slurm_rank,
    _with_newline,
)
from qshpc.errors import JobFailedError, JobTimeoutError, NoResultError, UserError
from qshpc.jobs.endnote import read_end_note
from qshpc.jobs.paths import (
    created_key,
    ended_at,
    has_job_file,
    job_ref,
    jobs_root,
    last_activity,
    mark_terminal,
    read_override,
    read_resubmitted,
    read_slurm_cluster,
    read_slurm_id,
    read_slurm_ids,
    resolve_job_dir,
)
from qshpc.jobstate import TERMINAL, JobState, JobStatus
from qshpc.store.records import JOURNAL_FILE

if TYPE_CHECKING:
    import pandas as pd

    from qshpc.notebook.display import JobList, TaskList
    from qshpc.notebook.watch import JobWatch
    from qshpc.store import JobReader
    from qshpc.submit.slurm_states import SlurmView

#: Slurm's answers by Slurm job id, as :func:`qshpc.submit.slurm.query_many` returns them.
SlurmViews = Mapping[str, "SlurmView | None"]
#: What ``Job.status()`` says of a job whose store is damaged (``info()["recoverable"]``
#: says what can still be read); ``wait`` returns it at once.
DAMAGED = JobState.DAMAGED
#: Seconds ``wait()`` gives rank 0 to finish writing after Slurm ended the job
#: (its drain: a 2 s grace for calls in flight, then the store's last commit).
SETTLE_S = 10.0
SETTLE_POLL_S = 0.25


class Job:
    """A job in the store, local or on Slurm.

    Also quantum-serverless 0.10.1's ``Job``: ``status()``, ``result(wait, cadence,
    verbose)``, ``in_terminal_state()``, ``logs()``, ``filtered_logs(include=,
    exclude=)``, ``stop()``, ``job_id``, ``raw_data``.

    Args:
        job_dir: The job directory.
        process: The local launcher process, when this client started it.

    Attributes:
        status_names: ``"qshpc"`` (``status()`` says SUCCEEDED, FAILED) or
            ``"serverless"`` (DONE, ERROR, as quantum-serverless 0.10.1); set by
            the client that made the job. Either way the status equals both words.
    """

    status_names = "qshpc"
    # qiskit-serverless's sub-statuses, for ``update_status(Job.MAPPING)``: the job's
    # status() then also equals "RUNNING: MAPPING" (and "RUNNING").
    MAPPING = "MAPPING"
    OPTIMIZING_HARDWARE = "OPTIMIZING_HARDWARE"
    WAITING_QPU = "WAITING_QPU"
    EXECUTING_QPU = "EXECUTING_QPU"
    POST_PROCESSING = "POST_PROCESSING"

    def __init__(
        self, job_dir: Path, process: subprocess.Popen[bytes] | None = None, end_note: str = ""
    ) -> None:
        self.job_dir = Path(job_dir)
        self._process = process
        self._meta: dict[str, Any] | None = None
        self._store_state: str | None = None  # the store's own state at the last info()
        #: The launcher's end note (``LocalClient``): rank 0 writes the job's end there
        #: once the store is final; result() returns then, not at the launcher's exit.
        self._end_note = end_note if process is not None else ""
        if self._end_note and process is not None:
            import weakref

            weakref.finalize(self, _drop_note_of_ended, process, self._end_note)

    def __repr__(self) -> str:
        return f"<Job | {self.job_id}>"

    def _repr_html_(self) -> str:
        """The job's card in Jupyter (state, progress, ranks, error): see :mod:`qshpc.notebook`."""
        from qshpc.notebook.display import job_html

        return job_html(self)

    def watch(
        self, interval: float = 1.0, timeout: float | None = None, block: bool = False
    ) -> JobWatch:
        """Show the job's card, updated live until the job ends.

        In Jupyter this returns at once (the kernel stays free); in a terminal
        it shows the progress of ``qshpc wait`` and returns when the job ends.
        See :func:`qshpc.notebook.watch`.
        """
        from qshpc.notebook.watch import watch

        return watch(self, interval, timeout, block)

    def report(self, out: str | os.PathLike[str] | None = None) -> Path:
        """Write the job's HTML report (``qshpc report``); return its path."""
        from qshpc.report.page import write_report

        self._settle()
        return write_report(self.job_dir, out, self.info())

    @property
    def job_id(self) -> str:
        """The qshpc job id."""
        return str(self.info().get("id", self.job_dir.name))

    def info(
        self, slurm_views: SlurmViews | None = None, verify: bool = False, deep: bool = False
    ) -> dict[str, Any]:
        """Everything the store knows about the job (and Slurm's view when it is a Slurm job).

        Reads the records, counters and events, never the values (task results, the
        saved result): its cost does not grow with the data stored (review38 F16).
        Every byte it reads is checked against the store's seal.

        Args:
            slurm_views: Slurm's answers fetched for many jobs at once
                (:func:`read_infos`); by default this job's is asked for alone.
            verify: Check every byte of the store against its seal (reads it all:
                ``qshpc status --verify``, and ``qshpc status`` of a store of up to
                ``QSHPC_STATUS_VERIFY_MAX`` bytes), not only the parts the meta comes from.
                A damaged store gives ``state`` DAMAGED and ``recoverable``.
            deep: For a damaged store, try every task result and the saved result
                for ``recoverable`` (reads them; ``qshpc status`` does). Implied by
                ``verify``.
        """
        return self.complete_info(self.store_meta(verify, deep), slurm_views)

    def store_meta(self, verify: bool = False, deep: bool = False) -> dict[str, Any]:
        """What the store says, with ``job_dir`` and the Slurm id added (Slurm not asked).

        A damaged store gives ``state`` DAMAGED, its ``error`` and what is
        ``recoverable`` (see :func:`qshpc.store.reader.damaged_meta`; ``verify`` and
        ``deep`` as :meth:`info` takes them).
        """
        from qshpc.errors import DamagedStoreError
        from qshpc.store import JobReader

        try:
            with JobReader.open(self.job_dir) as r:
                meta = r.meta()
                if verify:
                    r.verify()
        except DamagedStoreError as exc:
            from qshpc.store.reader import damaged_meta

            meta = damaged_meta(self.job_dir, exc, deep=verify or deep)
            meta["job_dir"] = str(self.job_dir)
            return meta
        if meta.get("state") in TERMINAL and (self.job_dir / JOURNAL_FILE).exists():
            from qshpc.store.refold import fold_ended

            # Its final fold found no room (a full disk): fold it now, if there is room
            if not fold_ended(self.job_dir):
                _warn_unfolded(self.job_dir, meta)
        meta["job_dir"] = str(self.job_dir)
        if not meta.get("slurm_job_id"):
            slurm_id = read_slurm_id(self.job_dir)  # written by qshpc.submit after sbatch
            if slurm_id:
                meta["slurm_job_id"] = slurm_id
        if "slurm_job_id" not in meta and (ids := read_slurm_ids(self.job_dir)):
            meta["slurm_job_ids"] = ids  # one's own sbatch script's run: shown, Slurm not asked
        _waiting_resume(self.job_dir, meta)
        return meta

    def complete_info(
        self, meta: dict[str, Any], slurm_views: SlurmViews | None = None
    ) -> dict[str, Any]:
        """:meth:`store_meta`'s ``meta`` with what the store alone cannot know (Slurm, dead ranks)."""
        state = meta.get("state")
        self._store_state = str(state)
        if state == DAMAGED:
            self._meta = meta
            return meta
        if state not in TERMINAL:
            self._reconcile(meta, slurm_views)
        elif state != JobState.SUCCEEDED and meta.get("slurm_job_id"):
            from qshpc.submit.state import reconcile_slurm

            # Slurm may explain it (TIMEOUT, OUT_OF_MEMORY...)
            reconcile_slurm(self.job_dir, meta, slurm_views)
        self._meta = meta
        return meta

    def _reconcile(self, meta: dict[str, Any], slurm_views: SlurmViews | None = None) -> None:
        """A job whose ranks are gone without finalizing: take the best known terminal state."""
        slurm = meta.get("slurm_job_id")
        if slurm:
            from qshpc.submit.state import reconcile_slurm

            reconcile_slurm(self.job_dir, meta, slurm_views)  # reads the override too
            return
        copied = _copy_note(self.job_dir, meta)
        restored = copied == _RESTORED
        if restored:
            copied = None  # its own folder, put back: the run's own end below (review55 R2)
        if copied is not None:
            meta["state"], meta["error"] = JobState.FAILED.value, copied
            # review53 L3: "finished -" and a duration growing at every look: the copy's
            # last sign of life (its store's, journal's or logs' last write) is stable
            ended_at(meta, last_activity(self.job_dir, time.time()))
            meta["last_seen"] = True
            return
        override = read_override(self.job_dir)
        if override:
            meta["state"] = override["state"]
            meta["error"] = override.get("error")
            ended_at(meta, override.get("time"), override.get("found"))  # else it runs on to now
            return
        if self._process is None and meta.get("state") == "QUEUED":
            _never_started(self.job_dir, meta)
            return
        if self._process is not None:
            if self._process.poll() is None:
                return
        elif meta.get("state") == "RUNNING" and not _rank0_alive(meta):
            pass
        else:
            return
        # The launcher exited (or rank 0 is gone): read the store once more.
        from qshpc.store import JobReader

        with JobReader.open(self.job_dir) as r:
            fresh = r.meta()
        if fresh.get("state") in TERMINAL:
            meta.update(fresh)
            return
        from qshpc.jobs.postmortem import describe
        from qshpc.store.refold import fold_dead

        finished = {t["task_id"] for t in self.tasks()}
        why = describe(self.job_dir, fresh, finished)
        from qshpc.errors import StoreError
        from qshpc.store.lock import holder_alive

        if holder_alive(self.job_dir, runs_only=True) is not None:
            return  # a run holds the job (starting, or on a host we cannot see): not dead
            # (another reader folding its journal, fold_dead, is no run)
        if restored:
            why = (
                "this folder was replaced in place (removed and put back, e.g. from a backup), "
                f"and its run is gone: {why}"
            )
        meta["state"], meta["error"] = "FAILED", why
        now = time.time()
        recorded = False
        try:  # a reader records it only when it can (a full disk, someone else's job: not)
            mark_terminal(self.job_dir, "FAILED", why, now, found=True)
            recorded = True
            fold_dead(self.job_dir)  # job.h5 alone now holds every committed record
        except (OSError, StoreError):
            pass
        if recorded:
            ended_at(meta, now, found=True)  # its end is unknown: when it was found, said so
        else:
            # review50 F6: "found FAILED at <now>" at every look, its duration growing: the
            # last sign of life (its store's, journal's or logs' last write) is stable
            ended_at(meta, last_activity(self.job_dir, now))
            meta["last_seen"] = True

    def status(self) -> JobStatus:
        """The job's state: QUEUED, RUNNING, SUCCEEDED, FAILED or CANCELED (or UNKNOWN).

        A :class:`~qshpc.jobstate.JobStatus`: text that also equals
        quantum-serverless's word for the state (``"DONE"``, ``"ERROR"``).
        """
        meta = self.info()
        sub = meta.get("sub_status")
        return JobStatus(
            str(meta.get("state")), self.status_names == "serverless", str(sub) if sub else None
        )

    def _state(self) -> str:
        return str(self.info().get("state"))

    def in_terminal_state(self) -> bool:
        """True when the job ended: SUCCEEDED, FAILED or CANCELED (quantum-serverless's name).

        Also for a DAMAGED job (no run holds it; ``result()`` says what is
        recoverable): a polling loop must not wait for it forever.
        """
        state = self._state()
        return state in TERMINAL or state == DAMAGED

    @property
    def raw_data(self) -> dict[str, Any]:
        """What the store knows of the job (quantum-serverless's ``raw_data``)."""
        return self.info()

    def status_text(self) -> str:
        """The state with the sub-status (``RUNNING: sampling batch 3/10``) and Slurm's raw state."""
        m = self.info()
        text = str(m.get("state"))
        if m.get("sub_status") and text == "RUNNING":
            text += f": {m['sub_status']}"
        if m.get("slurm_state"):
            text += f" (slurm: {m['slurm_state']})"
        return text

    def done(self) -> bool:
        """True when the job reached a terminal state."""
        return self._state() in TERMINAL

    def wait(self, timeout: float | None = None, poll: float = 0.2, verbose: bool = False) -> str:
        """Wait until the job ends; return its state.

        On Slurm, when Slurm ended the job (``job.stop()``, a time limit) while rank 0
        still writes the store, it waits up to ``SETTLE_S`` (10 s) more for rank 0's
        final state: the counts and error read after it do not change.

        Args:
            timeout: Seconds to wait at most (None: as long as it takes).
            poll: Looks at the job at most every ``5 * poll`` seconds (sooner at first;
                a job this client started: at that pause and at its launcher's exit).
            verbose: Log a line (``logging``, INFO) at each look.

        Raises:
            TimeoutError: Still running after ``timeout`` seconds.
            UserError: ``timeout`` is NaN, infinite or negative (it never ran out).
        """
        from qshpc.jobs.seconds import seconds

        timeout = seconds(timeout, "timeout=", "None to wait as long as it takes")
        try:
            return self._wait(timeout, poll, verbose)
        except KeyboardInterrupt:  # a kernel interrupt stops the wait, not the job
            raise KeyboardInterrupt(
                f"job {self.job_id} was left {self._state()}: job.result() waits again, "
                "job.stop() cancels it"
            ) from None

    def _await_store(self, state: str, deadline: float | None) -> str:
        """Slurm ended the job (``scancel``, a time limit) while rank 0 still writes the
        store: wait, at most ``SETTLE_S`` (and the caller's deadline), for rank 0's final
        state, so that what a cell reads right after ``wait()`` (counts, the error) does
        not change under it (review26 2b: 1 done and "cancelled (scancel)" at the return,
        2 done and "received SIGTERM" 3 s later). Without it (rank 0 killed before it
        wrote), Slurm's state stands."""
        end = time.monotonic() + SETTLE_S
        if deadline is not None:
            end = min(end, deadline)
        while time.monotonic() < end:
            time.sleep(SETTLE_POLL_S)
            meta = self.store_meta()  # Slurm not asked: its answer is known
            if meta.get("state") in TERMINAL or meta.get("state") == DAMAGED:
                return str(self.complete_info(meta).get("state"))
        return state

    def _wait(
        self, timeout: float | None, poll: float, verbose: bool, store_final: bool = False
    ) -> str:
        """``store_final``: return once the store is final (rank 0's end note), without
        waiting for the ranks, mpiexec and the launcher to exit (``result()``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.05
        if store_final and self._end_note and self._process is not None:
            # A job this client started: its end is noted, or its launcher exits, before
            # the store need be read (its meta: 10-30 ms of the kernel's CPU, taken from
            # the ranks as they start on a small machine).
            first = poll * 5 if deadline is None else min(poll * 5, timeout or 0.0)
            _wait_for_exit(self._process, first, self._end_note)
        while True:
            if store_final and (ended := self._noted_end()) is not None:
                return ended
            state = self._state()
            if state == DAMAGED:
                return state
            if state in TERMINAL:
                if self._process is not None:
                    self._process.wait()
                elif self._store_state == "RUNNING":
                    state = self._await_store(state, deadline)
                return state
            if deadline is not None and time.monotonic() > deadline:
                ref = job_ref(self.job_dir)
                raise JobTimeoutError(
                    f"job {self.job_id} still {state} after {timeout} s: wait longer "
                    f"(qshpc wait {ref} --timeout S), or see `qshpc status {ref}`"
                )
            if verbose:
                import logging

                logging.getLogger("qshpc").info("job %s: %s", self.job_id, state)
            if self._process is None:
                time.sleep(delay)
            elif self._process.poll() is None:
                # The launcher this client started exits right after the store is final:
                # its exit wakes this wait, so the store is looked at only at the longest
                # pause meanwhile. A look reads the whole meta (20-50 ms of CPU on the
                # seed's 512 tasks), taken from the job's own ranks on a small machine:
                # the back-off's early looks cost a kernel 0.2 CPU s in a 4 s job.
                longest = poll * 5
                if deadline is not None:
                    longest = min(longest, max(0.0, deadline - time.monotonic()))
                _wait_for_exit(self._process, longest, self._end_note if store_final else "")
            delay = min(poll * 5, delay * 1.5)

    def _noted_end(self) -> str | None:
        """The final state rank 0 noted while the launcher still runs, else None.

        Rank 0 writes the note after ``finalize`` (the final state and the saved
        result fsynced, renamed into place, the journal gone) and after releasing
        the job: the store then reads as it will after every process has exited.
        """
        if not self._end_note or self._process is None or self._process.poll() is not None:
            return None
        end = read_end_note(self._end_note)
        return None if end is None else str(end["state"])

    def _settle(self, timeout: float = 30.0) -> None:
        """Once the store is final (an early ``result()`` returned at the note), let the
        launcher exit before the logs are read (its last log lines, the ranks' teardown)."""
        if self._process is not None and self._noted_end() is not None:
            _wait_for_exit(self._process, timeout)

    def result(
        self,
        wait: bool | float = True,
        cadence: float = 5,
        verbose: bool = False,
        maxwait: int = 0,
        *,
        timeout: float | None = None,
        allow_pickle: bool = False,
    ) -> Any:
        """Wait for the job and return what the program passed to ``save_result``.

        qiskit-serverless's signature (0.12 on: ``maxwait``), with qshpc's ``timeout``
        and ``allow_pickle`` as keywords.

        Args:
            wait: Wait for the job to end (False: return None while it runs). A
                number is taken as ``timeout`` (qshpc's earlier first argument).
            cadence: The longest pause between two looks at the job, in seconds
                (it looks sooner at first, so short jobs return at once).
            verbose: Log a line while waiting, and one per look (``logging``, at INFO).
            maxwait: qiskit-serverless's limit: wait at most ``maxwait`` times ``cadence``
                seconds, then return None if the job has not ended (0: no limit).
            timeout: Give up after this many seconds (TimeoutError).
            allow_pickle: Read a result stored as a pickle (only stores you trust).

        Returns:
            The result; None when the program never called ``save_result`` (or,
            with ``wait=False``, when the job has not ended). A job that ended FAILED
            or CANCELED after its program saved a result returns that result (nothing
            computed is lost; ``qshpc result`` prints it and exits 1): check
            :meth:`status` where that matters.

        Raises:
            JobFailedError: The job ended FAILED or CANCELED without a saved result (the
                message holds its error).
            TimeoutError: Not finished within ``timeout`` seconds.
            UserError: ``timeout`` (or a number ``wait``) is NaN, infinite or negative;
                ``maxwait`` is no whole number of 0 or more.
        """
        from qshpc.jobs.seconds import seconds

        if not isinstance(wait, bool) and isinstance(wait, (int, float)):
            wait, timeout = True, seconds(wait, "wait=", "True to wait as long as it takes")
        timeout = seconds(timeout, "timeout=", "None to wait as long as it takes")
        if isinstance(maxwait, bool) or not isinstance(maxwait, int) or maxwait < 0:
            raise UserError(
                f"maxwait= must be a whole number of looks at the job, 0 or more (0: no limit), "
                f"got {maxwait!r}"
            )
        limit = maxwait * max(0.01, float(cadence))
        if wait and maxwait and (timeout is None or limit < timeout):
            # qiskit-serverless's meaning: give up quietly after maxwait looks (None if not ended)
            try:
                return self.result(True, cadence, verbose, timeout=limit, allow_pickle=allow_pickle)
            except JobTimeoutError:
                return None
        if not wait:
            state = self._state()
            if state not in TERMINAL and state != DAMAGED:
                return None
        else:
            if verbose:
                import logging

                logging.getLogger("qshpc").info("Waiting for job %s result.", self.job_id)
            state = self._result_wait(timeout, max(0.01, float(cadence)) / 5, verbose)
        from qshpc.store import JobReader

        if state == DAMAGED:
            from qshpc.errors import StoreError

            meta = self._meta or {}
            raise StoreError(f"job {self.job_id}: {meta.get('error')}; {meta.get('recoverable')}")

        with JobReader.open(self.job_dir) as r:
            try:
                with _beside_program(r, allow_pickle):
                    return r.result(allow_pickle=allow_pickle)
            except NoResultError:
                if state != "SUCCEEDED":
                    raise JobFailedError(
                        f"job {self.job_id} ended {state}: {self.error_message() or 'no error text'}"
                    ) from None
                return None

    def _result_wait(self, timeout: float | None, poll: float, verbose: bool) -> str:
        try:
            return self._wait(timeout, poll, verbose, store_final=True)
        except KeyboardInterrupt:  # as wait()
            raise KeyboardInterrupt(
                f"job {self.job_id} was left {self._state()}: job.result() waits again, "
                "job.stop() cancels it"
            ) from None

    def error_message(self) -> str | None:
        """The error text of a FAILED or CANCELED job (None otherwise)."""
        err = self.info().get("error")
        return str(err) if err else None

    @overload
    def tasks(self, as_frame: Literal[False] = False) -> TaskList: ...
    @overload
    def tasks(self, as_frame: Literal[True]) -> pd.DataFrame: ...
    def tasks(self, as_frame: bool = False) -> TaskList | pd.DataFrame:
        """One dict per task attempt (id, function, state, rank, host, times, seed, error).

        Args:
            as_frame: Return a pandas DataFrame instead (one row per attempt;
                also ``job.tasks().to_pandas()``).
        """
        if as_frame:
            from qshpc.notebook.frames import job_tasks_frame

            return job_tasks_frame(self.job_dir)
        from qshpc.notebook.display import TaskList
        from qshpc.store import JobReader

        with JobReader.open(self.job_dir) as r:
            return TaskList(r.tasks())

    def logs(self, rank: int | None = None, tail: int | None = None) -> str:
        """The logs written so far (all ranks, or one), readable while the job runs.

        A Slurm job's ``slurm-*`` files (submitit's and Slurm's lines, start-up errors)
        are shown without the lines rank R's log holds already: a rank's output reaches
        both files (was shown twice: a program printing 2000 lines showed 4000).
        ``tail``: only the last lines of each log (as ``tail -n``), read from its end.
        The text of :meth:`iter_logs` joined (a log bigger than memory: iterate that).

        Raises:
            UserError: ``tail`` is not a whole number, 0 or more.
        """
        return "".join(self.iter_logs(rank, tail=tail))

    def iter_logs(
        self, rank: int | None = None, follow: bool = False, tail: int | None = None
    ) -> Iterator[str]:
        """The text of :meth:`logs`, a chunk at a time: a log is never held whole.

        Args:
            rank: Only this rank's logs (its ``rank-R.out`` and Slurm output files).
            follow: Go on yielding what the logs gain until the job ends (each log
                read from where the last look stopped); several growing logs come
                as ``tail -f`` shows them, the name again at each switch.
            tail: Only the last ``tail`` lines of each log (lines end at ``\\n``,
                as ``tail -n``), found by reading from the log's end. A Slurm output
                file whose rank has a log is cut after its shared lines are left
                out (its rank's log is read through once, a chunk at a time, for
                them). With ``follow``: the logs the first look finds; a log that
                appears later is new, all of it comes.

        Raises:
            UserError: ``tail`` is not a whole number, 0 or more (at the call).
        """
        reader = LogReader(self, rank, tail=tail)
        return reader.follow() if follow else reader.once()

    def filtered_logs(self, **kwargs: Any) -> str:
        """The log lines that match ``include`` and not ``exclude`` (regular expressions).

        quantum-serverless's ``filtered_logs``: lines of every rank's log (without
        the ``==> rank-N.out <==`` headers of :meth:`logs`), each ended by a newline.
        """
        import re

        unknown = set(kwargs) - {"include", "exclude"}
        if unknown:
            from qshpc.errors import UserError

            raise UserError(f"filtered_logs takes include= and exclude=, got {sorted(unknown)}")
        text = "".join(_with_newline("".join(t)) for _, t in LogReader(self).parts())
        include, exclude = kwargs.get("include"), kwargs.get("exclude")
        if include is not None:
            text = "".join(line + "\n" for line in text.split("\n") if re.search(include, line))
        if exclude is not None:
            text = "".join(
                line + "\n" for line in text.split("\n") if line and not re.search(exclude, line)
            )
        return text

    def _log_files(self, rank: int | None) -> list[Path]:
        files = sorted((self.job_dir / "logs").glob("rank-*.out"), key=_rank_of)
        extra = sorted((self.job_dir / "logs").glob("slurm-*"))
        if rank is None:
            return files + extra
        # rank R's Slurm file too: its start-up errors are there only (int("751_1") is
        # 7511: the Slurm files were never any rank's)
        return [f for f in files if _rank_of(f) == rank] + [
            f for f in extra if _slurm_rank(f) == str(rank)
        ]

    def stop(self, wait: float = 10.0) -> bool:
        """Cancel the job (SIGTERM to a local run, scancel for Slurm); finished results are kept.

        Then wait up to ``wait`` seconds for the job to end, so that ``status()``
        says CANCELED once it returns, as it did on quantum-serverless's gateway
        (which marked a stopped job at once). A job ends within seconds of the
        signal (its running calls get 2 s); ``wait=0`` returns at once (``qshpc cancel``).

        Returns:
            True when a running job was asked to stop.
        """
        asked = self._ask_stop()
        if asked and wait > 0:
            with contextlib.suppress(TimeoutError):
                self.wait(wait, poll=0.05)
        return asked

    def _ask_stop(self) -> bool:
        """Send the cancel; True when the job had not ended."""
        from qshpc.store.lock import wait_step

        wait_step(self.job_dir)  # a `qshpc submit --resume` under way: cancel what it submits
        meta = self.info()
        _refuse_copy(self.job_dir, meta)
        if meta.get("state") in TERMINAL:
            return False
        running = _running_slurm_job(self.job_dir)
        if running is not None:
            # The Slurm job of the run that holds the job now: a run in the user's own
            # sbatch script, or a --resume under a new Slurm job (hunt12d: a cancel from
            # the login node marked such a job CANCELED, or scancelled the ended first
            # Slurm job, and the run went on).
            from qshpc.submit.slurm import cancel, refuse_other_cluster

            refuse_other_cluster(*running)
            cancel(running[0])
            return True
        if meta.get("slurm_job_id"):
            from qshpc.submit.slurm import cancel, refuse_other_cluster

            slurm_id = str(meta["slurm_job_id"])
            refuse_other_cluster(slurm_id, read_slurm_cluster(self.job_dir))
            cancel(slurm_id)
            if meta.get("state") == "QUEUED" and "_" in slurm_id:
                # Slurm splits a pending array element off to cancel it, and its
                # accounting may never list it: record the cancel here.
                mark_terminal(self.job_dir, "CANCELED", "cancelled (scancel) before it started")
            return True
        if self._process is not None and self._process.poll() is None:
            if meta.get("state") == "QUEUED":
                # The launcher may not have started the ranks yet (or not even set up its
                # signal handling): recorded here, the cancel holds whatever it had done.
                mark_terminal(self.job_dir, "CANCELED", "cancelled (Job.stop) before it started")
            self._process.send_signal(signal.SIGTERM)
            return True
        if _signal_rank0(meta, signal.SIGTERM):  # (never a process that reused its pid)
            return True
        mark_terminal(self.job_dir, "CANCELED", "cancelled before it started")
        return True

    def kill_if_stuck(self, grace: float) -> str | None:
        """After :meth:`stop`: a run on this host still going ``grace`` seconds later (its
        program handles SIGTERM itself, and goes on, or rank 0 is stopped: SIGSTOP, Ctrl-Z)
        has its rank 0 killed (SIGKILL), the
        job recorded CANCELED; returns what was done, None when the job stopped (or runs
        under Slurm, whose scancel ends it after its KillWait).

        hunt16: ``qshpc cancel`` of such a program said "cancel requested" and the job ran on.
        """

        from qshpc.jobs.seconds import seconds

        grace = seconds(grace, "grace=", "0 to kill it at once") or 0.0

        def stuck() -> int | None:
            meta = self.info()
            if meta.get("state") in TERMINAL or meta.get("slurm_job_id"):
                return None
            if _running_slurm_job(self.job_dir) is not None:
                return None
            return _rank0_pid(meta)  # (None once gone, or its pid reused)

        if stuck() is None:  # ended, not started, on Slurm or another host: no wait
            return None
        with contextlib.suppress(TimeoutError):
            self.wait(grace, poll=0.05)
            return None
        pid = stuck()
        if pid is None:
            return None
        from qshpc.runtime.procs import stat_fields

        if stat_fields(pid)[:1] in ([b"T"], [b"t"]):  # review35 F7: it handled nothing
            why = (
                f"job cancelled: rank 0 (pid {pid}) was stopped (SIGSTOP, Ctrl-Z, a "
                f"debugger or a Slurm suspend), so SIGTERM could not end it in {grace:g} s; "
                "it was killed (SIGKILL)"
            )
        else:
            why = (
                f"job cancelled: its program went on {grace:g} s after SIGTERM (it handles "
                f"SIGTERM itself), so rank 0 (pid {pid}) was killed (SIGKILL)"
            )
        mark_terminal(self.job_dir, "CANCELED", why)  # kept by the launcher's post-mortem
        _signal_rank0(self.info(), signal.SIGKILL)
        return why

    cancel = stop

    def plot(self, out: str | os.PathLike[str] | None = None, timeline: bool = False) -> Path:
        """Draw the saved result, or with ``timeline`` the task timeline (see ``qshpc plot``)."""
        if timeline:
            from qshpc.report.page import write_timeline

            return write_timeline(self.job_dir, out, self.info())
        from qshpc.jobs.plot import plot_job

        return plot_job(self, out)


@contextlib.contextmanager
def _beside_program(reader: JobReader, allow_pickle: bool) -> Iterator[None]:
    """With ``allow_pickle``: the program's folder last on ``sys.path`` while the result
    loads (as the job's arguments load: :func:`qshpc.jobs.prepare.modules_beside`), so
    that a value of a class from a module beside the program reads from any folder
    (``qshpc result --allow-pickle`` too: review31 F7). A module still missing is named
    with that folder."""
    entry = None
    if allow_pickle:
        from qshpc.errors import QshpcError

        try:
            entry = reader.meta().get("entrypoint")
        except QshpcError:  # (the result's own read says what is wrong)
            pass
    if not entry:
        yield
        return
    from qshpc.jobs.prepare import modules_beside
    from qshpc.store.encoding_blob import ModuleMissingError

    program = Path(str(entry))
    try:
        with modules_beside(program):
            yield
    except ModuleMissingError as exc:
        raise ModuleMissingError(
            exc.source,
            exc.module,
            exc.why,
            f"the program's folder {program.parent} does not hold it either: "
            "put the folder that holds it on PYTHONPATH",
        ) from exc.__cause__


def _warn_unfolded(job_dir: Path, meta: Mapping[str, Any]) -> None:
    """Say that an ended job's ``job.h5`` stays incomplete because its folder cannot be written.

    hunt22c left it to ``qshpc run`` alone: ``qshpc result``, ``qshpc status`` and
    ``Job.result()`` read the final state and result from the journal without a word, and
    plain h5py saw neither in ``job.h5``. (A full disk is left silent: the fold waits for
    room, docs/store.md.)
    """
    from qshpc.errors import QshpcWarning
    from qshpc.jobs.paths import job_ref
    from qshpc.store.layout import job_file

    store = job_file(job_dir)
    if not (job_dir / JOURNAL_FILE).exists():
        return  # folded meanwhile
    if os.access(job_dir, os.W_OK) and os.access(store, os.W_OK):
        return
    import warnings

    ref = job_ref(job_dir)
    warnings.warn(
        QshpcWarning(
            f"job {meta.get('id', job_dir.name)}'s store {store} is incomplete (its folder "
            f"cannot be written): its final state and result are read from "
            f"{job_dir / JOURNAL_FILE}; make the folder writable (chmod -R u+rw {job_dir}; "
            f"a read-only file system: see mount), then `qshpc status {ref}` completes it"
        ),
        stacklevel=3,
    )


def _waiting_resume(job_dir: Path, meta: dict[str, Any]) -> None:
    """An ended job that ``qshpc submit --resume`` sent to Slurm again is QUEUED until its
    new run starts (the store still holds the last run's end until then, or RUNNING
    when the last run's ranks died before they could record its end)."""
    state = meta.get("state")
    if state == JobState.SUCCEEDED or state == DAMAGED:
        return
    marker = read_resubmitted(job_dir)
    if marker is None:
        return
    slurm_id, when = marker
    override = read_override(job_dir) or {}
    # The last run's start (``started`` is the first run's: a resumed run that failed
    # again showed QUEUED for good), a cancel recorded here, or Slurm's final answer
    # about the new Slurm job (kept once it ended, even before its run could start).
    last = max(
        float(meta.get("last_started") or meta.get("started") or 0),
        float(override.get("time") or 0),  # type: ignore[arg-type]
        _slurm_answer_time(job_dir),
    )
    if when <= last:
        return  # the new run started (or Slurm ended it before it could)
    meta.update(
        state="QUEUED",
        previous_state=state,
        previous_error=meta.get("error"),
        error=None,
        slurm_job_id=slurm_id,
        sub_status=f"resumed as Slurm job {slurm_id} (qshpc submit --resume): its run has not started yet",
    )


def _slurm_answer_time(job_dir: Path) -> float:
    """When Slurm's final answer kept in ``job_dir`` was recorded (0: none kept)."""
    from qshpc.submit.state import kept_answer

    when = (kept_answer(job_dir) or {}).get("time")
    return float(when) if isinstance(when, (int, float)) and not isinstance(when, bool) else 0.0


def _running_slurm_job(job_dir: Path) -> tuple[str, str | None] | None:
    """The Slurm job id and cluster of the live run holding ``job_dir``'s lock, None when
    none holds it."""
    from qshpc.store.lock import holder_alive

    holder = holder_alive(job_dir, runs_only=True)
    if holder is None or not holder.slurm_job:
        return None
    return str(holder.slurm_job), holder.slurm_cluster


def _rank0_here(meta: dict[str, Any]) -> tuple[int, int | None] | None:
    """Rank 0's recorded ``(pid, start ticks)`` when it ran on this host (ticks None: an
    older job, which did not record them), else None."""
    import socket

    from qshpc.store.lock import same_pid_space

    ranks = meta.get("ranks") or []
    if (  # (in this pid namespace too: review33 F2)
        ranks
        and ranks[0].get("host") == socket.gethostname()
        and same_pid_space(ranks[0].get("pidns"))
    ):
        ticks = ranks[0].get("start_ticks")
        return int(ranks[0]["pid"]), ticks if isinstance(ticks, int) else None
    return None


def _rank0_pid(meta: dict[str, Any]) -> int | None:
    """Rank 0's pid on this host while the process runs; None when it ran elsewhere, or is
    gone, or its pid is now another process's (its start time differs: review30 F1)."""
    from qshpc.store.lock import process_is

    here = _rank0_here(meta)
    return here[0] if here is not None and process_is(*here) else None


def _signal_rank0(meta: dict[str, Any], sig: int) -> bool:
    """Send ``sig`` to rank 0 (on this host) if that process still runs; True when sent.

    A pid alone names whichever process has it now: one reused after the job's ranks
    were killed (a node's OOM killer) is an unrelated process, never signalled. The
    process is held by a pidfd before its start time is checked, so the pid cannot
    change hands between the check and the signal (a kernel without pidfds: a kill).
    """
    from qshpc.store.lock import process_is

    here = _rank0_here(meta)
    if here is None:
        return False
    pid, ticks = here
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:  # no pidfds (ENOSYS) or none left (EMFILE)
        fd = -1
    try:
        if not process_is(pid, ticks):
            return False
        if fd >= 0:
            signal.pidfd_send_signal(fd, sig)
        else:
            os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def _never_started(job_dir: Path, meta: dict[str, Any]) -> None:
    """A QUEUED job whose run claimed it and is gone: shown FAILED (nothing is written).

    Rank 0 of ``mpiexec -n N python -m qshpc run`` (no launcher to record it)
    creates the job, takes its lock and only then starts it: a rank killed in
    between (the OOM killer, a kill -9) ended the run and left the job QUEUED
    for good. The dead lock holder tells it from a job that waits for its run
    (a client's, one created by ``qshpc submit``: no holder yet).
    """
    from qshpc.store.lock import holder_alive, read_holder

    holder = read_holder(job_dir)
    if holder is None or holder_alive(job_dir) is not None:
        return
    meta["state"] = JobState.FAILED.value
    meta["error"] = (
        f"the run that claimed this job (host {holder.host}, pid {holder.pid}) ended before "
        "the job started (a rank killed while the ranks started?): nothing ran; "
        f"`qshpc run PROGRAM --resume {job_ref(job_dir)}` runs it"
    )
    if not meta.get("finished") and holder.since:
        meta["finished"] = holder.since


def _original(job_dir: Path, meta: Mapping[str, Any]) -> tuple[str, str, bool] | None:
    """When ``job_dir`` is a copy of a job's folder made while its run worked there on this
    host (``cp -a``, ``rsync``: the run's lock and rank 0's record, copied with it, name
    the other folder): that folder's path, the run, and whether it still runs; else None
    (review35 F6: ``qshpc cancel COPY`` cancelled the live job, ``status`` said RUNNING)."""
    from qshpc.store.lock import copied_from, not_this_folder, pid_gone, process_is

    holder = copied_from(job_dir)
    if holder is not None:
        return str(holder.path), holder.describe(), not pid_gone(holder)
    ranks = meta.get("ranks") or []
    first = ranks[0] if isinstance(ranks[0] if ranks else None, dict) else {}
    here = _rank0_here(dict(meta))
    if here is None or not not_this_folder(first.get("folder_id"), job_dir):
        return None  # (a lock taken over since, by a read: rank 0's record still tells)
    return str(first.get("folder")), f"host {first.get('host')}, pid {here[0]}", process_is(*here)


#: :func:`_copy_note`'s word for a job's own folder put back in place while its run was dead.
_RESTORED = "restored"


def _same_folder(path: str, job_dir: Path) -> bool:
    """The recorded folder ``path`` is ``job_dir`` (by name: the folder itself is another)."""
    try:
        return os.path.realpath(path) == os.path.realpath(job_dir)
    except (OSError, ValueError):
        return False


def _copy_note(job_dir: Path, meta: Mapping[str, Any]) -> str | None:
    """Why ``job_dir``, a job left unfinished, is shown FAILED when it is a copy of a job's
    folder (:func:`_original`): its run never writes here. Nothing is written.
    :data:`_RESTORED` when the folder the run recorded is this very path and the run is
    dead: the job's own folder, removed and put back (review55 R2: it was called a copy of
    itself, and the run's end, kill and ``--resume`` were hidden)."""
    original = _original(job_dir, meta)
    if original is None:
        return None
    import shlex

    from qshpc.text import shown

    path, run, alive = original
    if _same_folder(path, job_dir):
        if not alive:
            return _RESTORED
        return (
            f"this folder was replaced in place (removed and put back) while its run "
            f"({shown(run)}) works: that run writes to the folder it opened, now removed, "
            "never here. Once it ends, `--resume` goes on from what this folder holds"
        )
    return (
        f"this folder is a copy of the job's folder {shown(path)}, made while its run "
        f"({shown(run)}) worked there: that run never writes here. `qshpc status "
        f"{shlex.quote(path)}` shows the job"
    )


def _refuse_copy(job_dir: Path, meta: Mapping[str, Any]) -> None:
    """Refuse to cancel through a copy of a running job's folder: it would stop the run of
    the folder it was copied from (review35 F6).

    Raises:
        UserError: Naming the run's own folder, and the cancel of it.
    """
    original = _original(job_dir, meta)
    if original is None or not original[2] or _same_folder(original[0], job_dir):
        return  # (the same path: its own run, the folder replaced under it: cancel it)
    import shlex

    from qshpc.errors import UserError
    from qshpc.text import shown

    path, run, _ = original
    raise UserError(
        f"{shown(job_dir)} is a copy of the job's folder {shown(path)}, made while its "
        f"run ({shown(run)}) worked there: cancelling the copy would stop that run. "
        f"To cancel the job: `qshpc cancel {shlex.quote(path)}`"
    )


def _rank0_alive(meta: dict[str, Any]) -> bool:
    """Whether rank 0 of a RUNNING job still runs on this host (another host's: assumed so).

    A zombie is dead: a rank 0 killed with its launcher and not yet reaped (in a
    container whose first process does not reap orphans, never) kept the job RUNNING.
    """
    here = _rank0_here(meta)
    if here is None:
        return True  # another host: cannot tell from here
    from qshpc.store.lock import process_is

    return process_is(*here)  # a pid reused by another process: rank 0 is gone (review30 F1)


def open_job(job: str | os.PathLike[str]) -> Job:
    """Return the :class:`Job` for a job id, a job directory, or a Slurm job id (``123``, ``123_4``).

    Raises:
        JobNotFoundError: No such job.
        UserError: ``job`` is not a string or a path, or starts with ``~user`` of no
            such user.
    """
    if not isinstance(job, (str, os.PathLike)):
        from qshpc.errors import UserError

        raise UserError(f"a job id is a string, got {type(job).__name__}")
    if os.fspath(job).startswith("~"):  # ~nosuchuser/x: a RuntimeError traceback (mend20)
        from qshpc.jobs.prepare import expand_home

        expand_home(job, "the job")
    return Job(resolve_job_dir(job))


def list_jobs(state: str | None = None) -> JobList[Job]:
    """Jobs under ``$QSHPC_HOME/jobs``, newest first (optionally only one state).

    Filtering by state asks Slurm once for all the Slurm jobs (:func:`read_infos`).
    A state may be spelled in quantum-serverless's words too (``"DONE"``,
    ``"ERROR"``), in any case. The list shows as a table in Jupyter;
    ``.to_pandas()`` makes it a DataFrame.

    Raises:
        UserError: ``state`` names no state.
    """
    from qshpc.notebook.display import JobList

    if state:
        state = _state_asked(state)
    root = jobs_root()
    if not root.is_dir():
        return JobList(infos=read_infos)
    # Newest first by when each job was made, not by folder name (review24 F3)
    folders = sorted((d for d in root.iterdir() if has_job_file(d)), key=created_key, reverse=True)
    jobs = [Job(d) for d in folders]
    if state:
        jobs = [j for j, m in read_infos(jobs) if _state_of(m) == state]
    return JobList(jobs, infos=read_infos)


def _state_asked(state: str) -> str:
    """qshpc's word for a state asked for in either spelling; refused when it names none."""
    from qshpc.jobstate import SERVERLESS_NAMES, canonical

    word = canonical(str(state).upper())
    if word not in JobState.__members__ and word != "UNREADABLE":
        names = ", ".join(
            f"{s} ({SERVERLESS_NAMES[s]})" if SERVERLESS_NAMES.get(s, s) != s else s
            for s in [*JobState.__members__, "UNREADABLE"]
        )
        from qshpc.errors import UserError

        raise UserError(f"unknown state {state!r}: use one of {names}")
    return word


def _state_of(info: dict[str, Any] | Exception) -> str:
    return "UNREADABLE" if isinstance(info, Exception) else str(info.get("state"))


def read_infos(
    jobs: Sequence[Job],
    keep: Callable[[dict[str, Any]], bool] | None = None,
    limit: int | None = None,
) -> list[tuple[Job, dict[str, Any] | Exception]]:
    """``job.info()`` of many jobs, asking Slurm ONCE for all of them (one ``sacct -j a,b,c``).

    Args:
        jobs: The jobs, in the order wanted.
        keep: Only jobs whose store meta passes this (read before Slurm is asked);
            jobs whose store cannot be read are kept (as their exception).
        limit: Stop after this many kept jobs.

    Returns:
        ``(job, info)`` per kept job, in order; ``info`` is the exception that
        reading it raised when its store is unreadable.
    """
    picked: list[tuple[Job, dict[str, Any] | Exception]] = []
    for job in jobs:
        if limit is not None and len(picked) >= limit:
            break
        try:
            meta: dict[str, Any] | Exception = job.store_meta()
        except Exception as exc:
            meta = exc
        if keep is not None and isinstance(meta, dict) and not keep(meta):
            continue
        picked.append((job, meta))
    views: SlurmViews | None = None
    if any(isinstance(m, dict) and m.get("slurm_job_id") for _, m in picked):
        from qshpc.submit.slurm import query_many
        from qshpc.submit.state import slurm_id_to_ask

        ask = [slurm_id_to_ask(j.job_dir, m) for j, m in picked if isinstance(m, dict)]
        views = query_many([i for i in ask if i])
    out: list[tuple[Job, dict[str, Any] | Exception]] = []
    for job, meta in picked:
        if isinstance(meta, dict):
            try:
                meta = job.complete_info(meta, views)
            except Exception as exc:
                meta = exc
        out.append((job, meta))
    return out


def discard_note(path: str) -> None:
    """Remove a launcher's end note (the launcher removes it too when it ends)."""
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _drop_note_of_ended(process: subprocess.Popen[bytes], path: str) -> None:
    """A Job let go: its note goes when its launcher has ended; a launcher still running
    reads it at its exit (else it opens the store: an h5py import, 0.2 CPU s) and removes it."""
    if process.poll() is not None:
        discard_note(path)


#: How often a ``result()`` looks at the end note while the launcher runs (a stat).
_NOTE_LOOK = 0.01


def _wait_for_exit(process: subprocess.Popen[bytes], timeout: float, note: str = "") -> None:
    """Return when ``process`` exits, or after ``timeout`` seconds, whichever is first;
    with ``note``, also once that end note holds the job's end (looked at every
    :data:`_NOTE_LOOK` seconds).

    A pidfd wakes the caller the moment the process exits (Popen.wait(timeout)
    would notice it only at its next poll, up to 50 ms later); it is opened once
    and polled in slices between the note's looks.
    """
    if process.poll() is not None:
        return
    end = time.monotonic() + timeout
    try:
        fd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):  # not Linux 5.3+, or already reaped
        fd = None
    try:
        while not (note and read_end_note(note) is not None):
            left = end - time.monotonic()
            if left <= 0:
                return
            step = min(left, _NOTE_LOOK) if note else left
            if fd is not None:
                if select.select([fd], [], [], step)[0]:
                    return  # exited (reaped by the caller's next poll or wait)
            else:
                try:
                    process.wait(step)
                    return
                except subprocess.TimeoutExpired:
                    pass
    finally:
        if fd is not None:
            os.close(fd)
