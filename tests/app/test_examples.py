"""Every shipped preset, example sweep spec, example SCALE-Sim config and the demo are executed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sparsesim.hardware.presets import load_accel, preset_names
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.gemm import PHASES
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.ops import Workload

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_runs_a_training_step(preset):
    cfg = load_accel(preset)
    wl = Workload("r18", tuple(NETWORKS.get("resnet18")(1))[:4], PHASES)
    rows = simulate_rows(wl, cfg, "best")
    assert len(rows) == 12 and all(r["cycles"] > 0 for r in rows)


@pytest.mark.parametrize("spec", sorted((ROOT / "configs" / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_sweep_spec_is_valid(spec):
    from sparsesim.sweeps import load_spec

    plan = load_spec(spec)
    assert len(plan.points) > 0


def test_scalesim_example_cfg_runs_the_readme_command(capsys):
    """README, "From SCALE-Sim": the example topology on configs/scalesim/example.cfg."""
    import json

    from sparsesim.cli.main import main

    assert main(["run", "--topology", str(ROOT / "configs/topologies/example.csv"),
                 "--accel", str(ROOT / "configs/scalesim/example.cfg"), "--set", "array.fold_overlap=false",
                 "--json"]) == 0
    out = capsys.readouterr()
    rows = json.loads(out.out)["layers"]
    assert out.err == "" and {r["dataflow"] for r in rows} == {"os"}  # the cfg's dataflow
    assert rows[0]["accel"] == "example_32x32_os (array.fold_overlap=False)"
    # conv1 lowers to M=32.32, N=32, K=3.3.3 on 32x32, os: ceil(1024/32).ceil(32/32).(27+32+32-2)
    assert (rows[0]["M"], rows[0]["N"], rows[0]["K"], rows[0]["cycles"]) == (1024, 32, 27, 32 * 1 * 89)


def test_demo_writes_its_run_directory(tmp_path):
    pytest.importorskip("torch")
    from sparsesim.demo import run_demo

    out = tmp_path / "demo"
    text = run_demo(out)
    assert "Headline" in text and "N:M 2:8" in text
    head = pd.read_csv(out / "headline.csv")
    nm = head[head["config"].str.startswith("N:M")].iloc[0]
    assert 1.0 < nm["speedup"] <= nm["bound_speedup"] + 1e-9
    exact = head[head["config"].str.contains("θ=0 ")].iloc[0]
    assert exact["max_output_error"] == 0.0
    for name in ("summary.md", "results.parquet", "headline_speedup.png", "resnet50_edge32_cycles_by_layer.png"):
        assert (out / name).stat().st_size > 1000
    with pytest.raises(Exception, match="already holds a run"):
        run_demo(out)


def test_a_case_study_regenerates_its_report(tmp_path):
    """The delta study end to end in quick mode: captures, replays, writes the report."""
    pytest.importorskip("torch")
    from sparsesim.cli.main import main

    out = tmp_path / "delta"
    assert main(["study", "delta", "--out", str(out), "--traces", str(tmp_path / "traces"), "--quick"]) == 0
    summary = pd.read_csv(out / "summary.csv")
    exact = summary[summary["threshold"] == 0.0]
    assert (exact["err_max"] == 0.0).all()
    video = summary[summary["model"] == "video_cnn"].sort_values("threshold")
    assert video["fired"].is_monotonic_decreasing and video["err_mean"].iloc[-1] > 0
    text = (out / "README.md").read_text()
    for png in ("speedup_vs_threshold.png", "error_vs_threshold.png", "energy_breakdown.png"):
        assert png in text and (out / png).stat().st_size > 1000
    assert main(["study", "delta", "--out", str(out), "--traces", str(tmp_path / "traces")]) == 2  # not empty
    # rerun on the same inputs (the captured traces are reused): the same CSVs, byte for byte
    again = tmp_path / "again"
    assert main(["study", "delta", "--out", str(again), "--traces", str(tmp_path / "traces"), "--quick"]) == 0
    csvs = sorted(p.name for p in out.glob("*.csv"))
    assert csvs and csvs == sorted(p.name for p in again.glob("*.csv"))
    for name in csvs:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    # every claim of the text comes from the table: the exact case and the bound are stated from it
    assert "At θ = 0 the output error is exactly zero" in text
    assert "No achieved speedup passes its bound." in text
