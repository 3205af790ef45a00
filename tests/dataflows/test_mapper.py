"""The mapper (sparsesim.mapping: space, cost, search): brute force, bounds, pinned and legacy nests, spills."""

from __future__ import annotations

import itertools
import math

import pytest

from sparsesim.hardware.presets import load_accel
from sparsesim.dataflows import DATAFLOWS, display_order
from sparsesim.mapping import cost as mcost
from sparsesim.mapping import search as msearch
from sparsesim.mapping import space as mspace
from sparsesim.simulation.engine import run_gemm
from sparsesim.simulation.run import simulate_rows
from sparsesim.workloads.gemm import Gemm, Phase
from sparsesim.workloads.networks import NETWORKS
from sparsesim.workloads.ops import Conv2d, Workload

SYSTOLIC = sorted(display_order("systolic"))  # the dataflows of the systolic array kind

SMALL = ["array.rows=4", "array.cols=4", "buffers.a.size_bytes=256", "buffers.b.size_bytes=256",
         "buffers.out.size_bytes=512", "dram.bandwidth_bytes_per_cycle=3", "dram.latency_cycles=5",
         "mapper.max_evaluations=1000000"]


def _all_nests(space: mspace.NestSpace):
    """Every nest the array can run, enumerated here independently of the mapper's generator:
    spatial tiles are whole array blocks (or the whole dimension), time chunks keep dense
    compute exact, os keeps a chunked K innermost and one fold per tile."""
    df, D = space.kind, space.D
    sizes = {}
    for d in mspace.DIMS:
        if d == df.time_dim:
            sizes[d] = [t for t in range(1, D[d] + 1) if t == D[d] or (
                (df.reduction_in_time or (space.overlap and t >= space.R and D[d] - (math.ceil(D[d] / t) - 1) * t >= space.R)))]
        else:
            b = space.block[d]
            sizes[d] = sorted({min(c * b, D[d]) for c in range(1, math.ceil(D[d] / b) + 1)})
    for tm, tn, tk in itertools.product(sizes["M"], sizes["N"], sizes["K"]):
        tiles = {"M": tm, "N": tn, "K": tk}
        if not space.legal(tiles):
            continue
        for order in mspace.ORDERS:
            if df.reduction_in_time and tk < D["K"] and order[-1] != "K":
                continue
            yield mspace.Mapping(tm, tn, tk, order)


@pytest.mark.parametrize("name", SYSTOLIC)
@pytest.mark.parametrize("shape", [(9, 10, 11), (16, 5, 24), (20, 20, 7)])
@pytest.mark.parametrize("objective", ["cycles", "dram_bytes", "energy"])
def test_mapper_picks_the_best_of_all_legal_nests(name, shape, objective):
    cfg = load_accel("edge32", SMALL + [f"mapper.objective={objective}", "mapper.cycles_tolerance=0"])
    space = mspace.NestSpace(DATAFLOWS.get(name).kind, Gemm(*shape), cfg)
    every = [mcost.evaluate(space, m) for m in _all_nests(space)]
    assert len(every) > 20
    chosen = msearch.search(space)
    value = {"cycles": lambda e: e.cycles, "dram_bytes": lambda e: e.dram_bytes, "energy": lambda e: e.energy_pj}[objective]
    assert value(chosen) == pytest.approx(min(value(e) for e in every), rel=1e-12)
    # the search is apart from the evaluation: the chosen nest pinned evaluates the same
    assert mcost.evaluate(space, chosen.mapping).cycles == chosen.cycles


@pytest.mark.parametrize("name", SYSTOLIC)
def test_cycle_tolerance_trades_cycles_for_bytes(name):
    cfg = load_accel("edge32", SMALL)  # default tolerance: 1%
    space = mspace.NestSpace(DATAFLOWS.get(name).kind, Gemm(16, 12, 24), cfg)
    every = [mcost.evaluate(space, m) for m in _all_nests(space)]
    fastest = min(e.cycles for e in every)
    window = [e for e in every if e.cycles <= fastest * 1.01]
    chosen = msearch.search(space)
    assert chosen.cycles <= fastest * 1.01
    assert chosen.dram_bytes == min(e.dram_bytes for e in window)


