"""Eyeriss v2 (``array.kind: eyeriss_v2``): the PE's cycle rule and the array's synchronisation on
cases worked by hand, dense reduction to M*N*K / (PEs * simd), the depthwise key, config errors,
and the Sparseloop artifact's ground truth replayed exactly (the contract every kind keeps is
tests/dataflows/test_array_kinds.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sparsesim.core.errors import InputError
from sparsesim.dataflows.eyeriss_v2 import Spread, column_cost, synced_cycles, unit_cycles
from sparsesim.hardware.presets import load_accel
from sparsesim.references import REFERENCES
from sparsesim.references.eyeriss_v2 import layers, replay
from sparsesim.simulation.run import simulate_rows
from sparsesim.sparsity import cli_sparsity
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Conv2d, Linear, Workload


class _Tensors:
    def __init__(self, x: np.ndarray, w: np.ndarray) -> None:
        self.x, self.w = x.astype(np.float32), w.astype(np.float32)

    def tensors(self, index: int, roles=None) -> dict:
        return {"input": self.x, "weight": self.w}


def _row(accel: str, op, x, w, sparsity=("zero_skip:both:skipping",), sets=()) -> dict:
    cfg = load_accel(accel, ["dram.ideal=true", *sets])
    cfg = dataclasses.replace(cfg, sparsity=tuple(cli_sparsity(list(sparsity))))
    (row,) = simulate_rows(Workload("t", (op,), (Phase.FWD,), None, _Tensors(x, w)), cfg, "best", progress=False)
    return row


# A = iacts (2 pixels x 3), B = weights (3 x 4 channels): one channel tile of 4 (psum spad 32).
A = np.array([[1, 0, 1],
              [1, 1, 0]])
B = np.array([[1, 1, 1, 0],   # k0: 3 nonzero weights
              [0, 0, 0, 0],   # k1: empty column
              [1, 0, 0, 0]])  # k2: 1 nonzero weight


def test_pe_cycles_by_hand():
    # simd 2: k0 costs ceil(3/2) = 2, k1 0 (empty), k2 ceil(1/2) = 1.
    # pixel 0 meets k0, k2: 2 + 1 = 3; pixel 1 meets k0, k1: 2 + 0 = 2; the PE: 5 cycles.
    cost = column_cost(B, 3, 4, 4, 2, 0)
    assert cost[:, 0].tolist() == [2, 0, 1]
    assert unit_cycles(A, cost, 3)[0, :, 0].tolist() == [3, 2]
    # an empty column charged 1 cycle: pixel 1 takes 3, the PE 6
    assert column_cost(B, 3, 4, 4, 2, 1)[:, 0].tolist() == [2, 1, 1]
    op = Linear(name="l", tokens=2, in_features=3, out_features=4)
    row = _row("eyeriss_v2_pe", op, A, B.T, sets=("eyeriss.simd=2",))
    assert row["compute_cycles"] == 5
    row = _row("eyeriss_v2_pe", op, A, B.T, sets=("eyeriss.simd=2", "eyeriss.empty_column_cycles=1"))
    assert row["compute_cycles"] == 6
    # one MAC: the effectual MACs, 3 + 1 + 3 + 0 = 7
    row = _row("eyeriss_v2_pe", op, A, B.T)
    assert row["compute_cycles"] == row["macs_effectual"] == 7
    # only the iacts' zeros skipped: weights dense, 4 channels a nonzero iact, 4 nonzero iacts = 16
    # (the weights' zeros unseen, so all 16 count as effectual)
    row = _row("eyeriss_v2_pe", op, A, B.T, sparsity=("zero_skip:input:skipping",))
    assert row["compute_cycles"] == row["macs_effectual"] == 16


def test_sync_domains_by_hand():
    # 2 clusters of 2 PEs, one channel tile, 4 pixels, 2 K chunks (steps)
    units = np.array([[[5], [1], [2], [2]],
                      [[1], [5], [2], [6]]], dtype=float)
    sp = Spread(groups=1, clusters_per_group=2, cluster_pes=2)
    # pe: per-PE sums 6, 6, 4, 8 -> 8
    assert synced_cycles(units, sp, "pe") == 8
    # cluster: cluster 0 max 5 then 5 = 10; cluster 1 max 2 then 6 = 8 -> 10
    assert synced_cycles(units, sp, "cluster") == 10
    # array: max 5 then 6 = 11
    assert synced_cycles(units, sp, "array") == 11


def test_dense_reduces_to_macs_over_pes_and_simd():
    # one PE, simd 2: 64 * 64 * 64 / 2
    op = Linear(name="l", tokens=64, in_features=64, out_features=64)
    ones = np.ones((64, 64))
    assert _row("eyeriss_v2_pe", op, ones, ones, sets=("eyeriss.simd=2",))["compute_cycles"] == 64 ** 3 // 2
    # the array: 24 pixels, 512 channels (16 tiles of 32, one per cluster), K 12 (2 chunks of 6):
    # 2 pixel rounds of 12 PEs x 2 chunks x 6 iacts x 32/2 cycles = 384 = 24 * 512 * 12 / (192 * 2)
    op = Linear(name="l", tokens=24, in_features=12, out_features=512)
    for sync in ("pe", "cluster", "array"):
        row = _row("eyeriss_v2", op, np.ones((24, 12)), np.ones((512, 12)), sets=(f"eyeriss.sync={sync}",))
        assert row["compute_cycles"] == row["dense_compute_cycles"] == 24 * 512 * 12 // (192 * 2)
        assert row["utilization"] == pytest.approx(1.0)


def test_sync_orders_the_array_cycles():
    rng = np.random.default_rng(3)
    x, w = (rng.random((96, 128)) < 0.5), (rng.random((256, 128)) < 0.4)
    op = Linear(name="l", tokens=96, in_features=128, out_features=256)
    c = {s: _row("eyeriss_v2", op, x, w, sets=(f"eyeriss.sync={s}",))["compute_cycles"]
         for s in ("pe", "cluster", "array")}
    assert c["pe"] <= c["cluster"] <= c["array"]
    assert c["pe"] < c["array"]  # real imbalance on random masks


def test_depthwise_skip_key():
    rng = np.random.default_rng(5)
    op = Conv2d(name="dw", batch=1, in_channels=8, out_channels=8, in_h=6, in_w=6, kernel_h=3, kernel_w=3,
                pad_h=1, pad_w=1, groups=8)
    x, w = rng.random((1, 8, 6, 6)) * (rng.random((1, 8, 6, 6)) < 0.5), rng.random((8, 1, 3, 3)) + 0.5
    skip = _row("eyeriss_v2_pe", op, x, w, sets=("eyeriss.depthwise_skip=true",))
    dense = _row("eyeriss_v2_pe", op, x, w, sets=("eyeriss.depthwise_skip=false",))
    # dense: 8 groups x 36 pixels x 9 taps, one MAC each
    assert dense["compute_cycles"] == 8 * 36 * 9 == dense["dense_compute_cycles"]
    assert skip["compute_cycles"] == skip["macs_effectual"] < dense["compute_cycles"]
    assert dense["macs_effectual"] == skip["macs_effectual"]


@pytest.mark.parametrize("key, value, field", [("array.nm_ratios", "[\"2:4\"]", "array.nm_ratios"),
                                               ("array.lanes", "decoupled", "array.lanes"),
                                               ("eyeriss.cluster_rows", "5", "eyeriss.cluster_rows")])
def test_config_errors_name_the_key(key, value, field):
    op = Linear(name="l", tokens=4, in_features=4, out_features=4)
    with pytest.raises(InputError, match=rf"^{field}: "):
        _row("eyeriss_v2", op, np.ones((4, 4)), np.ones((4, 4)), sets=(f"{key}={value}",))


def test_sparseloop_ground_truth_exact():
    (check,) = [REFERENCES.get(n) for n in REFERENCES.names() if n == "eyeriss_v2_pe_sparseloop"]
    cases = check.run()
    assert len(cases) == 9 and all(c.agrees and c.model == c.reference for c in cases)
    # the ground truth is the effectual MAC count; Sparseloop's uniform model is 0.935-1.005 of it
    for layer in layers():
        effectual = int(layer.iacts.sum(axis=0) @ layer.weights.sum(axis=0))
        assert effectual == layer.truth_cycles
        assert 0.93 <= layer.uniform_cycles / layer.truth_cycles <= 1.006


def test_the_flattening_matters():
    """The check discriminates: the masks read with C slowest miss the ground truth."""
    layer = layers()[0]
    wrong = dataclasses.replace(layer, iacts=layer.iacts.reshape(layer.C, layer.pixels).T.copy())
    assert replay(wrong)["compute_cycles"] != layer.truth_cycles


def _slow_array_cycles(a: np.ndarray, b: np.ndarray, simd: int, sync: str, clusters: int, cluster_pes: int) -> int:
    """A plain-loop twin of the rule and the mapping for a GEMM that is one buffer block: channel
    tiles of 32, K chunks of 6; tile t goes to group t % Pn (round t // Pn), pixel m to PE m % Pm of
    its group (round m // Pm), in cluster (group * clusters_per_group + PE // cluster_pes)."""
    M, K = a.shape
    N = b.shape[1]
    tiles = -(-N // 32)
    groups = min(tiles, clusters)
    per_group = clusters // groups
    pm = per_group * cluster_pes
    work: dict = {}  # (step, cluster, pe) -> cycles
    for m in range(M):
        for t in range(tiles):
            for k in range(K):
                if a[m, k]:
                    step = (k // 6, m // pm, t // groups)
                    pe = (t % groups, m % pm)
                    cluster = (t % groups) * per_group + (m % pm) // cluster_pes
                    nnz = int(b[k, 32 * t:32 * t + 32].sum())
                    key = (step, cluster, pe)
                    work[key] = work.get(key, 0) + -(-nnz // simd)
    if sync == "pe":
        per_pe: dict = {}
        for (step, cluster, pe), c in work.items():
            per_pe[pe] = per_pe.get(pe, 0) + c
        return max(per_pe.values())
    steps = {key[0] for key in work}
    if sync == "array":
        return sum(max(c for key, c in work.items() if key[0] == s) for s in steps)
    per_cluster: dict = {}
    for s in steps:
        for cl in {key[1] for key in work if key[0] == s}:
            per_cluster[cl] = per_cluster.get(cl, 0) + max(c for key, c in work.items() if key[:2] == (s, cl))
    return max(per_cluster.values())


@pytest.mark.parametrize("seed", [0, 1])
def test_rule_matches_a_plain_loop_twin(seed):
    rng = np.random.default_rng(seed)
    M, N, K = 40, 70, 20  # 3 channel tiles (32, 32, 6), 4 K chunks (6, 6, 6, 2): one buffer block
    x, w = (rng.random((M, K)) < 0.6), (rng.random((N, K)) < 0.5)
    op = Linear(name="l", tokens=M, in_features=K, out_features=N)
    # one PE, SIMD 2
    row = _row("eyeriss_v2_pe", op, x, w, sets=("eyeriss.simd=2",))
    assert row["compute_cycles"] == _slow_array_cycles(x, w.T, 2, "pe", 1, 1)
    # one PE, one MAC: the effectual MACs
    assert _row("eyeriss_v2_pe", op, x, w)["compute_cycles"] == int((x.astype(int) @ w.T.astype(int)).sum())
    for sync in ("pe", "cluster", "array"):
        row = _row("eyeriss_v2", op, x, w, sets=(f"eyeriss.sync={sync}",))
        assert row["tiles"] == 1
        assert row["compute_cycles"] == _slow_array_cycles(x, w.T, 2, sync, 16, 12)
