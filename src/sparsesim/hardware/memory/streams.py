"""Synthetic burst streams through the ``banked`` DRAM, and the closed-form limits they are held to.

The measurements behind ``docs/memory_bandwidth.png`` and ``docs/memory_latency.png``
(``tools/plot_dram.py`` draws them; tests/hardware/test_dram_streams.py checks every plotted point
against its limit). Three kinds of stream of single-burst reads, each at burst granularity:

- ``sequential``: consecutive burst addresses;
- ``strided``: every ``stride_bytes``-th byte's burst (a power of two: under the default mapping
  ``row:bank:column:group:channel`` a stride that is a multiple of channels x bank groups bursts
  lands every access on one channel's one bank group, as such strides do on real controllers
  without address hashing);
- ``random``: uniformly drawn burst addresses over 1 GiB (each almost surely a new row).

**Bandwidth** is measured with every burst requested at time 0 (the controller's queue decides the
order), counting the bursts that arrive within whole refresh intervals after the first (from
the first refresh due, tREFI, to the last whole interval): the steady state, each interval
holding one refresh per channel, so the refresh ceiling applies to it exactly.

**Latency** is measured with requests spaced evenly at a fraction of the stream's own
closed-form bandwidth bound (the offered load); a burst's latency is its data's arrival minus its
request.

**Closed forms** (from the standard's parameters only, all as upper bounds on bandwidth):

- peak = channels x burst bytes / tBL (channels x bus bytes x data rate);
- refresh ceiling = peak x (1 - tRFC / tREFI);
- row-miss rate: a read that opens a new row needs an activate, and per channel activates are
  at least ``max(tRRD_S, tFAW / 4, tRC / banks, tBL)`` apart, so reads to new rows move at most
  channels x burst / that spacing;
- a stride's own bound: it uses ``channels / gcd(s, channels)`` channels and on each
  ``groups_used`` bank groups (``s`` the stride in bursts), so its column commands are at least
  ``max(tBL, tCCD_S, tCCD_L / groups_used)`` apart per channel; when each access falls in a new
  row of its bank (the lane's column step ``c = lcm(s, lanes) / lanes`` is a row or more) activates
  bind too: ``max(tRRD_S, or tRRD_L if one group, tFAW / 4, tRC / (groups_used x banks_used),
  tBL)``, where a step of whole rows uses ``banks_per_group / gcd(c / row, banks_per_group)`` banks
  of each group; times the refresh ceiling's ``1 - tRFC / tREFI``. Strides whose accesses mix hits
  and misses (a step below a row) are held to the column bound only, so they fall below it;
- latency: a row hit CL + tBL, a miss tRP + tRCD + CL + tBL, a closed bank tRCD + CL + tBL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sparsesim.hardware.memory.banked import BankedDram, DramStandard

DEFAULT_MAPPING = "row:bank:column:group:channel"
RANDOM_SPAN_BYTES = 1 << 30
KINDS = ("sequential", "strided", "random")


@dataclass(frozen=True, slots=True)
class Limits:
    """A standard's closed-form limits (GB/s and ns), from its parameters alone."""

    peak_gb_s: float
    refresh_ceiling_gb_s: float
    row_miss_gb_s: float
    hit_ns: float
    miss_ns: float
    closed_ns: float


@dataclass(frozen=True, slots=True)
class StreamPoint:
    """One measured stream: its kind and stride, what it achieved, and its own closed-form bound."""

    kind: str
    stride_bytes: int  # 0 for random
    offered_fraction: float  # requests' rate over ``bound_gb_s``; 0: all requested at once
    bandwidth_gb_s: float  # arrivals per ns within whole refresh intervals (flood), or bytes / span (paced)
    bound_gb_s: float  # the stream's closed-form limit, refresh included
    median_latency_ns: float
    mean_latency_ns: float
    row_hit_rate: float
    activations: int
    bursts: int


def _tck_ns(s: DramStandard) -> float:
    return s.t_ck_ps * 1e-3