def test_pipeline_recurrence_is_the_simpy_timing():
    """The search scores with the recurrence; the run is timed by SimPy: the same numbers."""
    cfg = load_accel("edge32", SMALL)
    for name in SYSTOLIC:
        space = mspace.NestSpace(DATAFLOWS.get(name).kind, Gemm(16, 12, 24), cfg)
        for m in list(_all_nests(space))[::7]:
            ev = mcost.evaluate(space, m)
            from sparsesim.hardware.timing import simulate_tiles
            assert ev.cycles == simulate_tiles(ev.schedule, bandwidth_bytes_per_cycle=3, latency_cycles=5).total_cycles


@pytest.mark.parametrize("name", SYSTOLIC)
@pytest.mark.parametrize("shape", [(9, 10, 11), (33, 17, 40), (48, 48, 48)])
def test_no_nest_moves_fewer_bytes_than_the_lower_bound(name, shape):
    """The communication bound is a bound: brute force over every legal nest on tiny buffers
    (where it exceeds the compulsory bytes) never beats it."""
    cfg = load_accel("edge32", SMALL)
    space = mspace.NestSpace(DATAFLOWS.get(name).kind, Gemm(*shape), cfg)
    compulsory, bound = mcost.dram_bounds(space)
    M, N, K = shape
    assert compulsory == M * K + K * N + M * N  # int8: one byte per element, each once
    least = min(mcost.traffic(space, m).total for m in _all_nests(space))
    assert compulsory <= bound <= least
    if shape == (48, 48, 48):
        assert bound > compulsory  # the buffers are small enough for the bound to bite


def test_traffic_closed_form_equals_the_schedule():
    cfg = load_accel("edge32", SMALL)
    for name in SYSTOLIC:
        space = mspace.NestSpace(DATAFLOWS.get(name).kind, Gemm(33, 17, 40), cfg)
        for m in _all_nests(space):
            ev = mcost.evaluate(space, m, timed=False)
            assert mcost.traffic(space, m).total == ev.dram_bytes, m


@pytest.mark.parametrize("dataflow", SYSTOLIC)
def test_bounds_hold_and_psums_never_spill_on_resnet18(dataflow):
    """ResNet-18 at 224, batch 1, on edge32: every output tile fits, so no partial sum spills;
    no row moves fewer bytes than its bounds, and none more than the legacy schedule."""
    wl = Workload("resnet18", tuple(NETWORKS.get("resnet18")(1)))
    new = simulate_rows(wl, load_accel("edge32"), dataflow)
    old = simulate_rows(wl, load_accel("edge32", ["mapper.policy=legacy"]), dataflow)
    for n, o in zip(new, old):
        assert n["psum_spill_bytes"] == 0
        assert n["dram_compulsory_bytes"] <= n["dram_lower_bound_bytes"] <= n["dram_bytes"] <= o["dram_bytes"]
        assert n["compute_cycles"] == o["compute_cycles"]
        assert o["mapping"].startswith("legacy")
    assert sum(n["mapping"].startswith("order=") for n in new) > len(new) / 2  # mostly searched nests


def test_legacy_policy_reproduces_the_old_schedule():
    """Numbers measured on the old schedule (issue 12, before the mapper existed): conv1 of
    ResNet-18 with ws on edge32 moved 29.0 MB in 1,135,372 cycles."""
    conv1 = NETWORKS.get("resnet18")(1)[0]
    row = simulate_rows(Workload("c", (conv1,)), load_accel("edge32", ["mapper.policy=legacy"]), "ws")[0]
    assert (row["M"], row["N"], row["K"]) == (12544, 64, 147)
    assert round(row["dram_bytes"] / 1e6, 1) == 29.0
    assert row["cycles"] == 1_135_372
    assert row["psum_spill_bytes"] > 20e6
    new = simulate_rows(Workload("c", (conv1,)), load_accel("edge32"), "ws")[0]
    assert new["dram_bytes"] < 3.2e6 and new["psum_spill_bytes"] == 0  # issue 12: 3.2 MB by hand-blocking


def test_spills_are_charged_at_accumulator_width_both_ways():
    """ws, 8x8x16 GEMM on a 4x4 array whose output buffer holds no output tile: pinned nest
    M:8 N:4 K:4 order NMK (K innermost). Each of the 2 N tiles visits K 4 times: 3 spills of
    its 8x4 partial sums, each written and read back at 4 bytes: 2*3*32*4 = 768 bytes each way;
    outputs once at 1 byte: 64 bytes."""
    cfg = load_accel("edge32", ["array.rows=4", "array.cols=4", "buffers.out.size_bytes=64",
                                "mapper.tiles.M=8", "mapper.tiles.N=4", "mapper.tiles.K=4", "mapper.order=NMK"])
    plan = DATAFLOWS.get("ws").plan(Gemm(8, 8, 16), cfg)
    assert plan.psum_spill_bytes == 2 * 768
    assert plan.counts.dram_write_bytes == 768 + 64
    # A (8x16) is re-read for each N tile unless it stays (128 B fit the 256 KiB buffer: once)
    assert plan.counts.dram_read_bytes == 128 + 128 + 768
    assert plan.mapping == "order=NMK tiles=M:8,N:4,K:4 resident=A+B"


