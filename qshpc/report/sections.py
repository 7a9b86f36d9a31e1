"""The report's tables: key figures, slowest tasks, failures, provenance, Slurm accounting.

Each function takes the :class:`JobData` and returns an HTML fragment.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np

from qshpc.jobs.progress import format_duration
from qshpc.report.card import badge, first_line
from qshpc.report.data import JobData
from qshpc.text import html_escape as escape

SLOWEST = 15
TRACEBACK_MAX = 20_000  # characters of one traceback shown (its head and its tail)
VALUE_MAX = 300  # characters of one provenance value shown
FAILURE_GROUPS = 20
TASK_IDS_SHOWN = 12
#: Provenance keys that differ from task to task: summarised, not listed by value.
_VARYING = re.compile(r"0x[0-9a-fA-F]+|\d+(?:\.\d+)?|'[^']*'|\"[^\"]*\"")
PER_TASK = {
    "circuit_sha256",
    "seeds",
    "seed",
    "wall_s",
    "aer_runs",
    "shared",
    "rows",
    "shots_drawn",
}


def clip(text: str, limit: int = TRACEBACK_MAX) -> str:
    """``text``, or its head and tail around a note of what was left out."""
    if len(text) <= limit:
        return text
    head, tail = limit // 5, limit - limit // 5
    return f"{text[:head]}\n… ({len(text) - head - tail} characters left out) …\n{text[-tail:]}"


def _clock(t: float | None) -> str:
    from qshpc.text import shown_time

    return shown_time(t)  # ``-`` none, ``?`` a damaged one (review30 F5)


def table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    """An HTML table; cells are already escaped HTML."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def key_figures(data: JobData, t0: float, t1: float) -> str:
    """Attempts, failures, retries, ranks, hosts, busy fraction, task times."""
    t = data.table
    wall = t.wall
    ranks = {(int(r), h) for r, h in zip(t.rank.tolist(), t.host, strict=True)}
    all_ranks = data.meta.get("ranks") or []
    workers = max(1, len([r for r in all_ranks if int(r.get("rank", 0)) != 0]) or len(ranks))
    span = max(t1 - t0, 1e-9)
    busy = float(wall.clip(min=0).sum()) / (workers * span) if len(t) else 0.0
    unique = len(set(t.task_id))
    stopped = t.stopped()
    rows = [
        ["tasks", f"{unique} ({len(t)} attempts)"],
        ["failed attempts", str(int((t.failed & ~stopped).sum()))],
        ["retries", str(int((t.attempt > 1).sum()))],
        [
            "ranks",
            f"{len(all_ranks) or len(ranks)} on {len({h for _, h in ranks} | {str(r.get('host')) for r in all_ranks})} host(s)",
        ],
        [
            "span",
            f"{format_duration(span) if span >= 1 else f'{span:.3f} s'}: the timeline's width, "
            "from rank 0's start (or the first task) to the last record or the job's end "
            "(the card's duration: rank 0's start to the end the store records)",
        ],
        ["workers busy", f"{min(busy, 1.0):.0%} of {workers} rank(s) × the span"],
    ]
    waited = _before_start(data)
    if waited:
        rows.append(["before the start", waited])
    cached = _from_cache(data)
    if cached:
        rows.insert(1, ["from the cache", cached])
    if stopped.any():
        rows.insert(2, ["stopped at the end", _stopped(data, stopped)])
    never = _never_started(data, unique)
    if never:
        rows.insert(1, ["never started", never])
    if len(t):
        rows.append(
            [
                "task time",
                f"median {np.median(wall):.3g} s · mean {wall.mean():.3g} s · max {wall.max():.3g} s",
            ]
        )
        queued = (t.started - t.submitted).clip(min=0)
        rows.append(
            ["queued before start", f"median {np.median(queued):.3g} s · max {queued.max():.3g} s"]
        )
    return table(["", ""], [[escape(a), escape(b)] for a, b in rows], "figures")


