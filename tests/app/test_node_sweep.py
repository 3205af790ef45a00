"""A sweep over ``energy.node``: points per node, each priced with its node's table; areas of every
array kind at 7 nm are the 45 nm areas times the paper's area factor."""

from __future__ import annotations

import pytest

from sparsesim.dataflows.array_kind import area_um2
from sparsesim.hardware.energy import config_energy_table
from sparsesim.hardware.presets import load_accel
from sparsesim.sweeps import plan_sweep
from sparsesim.sweeps.runner import run_point

# energy factor 45 -> 7 nm at 0.9 V, by hand from the HP fits (tests/hardware/test_node_scaling.py):
# E7 / E45 = 0.086453 / 0.69885; area factor 0.059 (Stillmaker & Baas's area table, 45 -> 7 nm)
EF7, AF7 = 0.086453 / 0.69885, 0.059

SPEC = {
    "name": "nodes",
    "base": {"accel": "edge32"},
    "axes": {"energy.node": [45, 7]},
    "workloads": [{"gemm": [[64, 48, 32]]}],
    "dataflows": ["os"],
}


def test_a_sweep_over_energy_node_prices_each_point_at_its_node(tmp_path):
    plan = plan_sweep(SPEC, tmp_path / "spec.yaml")
    assert len(plan.points) == 2 and len({p.point_id for p in plan.points}) == 2
    frames = {p.config["energy"]["node"]: run_point(p) for p in plan.points}
    f45, f7 = frames[45], frames[7]
    assert list(f45["energy_table"].unique()) == ["horowitz45"]
    assert list(f7["energy_table"].unique()) == ["horowitz45_n7"]
    assert list(f7["cfg.energy.node"].unique()) == [7]
    assert (f45["cycles"].to_numpy() == f7["cycles"].to_numpy()).all()  # the node moves energy and area, not time
    for part in ("mac", "register_file", "sram_a", "sram_b", "sram_out", "leakage"):
        assert f7[f"energy_pj.{part}"].sum() == pytest.approx(f45[f"energy_pj.{part}"].sum() * EF7, rel=1e-5)
    assert f7["energy_pj.dram"].sum() == f45["energy_pj.dram"].sum()
    assert f7["area_um2"].iloc[0] == pytest.approx(f45["area_um2"].iloc[0] * AF7, rel=1e-5)


@pytest.mark.parametrize("preset", ["edge32", "eyeriss_v2", "dstc", "sigma"])
def test_every_array_kinds_area_scales_with_the_node(preset):
    cfg45, cfg7 = load_accel(preset), load_accel(preset, ["energy.node=7"])
    a45, a7 = area_um2(cfg45, config_energy_table(cfg45)), area_um2(cfg7, config_energy_table(cfg7))
    assert list(a7) == list(a45)
    assert all(a7[k] == pytest.approx(a45[k] * AF7, rel=1e-5) for k in a45)
