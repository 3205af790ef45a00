"""The dual-side sparse tensor core (``array.kind: dstc``): its cycle rule on cases worked by
hand, its reduction to the dense tensor core, properties on random masks, and the keys it
refuses. The kind's contract (tests/dataflows/test_array_kinds.py) runs on its preset too."""

from __future__ import annotations

import numpy as np
import pytest

from sparsesim.core.errors import InputError
from sparsesim.dataflows import ARRAY_KINDS
from sparsesim.dataflows.dstc import block_cycles, conflict_cost
from sparsesim.dataflows.tiled import ArrayWork
from sparsesim.hardware.presets import load_accel
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.gemm import Gemm, Phase
from sparsesim.workloads.ops import Linear, Workload

# the 4 x 4 x 3 case: a 2 x 2 grid, one 4 x 4 output tile, draining 4 words a cycle
TINY = ["array.rows=2", "array.cols=2", "dstc.tile_m=4", "dstc.tile_n=4", "dstc.drain_words_per_cycle=4"]
A = np.array([[1, 0, 1],
              [1, 0, 0],
              [1, 0, 0],
              [0, 0, 0]], dtype=np.uint8)  # columns k: a_0 = 3, a_1 = 0, a_2 = 1
B = np.array([[1, 1, 0, 0],
              [1, 1, 1, 1],
              [1, 1, 1, 0]], dtype=np.uint8)  # rows k: b_0 = 2, b_1 = 4, b_2 = 3
WHOLE = np.array([[0, 4, 0, 4, 0, 3]], dtype=np.int64)  # one block: the whole GEMM


def _work(a, b) -> ArrayWork:
    M, K = a.shape
    N = b.shape[1]
    eff = int((a.sum(axis=0, dtype=np.int64) * b.sum(axis=1, dtype=np.int64)).sum())
    return ArrayWork(Gemm(M, N, K, 1, None), a, b, M * N * K, eff, True)


def _cycles(work, overrides) -> int:
    cycles, epilogue, _ = block_cycles(work, load_accel("dstc", overrides), WHOLE)
    return int(cycles.sum()) + epilogue


def test_per_k_outer_products_by_hand():
    # k=0: ceil(3/2) * ceil(2/2) = 2 * 1 = 2; k=1: a_1 = 0, skipped: 0; k=2: ceil(1/2) * ceil(3/2) = 1 * 2 = 2
    # products 4, then the 16 outputs drain at 4 a cycle: 4 more
    assert _cycles(_work(A, B), TINY) == 4 + 4
    # decode not overlapped: one more cycle per k step issued (k=0, k=2)
    assert _cycles(_work(A, B), TINY + ["dstc.decode_overlap=false"]) == 4 + 2 + 4
    # drain overlapped: only the last tile's drain is left, after the last block (the same 4 here)
    assert _cycles(_work(A, B), TINY + ["dstc.drain_overlap=true"]) == 4 + 4
    # perfect packing: sum_k a_k b_k = 3*2 + 0*4 + 1*3 = 9 products on 4 multipliers: ceil(9/4) = 3
    assert _cycles(_work(A, B), TINY + ["dstc.packing=perfect"]) == 3 + 4


def test_dense_operands_cost_the_dense_tensor_core():
    # dense 4 x 4 x 3 on the 2 x 2 grid: 48 MACs / 4 a cycle = 12 = K * (4*4)/(2*2), plus the drain 4
    ones_a, ones_b = np.ones_like(A), np.ones_like(B)
    assert _cycles(_work(ones_a, ones_b), TINY) == 12 + 4
    dense = ArrayWork(Gemm(4, 4, 3, 1, None), None, None, 48, 48, False)  # streamed dense, no masks
    assert _cycles(dense, TINY) == 12 + 4


def test_dense_gemm_with_edge_tiles_by_hand():
    # 40 x 48 x 72 on the preset (8 x 16 grid, 32 x 32 tiles): tiles M 32 + 8, N 32 + 16
    # per k: (32,32) 4*2 = 8, (32,16) 4*1 = 4, (8,32) 1*2 = 2, (8,16) 1*1 = 1: 15; times K = 72: 1080
    # (the dense tensor core on an 8 x 16 grid: the same padded passes); drains at 116 words a cycle:
    # ceil(1024/116) = 9, ceil(512/116) = 5, ceil(256/116) = 3, ceil(128/116) = 2: 19
    op = Linear(name="fc", tokens=40, in_features=72, out_features=48)
    (row,) = simulate_rows(Workload("dense", (op,), (Phase.FWD,)), load_accel("dstc", ["dram.ideal=true"]),
                           "dstc", progress=False)
    assert row["compute_cycles"] == row["cycles"] == 1080 + 19
    # without edges it is dense MACs / 128 plus 9 a tile: 64 x 64 x 64 -> 2048 + 4 * 9
    op = Linear(name="fc", tokens=64, in_features=64, out_features=64)
    (row,) = simulate_rows(Workload("dense", (op,), (Phase.FWD,)), load_accel("dstc", ["dram.ideal=true"]),
                           "dstc", progress=False)
    assert row["cycles"] == 64 ** 3 // 128 + 4 * 9