def _before_start(data: JobData) -> str:
    """``1.5 s from the job's creation to rank 0's start (...)`` ("" when unknown).

    The launch (mpiexec, imports) or a Slurm queue can be most of what a person
    waited, and appeared nowhere in the report (review26 #5).
    """
    created = data.meta.get("created")
    started = [s.t0 for s in data.program] or [r["started"] for r in data.runs if r.get("started")]
    if not created or not started:
        return ""
    waited = max(0.0, float(min(started)) - float(created))
    slurm = data.meta.get("slurm_job_id")
    what = (
        "queued in Slurm, then the launch of the ranks"
        if slurm
        else "the launch: starting the ranks, imports"
    )
    shown = format_duration(waited) if waited >= 10 else f"{waited:.2f} s"
    return f"{shown} from the job's creation to rank 0's start ({what}); not in the span"


def _stopped(data: JobData, stopped: Any) -> str:
    """``2 attempts (tasks 2, 7) were running when the job was CANCELED: stopped, not failed``."""
    ids = [data.table.task_id[i] for i in np.flatnonzero(stopped).tolist()]
    shown = ", ".join(ids[:TASK_IDS_SHOWN]) + (" …" if len(ids) > TASK_IDS_SHOWN else "")
    return (
        f"{len(ids)} attempt(s) (task{'s' if len(ids) > 1 else ''} {shown}) still ran when the job ended "
        f"({data.state}): stopped unfinished, not failures of their code"
    )


def _never_started(data: JobData, recorded: int) -> str:
    """``14 of 20 submitted: the job ended before they ran`` ("" when every task has a record).

    The summary counts records; tasks submitted that no worker started have none
    (review26 #2: "6 tasks" next to the card's "20 submitted").
    """
    submitted = data.meta.get("tasks_submitted")
    if data.running or not isinstance(submitted, int) or submitted <= recorded:
        return ""
    why = (
        f"the job ended ({data.state}) before they ran"
        if data.state != "SUCCEEDED"
        else "the program cancelled them, or no longer waited for them"
    )
    return f"{submitted - recorded} of {submitted} tasks submitted: {why}, so they have no record below"


def _from_cache(data: JobData) -> str:
    """``500 of 512 tasks: results of earlier jobs (J1, J2), not run here`` ("" for none).

    One pass, over each task's latest record (the dict keeps the last of a task's
    records, as :meth:`~qshpc.store.table.TaskTable.latest_from_cache` counts them):
    whether its result came from the cache, and from which job.
    """
    latest = dict(zip(data.table.task_id, data.table.provenance, strict=True))
    jobs: dict[str, int] = {}
    hits = 0
    for prov in latest.values():
        if "cache" in prov:
            hits += 1
            source = prov["cache"]
            if isinstance(source, dict):
                job = str(source.get("job") or "?")
                jobs[job] = jobs.get(job, 0) + 1
    if not hits:
        return ""
    named = ", ".join(sorted(jobs, key=lambda j: -jobs[j])[:3]) + (" …" if len(jobs) > 3 else "")
    return (
        f"{hits} of {len(latest)} tasks: results computed by earlier jobs ({named}), "
        "taken from the result cache by rank 0, not run here (their time is ~0)"
    )


def slowest(data: JobData, t0: float) -> str:
    """The slowest attempts."""
    t = data.table
    if not len(t):
        return '<p class="note">No task has finished yet.</p>'
    order = np.argsort(-t.wall, kind="stable")[:SLOWEST]
    stopped = t.stopped()
    rows = []
    for i in order.tolist():
        rows.append(
            [
                f"<code>{escape(t.task_id[i])}</code>",
                escape(t.function[i]),
                str(int(t.attempt[i])),
                badge("STOPPED" if stopped[i] else t.state(i)),
                str(int(t.rank[i])),
                escape(t.host[i]),
                f"{t.wall[i]:.3g} s",
                f"+{t.started[i] - t0:.3f} s",
                f"{max(0.0, t.started[i] - t.submitted[i]):.3g} s",
            ]
        )
    return table(
        ["task", "function", "attempt", "state", "rank", "host", "wall", "started", "queued"],
        rows,
        "slowest",
    )