def limits(s: DramStandard) -> Limits:
    """The closed forms of the module docstring for standard ``s``."""
    tck = _tck_ns(s)
    banks = s.bank_groups * s.banks_per_group
    peak = s.channels * s.device_burst_bytes / (s.t_bl_ck * tck)
    per_act = max(s.t_rrd_s_ck, s.t_faw_ck / 4, s.t_rc_ck / banks, s.t_bl_ck) * tck
    ctrl = s.controller_latency_ns
    return Limits(peak, peak * (1 - s.t_rfc_ns / s.t_refi_ns), s.channels * s.device_burst_bytes / per_act,
                  (s.t_cl_ck + s.t_bl_ck) * tck + ctrl, (s.t_rp_ck + s.t_rcd_ck + s.t_cl_ck + s.t_bl_ck) * tck + ctrl,
                  (s.t_rcd_ck + s.t_cl_ck + s.t_bl_ck) * tck + ctrl)


def stride_bound_gb_s(s: DramStandard, stride_bursts: int) -> float:
    """The closed-form bandwidth bound of a stride of ``stride_bursts`` bursts (module docstring),
    refresh ceiling included; 1 is the sequential stream's (the peak times the ceiling)."""
    if s.address_mapping != DEFAULT_MAPPING:
        raise ValueError(f"stride bounds are worked for the mapping {DEFAULT_MAPPING}, not {s.address_mapping}")
    tck = _tck_ns(s)
    lanes = s.channels * s.bank_groups
    chans = s.channels // math.gcd(stride_bursts, s.channels)
    groups = (lanes // math.gcd(stride_bursts, lanes)) // chans
    spacing = max(s.t_bl_ck, s.t_ccd_s_ck, s.t_ccd_l_ck / groups)
    step, per_row = math.lcm(stride_bursts, lanes) // lanes, s.row_bytes // s.device_burst_bytes
    if step >= per_row:
        rrd = s.t_rrd_l_ck if groups == 1 else s.t_rrd_s_ck
        # a lane's bank index advances by step / per_row per access: that many of its banks are used
        banks = s.banks_per_group // math.gcd(step // per_row, s.banks_per_group) if step % per_row == 0 \
            else s.banks_per_group
        spacing = max(spacing, rrd, s.t_faw_ck / 4, s.t_rc_ck / (groups * banks))
    return chans * s.device_burst_bytes / (spacing * tck) * (1 - s.t_rfc_ns / s.t_refi_ns)


def _addresses(s: DramStandard, kind: str, stride_bytes: int, n: int, seed: int) -> np.ndarray:
    if kind == "random":
        return np.random.default_rng(seed).integers(0, RANDOM_SPAN_BYTES // s.device_burst_bytes, n)
    step = 1 if kind == "sequential" else max(1, stride_bytes // s.device_burst_bytes)
    return np.arange(n, dtype=np.int64) * step


def _bound(s: DramStandard, kind: str, stride_bytes: int) -> float:
    if kind == "random":
        return limits(s).row_miss_gb_s * (1 - s.t_rfc_ns / s.t_refi_ns)
    return stride_bound_gb_s(s, 1 if kind == "sequential" else max(1, stride_bytes // s.device_burst_bytes))


def measure(mem: BankedDram, kind: str, stride_bytes: int = 0, *, offered_fraction: float = 0.0,
            intervals: int = 3, bursts: int = 0, seed: int = 0) -> StreamPoint:
    """One stream of ``kind`` through ``mem``. ``offered_fraction`` 0 floods it (bandwidth over
    ``intervals`` whole refresh intervals after the first tREFI); above 0 it paces the requests at
    that fraction of the stream's bound (latency; ``bursts`` of them, default 4000)."""
    if kind not in KINDS:
        raise ValueError(f"stream kind {kind!r} is not one of {', '.join(KINDS)}")
    s = mem.std
    bound = _bound(s, kind, stride_bytes)
    ns_per_cycle = 1e9 / mem.clock_hz
    burst = s.device_burst_bytes
    if offered_fraction > 0:
        n = bursts or 4000
        gap_ns = burst / (offered_fraction * bound)
        req = np.arange(n) * (gap_ns / ns_per_cycle)
    else:
        # enough bursts to keep the queues full past the end of the last counted interval
        n = bursts or int(math.ceil((intervals + 1.5) * s.t_refi_ns * bound / burst))
        req = np.zeros(n)
    addr = _addresses(s, kind, stride_bytes, n, seed)
    arrive, counts = mem.serve(addr, np.zeros(n, dtype=bool), req)
    arrive_ns = arrive * ns_per_cycle
    lat = arrive_ns - req * ns_per_cycle
    if offered_fraction > 0:
        bandwidth = n * burst / (arrive_ns[-1] - req[0] * ns_per_cycle)
    else:
        lo, hi = s.t_refi_ns, s.t_refi_ns * (1 + intervals)
        if arrive_ns.max() < hi:
            raise ValueError(f"{n} bursts end before {intervals} refresh intervals; pass more bursts")
        inside = np.count_nonzero((arrive_ns >= lo) & (arrive_ns < hi))
        bandwidth = inside * burst / (hi - lo)
    return StreamPoint(kind, 0 if kind == "random" else (burst if kind == "sequential" else stride_bytes),
                       offered_fraction, float(bandwidth), bound, float(np.median(lat)), float(lat.mean()),
                       counts.row_hit_rate, counts.activations, counts.bursts)


def strides_bytes(s: DramStandard) -> list[int]:
    """The plotted strides: powers of two from one burst to 8 rows of every lane (channels x bank
    groups), where each access is a new row of one bank group."""
    top = 8 * s.row_bytes * s.channels * s.bank_groups
    out, stride = [], s.device_burst_bytes
    while stride <= top:
        out.append(stride)
        stride *= 2
    return out


def row_stride_bytes(s: DramStandard) -> int:
    """The stride whose every access opens the next bank's row in one channel's one bank group
    (a row of every lane apart): its bound is the activate rate of one group."""
    return s.row_bytes * s.channels * s.bank_groups


LOADS = (0.05, 0.25, 0.5, 0.75, 0.9)
"""Offered loads of the latency curves, as fractions of each stream's measured flood bandwidth."""


@dataclass(frozen=True, slots=True)
class StandardFigures:
    """What the two docs figures plot for one standard."""

    name: str
    limits: Limits
    bandwidth: tuple[StreamPoint, ...]  # flooded: sequential, random, then each stride of strides_bytes
    latency: dict  # kind -> tuple of paced StreamPoints, one per LOADS
    unloaded_ns: tuple[float, float, float]  # one read to a closed bank, a row hit, a row miss


def unloaded_latencies_ns(mem: BankedDram) -> tuple[float, float, float]:
    """One read at a time, 1000 tCK apart (no queueing, before the first refresh): to a closed
    bank, to the row it opened (a hit), to another row of that bank (a miss)."""
    s = mem.std
    lanes, per_row = s.channels * s.bank_groups, s.row_bytes // s.device_burst_bytes
    gap = 1000 * s.t_ck_ps * 1e-12 * mem.clock_hz
    addr = np.array([0, 3 * lanes, per_row * lanes * s.banks_per_group])  # bank 0: open, hit, next row
    req = np.array([0.0, gap, 2 * gap])
    arrive, _ = mem.serve(addr, np.zeros(3, dtype=bool), req)
    lat = (arrive - req) * 1e9 / mem.clock_hz
    return float(lat[0]), float(lat[1]), float(lat[2])


def standard_figures(mem: BankedDram, name: str) -> StandardFigures:
    """Every point of both figures for ``mem`` (a few seconds for HBM3's 32 channels)."""
    s = mem.std
    flood = {"sequential": measure(mem, "sequential"), "random": measure(mem, "random"),
             "strided": measure(mem, "strided", row_stride_bytes(s))}
    strided = tuple(measure(mem, "strided", b) for b in strides_bytes(s))
    latency = {}
    for kind, point in flood.items():
        ratio = point.bandwidth_gb_s / point.bound_gb_s
        latency[kind] = tuple(measure(mem, kind, point.stride_bytes, offered_fraction=q * ratio) for q in LOADS)
    return StandardFigures(name, limits(s), (flood["sequential"], flood["random"], *strided), latency,
                           unloaded_latencies_ns(mem))
