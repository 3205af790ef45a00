"""Dense cycles against SCALE-Sim v3's own numbers (tests/golden/scalesim_dense.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sparsesim.hardware.presets import load_accel
from sparsesim.simulation.engine import run_gemm
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Conv2d

GOLDEN = Path(__file__).parents[1] / "golden" / "scalesim_dense.csv"
CASES = list(csv.DictReader(GOLDEN.open()))


def test_golden_file_is_big_enough():
    assert len(CASES) >= 30
    assert {c["dataflow"] for c in CASES} == {"os", "ws", "is"}
    assert {c["kind"] for c in CASES} == {"gemm", "conv"}
    assert any(c["rows"] != c["cols"] for c in CASES)


def _gemm_of(case):
    if case["kind"] == "conv":
        # SCALE-Sim's ifmap already includes padding; its lowering must equal ours.
        conv = Conv2d(name=case["case"], batch=1, in_channels=int(case["channels"]),
                      out_channels=int(case["num_filters"]), in_h=int(case["ifmap_h"]), in_w=int(case["ifmap_w"]),
                      kernel_h=int(case["filter_h"]), kernel_w=int(case["filter_w"]),
                      stride_h=int(case["stride"]), stride_w=int(case["stride"]), ceil_mode=True)
        gemm = conv.gemm(Phase.FWD)
        assert (gemm.M, gemm.N, gemm.K) == (int(case["M"]), int(case["N"]), int(case["K"]))
        return gemm
    from sparsesim.workloads.gemm import Gemm

    return Gemm(int(case["M"]), int(case["N"]), int(case["K"]))


@pytest.mark.parametrize("case", CASES, ids=[f"{c['case']}-{c['dataflow']}" for c in CASES])
def test_dense_cycles_equal_scalesim(case):
    cfg = load_accel("edge32", [f"array.rows={case['rows']}", f"array.cols={case['cols']}",
                                "array.fold_overlap=false", "dram.ideal=true"])
    out = run_gemm(_gemm_of(case), cfg, case["dataflow"])
    assert out.cycles == int(case["cycles"]) == int(case["scalesim_total_cycles"]) + 1
    assert out.stall_cycles == 0