def failures(data: JobData) -> str:
    """The job's error, then failed attempts grouped by function and error, with tracebacks."""
    out = []
    err = data.meta.get("error")
    if err and data.state != "SUCCEEDED":
        out.append(
            f'<div class="job-error"><h3>The job ended {escape(data.state)}</h3>'
            f"<pre>{escape(clip(str(err)))}</pre></div>"
        )
    t = data.table
    stopped = t.stopped()
    if stopped.any():
        out.append(
            f'<p class="note stopped">{escape(_stopped(data, stopped))}; not listed below.</p>'
        )
    bad = np.flatnonzero(t.failed & ~stopped).tolist()
    if not bad:
        out.append('<p class="note">No task attempt failed.</p>')
        return "".join(out)
    ok_later = {t.task_id[i] for i in np.flatnonzero(~t.failed).tolist()}
    groups: dict[tuple[str, str], list[int]] = {}
    for i in bad:  # numbers and quoted values differ from task to task: group without them
        shape = _VARYING.sub("…", first_line(t.error[i]))
        groups.setdefault((t.function[i], shape), []).append(i)
    ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    out.append(
        f'<p class="fail-summary" data-failed="{len(bad)}" data-groups="{len(groups)}">'
        f"{len(bad)} failed attempt(s) in {len(groups)} group(s) of function and error"
        f"{'' if len(groups) <= FAILURE_GROUPS else f'; the {FAILURE_GROUPS} largest shown'}.</p>"
    )
    for g, ((fn, _), idx) in enumerate(ranked[:FAILURE_GROUPS]):
        line = first_line(t.error[idx[0]])
        tasks = list(dict.fromkeys(t.task_id[i] for i in idx))
        recovered = [tid for tid in tasks if tid in ok_later]
        lost = [tid for tid in tasks if tid not in ok_later]
        where = sorted({f"rank {int(t.rank[i])} on {t.host[i]}" for i in idx})
        first = idx[0]
        shown = _task_lists(lost, recovered)
        rec = f" · {len(recovered)} succeeded on a retry" if recovered else ""
        out.append(
            f'<details class="failure" data-function="{escape(fn)}" data-count="{len(idx)}"'
            f"{' open' if g < 3 else ''}><summary><strong>{escape(fn)}</strong> · {len(idx)} attempt(s)"
            f"{rec} · <code>{escape(line)}</code></summary>"
            f"<p>{shown}<br>{escape('; '.join(where[:8]))}"
            f"{' …' if len(where) > 8 else ''}<br>first: task {escape(t.task_id[first])}, attempt "
            f"{int(t.attempt[first])}, {_clock(t.finished[first])}</p>"
            f"<pre>{escape(clip(str(t.error[first] or '')))}</pre></details>"
        )
    return "".join(out)


def _task_lists(lost: list[str], recovered: list[str]) -> str:
    """Which tasks of a failure group have no result, and which a retry recovered.

    Counts are of tasks, not attempts: one list of every attempt's task, "(+32)"
    counting attempts, hid the tasks to rerun (review26 #6).
    """

    def ids(tids: list[str]) -> str:
        more = f" … (+{len(tids) - TASK_IDS_SHOWN} more)" if len(tids) > TASK_IDS_SHOWN else ""
        return escape(", ".join(tids[:TASK_IDS_SHOWN]) + more)

    parts = []
    if lost:
        parts.append(
            f'<span class="ended-failed" data-n="{len(lost)}">ended failed, no result: '
            f"{len(lost)} task(s): {ids(lost)}</span>"
        )
    if recovered:
        parts.append(
            f'<span class="recovered" data-n="{len(recovered)}">recovered on a retry: '
            f"{len(recovered)} task(s): {ids(recovered)}</span>"
        )
    return "<br>".join(parts)