def test_bank_conflicts_by_hand():
    # B row [1, 0, 1, 0] on 2 grid columns: one pass of 2 condensed columns, 0 and 2; with 2 banks
    # (column c in bank c mod 2) both are in bank 0: 2 cycles instead of 1
    b = np.array([[1, 0, 1, 0], [1, 1, 1, 1], [1, 1, 1, 0]], dtype=np.uint8)
    assert conflict_cost(b, 4, 2, 2).tolist() == [[2], [2], [2]]  # rows 1, 2: passes {0,1},{2,3} / {0,1},{2}
    assert conflict_cost(b, 4, 2, 4).tolist() == [[1], [2], [2]]  # one bank per column: ceil(b_k / 2)
    # k=0: ceil(3/2) * 2 = 4; k=1 skipped; k=2: 1 * 2 = 2; drain 4
    assert _cycles(_work(A, b), TINY + ["dstc.acc_banks=2"]) == 6 + 4
    assert _cycles(_work(A, b), TINY) == 2 * 1 + 2 + 4


def test_random_masks_keep_the_order_of_the_bounds():
    rng = np.random.default_rng(3)
    for _ in range(5):
        M, N, K = rng.integers(1, 70, 3)
        a = (rng.random((M, K)) < rng.random()).astype(np.uint8)
        b = (rng.random((K, N)) < rng.random()).astype(np.uint8)
        blocks = np.array([[0, M, 0, N, 0, K]], dtype=np.int64)
        cfg = load_accel("dstc", ["dstc.drain_overlap=true"])
        work = _work(a, b)
        per_k, _, _ = block_cycles(work, cfg, blocks)
        perfect, _, _ = block_cycles(work, load_accel("dstc", ["dstc.drain_overlap=true", "dstc.packing=perfect"]),
                                     blocks)
        dense, _, _ = block_cycles(_work(np.ones_like(a), np.ones_like(b)), cfg, blocks)
        assert -(-work.macs_effectual // 128) <= perfect[0] <= per_k[0] <= dense[0]
        # more zeros never cost more cycles
        a2 = a * (rng.random(a.shape) < 0.7)
        fewer, _, _ = block_cycles(_work(a2.astype(np.uint8), b), cfg, blocks)
        assert fewer[0] <= per_k[0]


def test_blocks_split_along_k_sum_to_the_whole():
    rng = np.random.default_rng(5)
    a = (rng.random((70, 50)) < 0.4).astype(np.uint8)
    b = (rng.random((50, 40)) < 0.6).astype(np.uint8)
    cfg = load_accel("dstc")
    whole, _, _ = block_cycles(_work(a, b), cfg, np.array([[0, 70, 0, 40, 0, 50]]))
    parts = np.array([[m0, min(m0 + 32, 70), n0, min(n0 + 32, 40), k0, k1]
                      for m0 in (0, 32, 64) for n0 in (0, 32) for k0, k1 in ((0, 20), (20, 50))])
    split, _, _ = block_cycles(_work(a, b), cfg, parts)
    assert int(split.sum()) == int(whole[0])


@pytest.mark.parametrize("override, key", [
    ('array.nm_ratios=["2:4"]', "array.nm_ratios"),
    ("array.lanes=decoupled", "array.lanes"),
    ("dstc.acc_banks=8", "dstc.acc_banks"),
])
def test_refused_keys_are_one_line(override, key):
    with pytest.raises(InputError, match=rf"^{key}: "):
        ARRAY_KINDS.get("dstc").check(load_accel("dstc", [override]))


def test_speedup_grows_with_both_operands_sparsity():
    """The paper's headline (Fig. 21): latency falls as either operand gets sparser. One seed,
    so a sparser operand's nonzeros are a subset of a denser one's (the same uniform draws)."""
    from sparsesim.references.dstc import normalised_latency

    dens_a, dens_b = (1.0, 0.9, 0.7, 0.5, 0.3), (1.0, 0.4)
    lat = {(da, db): normalised_latency(128, da, db, seed=1, overrides=("dram.ideal=true",))[0]
           for da in dens_a for db in dens_b}
    assert lat[1.0, 1.0] == 1.0
    for db in dens_b:
        col = [lat[da, db] for da in dens_a]
        assert all(x >= y for x, y in zip(col, col[1:])) and col[-1] < col[0]
    for da in dens_a:
        assert lat[da, 0.4] < lat[da, 1.0]
