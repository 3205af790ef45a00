"""``banked``: a DRAM of channels x bank groups x banks with rows, timed on stripes of bursts.

The memory model of a DRAM standard (``dram.standard``: a data file of
``sparsesim/hardware/dram_standards/`` with its sources; each key of ``dram.banked`` left at 0
takes the standard's value, so one ``--set`` overrides one parameter). docs/memory.md states
the model, its keys and the hand checks.

**The tile pipeline** is that of the ``simple`` model (:func:`sparsesim.hardware.kernels.pipeline_cycles`:
double-buffered operands and outputs, loads and stores handed to the controller in request
order); only a transfer's time differs. A transfer is a run of consecutive bursts: loads read
one stream and stores write another (rows apart, in the same banks), each tile continuing
where the stream's last tile ended, as a tiled GEMM walks its tensors.

**Address mapping** (``address_mapping``, fields most significant first): the default
``row:bank:column:group:channel`` deals consecutive bursts to the channels, then the bank groups,
in turn, so a stream's bursts are tCCD_S (not tCCD_L) apart and each bank's row stays open
for all its columns; ``row:bank:group:column:channel`` deals them to channels only (a bank
group's bursts are tCCD_L apart); ``row:bank:group:channel:column`` keeps a whole row in one
bank before moving on (the coarse row:bank:column of textbooks).

**Scheduling.** The unit of work is a *stripe*: the consecutive bursts of a transfer that share
a row and bank index over the lanes (channel x bank group pairs) the mapping deals them to.
Per lane the controller issues at most one precharge and one activate, then each channel one
run of column commands over its lanes, ``max(tBL, tCCD_S, tCCD_L / lanes)`` apart. Each
channel has a queue of ``queue_depth`` bursts: a burst enters when the one ``queue_depth``
before it has issued, and from then on its activate may go ahead of earlier bursts' column
commands to other banks (first-ready: a row hit is never held behind another bank's miss,
FR-FCFS); within a bank, requests are served in order. The constraints honoured are those of
JEDEC DDR4/LPDDR5/HBM: tRCD, tRP, tRAS, tRC, tRTP, tWR (per bank), tRRD_S/L and tFAW (four
activates per window, per channel), tCCD_S/L, CL/CWL and one burst per tBL on each channel's
data bus, and an all-bank refresh every tREFI per channel that closes the channel's rows and
blocks it for tRP + tRFC (refreshes due during idle time cost nothing beyond the last one).
Simplifications, each stated in docs/memory.md: write-to-read turnaround (tWTR), the read/write
tRCD split and per-bank refresh are not modelled; a channel's activates issue in order; a
refresh is taken before the first stripe that would start after it is due.

The work is O(stripes x lanes), never per burst of a stripe nor per DRAM clock. The kernels
are Numba (``_pipeline`` for a schedule, ``_serve`` for single bursts), with their plain-Python
top levels ``.py_func`` that tests/hardware/test_banked_memory.py holds them equal to.
``time`` and ``cycles`` are the same computation, so they agree exactly.

**Energy.** A standard whose data file gives event energies (DDR4_3200, by Micron's TN-40-07
from cited IDD values) prices each row's activates, bursts, I/O bits, refreshes and standby time
(:meth:`BankedDram.event_energy_pj`, the row columns ``DRAM_ENERGY_COLUMNS`` whose sum is the
row's ``dram`` energy); the others price bytes at ``dram.energy_pj_per_bit``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from sparsesim.core.errors import field_error
from sparsesim.hardware.config import BankedDramConfig, DramConfig, build, read_mapping
from sparsesim.hardware.datafiles import builtin_names, read_builtin
from sparsesim.hardware.memory.base import DRAM_ENERGY_COLUMNS, MEMORY_MODELS, MemoryModel
from sparsesim.hardware.schedule import TileSchedule
from sparsesim.hardware.timing import Timing

STANDARDS_FOLDER = "dram_standards"
WRITE_BASE_ROW = 1 << 13
"""Row index at which the store stream starts in every bank: outputs lie in other rows than
operands (any distinct rows would do; a store to a bank whose row a load opened is a miss)."""

# Index of each timing in the parameter vector the kernel reads (times in array cycles).
_BL, _CL, _CWL, _RCD, _RP, _RAS, _RC, _WR, _RTP, _CCDS, _CCDL, _RRDS, _RRDL, _FAW, _REFI, _RFC, _CTRL = range(17)
# Index of each count in the kernel's output vector.
_TOTAL, _BUSY, _ACTS, _HITS, _BURSTS, _REFS = range(6)


@dataclass(frozen=True, slots=True)
class DramStandard:
    """One DRAM standard's organisation, timing and controller, resolved (no 0 left): the
    ``dram.banked`` keys' values, each the config's where set, else the data file's."""

    channels: int
    bank_groups: int
    banks_per_group: int
    row_bytes: int
    bus_bits: int
    burst_length: int
    t_ck_ps: float
    t_bl_ck: int
    t_cl_ck: int
    t_cwl_ck: int
    t_rcd_ck: int
    t_rp_ck: int
    t_ras_ck: int
    t_rc_ck: int
    t_wr_ck: int
    t_rtp_ck: int
    t_ccd_s_ck: int
    t_ccd_l_ck: int
    t_rrd_s_ck: int
    t_rrd_l_ck: int
    t_faw_ck: int
    t_refi_ns: float
    t_rfc_ns: float
    address_mapping: str
    queue_depth: int
    controller_latency_ns: float
    e_activate_pj: float = 0.0
    e_read_burst_pj: float = 0.0
    e_write_burst_pj: float = 0.0
    io_pj_per_bit: float = 0.0
    e_refresh_pj: float = 0.0
    background_mw: float = 0.0

    @property
    def prices_events(self) -> bool:
        """Whether energy is priced per event (the standard or the config gives event energies);
        otherwise bytes are priced at ``dram.energy_pj_per_bit``."""
        return any((self.e_activate_pj, self.e_read_burst_pj, self.e_write_burst_pj, self.e_refresh_pj,
                    self.background_mw))

    @property
    def device_burst_bytes(self) -> int:
        """Bytes one burst moves on one channel."""
        return self.bus_bits * self.burst_length // 8

    @property
    def peak_bytes_per_ns(self) -> float:
        """Every channel's bus busy with back-to-back bursts (GB/s)."""
        return self.channels * self.device_burst_bytes / (self.t_bl_ck * self.t_ck_ps * 1e-3)


