"""Case-study prose follows the data: the same writer says opposite things of opposite tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sparsesim.studies import delta
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
    assert "were what bounded it" in good and "were what bounded it" not in bad
    assert "were not what bounded" in bad and "were not what bounded" not in good
    # the reason given follows the table: state kept in DRAM for one model, on chip for the other
    assert f"{delta.MODELS[0]} at θ = 0 to" in bad and "crosses DRAM every step" in bad
    assert "so little is skipped" in bad
