"""Plots of saved results: panels found, bitstring labels, PNG written, clear errors."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from qshpc.errors import UserError
from qshpc.jobs.plot import (
    MAX_BARS,
    MAX_PANELS,
    bit_labels,
    build_figure,
    find_panels,
    histogram_bars,
    plot_job,
    plot_result,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEED_RESULT = {  # what examples/program_4.py saves (quasi-distributions keyed by ints)
    "results": [
        {0: 0.1, 2: 0.7, 6: 0.2},
        {0: 1.0},
        {0: 0.5, 1: 0.5},
        {0: 1.0},
        {0: 0.9, 4: 0.1},
    ]
}


def panels_of(fig: object) -> int:
    """Axes that are panels (not colour bars)."""
    return sum(1 for ax in fig.axes if ax.get_label() != "<colorbar>")  # type: ignore[attr-defined]


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1000


def test_seed_result_one_panel_per_distribution(tmp_path: Path) -> None:
    assert [p.title for p in find_panels(SEED_RESULT)] == [f"results[{i}]" for i in range(5)]
    fig = build_figure(SEED_RESULT, "seed")
    assert panels_of(fig) == len(fig.axes) == 5
    out = plot_result(SEED_RESULT, tmp_path / "seed.png")
    assert_png(out)


def test_int_keys_are_bitstrings_of_one_width_clbit0_rightmost() -> None:
    width = bit_labels(SEED_RESULT["results"])
    assert width == 3
    labels, heights = histogram_bars({6: 0.2, 0: 0.1, 2: 0.7}, width)
    assert labels == ["000", "010", "110"] and heights == [0.1, 0.7, 0.2]
    assert histogram_bars({1: 1.0}, 3)[0] == ["001"]
    assert histogram_bars({"0x5": 3}, bit_labels([{"0x5": 3}]))[0] == ["101"]


def test_single_distribution_and_counts(tmp_path: Path) -> None:
    counts = {"00": 480, "11": 520}
    assert len(find_panels(counts)) == 1
    labels, heights = histogram_bars(counts, 1)
    assert labels == ["00", "11"] and heights == [480.0, 520.0]
    assert_png(plot_result(counts, tmp_path / "c.png"))
    sampler_v2 = {"counts": [counts, {"01": 3, "10": 7}], "shots": 1000}
    assert [p.title for p in find_panels(sampler_v2)] == ["counts[0]", "counts[1]"]
    assert len(find_panels([counts, counts, counts])) == 3


def test_many_keys_keep_the_largest_and_a_rest_bar() -> None:
    dist = {k: 1.0 for k in range(100)} | {7: 50.0}
    labels, heights = histogram_bars(dist, 7)
    assert len(labels) == MAX_BARS + 1 and labels[-1] == "rest"
    assert "0000111" in labels
    assert math.isclose(sum(heights), sum(dist.values()))


def test_many_distributions_are_capped() -> None:
    fig = build_figure({"results": [{0: 1.0}] * (MAX_PANELS + 5)})
    assert panels_of(fig) == MAX_PANELS
    assert "first" in fig._suptitle.get_text()  # type: ignore[attr-defined]


def test_one_d_sweep_is_a_line_sorted_by_parameter(tmp_path: Path) -> None:
    result = {"parameters": [0.3, 0.1, 0.2], "energies": [3.0, 1.0, 2.0], "note": "x"}
    (panel,) = find_panels(result)
    assert panel.kind == "line" and list(panel.data["x"]) == [0.1, 0.2, 0.3]
    assert list(panel.data["y"]) == [1.0, 2.0, 3.0]
    fig = build_figure(result)
    assert panels_of(fig) == 1 and len(fig.axes[0].lines) == 1
    assert_png(plot_result(result, tmp_path / "sweep.png"))


def test_two_value_arrays_two_panels() -> None:
    result = {"x": np.linspace(0, 1, 5), "energy": np.arange(5.0), "variance": np.ones(5)}
    assert [p.title for p in find_panels(result)] == ["energy", "variance"]


def test_parameter_sweep_example_grid(tmp_path: Path) -> None:
    """examples/parameter_sweep.py saves a 2-D grid: one line per value of the first parameter."""
    axis = np.linspace(0, np.pi, 5)
    grid = [[float(a), float(b)] for a in axis for b in axis]
    result = {
        "parameters": grid,
        "energies": [a - b for a, b in grid],
        "minimum": {"parameters": grid[0], "energy": 0.0},
    }
    (panel,) = find_panels(result)
    assert panel.kind == "line"
    fig = build_figure(result)
    assert panels_of(fig) == 1 and len(fig.axes[0].lines) == 5
    assert_png(plot_result(result, tmp_path / "grid.png"))
    big_axis = np.linspace(0, 1, 20)
    big = [[a, b] for a in big_axis for b in big_axis]
    (m,) = find_panels({"parameters": big, "energies": [a * b for a, b in big]})
    assert m.kind == "map"
    fig = build_figure({"parameters": big, "energies": [a * b for a, b in big]})
    assert panels_of(fig) == 1  # plus its colour bar


@pytest.mark.parametrize(
    "result",
    [None, 3, "text", [1, 2, 3], {"a": "b"}, {"parameters": [1, 2]}, {0: "x"}, {-1: 0.5}, {}],
)
def test_nothing_plottable_is_a_clear_error(result: object, tmp_path: Path) -> None:
    assert find_panels(result) == []
    with pytest.raises(UserError, match=r"nothing to plot.*qshpc result"):
        plot_result(result, tmp_path / "x.png")


def test_output_paths(tmp_path: Path) -> None:
    assert plot_result(SEED_RESULT, tmp_path).name == "plot.png"  # a folder: plot.png inside
    assert plot_result(SEED_RESULT, tmp_path / "p.svg").read_text().startswith("<?xml")
    with pytest.raises(UserError, match="does not exist"):
        plot_result(SEED_RESULT, tmp_path / "no" / "p.png")
    with pytest.raises(UserError, match="--out suffix"):
        plot_result(SEED_RESULT, tmp_path / "p.xyz")


def _stored_job(home: Path, result: object | None) -> Path:
    from qshpc.jobs.paths import jobs_root
    from qshpc.store import JobWriter, create_job

    job = jobs_root() / "20260101-000000-abcdef"
    create_job(job, {"id": job.name, "title": "t", "created": 1.0}, {})
    w = JobWriter.open(job, {"mpi_size": 1, "ranks": [], "started": 2.0})
    if result is not None:
        w.save_result(result)
    w.finalize("SUCCEEDED")
    return job


def test_plot_job_default_path_and_job_plot(qshpc_home: Path) -> None:
    from qshpc import open_job

    job_dir = _stored_job(qshpc_home, SEED_RESULT)
    out = plot_job(open_job(job_dir.name))
    assert out == job_dir / "plot.png"
    assert_png(out)
    assert open_job(job_dir.name).plot(str(job_dir / "again.png")) == job_dir / "again.png"


def test_plot_job_without_result(qshpc_home: Path) -> None:
    from qshpc import open_job

    job_dir = _stored_job(qshpc_home, None)
    with pytest.raises(UserError, match=r"no saved result to plot: see `qshpc status"):
        plot_job(open_job(job_dir.name))


def test_output_through_a_link_writes_its_target(tmp_path: Path) -> None:
    """review29 F4: the atomic write (hunt23b) replaced a link given as --out by a file."""
    (tmp_path / "figs").mkdir()
    target = tmp_path / "figs" / "latest.png"
    target.write_bytes(b"old")
    link = tmp_path / "plot-link.png"
    link.symlink_to(target)
    plot_result(SEED_RESULT, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert_png(target)


def test_a_masked_point_is_a_gap() -> None:
    """review29 F3: the store keeps a mask (fid23); the plot drew the hidden value."""
    import numpy as np

    from qshpc.jobs.plot import _numeric

    got = _numeric(np.ma.masked_greater([1.0, 2.0, 1e6, 3.0], 100))
    assert got is not None and np.isnan(got[2]) and list(got[[0, 1, 3]]) == [1.0, 2.0, 3.0]