def standard_names() -> list[str]:
    """Names of the built-in DRAM standards (``dram.standard`` values)."""
    return builtin_names(STANDARDS_FOLDER)


def standard_summary(name: str) -> str:
    """One line on a built-in standard: organisation, burst, peak, core timings."""
    s = resolve_standard(DramConfig(bandwidth_bytes_per_cycle=1.0, standard=name))
    return (f"{s.channels} ch x {s.bank_groups} groups x {s.banks_per_group} banks, {s.row_bytes} B rows, "
            f"{s.device_burst_bytes} B bursts, {s.peak_bytes_per_ns:.1f} GB/s; tCK {s.t_ck_ps:g} ps, "
            f"CL-tRCD-tRP {s.t_cl_ck}-{s.t_rcd_ck}-{s.t_rp_ck}")


@lru_cache(maxsize=None)
def _standard_file(name: str) -> BankedDramConfig:
    """A built-in standard's data file as the ``dram.banked`` keys it sets (validated alike)."""
    data = read_builtin(STANDARDS_FOLDER, name, read_mapping, field="dram.standard", kind="DRAM standard")
    return build(BankedDramConfig, data, f"dram.standard {name}")


def resolve_standard(dram: DramConfig) -> DramStandard:
    """``dram.standard``'s values with every nonzero ``dram.banked`` key in their place; checked:
    the row must hold whole bursts and a refresh must leave time (errors name the key)."""
    base, over = _standard_file(dram.standard), dram.banked
    values = {}
    for f in dataclasses.fields(BankedDramConfig):
        mine = getattr(over, f.name)
        values[f.name] = mine if mine else getattr(base, f.name)
    std = DramStandard(**values)
    for key in ("channels", "bank_groups", "banks_per_group", "row_bytes", "bus_bits", "burst_length", "t_ck_ps",
                "t_bl_ck", "t_refi_ns", "queue_depth"):
        if not getattr(std, key):
            raise field_error(f"dram.banked.{key}", f"must be set (standard {dram.standard} has no value)")
    if std.bus_bits * std.burst_length % 8:
        raise field_error("dram.banked.burst_length", "bus_bits x burst_length must be whole bytes")
    if std.row_bytes % std.device_burst_bytes:
        raise field_error("dram.banked.row_bytes", f"{std.row_bytes} B is not a whole number of "
                                                   f"{std.device_burst_bytes} B bursts")
    if std.t_rfc_ns >= std.t_refi_ns:
        raise field_error("dram.banked.t_rfc_ns", f"{std.t_rfc_ns:g} ns leaves no time between refreshes "
                                                  f"(tREFI {std.t_refi_ns:g} ns)")
    return std


