"""Memory-side timing and pricing (issue 9 item 7): SRAM ports, back-pressure, partial-sum and
accumulator pricing; and the simple memory model's two timings, its SimPy model and the
pipeline recurrence that is its fast twin (the mapper scores with it), held to each other."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsesim.hardware.energy import energy_breakdown_pj, energy_table
from sparsesim.hardware.kernels import pipeline_cycles
from sparsesim.hardware.memory import SimpleChannel, memory_model
from sparsesim.hardware.presets import load_accel
from sparsesim.hardware.schedule import EventCounts, TileSchedule
from sparsesim.hardware.timing import simulate_tiles
from sparsesim.dataflows import DATAFLOWS
from sparsesim.simulation.engine import run_gemm
from sparsesim.workloads.gemm import Gemm

tiles = st.integers(1, 10)


@settings(max_examples=300, deadline=None)
@given(n=tiles, data=st.data(), bw=st.sampled_from([1.0, 3.0, 7.5, 25.6, 64.0]), lat=st.integers(0, 40),
       epilogue=st.integers(0, 30), with_ports=st.booleans())
def test_simple_channel_fast_twin_equals_its_simpy_model(n, data, bw, lat, epilogue, with_ports):
    """``SimpleChannel.cycles`` (the Numba recurrence) equals ``SimpleChannel.time`` (SimPy) exactly."""
    ints = st.lists(st.integers(0, 500), min_size=n, max_size=n)
    load = np.array(data.draw(ints), dtype=np.int64)
    store = np.array(data.draw(ints), dtype=np.int64)
    compute = np.array(data.draw(st.lists(st.integers(0, 60), min_size=n, max_size=n)), dtype=np.int64)
    ports = np.array(data.draw(st.lists(st.integers(0, 9), min_size=n, max_size=n)), dtype=np.int64) \
        if with_ports else None
    sched = TileSchedule(load, compute, store, epilogue, ports)
    mem = memory_model(load_accel("edge32", [f"dram.bandwidth_bytes_per_cycle={bw}", f"dram.latency_cycles={lat}"]))
    assert isinstance(mem, SimpleChannel)
    expected = mem.time(sched).total_cycles
    assert expected == simulate_tiles(sched, bandwidth_bytes_per_cycle=bw, latency_cycles=lat).total_cycles
    assert mem.cycles(sched) == expected
    busy = sched.compute_cycles + sched.ports
    assert pipeline_cycles.py_func(load, busy, store, bw, lat, epilogue) == expected  # the same code, uncompiled


def test_full_output_buffer_holds_the_array_back():
    """Three tiles computing 10, 10 and 200 cycles, no loads, stores of 100, 100 and 0 bytes
    at 1 B/cycle, latency 0. Tile 2 writes the output half that tile 0's store frees, which
    leaves at 10 + 100 = 110: it runs 110..310. Without back-pressure it would run 20..220
    (the stores end at 210) and the run would take 220."""
    sched = TileSchedule(np.zeros(3, dtype=np.int64), np.array([10, 10, 200], dtype=np.int64),
                         np.array([100, 100, 0], dtype=np.int64), 0)
    assert simulate_tiles(sched, bandwidth_bytes_per_cycle=1.0, latency_cycles=0).total_cycles == 310
    assert pipeline_cycles(sched.load_bytes, sched.compute_cycles, sched.store_bytes, 1.0, 0, 0) == 310


def test_narrow_sram_ports_stall_the_array():
    """ws on edge32 writes and reads 32 partial sums of 4 B per cycle into the output buffer
    (256 B/cycle). With one 16-byte bank it delivers 16 B/cycle: the array waits, by at least
    the output-buffer bytes / 16 minus the compute time, and the compute time stays."""
    gemm = Gemm(256, 32, 64)
    wide = run_gemm(gemm, load_accel("edge32", ["dram.ideal=false"]), "ws")
    cfg = load_accel("edge32", ["buffers.out.banks=1", "buffers.out.word_bytes=16"])
    narrow = run_gemm(gemm, cfg, "ws")
    assert narrow.compute_cycles == wide.compute_cycles
    assert narrow.cycles >= narrow.counts.sram_out_bytes // 16
    assert narrow.stall_cycles > wide.stall_cycles + narrow.compute_cycles
    # SCALE-Sim's CALC mode (ideal memory) ignores ports as it ignores DRAM
    ideal = run_gemm(gemm, load_accel("edge32", ["buffers.out.banks=1", "dram.ideal=true"]), "ws")
    assert ideal.cycles == ideal.compute_cycles == wide.compute_cycles


def test_partial_sums_read_back_are_written_into_the_output_buffer():
    """Legacy ws with a 64-byte output buffer spills: every byte read back from DRAM is
    written into the output buffer, every spilled or stored byte read out of it."""
    gemm = Gemm(64, 16, 64)
    cfg = load_accel("edge32", ["array.rows=8", "array.cols=8", "buffers.out.size_bytes=64", "mapper.policy=legacy"])
    plan = DATAFLOWS.get("ws").plan(gemm, cfg)
    base = DATAFLOWS.get("ws")._array_counts(DATAFLOWS.get("ws").fold_grid(gemm, 8, 8, "col"),
                                             np.full((2, 8), 64, dtype=np.int64), None, cfg, "col")
    spilled_in = plan.counts.dram_read_bytes - (64 * 64 + 64 * 16)  # A once and B once fit the buffers
    assert spilled_in > 0
    assert plan.counts.sram_out_bytes == base.sram_out_bytes + plan.counts.dram_write_bytes + spilled_in


def test_accumulator_read_modify_write_is_priced_at_accumulator_width():
    """int8 MACs accumulate in 4-byte partial sums: one MAC reads two 1-byte operands and
    reads and writes one 4-byte accumulator, 10 bytes of register traffic."""
    cfg = load_accel("edge32")
    table = energy_table(cfg.energy_table)
    counts = EventCounts(macs_performed=1000, rf_accesses=3000, accumulator_rmw=1000)
    rf = energy_breakdown_pj(counts, cfg, 0, table)["register_file"]
    assert rf == 1000 * (2 * 1 + 2 * 4) * table.rf_pj_per_byte
