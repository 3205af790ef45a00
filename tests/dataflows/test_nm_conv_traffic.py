"""N:M on convolutions: the compacted reduction still reads the input as its feature map.

N:M selects, with each sparse MAC's multiplexer, among activations already on chip; it does
not change what is fetched from DRAM. Before this was kept, the compacted GEMM lost its conv
geometry and read A as im2col rows (conv1 of ``configs/topologies/example.csv`` on edge32
read 28,208 bytes at 2:4 against 4,332 dense).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sparsesim
from sparsesim.hardware.presets import load_accel
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Conv2d, Workload

CONV = Conv2d(name="conv", batch=1, in_channels=4, out_channels=8, in_h=8, in_w=8, kernel_h=3, kernel_w=3,
              pad_h=1, pad_w=1)


class Tensors:
    def __init__(self, per_op):
        self.per_op = per_op

    def tensors(self, index):
        return self.per_op[index]


def _conv_workload():
    rng = np.random.default_rng(0)
    t = {"input": rng.uniform(0.5, 1.5, (1, 4, 8, 8)).astype(np.float32),
         "weight": rng.uniform(0.5, 1.5, (8, 4, 3, 3)).astype(np.float32),
         "grad": np.ones((1, 8, 8, 8), np.float32)}
    return Workload("t", (CONV,), (Phase.FWD,), source=Tensors([t]))


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
def test_a_resident_conv_reads_its_feature_map_once_dense_or_2_4(dataflow):
    # int8 on edge32, every operand fits on chip (read once). Worked by hand:
    #   A: the 4 x 8 x 8 input feature map, 256 B (not its 64 x 36 im2col, 2,304 B)
    #   B dense: 36 x 8 weights = 288 B; 2:4: 9 groups x 2 kept x 8 filters, each 1 B value
    #   + 2 index bits = 18 x 8 x 1.25 = 180 B
    #   Out: 64 pixels x 8 filters = 512 B written
    dense = simulate_rows(_conv_workload(), load_accel("edge32"), dataflow)[0]
    sparse = simulate_rows(_conv_workload(), load_accel("edge32", [], {"sparsity": [{"kind": "nm", "n": 2, "m": 4}]}),
                      dataflow)[0]
    assert (dense["M"], dense["N"], dense["K"]) == (64, 8, 36)
    assert dense["dram_read_bytes"] == 256 + 288
    assert sparse["dram_read_bytes"] == 256 + 180
    assert dense["dram_compulsory_bytes"] == 256 + 288 + 512
    assert sparse["dram_compulsory_bytes"] == 256 + 180 + 512


@pytest.mark.parametrize("dataflow", ["os", "ws", "is"])
@pytest.mark.parametrize("nm", [(2, 4), (1, 8)])
def test_sparse_convs_never_move_more_bytes_than_dense(dataflow, nm):
    # the reproduction: every conv of the example topology, on edge32
    csv = Path(__file__).parents[2] / "configs" / "topologies" / "example.csv"
    dense = sparsesim.simulate(sparsesim.topology(csv), accel="edge32", dataflow=dataflow).rows
    sparse = sparsesim.simulate(sparsesim.topology(csv), accel="edge32", dataflow=dataflow,
                                sparsity=[f"nm:{nm[0]}:{nm[1]}"]).rows
    assert [r["name"] for r in dense] == [r["name"] for r in sparse]
    for d, s in zip(dense, sparse):
        assert s["dram_read_bytes"] <= d["dram_read_bytes"], d["name"]
        assert s["dram_compulsory_bytes"] <= d["dram_compulsory_bytes"], d["name"]
        assert s["dram_lower_bound_bytes"] <= d["dram_lower_bound_bytes"], d["name"]
