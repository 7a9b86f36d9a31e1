"""Slurm itself: every Slurm command qshpc runs and every ``SLURM_*`` variable it reads.

Commands (each with a timeout; none raises for Slurm being slow or absent,
except :func:`cancel`, which the user asked for):

- ``sacct``/``squeue``/``scontrol show job``: :func:`query_many` asks about
  many jobs with ONE ``sacct -j a,b,c`` (then one ``squeue`` for the jobs
  accounting does not know, then ``scontrol`` per job), so ``qshpc list`` asks
  Slurm once; :func:`query` asks about one;
- ``scancel``: :func:`cancel`; ``scontrol requeue``: :func:`requeue`;
  ``scontrol show job`` for the restart count: :func:`restarts`;
- ``sinfo``: :func:`partitions`, and :func:`sinfo` for ``qshpc doctor``;
- ``srun``: :class:`SrunStep`, a distributed Aer step as a job step of the
  allocation (:func:`step_launcher`).

``sbatch`` is run by submitit (:mod:`qshpc.submit.submission`).

Environment: :class:`TaskEnv` (:func:`task_env`) is what a process inside a
Slurm job reads of Slurm's variables; :func:`run_record` is what rank 0 keeps
of them in the store. The runtime never reads them: :class:`SlurmScheduler`
hands it what it needs (cores per task, the record, requeue on signals) through
:class:`qshpc.runtime.scheduler.Scheduler`.

How Slurm's words map onto qshpc's states: :mod:`qshpc.submit.slurm_states`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qshpc import settings
from qshpc.errors import UserError
from qshpc.runtime.scheduler import Requeue

if TYPE_CHECKING:  # ranks import this module: the commands' machinery loads where used
    import subprocess

    from qshpc.submit.slurm_states import SlurmView

#: Seconds a state query (sacct, squeue, scontrol show) may take.
QUERY_TIMEOUT_S = 10
#: Seconds an action (scancel, scontrol requeue, sinfo for an sbatch error) may take.
COMMAND_TIMEOUT_S = 30
#: Seconds ``scontrol requeue`` and the restart count may take (rank 0, near a time limit).
SCONTROL_TIMEOUT_S = 20
#: ``sacct --format`` of :func:`query_many` (JobID, State, ExitCode, Reason).
SACCT_FORMAT = "--format=JobID,State%30,ExitCode,Reason%60"
#: Slurm variables rank 0 records in the store (``runs/<n>`` ``slurm``).
RECORD_KEYS = (
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_JOB_NODELIST",
    "SLURM_NTASKS",
    "SLURM_CLUSTER_NAME",
    "SLURM_RESTART_COUNT",
)


def is_slurm_id(text: str) -> bool:
    """True for a Slurm job id: ``123``, or an array element ``123_4``."""
    main, sep, index = text.partition("_")
    return main.isdigit() and (not sep or index.isdigit())


def run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run one Slurm command, capturing its output.

    Raises:
        OSError: The command cannot be started (not installed).
        subprocess.TimeoutExpired: It did not answer within ``timeout`` seconds.
    """
    import subprocess

    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def _output(args: list[str], timeout: float = QUERY_TIMEOUT_S) -> str | None:
    """The command's stdout, or None when it fails, times out or is missing."""
    import subprocess

    try:
        out = run(args, timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


# -- what Slurm says about jobs ----------------------------------------------------


def query_many(slurm_ids: Iterable[str]) -> dict[str, SlurmView | None]:
    """Ask Slurm about many jobs at once: one ``sacct``, then one ``squeue``, then ``scontrol``.

    ``squeue`` is asked about every job sacct has no row for, or lists as queued (or in a
    state qshpc does not know), and its answer
    wins for a job it lists in a live state: it is the controller's own, while sacct's
    (slurmdbd) lags by up to ~1 s, and a job squeue called RUNNING was then PENDING
    again in sacct (review32 F8: the state went RUNNING -> QUEUED -> RUNNING).

    Returns:
        Every id given (``123`` or an array element ``123_4``), with Slurm's view,
        or None when no command knows it (or Slurm does not answer).
    """
    from qshpc.jobstate import JobState
    from qshpc.submit.slurm_states import parse_sacct, parse_scontrol, parse_squeue

    ids = sorted({i for i in slurm_ids if is_slurm_id(i)})
    views: dict[str, SlurmView | None] = dict.fromkeys(ids)
    if not ids:
        return views
    out = _output(["sacct", "-X", "--parsable2", "--noheader", "-j", ",".join(ids), SACCT_FORMAT])
    if out:
        for i in ids:
            views[i] = parse_sacct(out, i)
    # Only where sacct may lag behind the controller: no row yet, still queued (a start not
    # recorded yet), or a word qshpc does not know. A job sacct calls RUNNING is asked no
    # more (review33 F6: every poll of a running job cost squeue too, 2 RPCs instead of 1).
    lagging = (JobState.QUEUED, JobState.UNKNOWN)
    live = [i for i in ids if (v := views[i]) is None or v.state in lagging]
    if live:
        out = _output(["squeue", "-h", "-j", ",".join(live), "-o", "%i|%T|%r"])
        listed = parse_squeue(out) if out else {}
        for i in live:
            views[i] = prefer_live(views[i], listed.get(i))
    for i in [i for i in ids if views[i] is None]:
        out = _output(["scontrol", "show", "job", i])
        views[i] = parse_scontrol(out) if out else None
    return views


def prefer_live(sacct: SlurmView | None, squeue: SlurmView | None) -> SlurmView | None:
    """The view to take of a job sacct does not call ended: squeue's when it lists the job
    in a live state (or sacct has no row yet), else sacct's."""
    if squeue is None:
        return sacct
    if sacct is None or not squeue.ended:
        return squeue
    return sacct  # squeue's brief ended line has no exit code: sacct's row follows


def query_live(slurm_id: str) -> SlurmView | None:
    """What ``squeue`` says of a live job (None: not listed, or Slurm not answering).

    sacct's answer can lag behind the controller's (slurmdbd under load): squeue's
    is the controller's own, for jobs it still holds.
    """
    from qshpc.submit.slurm_states import parse_squeue

    if not is_slurm_id(slurm_id):
        return None
    out = _output(["squeue", "-h", "-j", slurm_id, "-o", "%i|%T|%r"])
    return parse_squeue(out).get(slurm_id) if out else None


def job_over(job_id: str, cluster: str | None = None) -> bool:
    """True only when Slurm says job ``job_id`` (a raw id, or an array element's ``A_T``)
    has ended and none of its processes is left: ``sacct`` gives an ended state and ``squeue`` no longer
    lists it (``CANCELLED`` comes from sacct while the job is still COMPLETING, its
    processes being ended: a run's rank 0 may still write its store then). Any doubt
    (Slurm not answering, an unknown word) is False.

    :func:`qshpc.store.lock` uses it for a lock held from another host (see
    :mod:`qshpc.store.holders`).

    ``cluster``: the Slurm cluster the job ran on (``SLURM_CLUSTER_NAME``), when known.
    Job ids are per cluster and ``sacct`` asks the cluster it runs on: from another one
    sharing the file system, the same id names some other job, whose end took the live
    lock of a run on the first cluster (two writers of one store). A job of another
    cluster is never over here.
    """
    import subprocess

    from qshpc.jobstate import TERMINAL
    from qshpc.submit.slurm_states import SLURM_STATES

    if not is_slurm_id(job_id):
        return False
    # An array element's own id ``A_T`` (its raw id may be the array's, which squeue
    # answers with every element: review34 F2) is matched on sacct's JobID.
    field = "JobID" if "_" in job_id else "JobIDRaw"
    out = _output(
        [
            "sacct",
            "-X",
            "--parsable2",
            "--noheader",
            "-j",
            job_id,
            f"--format={field},State,Cluster",
        ]
    )
    rows = [line.split("|") for line in (out or "").splitlines() if line.count("|") >= 2]
    states = [
        row[1].split()[0].rstrip("+")
        for row in rows
        if row[0] == job_id and row[1].strip() and (not cluster or row[2] == cluster)
    ]
    if not states or SLURM_STATES.get(states[-1]) not in TERMINAL:
        return False
    try:
        queued = run(["squeue", "-h", "-j", job_id, "-o", "%T"], QUERY_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return False
    if queued.returncode == 0:
        return not queued.stdout.strip()  # listed (COMPLETING...): processes may be left
    return "invalid job id" in (queued.stderr or "").lower()  # forgotten since it ended


def query(slurm_id: str) -> SlurmView | None:
    """Ask Slurm about one job (see :func:`query_many`); None when nobody knows it."""
    return query_many([slurm_id]).get(slurm_id)


def sacct_steps(slurm_job_id: str, fmt: str) -> tuple[str | None, str | None]:
    """``sacct -j ID --parsable2 --noheader --format=FMT``: every step of one job (for reports).

    Never raises for Slurm trouble.

    Returns:
        ``(output, None)``, or ``(None, why)`` when sacct is missing, slow or failing.
    """
    import subprocess

    if not is_slurm_id(slurm_job_id):
        return None, f"{slurm_job_id!r} is not a Slurm job id"
    try:
        out = run(
            ["sacct", "-j", slurm_job_id, "--parsable2", "--noheader", f"--format={fmt}"],
            QUERY_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return None, f"sacct did not answer within {QUERY_TIMEOUT_S} s"
    except OSError as exc:
        return None, f"sacct could not run: {exc.strerror or exc}"
    if out.returncode != 0:
        why = (out.stderr or out.stdout).strip().splitlines()
        return None, f"sacct failed: {why[-1] if why else f'exit code {out.returncode}'}"
    return out.stdout, None


def restarts(job_id: str) -> int | None:
    """How often Slurm restarted job ``job_id`` (``scontrol show job``); None when unknown."""
    if not job_id.isdigit():
        return None
    out = _output(["scontrol", "show", "job", "-o", job_id], SCONTROL_TIMEOUT_S)
    m = re.search(r"\bRestarts=(\d+)", out or "")
    return int(m.group(1)) if m else None


def partitions() -> list[str]:
    """The cluster's partition names (``sinfo``), or [] when sinfo fails."""
    out = _output(["sinfo", "-h", "-o", "%R"], COMMAND_TIMEOUT_S)
    return sorted({p.strip() for p in (out or "").split() if p.strip()})


def sinfo(timeout: float) -> subprocess.CompletedProcess[str] | None:
    """``sinfo -N -h -o '%N %P %a %T'`` for ``qshpc doctor``: a line per node and partition
    (a node in two partitions is on two lines); None when sinfo is not installed.

    Raises:
        subprocess.TimeoutExpired: sinfo did not answer within ``timeout`` seconds.
    """
    exe = shutil.which("sinfo")
    if exe is None:
        return None
    return run([exe, "-N", "-h", "-o", "%N %P %a %T"], timeout)


def conf() -> str | None:
    """``SLURM_CONF``: which cluster the commands talk to (None: Slurm's default)."""
    return os.environ.get("SLURM_CONF") or None


#: ``scontrol show config``'s ClusterName by ``SLURM_CONF``, once it answered.
_CLUSTERS: dict[str | None, str] = {}


def _cluster_of(conf_path: str | None) -> str | None:
    """The cluster name for ``conf_path``, asked once per process; a failed ask is not kept
    (hunt14a: an ``scontrol`` that timed out once under load made every later job of the
    process, a notebook's, record no cluster, and the cluster check was skipped for it)."""
    if conf_path in _CLUSTERS:
        return _CLUSTERS[conf_path]
    out = _output(["scontrol", "show", "config"])
    for line in (out or "").splitlines():
        key, _, value = line.partition("=")
        name = value.strip()
        if key.strip() == "ClusterName" and name:
            if not name.isprintable() or len(name) > 256:
                return None  # not a name (read_slurm_cluster would not take it back)
            _CLUSTERS[conf_path] = name
            return name
    return None


def cluster_name(environ: Mapping[str, str] | None = None) -> str | None:
    """The name of the Slurm cluster this process's Slurm commands talk to, or None.

    Inside a Slurm job, ``SLURM_CLUSTER_NAME``; elsewhere ``scontrol show config``'s
    ClusterName (asked once per process and ``SLURM_CONF``). None when Slurm does not say.
    """
    env = os.environ if environ is None else environ
    return env.get("SLURM_CLUSTER_NAME") or _cluster_of(conf())


def other_cluster(recorded: str | None) -> str | None:
    """This host's cluster name when it is not ``recorded`` (a job's own cluster), else None.

    Job ids are per cluster: where clusters share a file system, the same id on this
    one names another user's job, whose state or cancel must never be taken for the
    job's. Unknown names (an old job, Slurm not answering) are not a difference.
    """
    if not recorded:
        return None
    here = cluster_name()
    return here if here and here != recorded else None


def refuse_other_cluster(slurm_job_id: str, recorded: str | None) -> None:
    """Raise :class:`UserError` when ``slurm_job_id`` belongs to another cluster than this one's."""
    import shlex

    here = other_cluster(recorded)
    if here is not None:
        raise UserError(
            f"Slurm job {slurm_job_id} runs on cluster {recorded!r}, but this host's Slurm "
            f"commands talk to cluster {here!r}, where that id names another job: run this "
            f"on a login node of {recorded!r} (or `scancel -M {shlex.quote(str(recorded))} "
            f"{slurm_job_id}` "
            "where the clusters share a database)"
        )


# -- what qshpc asks of Slurm ------------------------------------------------------------


def cancel(slurm_job_id: str) -> None:
    """Cancel a Slurm job (``scancel``); the runtime marks the store CANCELED.

    Raises:
        UserError: Not a Slurm id, or scancel failed (its message included).
    """
    import subprocess

    if not is_slurm_id(slurm_job_id):
        raise UserError(f"not a Slurm job id: {slurm_job_id!r}")
    try:
        out = run(["scancel", slurm_job_id], COMMAND_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"scancel {slurm_job_id} failed: {exc}") from None
    if out.returncode != 0:
        raise UserError(f"scancel {slurm_job_id} failed: {out.stderr.strip() or out.returncode}")


def requeue(job_id: str) -> str | None:
    """Run ``scontrol requeue JOB_ID``; return None on success, else what went wrong."""
    import subprocess

    if not job_id.isdigit():
        return f"no Slurm job id (SLURM_JOB_ID={job_id!r})"
    try:
        out = run(["scontrol", "requeue", job_id], SCONTROL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scontrol requeue {job_id} failed: {exc}"
    if out.returncode != 0:
        return f"scontrol requeue {job_id} failed: {out.stderr.strip() or out.returncode}"
    return None


# -- what a process inside a Slurm job reads -------------------------------------------------


def _int(text: str | None, default: int) -> int:
    try:
        return int(text or default)
    except ValueError:
        return default


@dataclass(frozen=True)
class TaskEnv:
    """Slurm's variables in one task of a job.

    Attributes:
        job_id: ``SLURM_JOB_ID``.
        array_job_id: ``SLURM_ARRAY_JOB_ID`` (an array element), or "".
        array_task_id: ``SLURM_ARRAY_TASK_ID``, or "".
        procid: ``SLURM_PROCID``: this task's rank in the step.
        localid: ``SLURM_LOCALID``: its rank on its node.
        ntasks: ``SLURM_NTASKS``: tasks in the step.
        restart_count: ``SLURM_RESTART_COUNT``: how often Slurm restarted the job.
        cpus_per_task: ``SLURM_CPUS_PER_TASK``, or None when not set.
        step_tasks: ``SLURM_STEP_NUM_TASKS``: tasks ``srun`` started in this step (1
            outside a step: a batch script's own shell).
    """

    job_id: str
    array_job_id: str = ""
    array_task_id: str = ""
    procid: int = 0
    localid: int = 0
    ntasks: int = 1
    restart_count: int = 0
    cpus_per_task: int | None = None
    step_tasks: int = 1

    @property
    def element_id(self) -> str:
        """The job's Slurm id as qshpc keeps it: ``<array job id>_<index>`` for an array element."""
        if self.array_job_id and self.array_task_id:
            return f"{self.array_job_id}_{self.array_task_id}"
        return self.job_id


def task_env(environ: Mapping[str, str] | None = None) -> TaskEnv | None:
    """Slurm's variables of this process, or None outside a Slurm job (no ``SLURM_JOB_ID``)."""
    env = os.environ if environ is None else environ
    job_id = env.get("SLURM_JOB_ID", "")
    if not job_id:
        return None
    cpus = env.get("SLURM_CPUS_PER_TASK", "")
    return TaskEnv(
        job_id=job_id,
        array_job_id=env.get("SLURM_ARRAY_JOB_ID", ""),
        array_task_id=env.get("SLURM_ARRAY_TASK_ID", ""),
        procid=_int(env.get("SLURM_PROCID"), 0),
        localid=_int(env.get("SLURM_LOCALID"), 0),
        ntasks=_int(env.get("SLURM_NTASKS"), 1),
        restart_count=_int(env.get("SLURM_RESTART_COUNT"), 0),
        cpus_per_task=int(cpus) if cpus.isdigit() and int(cpus) > 0 else None,
        step_tasks=_int(env.get("SLURM_STEP_NUM_TASKS"), 1),
    )


def local_rank(environ: Mapping[str, str] | None = None) -> int:
    """``SLURM_LOCALID`` (0 when unset or not a number)."""
    env = os.environ if environ is None else environ
    return _int(env.get("SLURM_LOCALID"), 0)


def run_record(environ: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The Slurm variables rank 0 keeps in the store (:data:`RECORD_KEYS`), or None outside Slurm."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k in RECORD_KEYS} or None


#: The MPICH variable choosing its network module (``ucx`` or ``ofi``); as
#: :data:`qshpc.runtime.mpi.NETMOD_VAR`, which this module imports only when used.
NETMOD_VAR = "MPIR_CVAR_CH4_NETMOD"

#: libfabric's variable naming the provider it must use (``tcp``, ``sockets``, ...).
PROVIDER_VAR = "FI_PROVIDER"


def _pypi_mpich() -> bool:
    """True when the MPI here is the PyPI ``mpich`` wheel (:func:`qshpc.runtime.mpi.pypi_mpich`)."""
    from qshpc.runtime.mpi import pypi_mpich

    return pypi_mpich()


def mpi_env() -> dict[str, str]:
    """MPI variables a rank started by ``srun --mpi=pmi2`` needs, to set unless set.

    The PyPI ``mpich`` wheel's default network module (``ch4:ucx``) exchanges
    its UCX addresses through Slurm's PMI2 at ``MPI_Init``, and that exchange
    breaks depending on the bytes around them in the process: Slurm's pmi2
    plugin logs "value not properly terminated in client request", UCX aborts
    with "addr version 4" or "Destination is unreachable", and the other ranks
    wait in ``MPI_Init`` until the time limit. Seen with mpich 5.0.2 and
    Slurm's pmi2 for every rank of a ``qshpc submit --nodes 2`` job run from
    one process and for none from another, always the same way for the same
    environment. The wheel's ``ch4:ofi`` (libfabric) module does not go
    through that path, so that is the default for the wheel under Slurm.
    ``MPIR_CVAR_CH4_NETMOD=ucx`` in the job's environment keeps UCX. Other MPIs
    (a cluster's own, which mpi4py is built against there) are left alone.

    With ``ofi``, libfabric is also told its provider (``FI_PROVIDER=tcp``):
    left to choose, the wheel's libfabric took its ``sockets`` provider, and
    ``MPI_Init`` of a job over 3 nodes x 2 ranks hung in about 1 run in 5
    ("Peer disconnected: removing fd from pollset" at ``FI_LOG_LEVEL=warn``);
    with ``tcp``, none in 25 (review32 F0). A ``FI_PROVIDER`` the user set wins.
    """
    return {NETMOD_VAR: "ofi", PROVIDER_VAR: "tcp"} if _pypi_mpich() else {}


class SlurmScheduler:
    """What the runtime asks of Slurm (:class:`qshpc.runtime.scheduler.Scheduler`).

    Requeue (``qshpc submit --requeue`` sets ``QSHPC_REQUEUE=1`` and asks Slurm
    for ``--signal=USR2@N`` before the time limit): SIGUSR2 means the limit is
    near and rank 0 runs ``scontrol requeue`` itself; SIGTERM after Slurm has
    requeued the job (its restart count grew past this run's) means Slurm did.

    Args:
        env: This task's Slurm variables.
    """

    def __init__(self, env: TaskEnv) -> None:
        self.env = env

    def cpus_per_task(self) -> int | None:
        """``SLURM_CPUS_PER_TASK``, when set."""
        return self.env.cpus_per_task

    def run_record(self) -> dict[str, str] | None:
        """The Slurm variables to keep in the store."""
        return run_record()

    def mpi_env(self) -> dict[str, str]:
        """:func:`mpi_env`: what this rank's MPI needs under Slurm."""
        return mpi_env()

    def step_tasks(self) -> int:
        """``SLURM_STEP_NUM_TASKS`` (1 outside a step)."""
        return self.env.step_tasks

    def local_launch_env(self) -> dict[str, str]:
        """Hydra's fork launcher: under Slurm its default is ``srun``, whose proxies wait
        in a nested step for CPUs the job already holds (hunt12d: a batch script's
        ``python -m qshpc run`` hung until its time limit)."""
        return {"HYDRA_LAUNCHER": "fork", "HYDRA_RMK": "user"}

    def requeue_enabled(self) -> bool:
        """True in a job submitted with ``--requeue``."""
        return settings.REQUEUE.get() and bool(self.env.job_id)

    def requeue_reason(self, signum: int) -> Requeue | None:
        """The requeue a signal means for this job, or None (then it is a cancel)."""
        if not self.requeue_enabled():
            return None
        if signum == signal.SIGUSR2:
            return Requeue("the time limit is near", ask_scheduler=True)
        if signum == signal.SIGTERM:
            now = restarts(self.env.job_id)
            if now is not None and now > self.env.restart_count:
                return Requeue(
                    "Slurm requeued the job (scontrol requeue or preemption)", ask_scheduler=False
                )
        return None

    def requeue(self) -> str | None:
        """Ask Slurm to requeue this job; None on success, else what went wrong."""
        return requeue(self.env.job_id)


#: Variables of the enclosing step that ``srun`` would take as a new step's defaults.
STEP_VARS = ("SLURM_STEP_", "SLURM_STEPID", "SLURM_NTASKS", "SLURM_NPROCS", "SLURM_TASKS_PER_NODE",
             "SLURM_CPU_BIND", "SLURM_DISTRIBUTION", "SLURM_SRUN_COMM_", "SLURM_PROCID",
             "SLURM_LOCALID", "SLURM_NODEID", "SLURM_GTIDS", "SLURM_LAUNCH_NODE_IPADDR",
             "SLURM_UMASK", "SLURM_CPUS_PER_TASK", "SLURM_TRES_PER_TASK")  # fmt: skip


@dataclass(frozen=True)
class SrunStep:
    """A distributed Aer step as a job step of this allocation (a ``StepLauncher``).

    ``srun --mpi=pmi2 --overlap --ntasks=k``: ``--overlap`` lets the step use
    CPUs the job's running step holds (without it srun waits for them, and the
    job's own ranks hold them all); ``--kill-on-bad-exit=1`` stops the other
    ranks when one fails; ``--cpu-bind=none`` leaves Aer's threads every core.
    From a task that holds ranks (``target={"ranks": k}``) the step is pinned to
    the held ranks' nodes (:meth:`placed`, :meth:`nodelist`).
    The enclosing step's variables (:data:`STEP_VARS`) and its MPI launcher's
    are dropped. On the 3-node dev cluster a 4-rank step started from a rank of
    a 2-node x 2-task job placed 2 ranks on each node in about 2.5 s.
    """

    mpi: str = "pmi2"
    shared_folder: bool = True
    #: The hosts of the ranks the calling task holds, one per step rank (leader first).
    hosts: tuple[str, ...] = ()

    def placed(self, hosts: Iterable[str]) -> SrunStep:
        """This launcher with its steps pinned to ``hosts`` (the held ranks' nodes)."""
        return SrunStep(self.mpi, self.shared_folder, tuple(hosts))

    def argv(self, ranks: int, nodes: int | None, step: list[str]) -> list[str]:
        """``srun`` for ``ranks`` tasks (on ``nodes`` nodes, or on the held ranks' nodes) running
        ``step``."""
        where = self.nodelist(ranks) or ([f"--nodes={nodes}"] if nodes else [])
        return ["srun", f"--mpi={self.mpi}", "--overlap", f"--ntasks={ranks}", *where,
                "--kill-on-bad-exit=1", "--cpu-bind=none", *step]  # fmt: skip

    def nodelist(self, ranks: int, environ: Mapping[str, str] | None = None) -> list[str]:
        """``--nodelist`` of the held ranks' nodes (with ``--nodes``, and ``--ntasks-per-node``
        when they hold as many ranks on each), or nothing.

        Nothing when the launcher holds no hosts for ``ranks`` ranks, or when this node's
        host name is not its Slurm name (``SLURMD_NODENAME``): the hosts are the ranks' host
        names, which such a cluster's ``--nodelist`` would refuse; Slurm then places the step.
        """
        env = os.environ if environ is None else environ
        if len(self.hosts) != ranks or env.get("SLURMD_NODENAME") != socket.gethostname():
            return []
        nodes = list(dict.fromkeys(self.hosts))
        out = [f"--nodelist={','.join(nodes)}", f"--nodes={len(nodes)}"]
        counts = {self.hosts.count(n) for n in nodes}
        if len(counts) == 1:
            out.append(f"--ntasks-per-node={counts.pop()}")
        return out

    def env(self, env: dict[str, str]) -> dict[str, str]:
        """The parent's environment without its step's and its MPI launcher's variables."""
        from qshpc.aer.distributed.launch import scrubbed_env

        kept = {k: v for k, v in scrubbed_env(env).items() if not k.startswith(STEP_VARS)}
        return {**mpi_env(), **kept}


def step_launcher(environ: Mapping[str, str] | None = None) -> SrunStep | None:
    """:class:`SrunStep` inside a Slurm allocation with ``srun`` on PATH, else None."""
    if task_env(environ) is None or shutil.which("srun") is None:
        return None
    return SrunStep()


def scheduler(environ: Mapping[str, str] | None = None) -> SlurmScheduler | None:
    """The runtime's :class:`SlurmScheduler` inside a Slurm job, else None.

    Inside a job it also makes :class:`SrunStep` how this rank's distributed Aer
    steps start (``qshpc.aer.distributed.defaults.use_launcher``): a task that calls
    ``run_circuits`` then gets an ``srun --overlap`` step of the allocation.
    """
    env = task_env(environ)
    if env is None:
        return None
    launcher = step_launcher(environ)
    if launcher is not None:
        from qshpc.aer.distributed.defaults import use_launcher

        use_launcher(launcher)
    return SlurmScheduler(env)


__all__ = [
    "RECORD_KEYS",
    "STEP_VARS",
    "SlurmScheduler",
    "SrunStep",
    "TaskEnv",
    "cancel",
    "conf",
    "is_slurm_id",
    "local_rank",
    "partitions",
    "prefer_live",
    "query",
    "query_live",
    "query_many",
    "requeue",
    "restarts",
    "run",
    "run_record",
    "scheduler",
    "sinfo",
    "step_launcher",
    "task_env",
]
