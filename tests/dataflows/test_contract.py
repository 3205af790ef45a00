"""The contract every registered systolic dataflow keeps (one suite over the registry; the
other array kinds keep theirs, tests/dataflows/test_array_kinds.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsesim.hardware.presets import load_accel
from sparsesim.hardware.timing import simulate_tiles
from sparsesim.dataflows import DATAFLOWS, display_order
from sparsesim.simulation.engine import run_gemm
from sparsesim.workloads.gemm import Gemm

dims = st.integers(min_value=1, max_value=700)
SYSTOLIC = sorted(display_order("systolic"))


@pytest.mark.parametrize("name", SYSTOLIC)
@settings(max_examples=40, deadline=None)
@given(M=dims, N=dims, K=dims, rows=st.integers(1, 48), cols=st.integers(1, 48), overlap=st.booleans())
def test_schedule_sums_to_closed_form(name, M, N, K, rows, cols, overlap):
    """The tiled schedule's compute time equals the closed-form fold count formula."""
    df = DATAFLOWS.get(name)
    cfg = load_accel("edge32", [f"array.rows={rows}", f"array.cols={cols}", f"array.fold_overlap={str(overlap).lower()}"])
    gemm = Gemm(M, N, K)
    plan = df.plan(gemm, cfg)
    assert plan.schedule.compute_total_cycles == df.compute_cycles(gemm, rows, cols, overlap)
    assert plan.macs_dense == M * N * K
    # overlap never costs cycles, and both stay above the MAC bound
    assert df.compute_cycles(gemm, rows, cols, True) <= df.compute_cycles(gemm, rows, cols, False)
    assert df.compute_cycles(gemm, rows, cols, True) * rows * cols >= M * N * K


@pytest.mark.parametrize("name", SYSTOLIC)
@settings(max_examples=25, deadline=None)
@given(M=dims, N=dims, K=dims)
def test_traffic_covers_every_operand_once(name, M, N, K):
    """Every operand element crosses the DRAM interface at least once; outputs exactly once
    when partial sums fit on chip."""
    cfg = load_accel("dc128")
    plan = DATAFLOWS.get(name).plan(Gemm(M, N, K), cfg)
    elem = cfg.array.element_bytes
    assert plan.counts.dram_read_bytes >= (M * K + K * N) * elem
    assert plan.counts.dram_write_bytes == M * N * elem  # 8 MiB out buffer: no spills here
    sched = plan.schedule
    assert sched.load_bytes.sum() == plan.counts.dram_read_bytes
    assert sched.store_bytes.sum() == plan.counts.dram_write_bytes


@pytest.mark.parametrize("name", SYSTOLIC)
def test_stalls_grow_as_bandwidth_shrinks(name):
    gemm = Gemm(1024, 512, 768)
    stalls = []
    for bw in (256, 64, 16, 4, 1):
        # the mapper's strict cycle objective (its default trades up to 1% of cycles for bytes)
        cfg = load_accel("edge32", [f"dram.bandwidth_bytes_per_cycle={bw}", "mapper.cycles_tolerance=0"])
        out = run_gemm(gemm, cfg, name)
        stalls.append(out.stall_cycles)
        assert out.cycles == out.compute_cycles + out.stall_cycles
    assert all(a <= b for a, b in zip(stalls, stalls[1:])), stalls
    assert stalls[-1] > 10 * max(stalls[0], 1)


@pytest.mark.parametrize("name", SYSTOLIC)
def test_operands_that_do_not_fit_cost_traffic_and_stalls(name):
    gemm = Gemm(2048, 512, 2048)
    big = run_gemm(gemm, load_accel("edge32", ["buffers.a.size_bytes=16777216", "buffers.b.size_bytes=16777216",
                                               "buffers.out.size_bytes=16777216"]), name)
    small = run_gemm(gemm, load_accel("edge32", ["buffers.a.size_bytes=4096", "buffers.b.size_bytes=4096",
                                                 "buffers.out.size_bytes=4096"]), name)
    assert small.counts.dram_read_bytes > big.counts.dram_read_bytes
    assert small.stall_cycles > big.stall_cycles
    assert small.compute_cycles == big.compute_cycles


def test_ideal_memory_has_no_stalls():
    cfg = load_accel("edge32", ["dram.ideal=true", "dram.bandwidth_bytes_per_cycle=0.01"])
    for name in SYSTOLIC:
        out = run_gemm(Gemm(300, 300, 300), cfg, name)
        assert out.stall_cycles == 0


def test_timing_pipeline_overlaps_loads_with_compute():
    """Two equal tiles: the second load hides behind the first compute."""
    from sparsesim.hardware.schedule import TileSchedule

    sched = TileSchedule(np.array([100, 100]), np.array([1000, 1000]), np.array([0, 0]), 0)
    t = simulate_tiles(sched, bandwidth_bytes_per_cycle=1.0, latency_cycles=10)
    assert t.compute_cycles == 2000
    assert t.stall_cycles == 110  # only the first load (100 cycles + 10 latency) is exposed
    slow = simulate_tiles(sched, bandwidth_bytes_per_cycle=0.05, latency_cycles=10)
    # load 2 occupies the channel 2000..4000 and arrives at 4010; compute 2 ends at 5010
    assert slow.total_cycles == 5010 and slow.stall_cycles == 3010


def test_groups_run_back_to_back():
    """Repeated GEMMs (conv groups) keep the array busy 32x as long; the next one's loads
    hide behind the current one's compute, so only memory stalls shrink."""
    cfg = load_accel("edge32")
    one = run_gemm(Gemm(200, 8, 72), cfg, "os")
    many = run_gemm(Gemm(200, 8, 72, count=32), cfg, "os")
    assert many.compute_cycles == 32 * one.compute_cycles
    assert many.compute_cycles < many.cycles < 32 * one.cycles
    ideal = run_gemm(Gemm(200, 8, 72, count=32), load_accel("edge32", ["dram.ideal=true"]), "os")
    assert ideal.cycles == 32 * one.compute_cycles
    assert many.macs_dense == 32 * one.macs_dense


@pytest.mark.parametrize("name", SYSTOLIC)
def test_loop_order_is_chosen_to_save_traffic(name):
    """A layer with few rows and a large weight matrix: the mapper picks the loop order that
    moves fewer bytes, and reports it; compute time does not depend on the order."""
    df = DATAFLOWS.get(name)
    cfg = load_accel("edge32", ["mapper.policy=legacy"])  # the legacy policy's two fold orders
    gemm = Gemm(128, 512, 4608)
    chosen = df.plan(gemm, cfg)
    orders = [df._plan(gemm, cfg, None, o) for o in ("row", "col")]
    traffic = [p.counts.dram_read_bytes + p.counts.dram_write_bytes for p in orders]
    assert chosen.counts.dram_read_bytes + chosen.counts.dram_write_bytes == min(traffic)
    assert chosen.outer_dim in (df.row_dim, df.col_dim)
    assert orders[0].schedule.compute_total_cycles == orders[1].schedule.compute_total_cycles


@pytest.mark.parametrize("name", ["ws", "is"])
def test_partial_sum_traffic_on_chip_does_not_depend_on_loop_order(name):
    """With buffers large enough that nothing spills, both loop orders read and write the
    same partial sums on chip (the K blocks are on axis 0 or 1 depending on the order)."""
    df = DATAFLOWS.get(name)
    cfg = load_accel("dc128", ["array.rows=4", "array.cols=4"])
    a, b = (df._plan(Gemm(10, 40, 8), cfg, None, o) for o in ("row", "col"))
    assert a.counts.sram_out_bytes == b.counts.sram_out_bytes
