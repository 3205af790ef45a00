"""What a collective costs on the chip-to-chip links (``system.interconnect``; docs/scale-out.md).

``p`` chips of a group, ``S`` bytes, a chip sending on all its ``links`` at once
(``B = links x link_bandwidth_bytes_per_s``, as NCCL runs one ring per link), ``a`` the latency
of one step:

=================  ===================  ==================================  =========================
collective         ``S`` is             bytes each chip sends               seconds
=================  ===================  ==================================  =========================
all_reduce ring    the tensor           ``2 (p-1)/p S``                      ``2 (p-1) (a + S/(p B))``
all_reduce tree    the tensor           ``2 S``                              ``2 ceil(log2 p) a + 2 S / B``
all_gather         the gathered tensor  ``(p-1)/p S``                        ``(p-1) (a + S/(p B))``
reduce_scatter     the input tensor     ``(p-1)/p S``                        ``(p-1) (a + S/(p B))``
all_to_all switch  a chip's input       ``(p-1)/p S``                        ``a + (p-1)/p S / B``
all_to_all ring    a chip's input       ``S/p sum_d min(d, p-d)`` (hops)     ``floor(p/2) a + that / B``
send_recv          the tensor           ``S``                                ``a + S / B``
=================  ===================  ==================================  =========================

Energy is the bytes sent (each hop of a forwarded byte counted) at ``energy_pj_per_bit``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sparsesim.hardware.config import InterconnectConfig

COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")


@dataclass(frozen=True, slots=True)
class CollectiveCost:
    """One collective on one chip of its group."""

    seconds: float
    steps: int
    bytes_sent: int  # bytes this chip puts on its links (forwarded hops included)
    algorithm: str
    energy_pj: float


def chip_bandwidth(ic: InterconnectConfig) -> float:
    """Bytes per second one chip sends over all its links at once."""
    return ic.links * ic.link_bandwidth_bytes_per_s


def collective_cost(kind: str, nbytes: int, group: int, ic: InterconnectConfig) -> CollectiveCost:
    """Cost of collective ``kind`` of ``nbytes`` (see the module table) over ``group`` chips."""
    if kind not in COLLECTIVES:
        raise ValueError(f"unknown collective {kind!r}")
    p, S, a, B = group, nbytes, ic.link_latency_s, chip_bandwidth(ic)
    if p <= 1 or S <= 0:
        return CollectiveCost(0.0, 0, 0, "none", 0.0)
    if kind == "all_reduce":
        ring = CollectiveCost(2 * (p - 1) * (a + S / (p * B)), 2 * (p - 1), math.ceil(2 * (p - 1) * S / p), "ring", 0.0)
        levels = math.ceil(math.log2(p))
        tree = CollectiveCost(2 * levels * a + 2 * S / B, 2 * levels, 2 * S, "tree", 0.0)
        chosen = {"ring": ring, "tree": tree}.get(ic.algorithm) or min((ring, tree), key=lambda c: c.seconds)
    elif kind in ("all_gather", "reduce_scatter"):
        chosen = CollectiveCost((p - 1) * (a + S / (p * B)), p - 1, math.ceil((p - 1) * S / p), "ring", 0.0)
    elif kind == "all_to_all":
        if ic.topology == "switch":
            sent = math.ceil((p - 1) * S / p)
            chosen = CollectiveCost(a + sent / B, 1, sent, "switch", 0.0)
        else:
            hops = sum(min(d, p - d) for d in range(1, p))
            sent = math.ceil(S * hops / p)
            chosen = CollectiveCost((p // 2) * a + sent / B, p // 2, sent, "ring", 0.0)
    else:
        chosen = CollectiveCost(a + S / B, 1, S, "p2p", 0.0)
    return CollectiveCost(chosen.seconds, chosen.steps, chosen.bytes_sent, chosen.algorithm,
                          chosen.bytes_sent * 8 * ic.energy_pj_per_bit)
