"""Draw a job's saved result: histograms of distributions, lines of sweeps.

What is plottable (found at the top level of the result, or one level down
in a dict):

* a distribution: a dict of counts or quasi-probabilities keyed by register
  values (``{0: 0.5, 3: 0.5}``), bitstrings (``{"00": 512, "11": 488}``) or
  hex strings (``{"0x3": 12}``). One histogram panel each; integer keys are
  written as bitstrings as Qiskit prints them (clbit 0 rightmost), all of one
  width: the longest key's bit length in the figure.
* a list of distributions (``{"results": [dist, ...]}`` as the seed program
  saves): one panel per distribution, laid out on a grid.
* Qiskit's ``PrimitiveResult`` (SamplerV2, EstimatorV2): counts of a PUB of
  one row as a histogram; of many rows, the most frequent outcomes' counts
  against the parameter index; ``evs`` against the parameter index
  (:func:`qshpc.store.qiskit_results.plottable`).
* a sweep: a dict with a parameter array under ``parameters`` (or ``params``,
  ``x``, ``theta`` ...) and value arrays of the same length (``energies``...).
  One panel per value array: a line of value vs parameter for a 1-D sweep;
  for a full 2-D grid (``[[a, b], ...]``) one line of value vs ``b`` per value
  of ``a`` (a colour map beyond MAX_LINES values of ``a``); else value vs
  point index.

matplotlib is imported here only, lazily, and draws with the Agg backend
(no display needed, and no change to pyplot's global backend).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from qshpc.errors import NoResultError, UserError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_PANELS = 48
MAX_BARS = (
    32  # beyond this, the smaller values are summed into one "rest" bar (Qiskit's number_to_keep)
)
MAX_LINES = 10  # a 2-D grid sweep with more rows than this is drawn as a colour map
PARAM_KEYS = (
    "parameter index",
    "pub index",
    "parameters",
    "parameter",
    "params",
    "param",
    "x",
    "theta",
    "thetas",
    "angles",
    "grid",
)


class HasJobDir(Protocol):
    """A job handle: anything with a ``job_dir`` (``qshpc.client.job.Job`` has one)."""

    @property
    def job_dir(self) -> Path:
        """The job directory."""
        ...


_BITS = re.compile(r"^[01][01 ]*$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")


@dataclass
class Panel:
    """One axes of the figure.

    Attributes:
        kind: ``"hist"``, ``"line"`` or ``"map"``.
        title: The panel title (where the data sits in the result).
        data: ``hist``: the distribution; ``line``/``map``: ``{"x": ..., "y": ...}``.
        labels: Axis labels ``(x, y)``.
    """

    kind: str
    title: str
    data: Any
    labels: tuple[str, str] = ("", "")


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _is_dist(value: Any) -> bool:
    """A non-empty dict of numbers keyed by ints >= 0, bitstrings or hex strings."""
    if not isinstance(value, Mapping) or not value:
        return False
    for k, v in value.items():
        if isinstance(k, bool) or not _is_number(v):
            return False
        if isinstance(k, int):
            if k < 0:
                return False
        elif not (isinstance(k, str) and (_BITS.match(k) or _HEX.match(k))):
            return False
    return True


def _is_dist_list(value: Any) -> bool:
    return (
        isinstance(value, Sequence)
        and not isinstance(value, (str, bytes))
        and len(value) > 0
        and all(_is_dist(d) for d in value)
    )


def _numeric(value: Any) -> Any:
    """``value`` as a float numpy array, or None when it is not numeric array-like."""
    import numpy as np

    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__"):
        return None
    arr: Any
    try:
        if isinstance(value, np.ma.MaskedArray):  # a masked point is a gap (review29 F3)
            arr = np.ma.filled(np.ma.asarray(value, dtype=float), np.nan)
        else:
            arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None
    return arr if arr.size > 1 and arr.ndim in (1, 2) else None


def _sweep_panels(result: Mapping[str, Any]) -> list[Panel]:
    key = next((k for k in PARAM_KEYS if k in result), None)
    if key is None:
        return []
    params = _numeric(result[key])
    if params is None:
        return []
    if params.ndim == 2 and params.shape[1] == 1:
        params = params[:, 0]
    panels = []
    for name, value in result.items():
        if name == key:
            continue
        y = _numeric(value)
        if y is None or y.ndim != 1 or len(y) != len(params):
            continue
        panels.append(_sweep_panel(key, params, str(name), y))
    return panels


def _sweep_panel(pname: str, params: Any, name: str, y: Any) -> Panel:
    import numpy as np

    if params.ndim == 1:
        order = np.argsort(params, kind="stable")
        return Panel("line", name, {"x": params[order], "y": y[order]}, (pname, name))
    if params.shape[1] == 2:
        xs, ys = np.unique(params[:, 0]), np.unique(params[:, 1])
        if len(xs) * len(ys) == len(params) and len({tuple(p) for p in params}) == len(params):
            grid = np.full((len(ys), len(xs)), np.nan)
            for (a, b), v in zip(params, y, strict=True):
                grid[np.searchsorted(ys, b), np.searchsorted(xs, a)] = v
            if len(xs) <= MAX_LINES:  # one line per value of the first parameter
                legend = [f"{pname}[0] = {a:.4g}" for a in xs]
                data = {"x": ys, "y": grid.T, "legend": legend}
                return Panel("line", name, data, (f"{pname}[1]", name))
            labels = (f"{pname}[0]", f"{pname}[1]")
            return Panel("map", name, {"x": xs, "y": ys, "z": grid}, labels)
    return Panel("line", name, {"x": np.arange(len(y)), "y": y}, ("point", name))


def find_panels(result: Any, _prefix: str = "", _depth: int = 0) -> list[Panel]:
    """The panels to draw for ``result``, in order (empty when nothing is plottable)."""
    from qshpc.store import qiskit_results

    if qiskit_results.kind(result) == "primitive-result":
        return find_panels(qiskit_results.plottable(result), _prefix, 0)
    if _is_dist(result):
        return [Panel("hist", _prefix or "result", result)]
    if _is_dist_list(result):
        return [Panel("hist", f"{_prefix}[{i}]", d) for i, d in enumerate(result)]
    if not isinstance(result, Mapping):
        return []
    panels = _sweep_panels(result)
    if panels:
        return [Panel(p.kind, _prefix + p.title, p.data, p.labels) for p in panels]
    for key, value in result.items():
        name = f"{_prefix}{key}"
        if qiskit_results.kind(value) == "primitive-result":
            panels.extend(find_panels(value, f"{name}: ", 0))
        elif _is_dist(value) or _is_dist_list(value):
            panels.extend(find_panels(value, name, _depth + 1))
        elif isinstance(value, Mapping) and _depth == 0:
            panels.extend(find_panels(value, f"{name}.", _depth + 1))
    return panels


def bit_labels(dists: Sequence[Mapping[Any, Any]]) -> int:
    """The bitstring width for integer and hex keys: the longest key's bit length (at least 1)."""
    width = 1
    for d in dists:
        for k in d:
            if isinstance(k, int):
                width = max(width, k.bit_length())
            elif isinstance(k, str) and _HEX.match(k):
                width = max(width, int(k, 16).bit_length())
    return width