def test_pinned_mapping_from_config_and_file(tmp_path):
    gemm = Gemm(256, 64, 128)
    pinned = load_accel("edge32", ["mapper.tiles.M=64", "mapper.tiles.N=64", "mapper.tiles.K=128",
                                   "mapper.order=MNK"])
    a = run_gemm(gemm, pinned, "ws")
    f = tmp_path / "map.yaml"
    f.write_text("mappings:\n  - {M: 256, N: 64, K: 128, dataflow: ws, order: MNK, tiles: {M: 64, N: 64, K: 128}}\n")
    b = run_gemm(gemm, load_accel("edge32", [f"mapper.file={f}"]), "ws")
    assert a.memory["mapping"] == b.memory["mapping"] == "order=MNK tiles=M:64,N:64,K:128 resident=A+B+Out"
    assert (a.cycles, a.counts) == (b.cycles, b.counts)
    assert a.tiles == 4


def test_pinned_tile_that_changes_compute_is_refused():
    from sparsesim.core.errors import InputError

    cfg = load_accel("edge32", ["mapper.tiles.M=40"])  # ws streams M: a 40-row chunk leaves 24 < 32 rows
    with pytest.raises(InputError, match="mapper.tiles.M"):
        run_gemm(Gemm(64, 32, 32), cfg, "ws")
    with pytest.raises(InputError, match="mapper.tiles.N"):
        run_gemm(Gemm(64, 64, 32), load_accel("edge32", ["mapper.tiles.N=48"]), "ws")


def test_small_gemm_is_split_so_loads_compute_and_stores_overlap():
    """256x64x128 on edge32 with ws: one tile loads 40 KiB, computes, stores; split, the
    loads hide behind compute (issue 12: about 2x)."""
    gemm = Gemm(256, 64, 128)
    old = run_gemm(gemm, load_accel("edge32", ["mapper.policy=legacy"]), "ws")
    new = run_gemm(gemm, load_accel("edge32"), "ws")
    assert old.tiles == 1 and new.tiles > 1
    assert new.compute_cycles == old.compute_cycles
    assert new.cycles < 0.75 * old.cycles


def test_conv_input_is_read_as_a_feature_map():
    """A 3x3 stride-1 conv: the im2col A operand is 9x the input; with the whole input in
    the A buffer, the DRAM reads of A are the feature map once (32*28*28 bytes)."""
    conv = Conv2d(name="c", batch=1, in_channels=32, out_channels=32, in_h=28, in_w=28, kernel_h=3, kernel_w=3,
                  pad_h=1, pad_w=1)
    gemm = conv.gemm(Phase.FWD)
    out = run_gemm(gemm, load_accel("edge32"), "ws")
    weights, outputs = 32 * 32 * 9, 32 * 28 * 28
    assert out.memory["dram_compulsory_bytes"] == 32 * 28 * 28 + weights + outputs
    assert out.counts.dram_read_bytes == 32 * 28 * 28 + weights
    im2col = gemm.M * gemm.K
    assert out.counts.dram_read_bytes < im2col


def test_final_store_waits_for_the_drain():
    """Issue 9 item 1, by hand (edge32, 25.6 B/cycle, latency 0). The old single-tile
    schedule: load 2048 B (80 cycles), compute K + R + C - 2 = 94 with the drain, then store
    1024 B (40): 214. The mapper (strict cycles) streams os's K in 16 chunks of 2: each loads
    128 B in 5 cycles, so the loads end at 80; the last chunk computes 2 cycles, the drain
    R + C - 2 = 62 follows, then the 40-cycle store: 80 + 2 + 62 + 40 = 184."""
    legacy = load_accel("edge32", ["dram.latency_cycles=0", "mapper.policy=legacy"])
    assert run_gemm(Gemm(32, 32, 32), legacy, "os").cycles == 214
    strict = load_accel("edge32", ["dram.latency_cycles=0", "mapper.cycles_tolerance=0"])
    out = run_gemm(Gemm(32, 32, 32), strict, "os")
    assert out.memory["mapping"].startswith("order=MNK tiles=M:32,N:32,K:2")
    assert out.cycles == 184


