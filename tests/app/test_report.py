"""Sweep reports and the plotting helpers."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from sparsesim import plots
from sparsesim.report import REPORT_FILES, write_report
from sparsesim.simulation.results import stamp, to_frame
from sparsesim.simulation.engine import run_id
from sparsesim.simulation.run import simulate_rows
from sparsesim.sweeps import plan_sweep, run_sweep
from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import PHASES
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.ops import Workload

FIGURES = ("speedup.png", "energy_breakdown.png", "utilization.png", "pareto.png", "roofline.png",
           "cycles_by_layer.png")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """A small sweep with a zip axis, a grid axis, sparsity settings and two workloads."""
    root = tmp_path_factory.mktemp("report")
    spec = {
        "name": "report-test",
        "base": "edge32",
        "axes": [{"kind": "zip", "values": {"array.rows": [16, 32], "array.cols": [16, 32]}},
                 {"kind": "grid", "values": {"dram.bandwidth_bytes_per_cycle": [8, 32]}}],
        "sparsity": ["dense", [{"kind": "nm", "target": "weight", "n": 2, "m": 4}]],
        "workloads": [{"gemm": [[256, 128, 512], [64, 256, 1024]], "phases": "training"},
                      {"network": "resnet18", "phases": ["fwd"]}],
        "dataflows": ["os", "ws"],
    }
    plan = plan_sweep(spec, root / "spec.yaml")
    out = root / "sweep"
    summary = run_sweep(plan, out, workers=2, progress=False)
    assert not summary.failed
    return out


def test_report_has_every_figure_and_names_the_energy_table(sweep_dir, tmp_path):
    md = write_report(sweep_dir, tmp_path / "rep")
    text = md.read_text()
    for fig in FIGURES:
        assert f"]({fig})" in text
        w, h = png_size(md.parent / fig)
        assert 600 <= w <= 2600 and 300 <= h <= 2600, (fig, w, h)
    assert "horowitz45" in text and "Horowitz" in text
    for title in ("## Speedup", "## Energy breakdown", "## Utilization", "## Pareto front", "## Roofline"):
        assert title in text
    html = (md.parent / "index.html").read_text()
    assert all(f'src="{fig}"' in html for fig in FIGURES)
    assert (md.parent / "summary.csv").exists()
    # --overwrite replaces a directory holding only these, so they must be every file written
    assert {p.name for p in md.parent.iterdir()} <= set(REPORT_FILES)
    # what the report draws as a bound is one: no point beats it
    import pandas as pd

    summary = pd.read_csv(md.parent / "summary.csv")
    assert (summary["speedup"] <= summary["bound_speedup"] + 1e-9).all()
    assert (summary["cycles"] >= summary["bound_cycles"]).all()


def test_report_output_is_never_silently_replaced(sweep_dir, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(InputError, match="--overwrite"):
        write_report(sweep_dir, mine)
    with pytest.raises(InputError, match="holds no report.md"):
        write_report(sweep_dir, mine, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "precious"
    with pytest.raises(InputError, match="not a sweep directory"):
        write_report(tmp_path, tmp_path / "r")


def test_pareto_mask():
    pts = np.array([[1, 5, 1], [2, 2, 1], [3, 3, 1], [5, 1, 1], [1, 5, 2]])
    assert plots.pareto_mask(pts).tolist() == [True, True, False, True, False]


def test_plot_helpers_for_result_frames(tmp_path, edge32):
    ops = tuple(NETWORKS.get("resnet18")(1))[:6]
    frames = []
    for df in ("os", "ws", "is"):
        rows = simulate_rows(Workload("resnet18", ops, PHASES), edge32, df)
        frames.append(to_frame(stamp(rows, edge32, run_id(edge32, df), "resnet18"), edge32))
    import pandas as pd

    frame = pd.concat(frames, ignore_index=True)
    a = plots.plot_cycles_by_layer(frame, tmp_path / "cycles.png", "ResNet-18, first six layers")
    b = plots.plot_energy_breakdown(frame, tmp_path / "energy.png", "Energy by dataflow", by="dataflow",
                                    energy_table=edge32.energy_table)
    c = plots.plot_energy_breakdown(frame, tmp_path / "energy_layers.png", "Energy by layer", normalize=True)
    for path in (a, b, c):
        w, h = png_size(path)
        assert w >= 600 and h >= 300


def test_plots_is_the_only_module_importing_matplotlib():
    root = Path(__file__).resolve().parents[2]
    for pkg in ("sparsesim", "accel", "dataflows", "workloads"):
        for path in (root / pkg).rglob("*.py"):
            if path.name != "plots.py":
                assert "import matplotlib" not in path.read_text() and "from matplotlib" not in path.read_text(), path



def test_report_has_a_mapping_section_from_the_rows(sweep_dir, tmp_path):
    """The mapping section's totals are the rows' own sums, and no row is below its bound."""
    from sparsesim.sweeps import collect_results

    rows = collect_results(sweep_dir)
    assert (rows["dram_bytes"] >= rows["dram_lower_bound_bytes"]).all()
    text = write_report(sweep_dir, tmp_path / "rep").read_text()
    assert "## Mapping: DRAM bytes against their bounds" in text
    assert f"moved {rows['dram_bytes'].sum() / 1e6:.4g} MB" in text
    assert f"lower bound of {rows['dram_lower_bound_bytes'].sum() / 1e6:.4g} MB" in text
