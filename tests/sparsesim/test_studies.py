"""Case-study prose follows the data: the same writer says opposite things of opposite tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sparsesim.studies import delta, sat
from sparsesim.studies.common import relation, span, trend


def test_prose_helpers():
    assert span([1.0, 1.5, 1.25]) == "1.00x to 1.50x"
    assert span([0.0123, 0.0123], ".1%", "") == "1.2%"
    assert trend([1, 2, 2, 3]) == "grows" and trend([3, 1]) == "falls" and trend([1, 1]) == "stays flat"
    assert trend([1, 3, 2]) == "is not monotonic"
    assert relation(1.0, 1.4) == "below" and relation(1.5, 1.4) == "above" and relation(1.41, 1.4) == "about equal to"


def _delta_summary(saving: float, err0: float) -> pd.DataFrame:
    rows = []
    for model in delta.MODELS:
        for i, theta in enumerate(delta.THRESHOLDS):
            rows.append({"model": model, "threshold": theta, "fired": 0.5 - 0.05 * i, "speedup": 1.0 + 0.1 * i,
                         "bound_speedup": 3.0, "compute_speedup": 1.2 + 0.1 * i, "compute_bound_speedup": 4.0,
                         "work_ratio": 2.0 + i, "energy_saving": saving, "state_share": 0.01,
                         "err_mean": (err0 if theta == 0 else 0.01 * i), "err_max": (err0 if theta == 0 else 0.1 * i),
                         "stall_cycles": 50, "cycles": 100, "state_on_chip": model != delta.MODELS[0],
                         "speedup_macs_only": 1.0 + (0.1 * i if saving < 0 else 0.02 * i),
                         "weight_skipped": 0.1 * i if saving > 0 else 0.5 * i / len(delta.THRESHOLDS),
                         "dram_bytes": 1e6 * (1 - 0.1 * i), "dram_bytes_macs_only": 1e6,
                         "compute_speedup_macs_only": 1.2 + 0.1 * i})
    return pd.DataFrame(rows)


def test_delta_text_is_computed_from_its_table():
    figs = {k: Path(f"{k}.png") for k in ("speedup", "error", "energy")}
    good = delta.write(delta.Data(pd.DataFrame(), _delta_summary(0.2, 0.0), 1), figs)
    bad = delta.write(delta.Data(pd.DataFrame(), _delta_summary(-0.03, 1e-3), 1), figs)
    assert "exactly zero" in good and "exactly zero" not in bad
    assert "1.00e-03" in bad
    assert "saves energy at every θ" in good and "costs energy" not in good
    assert "costs energy" in bad and "-3.0%" in bad
    # weight rows of unsent deltas: a gain where the speedups part, bytes that did not bound it where not
    assert "bytes not fetched are cycles saved" in good and "are cycles saved" not in bad
    assert "were not what bounded" in bad and "were not what bounded" not in good
    # the reason given follows the table: state kept in DRAM for one model, on chip for the other
    assert f"{delta.MODELS[0]} at θ = 0 to" in bad and "crosses DRAM every step" in bad
    assert "so little is skipped" in bad


def _sat_factors(small: dict, full: dict) -> pd.DataFrame:
    """Two models with their speedup made of the given factors (speedup = product, as measured)."""
    rows = []
    for group, model, f in (("small", "tiny", small), ("full", "huge", full)):
        rows.append({"group": group, "model": model, **f,
                     "speedup": f["work_ratio"] * f["array_efficiency"] * f["memory_efficiency"]})
    return pd.DataFrame(rows)


def test_sat_size_text_follows_its_table():
    narrow = {"work_ratio": 2.0, "array_efficiency": 0.6, "memory_efficiency": 0.9, "untouched_mac_share": 0.33,
              "weightless_mac_share": 0.0, "short_share": 0.7, "stall_share": 0.1, "median_k": 64,
              "energy_saving": 0.1, "pregen_share": 0.3}
    wide = {**narrow, "array_efficiency": 0.95, "short_share": 0.05, "median_k": 384, "energy_saving": 0.25,
            "pregen_share": 0.05}
    grows = sat.size_text(_sat_factors(narrow, wide), (("tiny", "huge"),), 32)
    falls = sat.size_text(_sat_factors(wide, narrow), (("tiny", "huge"),), 32)
    # 2 x 0.6 x 0.9 = 1.08 and 2 x 0.95 x 0.9 = 1.71: 1.71 / 1.08 - 1 = +58%
    assert "grows (1.08x -> 1.71x, +58%)" in grows and "falls (1.71x -> 1.08x, -37%)" in falls
    assert "array's share of the work saving, which rises by +58%" in grows
    assert "shorter than the 32-row array shrinks from 70% to 5%" in grows and "K = 64 -> 384" in grows
    assert "array's share of the work saving, which falls by -37%" in falls
    assert "Energy saved grows (10.0% -> 25.0%)" in grows and "shrinks from 30% to 5% of the DRAM bytes" in grows
    assert "Energy saved falls (25.0% -> 10.0%)" in falls and "grows from 5% to 30% of the DRAM bytes" in falls
    assert "shorter than the 32-row array grows from 5% to 70%" in falls
    # a factor whose explaining share moves the other way is not explained by it
    stalled = {**narrow, "memory_efficiency": 0.5, "stall_share": 0.05}
    odd = sat.size_text(_sat_factors(narrow, stalled), (("tiny", "huge"),), 32)
    assert "memory and pre-generation, which falls" in odd and "the stalls does not explain it (10% -> 5%)" in odd
    same = sat.size_text(_sat_factors(narrow, {**narrow, "memory_efficiency": 0.91}), (("tiny", "huge"),), 32)
    assert "stays about the same" in same and "No factor moves by more than 2%" in same


def _sat_row(phase: str, kind: str, K: int, macs: int, pruned: bool, dense_compute: int, compute: int) -> dict:
    return {"group": "full", "model": "m", "config": sat.LADDER_RATIO, "phase": phase, "kind": kind, "K": K,
            "features_active": "nm" if pruned else "", "macs_dense": macs, "macs_effectual": macs // 4 if pruned
            else macs, "dense_compute_cycles": dense_compute, "compute_cycles": compute,
            "dense_cycles": dense_compute + 10, "cycles": compute + 10, "stall_cycles": 10, "energy_pj": 1.0,
            "dense_energy_pj": 2.0, "dram_bytes": 1, "bound_cycles": 1, "mac_bound_cycles": 1,
            "pregen_dram_bytes": 0}


def test_sat_size_factors_by_hand():
    rows = pd.DataFrame([
        _sat_row("fwd", "linear", 256, 800, True, 100, 30),  # 2:8 of 256 -> 64 MAC slots: not short
        _sat_row("bwd_data", "linear", 64, 400, True, 60, 40),  # 2:8 of 64 -> 16 slots < 32 rows: short
        _sat_row("bwd_weight", "linear", 8, 600, False, 90, 90),
        _sat_row("fwd", "matmul", 16, 200, False, 50, 50),
    ])
    f = sat.size_factors(rows, sat._step(rows), 32).iloc[0]
    # dense MACs 2000, effectual 200 + 100 + 600 + 200 = 1100; dense compute 300, sparse compute 210;
    # dense cycles 340, sparse cycles 250 (each row adds 10 cycles of stall)
    assert f["work_ratio"] == 2000 / 1100
    assert abs(f["array_efficiency"] - (300 / 210) / (2000 / 1100)) < 1e-12
    assert abs(f["memory_efficiency"] - (340 / 250) / (300 / 210)) < 1e-12
    assert abs(f["speedup"] - 340 / 250) < 1e-12
    assert f["untouched_mac_share"] == 800 / 2000 and f["weightless_mac_share"] == 200 / 2000
    assert f["short_share"] == 60 / 160 and f["stall_share"] == 40 / 250
    assert f["median_k"] == (256 + 64) / 2  # the two pruned rows


def test_sat_size_summary_follows_its_tables():
    def data(small_speedup: float, full_speedup: float) -> sat.Data:
        step = pd.DataFrame([{"model": "huge", "config": r, "speedup": full_speedup} for r in sat.RATIOS])
        small = pd.DataFrame([{"model": "tiny", "config": r, "speedup": small_speedup} for r in sat.RATIOS])
        factors = pd.DataFrame([{"group": "small", "model": "tiny", "speedup": small_speedup},
                                {"group": "full", "model": "huge", "speedup": full_speedup}])
        empty = pd.DataFrame()
        return sat.Data(empty, step, small, empty, empty, factors, empty, (("tiny", "huge"),), 32)

    up = sat._size_summary(data(1.2, 1.9))
    down = sat._size_summary(data(1.9, 1.2))
    assert "full-size models average **1.90x**, the small ones 1.20x" in up
    assert f"full-size average is above the paper's {sat.PUBLISHED_2_8}x and the small one below it" in up
    assert f"full-size average is below the paper's {sat.PUBLISHED_2_8}x and the small one above it" in down
    assert "the speedup grows in 1 of the 1 pairs" in up and "the speedup falls in 1 of the 1 pairs" in down
