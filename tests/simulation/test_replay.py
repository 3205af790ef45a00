"""Sparse replay: hand-computed cycles, and the invariants every feature x dataflow keeps."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsesim.hardware.presets import load_accel
from sparsesim.dataflows import DATAFLOWS, display_order
from sparsesim.simulation.results import check_row
from sparsesim.simulation.run import simulate_rows
from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import PHASES, Phase
from sparsesim.workloads.ops import Conv2d, Linear, Workload

SYSTOLIC = sorted(display_order("systolic"))  # the dataflows of the systolic array kind


class Tensors:
    """A TensorSource over fixed arrays, one dict per op."""

    def __init__(self, per_op):
        self.per_op = per_op

    def tensors(self, index):
        return self.per_op[index]


def gemm_workload(A, B, phases=(Phase.FWD,), dy=None):
    """A Linear op whose fwd GEMM is exactly ``A @ B`` (B = W^T)."""
    M, K = A.shape
    N = B.shape[1]
    op = Linear(name="l", tokens=M, in_features=K, out_features=N)
    t = {"input": A.astype(np.float32), "weight": np.ascontiguousarray(B.T, dtype=np.float32),
         "grad": dy if dy is not None else np.ones((M, N), np.float32)}
    return Workload("t", (op,), tuple(phases), source=Tensors([t]))


def scalesim_cfg(rows, cols, *extra, sparsity=None):
    sets = [f"array.rows={rows}", f"array.cols={cols}", "array.fold_overlap=false", "dram.ideal=true", *extra]
    return load_accel("edge32", sets, {"sparsity": sparsity} if sparsity else None)


def one(rows):
    assert len(rows) == 1
    return rows[0]


# ---------------------------------------------------------------- hand-computed cases
def test_os_skips_a_step_only_when_the_whole_fold_slice_is_zero():
    # 2x2 array, M=N=2, K=4. Columns 1 and 3 of A are zero in both rows -> 2 steps remain.
    A = np.array([[1, 0, 2, 0], [3, 0, 4, 0]])
    B = np.ones((4, 2))
    cfg = scalesim_cfg(2, 2, sparsity=[{"kind": "zero_skip", "target": "input", "action": "skipping"}])
    row = one(simulate_rows(gemm_workload(A, B), cfg, "os"))
    assert row["dense_cycles"] == 4 + 2 + 2 - 2  # K + R + C - 2
    assert row["cycles"] == 2 + 2 + 2 - 2
    assert row["macs_effectual"] == 2 * 2 * 2
    # zeros that do not line up across the fold's rows save nothing on a systolic array
    A2 = np.array([[1, 0, 2, 0], [0, 3, 0, 4]])
    assert one(simulate_rows(gemm_workload(A2, B), cfg, "os"))["cycles"] == 6


def test_decoupled_lanes_absorb_misaligned_zeros():
    A2 = np.array([[1, 0, 2, 0], [0, 3, 0, 4]])
    B = np.ones((4, 2))
    sp = [{"kind": "zero_skip", "target": "input", "action": "skipping"}]
    for window, stream in ((1, 4), (2, 2), (4, 2)):
        cfg = scalesim_cfg(2, 2, "array.lanes=decoupled", f"array.sync_window_steps={window}", sparsity=sp)
        assert one(simulate_rows(gemm_workload(A2, B), cfg, "os"))["cycles"] == stream + 2, window
    # imbalance: lane 0 has 3 effectual steps in the window, lane 1 has 1 -> the window costs 3
    A3 = np.array([[1, 1, 1, 0], [0, 0, 0, 4]])
    cfg = scalesim_cfg(2, 2, "array.lanes=decoupled", "array.sync_window_steps=4", sparsity=sp)
    assert one(simulate_rows(gemm_workload(A3, B), cfg, "os"))["cycles"] == 3 + 2


def test_ws_skips_rows_of_a_that_are_zero_across_the_fold():
    # ws: K=2 on the rows, N=2 on the columns, M=4 streamed; rows 1 and 2 of A are zero.
    A = np.array([[1, 2], [0, 0], [0, 0], [3, 4]])
    B = np.ones((2, 2))
    cfg = scalesim_cfg(2, 2, sparsity=[{"kind": "zero_skip", "target": "input", "action": "skipping"}])
    row = one(simulate_rows(gemm_workload(A, B), cfg, "ws"))
    assert row["dense_cycles"] == 4 + 2 * 2 + 2 - 2
    assert row["cycles"] == 2 + 2 * 2 + 2 - 2
    # a zero stationary weight cannot remove a cycle on ws: weight skipping changes nothing
    Bz = np.array([[0.0, 1.0], [0.0, 1.0]])
    cfg_w = scalesim_cfg(2, 2, sparsity=[{"kind": "zero_skip", "target": "weight", "action": "skipping"}])
    row = one(simulate_rows(gemm_workload(np.ones((4, 2)), Bz), cfg_w, "ws"))
    assert row["cycles"] == row["dense_cycles"] and row["macs_effectual"] == 8


@pytest.mark.parametrize("name", ["os", "ws", "is"])
@pytest.mark.parametrize("nm", [(2, 4), (1, 4), (1, 8), (2, 8), (4, 8)])
def test_exact_nm_weights_on_dense_activations_shorten_the_reduction_m_over_n(name, nm):
    n, m = nm
    rng = np.random.default_rng(0)
    M, N, K = 48, 40, 64
    A = rng.uniform(0.5, 1.5, (M, K))
    B = rng.uniform(0.5, 1.5, (K, N))
    cfg = scalesim_cfg(8, 8, sparsity=[{"kind": "nm", "n": n, "m": m}])
    row = one(simulate_rows(gemm_workload(A, B), cfg, name))
    df = DATAFLOWS.get(name)
    from sparsesim.workloads.gemm import Gemm

    assert row["cycles"] == df.compute_cycles(Gemm(M, N, K * n // m), 8, 8, False)
    assert row["dense_cycles"] == df.compute_cycles(Gemm(M, N, K), 8, 8, False)
    assert row["macs_effectual"] == M * N * K * n // m
    assert row["work_ratio"] == pytest.approx(m / n)


def test_bidirectional_pruning_speeds_up_fwd_and_bwd_data_not_bwd_weight():
    rng = np.random.default_rng(1)
    A = rng.uniform(0.5, 1.5, (64, 64))
    B = rng.uniform(0.5, 1.5, (64, 64))
    dy = rng.uniform(0.5, 1.5, (64, 64)).astype(np.float32)
    wl = gemm_workload(A, B, PHASES, dy)
    rows = {r["phase"]: r for r in simulate_rows(wl, scalesim_cfg(8, 8, sparsity=[{"kind": "nm", "n": 2, "m": 4}]), "os")}
    # K = 64 -> 32 MAC slots per fold; every fold still pays R + C - 2 = 14 cycles of skew
    assert rows["fwd"]["speedup"] == rows["bwd_data"]["speedup"] == pytest.approx((64 + 14) / (32 + 14))
    # bwd_weight runs dense; with one layer nothing follows its weight update, so the
    # pre-generation of both copies (2 x 64 rows x 16 groups of 4, 32 lanes, 4 cycles a
    # group) is exposed in its row: 2048 / 32 * 4 = 256 cycles
    assert rows["bwd_weight"]["compute_speedup"] == 1.0
    assert rows["bwd_weight"]["cycles"] == rows["bwd_weight"]["dense_cycles"] + 256
    assert [rows[p]["features_active"] for p in ("fwd", "bwd_data", "bwd_weight")] == ["nm", "nm", "none"]
    uni = [{"kind": "nm", "n": 2, "m": 4, "bidirectional": False}]
    rows = {r["phase"]: r for r in simulate_rows(wl, scalesim_cfg(8, 8, sparsity=uni), "os")}
    assert rows["bwd_data"]["speedup"] == 1.0  # fwd mask transposed is not N:M along K


def test_declared_nm_weights_that_are_not_nm_are_an_error():
    A = np.ones((8, 8))
    cfg = scalesim_cfg(4, 4, sparsity=[{"kind": "nm", "n": 2, "m": 4, "mode": "declared"}])
    with pytest.raises(InputError, match="declared 2:4 but a group holds 4 nonzeros"):
        simulate_rows(gemm_workload(A, np.ones((8, 8))), cfg, "os")
    B = np.tile([1.0, 0.0, 2.0, 0.0], (8, 2)).T  # (8, 8): rows alternate -> 2 nonzeros per 4 along K
    row = one(simulate_rows(gemm_workload(A, B), cfg, "os"))
    assert row["speedup"] > 1.0


# ---------------------------------------------------------------- invariants
FEATURES = [
    [{"kind": "zero_skip", "target": t, "action": a}] for t in ("input", "weight", "grad", "both")
    for a in ("gating", "skipping")
] + [[{"kind": "act_policy", "method": "relu"}],
     [{"kind": "act_policy", "method": "relu"}, {"kind": "zero_skip", "target": "both", "action": "skipping"}]]


@pytest.mark.parametrize("sparsity", FEATURES, ids=lambda s: "+".join(f"{d['kind']}" + "-".join(
    str(v) for k, v in d.items() if k != "kind") for d in s))
@pytest.mark.parametrize("lanes", ["systolic", "decoupled"])
def test_fully_dense_operands_give_exactly_dense_cycles(sparsity, lanes):
    rng = np.random.default_rng(2)
    A = rng.uniform(0.5, 1.5, (70, 45))
    B = rng.uniform(0.5, 1.5, (45, 38))
    dy = rng.uniform(0.5, 1.5, (70, 38)).astype(np.float32)
    cfg = load_accel("edge32", ["array.rows=16", "array.cols=8", f"array.lanes={lanes}",
                                "dram.bandwidth_bytes_per_cycle=2"], {"sparsity": sparsity})
    for name in SYSTOLIC:
        for row in simulate_rows(gemm_workload(A, B, PHASES, dy), cfg, name):
            assert row["cycles"] == row["dense_cycles"], (name, row["phase"])
            assert row["macs_effectual"] == row["macs_dense"]
            assert row["dram_bytes"] == row["events"]["dram_read_bytes"] + row["events"]["dram_write_bytes"]


sparse_mat = st.integers(0, 2**31 - 1)


def assert_within_bounds(r):
    """What reports call a limit is one: no row beats its bound (MAC and DRAM), in total
    cycles or in compute cycles, and a speedup never passes ``bound_speedup``."""
    assert r["bound_cycles"] == max(r["mac_bound_cycles"], r["bw_bound_cycles"])
    assert r["cycles"] >= r["bound_cycles"]
    assert r["compute_cycles"] >= r["mac_bound_cycles"]
    assert r["speedup"] <= r["bound_speedup"] + 1e-12
    # the bounds are independent of the model: every PE does at most one MAC a cycle, every
    # DRAM byte crosses a channel of the configured bandwidth
    assert r["mac_bound_cycles"] == -(-r["macs_effectual"] // (8 * 4))


def test_a_compressed_operand_never_moves_fewer_bytes_than_its_bound():
    """A drawn case that once broke it: 40x2x48 on 8x4, os, A skipped and stored compressed at
    density 430/1920. Its stored width 670/1920 bytes per element is not a float; the whole A,
    1920 x width, came out a hair above 670 and rounded up to 671 bytes in the compulsory
    count, while the five row blocks of 384 x width round to 134 bytes each, 670 in all. By
    hand: 670 (A) + 2 x 48 (B, dense) + 40 x 2 (outputs) = 846 bytes moved, and so the bound."""
    rng = np.random.default_rng(5)
    M, K, N = (int(v) for v in rng.integers(1, 60, 3))
    A = rng.uniform(0.5, 1.5, (M, K)) * (rng.random((M, K)) < 0.20703125)
    B = rng.uniform(0.5, 1.5, (K, N)) * (rng.random((K, N)) < 0.20703125)
    assert (M, N, K) == (40, 2, 48) and np.count_nonzero(A) == 430
    cfg = load_accel("edge32", ["array.rows=8", "array.cols=4", "dram.ideal=true"],
                     {"sparsity": [{"kind": "zero_skip", "target": "input", "action": "skipping"}]})
    r = one(simulate_rows(gemm_workload(A, B), cfg, "os"))
    assert r["dram_bytes"] == 670 + 2 * 48 + 40 * 2 == r["dram_compulsory_bytes"] == r["dram_lower_bound_bytes"]


def test_work_ratio_is_not_a_limit_but_the_bound_is():
    # is, 5x38x38 on a 4x4 array at 2:4: the dense baseline's fold quantization lets the
    # compute speedup (770 / 390 = 1.974) pass the work ratio (1.9): it must not be called a limit
    rng = np.random.default_rng(0)
    A, B = rng.uniform(0.5, 1.5, (5, 38)), rng.uniform(0.5, 1.5, (38, 38))
    cfg = load_accel("edge32", ["array.rows=4", "array.cols=4"], {"sparsity": [{"kind": "nm", "n": 2, "m": 4}]})
    r = one(simulate_rows(gemm_workload(A, B), cfg, "is"))
    kept = 9 * 2 + 2  # per output: 9 full groups of 4 keep 2 each, the short last group (2 long) keeps 2
    assert r["work_ratio"] == pytest.approx(38 / kept)
    assert r["compute_speedup"] > r["work_ratio"]
    assert r["mac_bound_cycles"] == -(-5 * 38 * kept // 16)
    assert r["cycles"] >= r["bound_cycles"] and r["speedup"] <= r["bound_speedup"]


@settings(max_examples=40, deadline=None)
@given(seed=sparse_mat, density=st.floats(0.0, 1.0), target=st.sampled_from(["input", "weight", "both"]),
       lanes=st.sampled_from(["systolic", "decoupled"]), name=st.sampled_from(["os", "ws", "is"]),
       window=st.integers(1, 16), nm=st.sampled_from([None, (2, 4), (1, 8)]),
       memory=st.sampled_from(["dram.ideal=true", "dram.bandwidth_bytes_per_cycle=1", "dram.latency_cycles=0"]))
def test_cycles_never_beat_the_bound_and_gating_never_changes_cycles(seed, density, target, lanes, name, window,
                                                                     nm, memory):
    rng = np.random.default_rng(seed)
    M, K, N = (int(v) for v in rng.integers(1, 60, 3))
    A = rng.uniform(0.5, 1.5, (M, K)) * (rng.random((M, K)) < density)
    B = rng.uniform(0.5, 1.5, (K, N)) * (rng.random((K, N)) < density)
    nm_spec = [{"kind": "nm", "n": nm[0], "m": nm[1]}] if nm else []
    base = ["array.rows=8", "array.cols=4", f"array.lanes={lanes}", f"array.sync_window_steps={window}", memory]
    skip = load_accel("edge32", base, {"sparsity": nm_spec + [{"kind": "zero_skip", "target": target,
                                                                "action": "skipping"}]})
    gate = load_accel("edge32", base, {"sparsity": nm_spec + [{"kind": "zero_skip", "target": target,
                                                                "action": "gating"}]})
    plain = load_accel("edge32", base, {"sparsity": nm_spec} if nm_spec else None)
    wl = gemm_workload(A, B, PHASES, rng.uniform(0.5, 1.5, (M, N)) * (rng.random((M, N)) < density))
    r_skip, r_gate, r_plain = (simulate_rows(wl, c, name) for c in (skip, gate, plain))
    for rows in (r_skip, r_gate, r_plain):
        for r in rows:
            check_row(r)
            assert_within_bounds(r)
            if r["bw_bound_cycles"]:
                bw = 1.0 if "bandwidth" in memory else 25.6  # edge32's DRAM bytes per cycle
                assert r["bw_bound_cycles"] == math.ceil(r["dram_bytes"] / bw)
    for g, p, s in zip(r_gate, r_plain, r_skip):
        assert g["cycles"] == p["cycles"]
        assert g["energy_breakdown_pj"]["mac"] <= p["energy_breakdown_pj"]["mac"]
        assert s["compute_cycles"] <= p["compute_cycles"]
        assert s["macs_effectual"] == g["macs_effectual"]


# ---------------------------------------------------------------- delta
def sequence_workload(frames):
    """One conv layer seen at consecutive frames (a sequence trace in miniature). No padding:
    im2col's padding zeros would be skippable zeros of their own. Integer-valued weights (and
    dyadic frames in the tests) keep every float64 sum exact, so theta = 0 is exactly dense."""
    op = Conv2d(name="c", batch=1, in_channels=3, out_channels=4, in_h=6, in_w=6, kernel_h=3, kernel_w=3)
    w = np.random.default_rng(3).integers(-3, 4, op.weight_shape).astype(np.float32)
    per_op = [{"input": f.astype(np.float32), "weight": w, "grad": None} for f in frames]
    return Workload("seq", tuple(op for _ in frames), (Phase.FWD,), time_steps=tuple(range(len(frames))),
                    source=Tensors(per_op))


def test_delta_at_threshold_zero_is_exactly_dense():
    rng = np.random.default_rng(4)
    frames = [rng.integers(1, 3, (1, 3, 6, 6)) + 4.0 * t for t in range(4)]  # every element changes
    wl = sequence_workload(frames)
    for name in SYSTOLIC:
        rows = simulate_rows(wl, load_accel("edge32", [], {"sparsity": [{"kind": "delta", "threshold": 0.0}]}), name)
        for r in rows:
            assert r["delta_err_max"] == 0.0
            assert r["cycles"] == r["dense_cycles"]
            assert r["delta_fired_fraction"] == 1.0


def test_delta_skips_unchanged_elements_and_reports_error():
    rng = np.random.default_rng(5)
    base = np.maximum(np.round(4 * rng.standard_normal((1, 3, 6, 6))) / 4, 0)
    frames = [base + t / 128 * (rng.random(base.shape) < 0.1) for t in range(5)]
    wl = sequence_workload(frames)
    exact = simulate_rows(wl, load_accel("edge32", [], {"sparsity": [{"kind": "delta", "threshold": 0.0}]}), "ws")
    loose = simulate_rows(wl, load_accel("edge32", [], {"sparsity": [{"kind": "delta", "threshold": 0.05}]}), "ws")
    assert all(r["delta_err_max"] == 0.0 for r in exact)
    assert sum(r["macs_effectual"] for r in exact[1:]) < 0.3 * sum(r["macs_dense"] for r in exact[1:])
    assert all(r["delta_err_max"] > 0 for r in loose[2:])  # small changes held back
    assert sum(r["cycles"] for r in loose) <= sum(r["cycles"] for r in exact)
    assert all(r["events"]["encode_ops"] == 2 * 3 * 36 for r in exact)


def test_delta_needs_a_time_axis():
    A = np.ones((4, 4))
    with pytest.raises(InputError, match="no time axis"):
        simulate_rows(gemm_workload(A, A), load_accel("edge32", [], {"sparsity": [{"kind": "delta", "threshold": 0.1}]}),
                 "os")


def test_activation_policies_zero_what_they_say():
    rng = np.random.default_rng(6)
    A = rng.standard_normal((64, 32))
    B = rng.standard_normal((32, 16))
    for spec, zeroed in (({"method": "threshold", "threshold": 0.6745}, 0.5),
                         ({"method": "topk", "keep_fraction": 0.25}, 0.75),
                         ({"method": "channel_threshold", "sparsity": 0.5}, 0.5)):
        cfg = load_accel("edge32", [], {"sparsity": [{"kind": "act_policy", **spec}]})
        row = one(simulate_rows(gemm_workload(A, B), cfg, "os"))
        assert row["act_zero_fraction"] == pytest.approx(zeroed, abs=0.06), spec
        assert row["policy"].startswith(spec["method"])


# ---------------------------------------------------------------- edge cases (regressions)
@pytest.mark.parametrize("rows, cols, overlap, ideal", [(1, 1, True, False), (5, 1, True, False),
                                                         (1, 1, False, True), (3, 1, False, False)])
def test_tiny_arrays_with_everything_skipped_keep_their_invariants(rows, cols, overlap, ideal):
    A = np.zeros((6, 3))
    A[0, 0] = 1.0
    cfg = load_accel("edge32", [f"array.rows={rows}", f"array.cols={cols}", f"array.fold_overlap={str(overlap).lower()}",
                                f"dram.ideal={str(ideal).lower()}"],
                     {"sparsity": [{"kind": "zero_skip", "target": "both", "action": "skipping"}]})
    for name in SYSTOLIC:
        row = one(simulate_rows(gemm_workload(A, np.ones((3, 2))), cfg, name))
        check_row(row)
        assert row["cycles"] >= 1 and row["compute_cycles"] >= 0


def test_nm_never_slower_than_dense_when_groups_are_short():
    A = np.ones((8, 1))
    cfg = scalesim_cfg(4, 4, sparsity=[{"kind": "nm", "n": 2, "m": 4}])
    for name in SYSTOLIC:
        row = one(simulate_rows(gemm_workload(A, np.ones((1, 8))), cfg, name))
        assert row["cycles"] == row["dense_cycles"]
    # K = 6 with 2:4: one full group (2 slots) and a short group of 2 (2 slots) = 4 MAC slots
    rng = np.random.default_rng(7)
    A6, B6 = rng.uniform(1, 2, (8, 6)), rng.uniform(1, 2, (6, 8))
    from sparsesim.workloads.gemm import Gemm

    row = one(simulate_rows(gemm_workload(A6, B6), cfg, "os"))
    assert row["cycles"] == DATAFLOWS.get("os").compute_cycles(Gemm(8, 8, 4), 4, 4, False)


def test_declared_forward_weights_still_get_a_pruned_backward_copy():
    rng = np.random.default_rng(8)
    from sparsesim.hardware.kernels import nm_prune_ref

    W = nm_prune_ref(rng.standard_normal((16, 32)).astype(np.float32), 2, 4)  # (out, in): 2:4 along in
    A = rng.uniform(0.5, 1.5, (8, 32))
    wl = gemm_workload(A, W.T, PHASES, rng.uniform(0.5, 1.5, (8, 16)).astype(np.float32))
    cfg = scalesim_cfg(4, 4, sparsity=[{"kind": "nm", "n": 2, "m": 4, "mode": "declared"}])
    rows = {r["phase"]: r for r in simulate_rows(wl, cfg, "os")}
    assert rows["fwd"]["macs_effectual"] == 8 * 16 * 16
    assert rows["bwd_data"]["speedup"] > 1.0


def test_pregeneration_writes_only_the_copies_it_makes():
    rng = np.random.default_rng(9)
    A, B = rng.uniform(0.5, 1.5, (16, 16)), rng.uniform(0.5, 1.5, (16, 16))
    wl = gemm_workload(A, B, PHASES, rng.uniform(0.5, 1.5, (16, 16)).astype(np.float32))
    both = [r for r in simulate_rows(wl, load_accel("edge32", [], {"sparsity": [{"kind": "nm", "n": 2, "m": 4}]}), "os")
            if r["phase"] == "bwd_weight"][0]
    one_copy = [r for r in simulate_rows(wl, load_accel("edge32", [], {"sparsity": [
        {"kind": "nm", "n": 2, "m": 4, "bidirectional": False}]}), "os") if r["phase"] == "bwd_weight"][0]
    # int8: 256 dense weights read; each copy keeps 128 values with 2-bit indices (160 bytes)
    assert both["pregen_dram_bytes"] == 256 + 2 * 160
    assert one_copy["pregen_dram_bytes"] == 256 + 160


def test_metadata_is_counted_once_and_compressed_reads_are_the_compressed_block():
    A = np.tile([1.0, 0.0], (4, 32))  # every other column zero: density 0.5
    cfg = scalesim_cfg(4, 4, sparsity=[{"kind": "zero_skip", "target": "input", "action": "skipping"}])
    row = one(simulate_rows(gemm_workload(A, np.ones((64, 4))), cfg, "os"))
    ev = row["events"]
    # 128 int8 values + a 256-bit bitmap = 160 bytes read on chip once; loaded into the
    # buffer once more (the DRAM fill, also 160 bytes); and the 8-byte bitmap (one bit per input
    # column, half of them dead) that gathers the live weight rows, read once
    assert ev["sram_a_bytes"] + ev["metadata_a_bytes"] == 160 + 160 + 8
    assert ev["metadata_a_bytes"] == 32 + 8
    assert row["skip_bitmap_bytes"] == 8
    assert ev["metadata_b_bytes"] == 0


def test_compress_true_is_accepted_from_yaml_booleans():
    cfg = load_accel("edge32", [], {"sparsity": [{"kind": "zero_skip", "target": "input", "action": "gating",
                                                  "compress": True}]})
    from sparsesim.sparsity import parse_features

    assert parse_features(cfg.sparsity)[0].compressed is True


def linear_sequence(frames, w):
    """One Linear layer seen at consecutive time steps: fwd GEMM ``x_t @ w.T``."""
    T, K = frames.shape[0], frames.shape[2]
    op = Linear(name="l", tokens=frames.shape[1], in_features=K, out_features=w.shape[0])
    per_op = [{"input": frames[t].astype(np.float32), "weight": w.astype(np.float32), "grad": None} for t in range(T)]
    return Workload("seq", tuple(op for _ in range(T)), (Phase.FWD,), time_steps=tuple(range(T)),
                    source=Tensors(per_op))


def test_delta_error_is_that_of_the_accumulated_deltas_by_hand():
    # integer-valued frames and weights: every sum is exact in float64, so the hand value is exact
    rng = np.random.default_rng(11)
    frames = np.cumsum(rng.integers(-1, 2, (6, 5, 8)) * (rng.random((6, 5, 8)) < 0.4), axis=0).astype(float)
    w = rng.integers(-2, 3, (7, 8)).astype(float)
    theta = 1.5  # changes of 1 are held back until they add up to 2
    ref, acc, want = np.zeros((5, 8)), np.zeros((5, 7)), []
    for x in frames:  # the delta layer of Neil et al. by hand
        d = x - ref
        fire = (d != 0) & (np.abs(d) >= theta)
        sent = np.where(fire, d, 0.0)
        ref = np.where(fire, x, ref)
        acc = acc + sent @ w.T
        want.append(np.abs(acc - x @ w.T).max())
    rows = simulate_rows(linear_sequence(frames, w), load_accel("edge32", [], {"sparsity": [{"kind": "delta",
                                                                                        "threshold": theta}]}), "os")
    assert [r["delta_err_max"] for r in rows] == want
    assert max(want) > 0


def test_delta_error_sees_deltas_that_were_sent_wrong(monkeypatch):
    # An encoder that keeps its reference right but sends half of every change: the output
    # built from what was sent is wrong, and the reported error must say so (at theta = 0).
    import sparsesim.sparsity.delta as delta

    real = delta.delta_step

    def halved(x, ref, theta):
        return real(x, ref, theta) * 0.5

    monkeypatch.setattr(delta, "delta_step", halved)
    frames = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4) + 1.0
    w = np.eye(4)
    rows = simulate_rows(linear_sequence(frames, w), load_accel("edge32", [], {"sparsity": [{"kind": "delta",
                                                                                        "threshold": 0.0}]}), "os")
    # step 0 sends x_0 / 2: error max |x_0| / 2 = 12 / 2; step 1 accumulates (x_0 + (x_1 - x_0)) / 2
    assert [r["delta_err_max"] for r in rows] == [6.0, 12.0]


def test_delta_with_n_m_pruned_on_the_fly_keeps_both_charges():
    # delta state and the on-the-fly N:M selection both act on a fwd GEMM: neither charge may
    # replace the other (the row carries the delta state traffic and the selection work)
    rng = np.random.default_rng(12)
    frames = np.cumsum(rng.integers(-1, 2, (3, 5, 16)) * (rng.random((3, 5, 16)) < 0.5), axis=0).astype(float)
    w = rng.integers(-2, 3, (8, 16)).astype(float)
    wl = linear_sequence(frames, w)
    both = [{"kind": "delta", "threshold": 0.0}, {"kind": "nm", "target": "weight", "n": 2, "m": 4}]
    rows = simulate_rows(wl, load_accel("edge32", ["training.pregen=false"], {"sparsity": both}), "os")
    delta_only = simulate_rows(wl, load_accel("edge32", [], {"sparsity": both[:1]}), "os")
    for r, d in zip(rows, delta_only):
        assert r["events"]["delta_state_bytes"] == d["events"]["delta_state_bytes"] > 0
        assert r["events"]["encode_ops"] == d["events"]["encode_ops"] > 0
        # 8 rows x 4 groups of 4 along K, each M=4 comparisons of log2(4)=2 bits
        assert r["events"]["pregen_ops"] == 8 * 4 * 4 * 2
        assert r["nm_select_cycles"] > 0