@dataclass(frozen=True, slots=True)
class BankedCounts:
    """What the banked model counted over one schedule (or burst stream)."""

    total_cycles: int  # the pipeline's time, array cycles
    busy_cycles: int  # data-bus time of all bursts, averaged over the channels, array cycles
    activations: int  # activates issued (row misses)
    row_hits: int  # bursts served from an open row
    bursts: int  # bursts moved
    refreshes: int  # all-bank refreshes taken, summed over channels

    @property
    def row_hit_rate(self) -> float:
        return self.row_hits / self.bursts if self.bursts else 0.0


@MEMORY_MODELS.register("banked")
class BankedDram(MemoryModel):
    """A DRAM standard's channels, bank groups, banks and rows (``dram.standard``, ``dram.banked``)."""

    __slots__ = ("std", "_params", "_geometry")
    name = "banked"

    def __init__(self, dram: DramConfig, clock_hz: float) -> None:
        super().__init__(dram, clock_hz)
        std = self.std = resolve_standard(dram)
        ck = std.t_ck_ps * 1e-12 * clock_hz  # array cycles per DRAM clock
        ns = 1e-9 * clock_hz  # array cycles per ns
        self._params = np.array([
            std.t_bl_ck * ck, std.t_cl_ck * ck, std.t_cwl_ck * ck, std.t_rcd_ck * ck, std.t_rp_ck * ck,
            std.t_ras_ck * ck, std.t_rc_ck * ck, std.t_wr_ck * ck, std.t_rtp_ck * ck, std.t_ccd_s_ck * ck,
            std.t_ccd_l_ck * ck, std.t_rrd_s_ck * ck, std.t_rrd_l_ck * ck, std.t_faw_ck * ck, std.t_refi_ns * ns,
            std.t_rfc_ns * ns, std.controller_latency_ns * ns], dtype=np.float64)
        per_row = std.row_bytes // std.device_burst_bytes
        lanes = {"row:bank:column:group:channel": std.channels * std.bank_groups,
                 "row:bank:group:column:channel": std.channels, "row:bank:group:channel:column": 1}
        self._geometry = np.array([std.channels, std.bank_groups, std.banks_per_group, per_row,
                                   lanes[std.address_mapping],
                                   std.device_burst_bytes, std.queue_depth, WRITE_BASE_ROW], dtype=np.int64)

    # ------------------------------------------------------------ facts

    @property
    def peak_bytes_per_cycle(self) -> float:
        # One part in 1e9 above the exact peak: float sums of burst times may fall that far below
        # the exact product, and the bounds must stay below every time the model gives.
        return self.std.peak_bytes_per_ns / (self.clock_hz * 1e-9) * (1 + 1e-9)

    @property
    def min_latency_cycles(self) -> int:
        """A row hit's column latency (CL, or CWL for a write, whichever is shorter) plus the
        controller's: no transfer's data arrive sooner after its request (its bursts' own
        bus time is the bandwidth term of the bounds)."""
        p = self._params
        return int(math.floor(min(p[_CL], p[_CWL]) + p[_CTRL]))

    # ------------------------------------------------------------ timing

    def counts(self, schedule: TileSchedule, kernel=None) -> BankedCounts:
        """Time ``schedule`` and count its activates, row hits, bursts and refreshes.
        ``kernel`` is the Numba kernel unless a test passes its plain-Python form."""
        run = kernel or _pipeline
        out = run(np.ascontiguousarray(schedule.load_bytes, dtype=np.int64),
                  np.ascontiguousarray(schedule.compute_cycles + schedule.ports, dtype=np.int64),
                  np.ascontiguousarray(schedule.store_bytes, dtype=np.int64), int(schedule.epilogue_cycles),
                  self._params, self._geometry)
        return BankedCounts(int(out[_TOTAL]), int(out[_BUSY]), int(out[_ACTS]), int(out[_HITS]), int(out[_BURSTS]),
                            int(out[_REFS]))

    def _time(self, schedule: TileSchedule) -> Timing:
        c = self.counts(schedule)
        compute = schedule.compute_total_cycles
        return Timing(c.total_cycles, compute, c.total_cycles - compute, c.busy_cycles)

    def _cycles(self, schedule: TileSchedule) -> int:
        return self.counts(schedule).total_cycles

    def _time_with_columns(self, schedule: TileSchedule) -> tuple[Timing, dict]:
        """The timing and the row's DRAM counts: activates, bursts and the share of bursts that
        hit an open row (``dram_row_hit_rate``; sums of ``dram_row_hits``/``dram_bursts`` give
        it for any set of rows)."""
        c = self.counts(schedule)
        compute = schedule.compute_total_cycles
        timing = Timing(c.total_cycles, compute, c.total_cycles - compute, c.busy_cycles)
        columns = {"dram_activations": c.activations, "dram_row_hits": c.row_hits, "dram_bursts": c.bursts,
                   "dram_refreshes": c.refreshes, "dram_row_hit_rate": c.row_hit_rate}
        if self.std.prices_events:
            burst = self.std.device_burst_bytes
            reads = int(np.sum((np.asarray(schedule.load_bytes, dtype=np.int64) + burst - 1) // burst))
            writes = int(np.sum((np.asarray(schedule.store_bytes, dtype=np.int64) + burst - 1) // burst))
            columns.update(self.event_energy_pj(c, reads, writes))
        return timing, columns

    def event_energy_pj(self, c: BankedCounts, read_bursts: int, write_bursts: int) -> dict[str, float]:
        """The split of DRAM energy over its events (``DRAM_ENERGY_COLUMNS``), for counts ``c`` of
        which ``read_bursts`` are reads and ``write_bursts`` writes: activates (each with its
        precharge), bursts' array energy, I/O per bit of the bursts moved, all-bank refreshes, and
        every channel's standby power over the pipeline's time (docs/memory.md "Energy")."""
        s = self.std
        seconds = c.total_cycles / self.clock_hz
        return {
            "dram_energy_act_pj": c.activations * s.e_activate_pj,
            "dram_energy_rdwr_pj": read_bursts * s.e_read_burst_pj + write_bursts * s.e_write_burst_pj,
            "dram_energy_io_pj": (read_bursts + write_bursts) * s.device_burst_bytes * 8 * s.io_pj_per_bit,
            "dram_energy_refresh_pj": c.refreshes * s.e_refresh_pj,
            "dram_energy_background_pj": s.channels * s.background_mw * 1e-3 * seconds * 1e12,
        }

    def serve(self, bursts: np.ndarray, writes: np.ndarray, request_cycles: np.ndarray,
              kernel=None) -> tuple[np.ndarray, BankedCounts]:
        """Serve single bursts at burst addresses ``bursts`` (reads, or writes where
        ``writes``), each requested at ``request_cycles`` (array cycles), in order; returns
        each burst's data-arrival time and the counts. For hand checks of the DRAM alone
        (random streams, one access's latency); a schedule's streams come from :meth:`time`."""
        run = kernel or _serve
        arrive, out = run(np.ascontiguousarray(bursts, dtype=np.int64), np.ascontiguousarray(writes, dtype=np.bool_),
                          np.ascontiguousarray(request_cycles, dtype=np.float64), self._params, self._geometry)
        return arrive, BankedCounts(int(math.ceil(out[_TOTAL])), int(out[_BUSY]), int(out[_ACTS]), int(out[_HITS]),
                                    int(out[_BURSTS]), int(out[_REFS]))

    # ------------------------------------------------------------ price

    @property
    def prices_events(self) -> bool:
        return self.std.prices_events

    def energy_bound_pj(self, read_bytes: int, write_bytes: int, cycles: int) -> float:
        """With event energies: every byte is in some burst (a row counts each tile's transfer
        in whole bursts, so at least ``bytes / burst`` of them), each burst costs its array
        energy and its I/O, and every channel draws standby power for at least ``cycles``;
        activates and refreshes are counted as none. An ideal DRAM is priced by its bytes, as
        :meth:`schedule_energy` prices it."""
        if self.ideal or not self.std.prices_events:
            return self.energy_pj(read_bytes, write_bytes)
        s = self.std
        burst = s.device_burst_bytes
        io = burst * 8 * s.io_pj_per_bit
        return (read_bytes / burst * (s.e_read_burst_pj + io) + write_bytes / burst * (s.e_write_burst_pj + io)
                + s.channels * s.background_mw * 1e-3 * (cycles / self.clock_hz) * 1e12)

    def energy_pj(self, read_bytes: int, write_bytes: int) -> float:
        # Bytes alone, as the simple model prices them: what a caller without the model's counts
        # (the mapper's energy objective) sees. A row of a standard with event energies is priced
        # from its events instead (energy_breakdown_pj with the row's DRAM_ENERGY_COLUMNS).
        return (read_bytes + write_bytes) * 8 * self.dram.energy_pj_per_bit


# ---------------------------------------------------------------- the kernel (Numba, with py_func twins)


@njit(cache=True, nogil=True)
def _new_state(geo, refi):
    """Per-channel and per-bank state of the DRAM, all idle at time 0; the first refresh ends
    the first tREFI."""
    nch, ngr, nba = geo[0], geo[1], geo[2]
    banks = nch * ngr * nba
    open_row = np.full(banks, -1, dtype=np.int64)
    bank_t = np.full((banks, 3), -1e18)  # last activate, last read column command, last write data end
    # per channel: last activate, last column command, data bus free, refresh block end, next
    # refresh due
    chan_t = np.full((nch, 5), -1e18)
    chan_t[:, 2] = 0.0
    chan_t[:, 3] = 0.0
    chan_t[:, 4] = refi
    group_t = np.full((nch * ngr, 2), -1e18)  # last activate, last column command, per bank group
    faw = np.full((nch, 4), -1e18)  # the channel's last four activates (a ring)
    faw_at = np.zeros(nch, dtype=np.int64)
    work = np.zeros((nch, 5))  # per stripe: bursts, lanes, lanes seen, earliest start, enter
    # each channel's queue: when each of its last queue_depth bursts issued its column command (a
    # ring; a burst enters when the one queue_depth before it has issued)
    queue = np.full((nch, max(1, geo[6])), -1e18)
    queue_at = np.zeros(nch, dtype=np.int64)
    return open_row, bank_t, chan_t, group_t, faw, faw_at, work, queue, queue_at


@njit(cache=True, nogil=True)
def _refresh(p, geo, st, out, c, start):
    """Take the refreshes of channel ``c`` due by ``start``: the channel's rows close (each
    bank precharged when its own constraints allow) and it is blocked for tRFC. Of several due
    (idle time) only the last can delay anything."""
    open_row, bank_t, chan_t = st[0], st[1], st[2]
    nch = geo[0]
    banks = nch * geo[1] * geo[2]
    due = math.floor((start - chan_t[c, 4]) / p[_REFI]) + 1
    ref_at = max(chan_t[c, 4] + (due - 1) * p[_REFI], chan_t[c, 2])
    for b in range(c, banks, nch):
        if open_row[b] >= 0:
            ref_at = max(ref_at, bank_t[b, 0] + p[_RAS], bank_t[b, 1] + p[_RTP], bank_t[b, 2] + p[_WR])
            open_row[b] = -1
    chan_t[c, 3] = ref_at + p[_RP] + p[_RFC]
    chan_t[c, 4] += due * p[_REFI]
    out[_REFS] += due


@njit(cache=True, nogil=True)
def _stripe(p, geo, st, out, first_burst, n, write, t_req):
    """Serve ``n`` consecutive bursts from burst address ``first_burst`` that stay in one
    *stripe*: one row index and bank index over ``m`` lanes (channel and bank-group pairs, channels
    fastest), the bursts dealt to the lanes in turn. Per lane at most one precharge and activate;
    per channel one run of column commands over its lanes' bank groups. Returns (time the last
    channel's bursts entered its queue, last data end)."""
    open_row, bank_t, chan_t, group_t, faw, faw_at, work, queue, queue_at = st
    nch, ngr, nba, per_row, m = geo[0], geo[1], geo[2], geo[3], geo[4]
    depth = queue.shape[1]
    pairs = nch * ngr
    block = m * per_row
    unit = first_burst // block
    off = first_burst % block
    lane0 = off % m
    outer = unit // (pairs // m)
    bank = outer % nba
    row = outer // nba
    lat = p[_CWL] if write else p[_CL]
    lanes = min(m, n)
    # the first min(lanes, channels) lanes are on distinct channels and cover every channel the
    # stripe touches (lanes count channels fastest), so per-channel work loops over those only
    touched = min(lanes, nch)
    for d in range(touched):
        c = ((unit % (pairs // m)) * m + (lane0 + d) % m) % nch
        work[c, 0] = 0.0
        work[c, 1] = 0.0
        work[c, 2] = 0.0
        work[c, 3] = -1e18
    for d in range(lanes):  # bursts and lanes per channel
        lane = (lane0 + d) % m
        pair = (unit % (pairs // m)) * m + lane
        c = pair % nch
        work[c, 0] += (n - d + m - 1) // m
        work[c, 1] += 1
    out[_BURSTS] += n
    out[_BUSY] += n * p[_BL]
    for d in range(lanes):  # activates, in the order the lanes' first bursts come
        lane = (lane0 + d) % m
        pair = (unit % (pairs // m)) * m + lane
        c = pair % nch
        g = c * ngr + pair // nch
        q = bank * pairs + pair
        k = (n - d + m - 1) // m
        if work[c, 2] == 0:  # the channel's first lane: its queue, then refresh
            enter = max(t_req, queue[c, queue_at[c]])
            work[c, 4] = enter
            if max(enter, chan_t[c, 2] - lat) >= chan_t[c, 4]:
                _refresh(p, geo, st, out, c, max(enter, chan_t[c, 2] - lat))
        t = max(work[c, 4], chan_t[c, 3])
        spacing = max(max(p[_BL], p[_CCDS]), p[_CCDL] / work[c, 1])
        if open_row[q] == row:
            ready = t
            out[_HITS] += k
        else:
            act = t
            if open_row[q] >= 0:
                pre = max(t, bank_t[q, 0] + p[_RAS], bank_t[q, 1] + p[_RTP], bank_t[q, 2] + p[_WR])
                act = max(act, pre + p[_RP])
            act = max(act, bank_t[q, 0] + p[_RC], chan_t[c, 0] + p[_RRDS], group_t[g, 0] + p[_RRDL],
                      faw[c, faw_at[c]] + p[_FAW])
            faw[c, faw_at[c]] = act
            faw_at[c] = (faw_at[c] + 1) % 4
            chan_t[c, 0] = act
            group_t[g, 0] = act
            bank_t[q, 0] = act
            open_row[q] = row
            out[_ACTS] += 1
            out[_HITS] += k - 1
            ready = act + p[_RCD]
        ready = max(ready, group_t[g, 1] + p[_CCDL])
        # the channel's burst run starts early enough for this lane's first burst (its
        # work[c, 2]-th) to find its bank ready
        work[c, 3] = max(work[c, 3], ready - work[c, 2] * spacing)
        work[c, 2] += 1
    enter_last = t_req
    end_last = t_req
    for d in range(touched):
        c = ((unit % (pairs // m)) * m + (lane0 + d) % m) % nch
        k = work[c, 0]
        spacing = max(max(p[_BL], p[_CCDS]), p[_CCDL] / work[c, 1])
        col = max(work[c, 3], chan_t[c, 1] + p[_CCDS], chan_t[c, 2] - lat)
        last_col = col + (k - 1) * spacing
        end = last_col + lat + p[_BL]
        chan_t[c, 1] = last_col
        chan_t[c, 2] = end
        kept = int(min(k, depth))  # the stripe's last bursts fill the channel's queue ring
        for j in range(kept):
            queue[c, queue_at[c]] = last_col - (kept - 1 - j) * spacing
            queue_at[c] = (queue_at[c] + 1) % depth
        enter_last = max(enter_last, work[c, 4])
        end_last = max(end_last, end)
        work[c, 3] = last_col
        work[c, 4] = end
    for d in range(lanes):  # the banks' and groups' last commands
        lane = (lane0 + d) % m
        pair = (unit % (pairs // m)) * m + lane
        c = pair % nch
        g = c * ngr + pair // nch
        q = bank * pairs + pair
        group_t[g, 1] = work[c, 3]
        if write:
            bank_t[q, 2] = work[c, 4]
        else:
            bank_t[q, 1] = work[c, 3]
    return enter_last, end_last


@njit(cache=True, nogil=True)
def _transfer(p, geo, st, out, first_burst, nbytes, write, t_req):
    """Serve a transfer of ``nbytes`` from burst address ``first_burst`` as its stripes.
    Returns (bursts moved, time its last stripe entered the queues, its last data end)."""
    n = (nbytes + geo[5] - 1) // geo[5]
    block = geo[4] * geo[3]
    done = 0
    enter = t_req
    end = t_req
    while done < n:
        at = first_burst + done
        k = min(block - at % block, n - done)
        e, d = _stripe(p, geo, st, out, at, k, write, t_req)
        enter = max(enter, e)
        end = max(end, d)
        done += k
    return n, enter, end


@njit(cache=True, nogil=True)
def _pipeline(load, compute, store, epilogue, p, geo):
    """The tile pipeline of :func:`sparsesim.hardware.kernels.pipeline_cycles` with each
    transfer served by the banked DRAM. Returns the output vector (total, busy, counts)."""
    out = np.zeros(6)
    n = compute.size
    st = _new_state(geo, p[_REFI])
    banks = geo[0] * geo[1] * geo[2]
    read_at = 0
    write_at = geo[7] * geo[3] * banks
    loaded = np.zeros(n)
    done = np.zeros(n)
    stored = np.zeros(n)
    r = 0
    w = 0
    known = 0
    rready = 0.0  # the controller's front end: free once a transfer's last run is queued
    wready = 0.0
    last_store = 0.0
    ctrl = p[_CTRL]
    while r < n or w < n:
        while known < r and (known < 2 or w > known - 2):
            prev = done[known - 1] if known > 0 else 0.0
            free = stored[known - 2] if known >= 2 else 0.0
            done[known] = max(max(prev, loaded[known]), free) + compute[known]
            known += 1
        rq = -1.0
        if r < n and r - 2 < known:
            rq = max(rready, done[r - 2] if r >= 2 else 0.0)
            if load[r] == 0:
                loaded[r] = rq
                rready = rq
                r += 1
                continue
        wq = -1.0
        if w < n and w < known:
            ready = done[w] + (epilogue if w == n - 1 else 0)
            if store[w] == 0:
                wready = max(wready, ready)
                stored[w] = wready
                w += 1
                continue
            wq = max(wready, ready)
        if rq >= 0 and (wq < 0 or rq < wq or (rq == wq and r - 2 <= w)):
            t = max(max(rready, wready), rq)
            k, enter, end = _transfer(p, geo, st, out, read_at, load[r], False, t)
            read_at += k
            loaded[r] = end + ctrl
            rready = enter
            wready = max(wready, enter)
            r += 1
        elif wq >= 0:
            t = max(max(rready, wready), wq)
            k, enter, end = _transfer(p, geo, st, out, write_at, store[w], True, t)
            write_at += k
            wready = enter
            rready = max(rready, enter)
            stored[w] = end
            last_store = max(last_store, end + ctrl)
            w += 1
        else:  # every state lets the reader or the writer move
            raise AssertionError("pipeline recurrence stuck")
    out[_TOTAL] = math.ceil(max(done[n - 1] + epilogue, last_store))
    out[_BUSY] = math.ceil(out[_BUSY] / geo[0])
    return out


@njit(cache=True, nogil=True)
def _serve(bursts, writes, t_req, p, geo):
    """Single bursts at arbitrary burst addresses, in order (the hand checks' streams)."""
    out = np.zeros(6)
    st = _new_state(geo, p[_REFI])
    arrive = np.zeros(bursts.size)
    last = 0.0
    for i in range(bursts.size):
        _, end = _stripe(p, geo, st, out, bursts[i], 1, writes[i], t_req[i])
        arrive[i] = end + p[_CTRL]
        last = max(last, arrive[i])
    out[_TOTAL] = last
    out[_BUSY] = math.ceil(out[_BUSY] / geo[0])
    return arrive, out