def histogram_bars(dist: Mapping[Any, Any], width: int) -> tuple[list[str], list[float]]:
    """Bar labels (bitstrings, ascending) and heights; over MAX_BARS keys, the rest summed."""

    def label(k: Any) -> str:
        if isinstance(k, int):
            return format(k, f"0{width}b")
        if _HEX.match(k):
            return format(int(k, 16), f"0{width}b")
        return str(k)

    items = [(label(k), float(v)) for k, v in dist.items()]
    rest = 0.0
    if len(items) > MAX_BARS:
        items.sort(key=lambda kv: -abs(kv[1]))
        rest = sum(v for _, v in items[MAX_BARS:])
        items = items[:MAX_BARS]
    items.sort()
    if rest:
        items.append(("rest", rest))
    return [k for k, _ in items], [v for _, v in items]


def build_figure(result: Any, title: str = "") -> Figure:
    """Draw ``result`` on a new matplotlib Figure (Agg canvas).

    Raises:
        UserError: Nothing plottable in the result, or matplotlib not installed.
    """
    panels = find_panels(result)
    if not panels:
        raise UserError(
            f"nothing to plot in {title or 'the result'}: it holds no counts or quasi-distributions "
            "(dicts keyed by ints or bitstrings) and no sweep ('parameters' with value arrays of "
            "the same length). Print it with `qshpc result JOB`, or save one of those shapes."
        )
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError(
            "matplotlib is not installed: install it with `pip install 'qshpc[plot]'`"
        ) from None
    shown = panels[:MAX_PANELS]
    cols = min(len(shown), 3 if len(shown) <= 9 else 4)
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(shown) :]:
        fig.delaxes(ax)
    width = bit_labels([p.data for p in shown if p.kind == "hist"])
    for ax, panel in zip(axes, shown, strict=False):
        _draw(fig, ax, panel, width)
    head = title
    if len(panels) > len(shown):
        head += f" (first {len(shown)} of {len(panels)} panels)"
    if head:
        fig.suptitle(head)
    return fig