def _value_key(v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is None or isinstance(v, (int, float, bool)):
        return json.dumps(v)
    return json.dumps(v, sort_keys=True, default=str)


def provenance(data: JobData) -> str:
    """The job, each run's versions and ranks, and what the tasks recorded about themselves."""
    m = data.meta
    job_rows = [
        ["job id", f"<code>{escape(str(m.get('id', '')))}</code>"],
        ["directory", f"<code>{escape(str(data.job_dir))}</code>"],
        ["entrypoint", f"<code>{escape(str(m.get('entrypoint', '')))}</code>"],
        ["working dir", f"<code>{escape(str(m.get('working_dir', '')))}</code>"],
        ["created", _clock(m.get("created"))],
        ["job seed", escape(str(m.get("seed")))],
        ["qshpc", escape(str(m.get("qshpc_version", "?")))],
        ["store schema", escape(str(m.get("schema_version", "?")))],
    ]
    out = [table(["job", ""], job_rows, "kv")]
    run_rows = []
    for i, run in enumerate(data.runs, 1):
        hosts = sorted({str(r.get("host")) for r in run.get("ranks") or []})
        slurm = (
            (run.get("slurm") or {}).get("SLURM_JOB_ID", "-")
            if isinstance(run.get("slurm"), dict)
            else "-"
        )
        run_rows.append(
            [
                str(i),
                _clock(run.get("started")),
                str(run.get("mpi_size", "?")),
                escape(", ".join(hosts[:6]) + (" …" if len(hosts) > 6 else "")),
                escape(str(run.get("python", "?"))),
                escape(str(run.get("qiskit_version", "?"))),
                escape(str(run.get("seed"))),
                "yes" if run.get("resume") else "no",
                escape(str(slurm)),
            ]
        )
    if run_rows:
        out.append(
            table(
                [
                    "run",
                    "started",
                    "ranks",
                    "hosts",
                    "python",
                    "qiskit",
                    "seed",
                    "resume",
                    "slurm job",
                ],
                run_rows,
                "runs",
            )
        )
    out.append(_task_provenance(data))
    return "".join(out)


def _task_provenance(data: JobData) -> str:
    t = data.table
    seeds = t.seed[t.has_seed]
    rows = []
    if len(t):
        if len(seeds):
            rows.append(
                [
                    "task seeds",
                    f"{len(seeds)} of {len(t)} attempts seeded ({int(seeds.min())} … {int(seeds.max())})",
                ]
            )
        else:
            rows.append(["task seeds", f"none of {len(t)} attempts had a seed"])
    values: dict[str, dict[str, int]] = {}
    for prov in t.provenance:
        for k, v in prov.items():
            if k in PER_TASK:
                continue
            counts = values.setdefault(k, {})
            key = _value_key(v)
            counts[key] = counts.get(key, 0) + 1
    for k in sorted(values):
        counts = values[k]
        top = sorted(counts.items(), key=lambda kv: -kv[1])
        shown = [(clip(val, VALUE_MAX), n) for val, n in top[:5]]
        text = "; ".join(f"{val} ×{n}" if len(top) > 1 else val for val, n in shown)
        if len(top) > 5:
            text += f"; … {len(top) - 5} more value(s)"
        rows.append([k, text])
    if not rows:
        return '<p class="note">The tasks recorded no provenance.</p>'
    return table(
        ["tasks", "values (× attempts)"], [[escape(a), escape(b)] for a, b in rows], "kv prov"
    )


def slurm(data: JobData) -> str:
    """Slurm's accounting of the job's steps."""
    if data.slurm_note:
        return f'<p class="note">No accounting: {escape(data.slurm_note)}.</p>'
    from qshpc.report.accounting import format_rss

    rows = [
        [
            f"<code>{escape(s.job_id)}</code>",
            escape(s.name),
            escape(s.state),
            escape(s.elapsed),
            escape(format_rss(s.max_rss) or "-"),
            escape(s.exit_code),
            escape(s.nodes),
            escape(s.cpus),
        ]
        for s in data.slurm_steps
    ]
    return table(
        ["step", "name", "state", "elapsed", "MaxRSS", "exit", "nodes", "CPUs"], rows, "slurm"
    )
