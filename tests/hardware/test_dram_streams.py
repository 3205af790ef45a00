"""The points of docs/memory_bandwidth.png and docs/memory_latency.png (tools/plot_dram.py draws
them from :func:`sparsesim.hardware.memory.streams.standard_figures`) against the closed forms
worked from each standard's parameters.

By hand, DDR4-3200 (tCK 0.625 ns, 64 B bursts, tBL 4): peak 64 B / 2.5 ns = 25.6 GB/s; refresh
ceiling 25.6 x (1 - 350 / 7800) = 24.45 GB/s; row-miss rate 64 B / (max(4, 34 / 4, 74 / 16, 4) =
8.5 tCK = 5.3125 ns) = 12.05 GB/s; hit (22 + 4) x 0.625 = 16.25 ns, miss (22 + 22 + 22 + 4) x
0.625 = 43.75 ns, closed bank (22 + 22 + 4) x 0.625 = 30 ns. A stride of 256 B = 4 bursts puts every
read on bank group 0 of the one channel: column commands tCCD_L = 8 tCK = 5 ns apart, 12.8 GB/s,
x 0.955 = 12.23 GB/s. A stride of 32 KB (one 8 KB row of each of the 4 groups) lands each read in
the next bank's next row of group 0: activates max(tRRD_L 8, tFAW / 4 8.5, tRC / 4 banks 18.5) =
18.5 tCK = 11.5625 ns apart, 5.535 GB/s, x 0.955 = 5.29 GB/s.
"""

from __future__ import annotations

import pytest

from sparsesim.hardware.memory import memory_model
from sparsesim.hardware.memory.streams import LOADS, limits, standard_figures, stride_bound_gb_s
from sparsesim.hardware.presets import load_accel

STANDARDS = ("DDR4_3200", "LPDDR5_6400", "HBM2E", "HBM3")


def _mem(name: str):
    return memory_model(load_accel("edge32", ["dram.model=banked", f"dram.standard={name}"]))


@pytest.fixture(scope="module", params=STANDARDS)
def figures(request):
    mem = _mem(request.param)
    return mem, standard_figures(mem, request.param)


def test_ddr4_closed_forms_by_hand():
    s = _mem("DDR4_3200").std
    lim = limits(s)
    assert lim.peak_gb_s == pytest.approx(25.6)
    assert lim.refresh_ceiling_gb_s == pytest.approx(25.6 * (1 - 350 / 7800))
    assert lim.row_miss_gb_s == pytest.approx(64 / (8.5 * 0.625))
    assert (lim.hit_ns, lim.miss_ns, lim.closed_ns) == pytest.approx((16.25, 43.75, 30.0))
    ceiling = 1 - 350 / 7800
    assert stride_bound_gb_s(s, 1) == pytest.approx(lim.refresh_ceiling_gb_s)
    assert stride_bound_gb_s(s, 4) == pytest.approx(64 / (8 * 0.625) * ceiling)
    assert stride_bound_gb_s(s, 512) == pytest.approx(64 / (18.5 * 0.625) * ceiling)


def test_no_plotted_point_is_above_peak_refresh_ceiling_or_its_own_bound(figures):
    mem, f = figures
    lim = f.limits
    assert lim.row_miss_gb_s <= lim.peak_gb_s and lim.refresh_ceiling_gb_s < lim.peak_gb_s
    for p in f.bandwidth:
        # counted over whole refresh intervals: the edge is at most one burst per channel
        slack = mem.std.channels * mem.std.device_burst_bytes / (3 * mem.std.t_refi_ns)
        assert p.bound_gb_s <= lim.refresh_ceiling_gb_s * (1 + 1e-12)
        assert p.bandwidth_gb_s <= p.bound_gb_s + slack, (p.kind, p.stride_bytes)
        assert p.bandwidth_gb_s <= lim.refresh_ceiling_gb_s + slack
    seq, rnd = f.bandwidth[0], f.bandwidth[1]
    # reads to new rows: activate-bound (a hit among random reads over 1 GiB is a rare exception)
    assert rnd.activations >= 0.99 * rnd.bursts
    assert rnd.bandwidth_gb_s <= lim.row_miss_gb_s * (1 - mem.std.t_rfc_ns / mem.std.t_refi_ns) * (1.01)
    # the model reaches its limits where the closed form is tight: a sequential stream and the
    # stride of one group's next row each get within 3 % of their bounds
    assert seq.bandwidth_gb_s >= 0.97 * seq.bound_gb_s
    row = next(p for p in f.bandwidth[2:] if p.stride_bytes == f.latency["strided"][0].stride_bytes)
    assert row.bandwidth_gb_s >= 0.97 * row.bound_gb_s and row.row_hit_rate == 0


def test_latencies_equal_the_formulas(figures):
    mem, f = figures
    lim = f.limits
    assert f.unloaded_ns == pytest.approx((lim.closed_ns, lim.hit_ns, lim.miss_ns))
    assert len(f.latency["sequential"]) == len(LOADS)
    # at the lowest load nothing queues: a sequential stream's median read is a hit, the row
    # stride's a miss; random reads find their bank with another row open (a miss) or closed by a
    # refresh (tRCD + CL + tBL)
    assert f.latency["sequential"][0].median_latency_ns == pytest.approx(lim.hit_ns)
    assert f.latency["strided"][0].median_latency_ns == pytest.approx(lim.miss_ns)
    assert f.latency["random"][0].median_latency_ns in (pytest.approx(lim.miss_ns), pytest.approx(lim.closed_ns))
    for points in f.latency.values():
        for p in points:  # no read is faster than a hit
            assert p.median_latency_ns >= lim.hit_ns - 1e-9 and p.mean_latency_ns >= lim.hit_ns - 1e-9