def _draw(fig: Figure, ax: Any, panel: Panel, width: int) -> None:
    ax.set_title(panel.title, fontsize=10)
    if panel.kind == "hist":
        labels, heights = histogram_bars(panel.data, width)
        counts = all(float(v).is_integer() for v in panel.data.values()) and sum(heights) > 1
        bars = ax.bar(range(len(labels)), heights, color="#648fff")
        ax.set_xticks(range(len(labels)), labels, rotation=70, fontsize=8)
        ax.set_ylabel("Count" if counts else "Quasi-probability")
        if len(labels) <= 16:
            ax.bar_label(bars, fmt="%d" if counts else "%.3f", fontsize=7)
        ax.margins(y=0.15)
    elif panel.kind == "line":
        d = panel.data
        if "legend" in d:
            for row, text in zip(d["y"], d["legend"], strict=True):
                ax.plot(d["x"], row, marker="o", markersize=3, label=text)
            ax.legend(fontsize=7)
        else:
            ax.plot(d["x"], d["y"], marker="o", markersize=3)
        ax.set_xlabel(panel.labels[0])
        ax.set_ylabel(panel.labels[1])
        ax.grid(alpha=0.3)
    else:
        d = panel.data
        mesh = ax.pcolormesh(d["x"], d["y"], d["z"], shading="nearest", cmap="viridis")
        fig.colorbar(mesh, ax=ax, label=panel.title)
        ax.set_xlabel(panel.labels[0])
        ax.set_ylabel(panel.labels[1])


def plot_result(
    result: Any, out: str | os.PathLike[str], title: str = "", in_job: bool = False
) -> Path:
    """Draw ``result`` into the image file ``out`` (format from its suffix, PNG by default);
    ``in_job``: ``out`` is the job folder's own ``plot.png`` (no ``--out`` given)."""
    from qshpc.jobs.outfile import out_path, write_in_job, write_out

    path = Path(out) if in_job else out_path(out, Path("plot.png"))
    fig = build_figure(result, title)
    fmt = path.suffix.lstrip(".").lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise UserError(
            f"cannot write a {fmt!r} image: use one of {', '.join(sorted(supported))} as --out suffix"
        )
    # beside and renamed (hunt23b: a full disk had left a torn image); a link: its target
    # (review29 F4, review30 F3; in the job's folder: never through a link, review50 F8)
    (write_in_job if in_job else write_out)(path, lambda f: fig.savefig(f, format=fmt, dpi=110))
    return path


def plot_job(
    job: str | os.PathLike[str] | HasJobDir, out: str | os.PathLike[str] | None = None
) -> Path:
    """Draw a job's saved result into ``out`` (default ``JOB_DIR/plot.png``); return the path.

    Works while the job runs too (it draws the last saved result).

    Args:
        job: The job directory, or anything with a ``job_dir`` (a ``Job``).
        out: The image file.

    Raises:
        UserError: The job saved no result, or the result holds nothing plottable.
    """
    from qshpc.jobs.paths import job_ref, read_override
    from qshpc.store import JobReader

    job_dir = Path(job) if isinstance(job, (str, os.PathLike)) else Path(job.job_dir)
    with JobReader.open(job_dir) as r:
        meta = r.meta()
        try:
            result = r.result()
        except NoResultError:
            state = meta.get("state")
            if state in ("QUEUED", "RUNNING"):  # ended without its store (a full disk): as
                state = (read_override(job_dir) or {}).get("state", state)  # status (hunt23b)
            raise UserError(
                f"job {meta.get('id', job_dir.name)} ({state}) has no saved result to plot: "
                f"see `qshpc status {job_ref(job_dir)}`"
                + (", or wait for it with `qshpc wait`" if state in ("QUEUED", "RUNNING") else "")
            ) from None
    title = f"{meta.get('title') or ''} ({meta.get('id', job_dir.name)})".strip()
    if out is None:
        return plot_result(result, job_dir / "plot.png", title, in_job=True)
    return plot_result(result, out, title)