def test_delta_state_in_the_output_buffer_shrinks_what_the_gemm_may_use():
    """A 64x32x32 ws GEMM's partial sums (64*32*4 = 8 KiB) stay whole in a 12 KiB output
    buffer; with 6 KiB of delta state beside them they no longer do."""
    import dataclasses

    from sparsesim.dataflows.sparse import SparseWork

    gemm = Gemm(64, 32, 32)
    cfg = load_accel("edge32", ["buffers.out.size_bytes=12288"])
    work = SparseWork(gemm, None, gemm.M * gemm.N * gemm.K, gemm.M * gemm.N * gemm.K, False)
    alone = DATAFLOWS.get("ws").plan(gemm, cfg, work)
    shared = DATAFLOWS.get("ws").plan(gemm, cfg, dataclasses.replace(work, out_reserved_bytes=6144))
    assert "Out" in alone.mapping.split("resident=")[-1]
    assert "Out" not in shared.mapping.split("resident=")[-1]


@pytest.mark.parametrize("ideal", [False, True])
@pytest.mark.parametrize("name", SYSTOLIC)
def test_the_energy_objective_prices_the_dram_events_its_rows_report(name, ideal):
    """Banked DDR4 prices a row's DRAM from its events (activates, bursts, refresh, standby).
    The energy objective minimises that, over every legal nest of a small GEMM, and ranks by a
    bound that no nest's energy falls below; an ideal DRAM prices bytes, and so does its bound."""
    from sparsesim.hardware.memory import DRAM_ENERGY_COLUMNS, memory_model

    cfg = load_accel("edge32", SMALL + ["mapper.objective=energy", "dram.model=banked", "dram.standard=DDR4_3200",
                                        f"dram.ideal={str(ideal).lower()}"])
    mem = memory_model(cfg)
    assert mem.prices_events
    space = mspace.NestSpace(DATAFLOWS.get(name).kind, Gemm(20, 20, 7), cfg)
    nests = list(_all_nests(space))
    every = [mcost.evaluate(space, m) for m in nests]
    assert len(every) > 20
    for m, ev in zip(nests, every):
        timing, columns = mem.time_with_columns(ev.schedule)
        leak = mcost._leakage(space, ev.counts, ev.cycles)
        assert ev.cycles == timing.total_cycles
        dram = (mem.energy_pj(ev.counts.dram_read_bytes, ev.counts.dram_write_bytes) if ideal
                else sum(columns[c] for c in DRAM_ENERGY_COLUMNS))
        assert ev.energy_pj == pytest.approx(dram + leak, rel=1e-12)
        tr = mcost.traffic(space, m)
        bound = mcost.energy_bound(space, tr.read_a + tr.read_b + tr.read_psum, tr.write_out + tr.write_spill,
                                   mcost.cycles_bound(space, m, tr))
        assert bound <= ev.energy_pj * (1 + 1e-12)
    chosen = msearch.search(space)
    assert chosen.energy_pj == pytest.approx(min(e.energy_pj for e in every), rel=1e-12)


@pytest.mark.parametrize("objective", ["cycles", "energy", "dram_bytes"])
def test_best_picks_each_rows_dataflow_by_the_mapper_objective(objective):
    """``--dataflow best`` takes, per op and phase, the dataflow the objective prefers: each
    best row is the least of that row run on each dataflow alone (cycles, energy or DRAM bytes)."""
    from sparsesim import api

    sets = {"mapper.objective": objective}
    wl = api.network("resnet18")
    best = api.simulate(wl, accel="edge32", sets=sets).rows
    alone = {df: api.simulate(wl, accel="edge32", dataflow=df, sets=sets).rows for df in SYSTOLIC}
    value = {"cycles": lambda r: r["cycles"], "energy": lambda r: r["energy_pj"],
             "dram_bytes": lambda r: r["dram_bytes"]}[objective]
    for i, row in enumerate(best):
        assert value(row) == min(value(alone[df][i]) for df in SYSTOLIC), row["name"]
        assert row == {**alone[row["dataflow"]][i], "dataflow": row["dataflow"], "run_id": row["run_id"]}
    if objective != "cycles":  # the objective moves the choice somewhere, against the fastest
        fastest = api.simulate(wl, accel="edge32").rows
        assert any(r["dataflow"] != f["dataflow"] for r, f in zip(best, fastest))
