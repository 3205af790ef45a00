"""Collective costs against their hand calculation (sparsesim.hardware.interconnect)."""

import math

import pytest

from sparsesim.hardware.config import InterconnectConfig
from sparsesim.hardware.interconnect import collective_cost

IC = InterconnectConfig(topology="ring", link_bandwidth_bytes_per_s=1e9, links=2, link_latency_s=1e-6,
                        energy_pj_per_bit=2.0)
B = 2e9  # a chip sends on both its links at once


def test_ring_all_reduce_by_hand():
    """p = 4, S = 4 MB: 2(p-1) = 6 steps, each chip sends 2(p-1)/p S = 6 MB; 6 x (1 us + 1 MB / 2 GB/s)."""
    c = collective_cost("all_reduce", 4_000_000, 4, IC)
    assert c.algorithm == "ring" and c.steps == 6
    assert c.bytes_sent == 6_000_000
    assert c.seconds == pytest.approx(6 * (1e-6 + 1_000_000 / B))
    assert c.energy_pj == pytest.approx(6_000_000 * 8 * 2.0)


def test_tree_all_reduce_and_auto():
    """Tree: 2 ceil(log2 p) steps of latency plus 2 S / B; auto takes the faster: the tree for a
    small, latency-bound message at p = 16, the ring for a large one."""
    tree = InterconnectConfig(link_bandwidth_bytes_per_s=1e9, links=2, link_latency_s=1e-6, algorithm="tree")
    c = collective_cost("all_reduce", 1000, 16, tree)
    assert c.steps == 8 and c.seconds == pytest.approx(8e-6 + 2000 / B)
    auto = InterconnectConfig(link_bandwidth_bytes_per_s=1e9, links=2, link_latency_s=1e-6, algorithm="auto")
    assert collective_cost("all_reduce", 1000, 16, auto).algorithm == "tree"
    assert collective_cost("all_reduce", 100_000_000, 16, auto).algorithm == "ring"


def test_gather_scatter_and_p2p_by_hand():
    for kind in ("all_gather", "reduce_scatter"):
        c = collective_cost(kind, 8_000_000, 8, IC)
        assert c.steps == 7 and c.bytes_sent == 7_000_000
        assert c.seconds == pytest.approx(7 * (1e-6 + 1_000_000 / B))
    p2p = collective_cost("send_recv", 3_000_000, 2, IC)
    assert p2p.bytes_sent == 3_000_000 and p2p.seconds == pytest.approx(1e-6 + 3_000_000 / B)


def test_all_to_all_ring_counts_hops_and_switch_one_step():
    """Ring, p = 4: a chip's S/4 slices travel 1, 2 and 1 hops (4 hop-slices = S bytes on its links);
    a switch sends the 3/4 S leaving the chip in one step."""
    ring = collective_cost("all_to_all", 4_000_000, 4, IC)
    assert ring.bytes_sent == 4_000_000 and ring.steps == 2
    assert ring.seconds == pytest.approx(2e-6 + 4_000_000 / B)
    switch = InterconnectConfig(topology="switch", link_bandwidth_bytes_per_s=1e9, links=2, link_latency_s=1e-6)
    sw = collective_cost("all_to_all", 4_000_000, 4, switch)
    assert sw.bytes_sent == 3_000_000 and sw.seconds == pytest.approx(1e-6 + 3_000_000 / B)


def test_one_chip_costs_nothing():
    c = collective_cost("all_reduce", 1 << 20, 1, IC)
    assert c.seconds == 0 and c.bytes_sent == 0 and math.isclose(c.energy_pj, 0.0)
