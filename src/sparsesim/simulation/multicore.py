"""Many cores on one chip: a GEMM split over ``chip.cores`` identical arrays that share an L2
and the DRAM (docs/scale-out.md).

A *partition* cuts a GEMM's repetitions (``count``), M, N and K into a grid of parts. The parts
run in *waves* of at most ``chip.cores`` parts, one per core; a wave lasts as long as its slowest
part, so a grid with one part more than a multiple of the cores costs a whole wave more (wave
quantization), and a part whose edge does not fill the array costs its folds (tile
quantization). Each part is planned and timed by the single-core engine (the dataflow and its
mapper) on a *core config*: the same array and buffers, with the core's link to the L2 as its
memory at an equal share of the L2 bandwidth among the wave's active cores (no L2: an equal
share of the DRAM bandwidth).

With an L2 the DRAM sees each operand slice once: once per GEMM where the whole GEMM's
operands fit in the L2, otherwise once per wave (and, where even one wave's slices overflow the
L2, every byte the cores fetch). A wave cannot be shorter than its DRAM bytes at the DRAM
bandwidth. Splitting K leaves ``parts_K - 1`` partial sums of every output element to add:
written and read once each at accumulator width over the L2 (or the DRAM), after the waves.

The search times the candidate grids in order of a lower bound (waves x the largest part's MACs
at the core's peak, against the DRAM bytes at the DRAM bandwidth, plus the reduction) and stops
when the bound of the next one cannot beat the best found (branch and bound), after at most
``chip.max_evaluations`` exact evaluations.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sparsesim.core.errors import field_error
from sparsesim.dataflows.array_kind import macs_per_cycle
from sparsesim.hardware.config import AccelConfig, L2Config
from sparsesim.hardware.schedule import EventCounts
from sparsesim.workloads.gemm import Gemm

DIMS = ("count", "M", "N", "K")
SMALL = 64
"""A dimension of at most this many elements is cut into every possible number of parts."""


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a partitioned GEMM: half-open ranges of repetitions, M, N and K, and its
    index along each dimension of the grid (``grid``: count, M, N, K)."""

    c: tuple[int, int]
    m: tuple[int, int]
    n: tuple[int, int]
    k: tuple[int, int]
    grid: tuple[int, int, int, int]

    def gemm(self, whole: Gemm) -> Gemm:
        """The sub-GEMM this part computes (one repetition; ``reps`` of them back to back)."""
        return Gemm(self.m[1] - self.m[0], self.n[1] - self.n[0], self.k[1] - self.k[0], conv=whole.conv)

    @property
    def reps(self) -> int:
        return self.c[1] - self.c[0]


@dataclass(frozen=True, slots=True)
class Partition:
    """Parts along count, M, N and K (each the number of cuts the dimension actually has)."""

    count: int
    M: int
    N: int
    K: int

    @property
    def parts(self) -> int:
        return self.count * self.M * self.N * self.K

    @property
    def text(self) -> str:
        return f"count{self.count}xM{self.M}xN{self.N}xK{self.K}"


@lru_cache(maxsize=65536)
def cuts(total: int, parts: int, align: int = 1) -> tuple[tuple[int, int], ...]:
    """``total`` cut into at most ``parts`` ranges of equal size (a multiple of ``align``, the
    last one shorter)."""
    size = -(-total // max(1, min(parts, total)))
    size = -(-size // align) * align
    return tuple((s, min(s + size, total)) for s in range(0, total, size))


def parts_of(gemm: Gemm, partition: Partition, k_align: int = 1) -> list[Part]:
    """The parts of ``partition`` in the order cores take them: repetitions outermost, K innermost
    (the parts of one output slice run side by side)."""
    axes = (cuts(gemm.count, partition.count), cuts(gemm.M, partition.M), cuts(gemm.N, partition.N),
            cuts(gemm.K, partition.K, k_align))
    return [Part(c, m, n, k, grid)
            for grid, (c, m, n, k) in zip(itertools.product(*(range(len(a)) for a in axes)), itertools.product(*axes))]


def _options(total: int, limit: int, cores: int, unit: int) -> list[int]:
    """Candidate part counts of one dimension: powers of two, divisors of the core count, and
    the counts that cut it into tiles of ``unit`` x a power of two (whole array folds)."""
    if total <= SMALL:  # every count: the search is then exhaustive (checked against brute force)
        return list(range(1, min(total, limit) + 1))
    opts = {1}
    p = 2
    while p <= min(total, limit):
        opts.add(p)
        p *= 2
    opts.update(d for d in range(2, cores + 1) if cores % d == 0 and d <= total)
    t = unit
    while t < total:
        n = -(-total // t)
        if n <= limit:
            opts.add(n)
        t *= 2
    return sorted(opts)


def _dim_counts(gemm: Gemm, cfg: AccelConfig, k_align: int) -> dict[str, list[int]]:
    """Per dimension, the distinct numbers of cuts its candidate part counts make."""
    chip = cfg.chip
    cores = chip.cores
    limit = cores * chip.max_waves
    units = {"count": 1, "M": cfg.array.rows, "N": cfg.array.cols, "K": k_align}
    sizes = {"count": gemm.count, "M": gemm.M, "N": gemm.N, "K": gemm.K}
    out = {}
    for dim in DIMS:
        top = min(limit, cores) if dim == "K" else limit  # a K split beyond the cores only adds reductions
        opts = [1] if chip.partition not in ("search", dim) else _options(sizes[dim], top, cores, units[dim])
        align = k_align if dim == "K" else 1
        out[dim] = sorted({_cut_shape(sizes[dim], p, align)[0] for p in opts})
    return out


def _cut_shape(total: int, parts: int, align: int = 1) -> tuple[int, int, int]:
    """``(number of cuts, size of each, size of the last)`` of :func:`cuts`, in closed form (a
    size rounded up to ``align`` past ``total`` is ``total``: one cut)."""
    size = -(-total // max(1, min(parts, total)))
    size = min(total, -(-size // align) * align)
    n = -(-total // size)
    return n, size, total - (n - 1) * size


def candidates(gemm: Gemm, cfg: AccelConfig, k_align: int = 1) -> list[Partition]:
    """The partitions the search considers (deduplicated by the cuts they make)."""
    limit = cfg.chip.cores * cfg.chip.max_waves
    counts = _dim_counts(gemm, cfg, k_align)
    return [Partition(*combo) for combo in itertools.product(*(counts[d] for d in DIMS)) if math.prod(combo) <= limit]


def ranked(gemm: Gemm, cfg: AccelConfig, k_align: int = 1, k_ratio: float = 1.0, dense: bool = True,
           dims: tuple[str, str, str] | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """:func:`candidates` sorted by :func:`lower_bound` (ties: the lower compute bound, then fewer
    parts), as rows of part counts (count, M, N, K) beside their bounds, and whether the best
    bound is its compute rather than the DRAM traffic: the same numbers,
    computed for all candidates at once (a part's cost is a product of one factor per
    dimension, so the bound's terms are products of per-dimension sums, maxima and minima)."""
    chip = cfg.chip
    cores, limit = chip.cores, chip.cores * chip.max_waves
    counts = _dim_counts(gemm, cfg, k_align)
    sizes = {"count": gemm.count, "M": gemm.M, "N": gemm.N, "K": gemm.K}
    stats = {}
    for dim in DIMS:
        rows = []
        for n in counts[dim]:
            cnt, size, last = _cut_shape(sizes[dim], n, k_align if dim == "K" else 1)
            full, tail = _factors(dim, ((0, size), (0, last)), cfg, k_ratio, dims)
            rows.append((cnt, max(full, tail), min(full, tail), (cnt - 1) * full + tail))
        stats[dim] = np.array(rows, dtype=np.float64)
    grids = np.meshgrid(*(np.arange(len(counts[d])) for d in DIMS), indexing="ij")
    idx = [g.ravel() for g in grids]
    col = {d: stats[d][i] for d, i in zip(DIMS, idx)}
    parts = np.prod([col[d][:, 0] for d in DIMS], axis=0)
    ok = parts <= limit
    if not ok.any():
        raise field_error("chip.max_waves", f"no partition of {gemm.M}x{gemm.N}x{gemm.K} fits")
    col = {d: c[ok] for d, c in col.items()}
    parts = parts[ok]
    waves = np.ceil(parts / cores)
    largest = np.prod([col[d][:, 1] for d in DIMS], axis=0)
    smallest = np.prod([col[d][:, 2] for d in DIMS], axis=0)
    total = np.prod([col[d][:, 3] for d in DIMS], axis=0)
    scale = 1 if dims is not None else macs_per_cycle(cfg)
    mac = np.ceil(np.maximum.reduce([largest, waves * smallest, total / cores]) / scale)
    dram = 0
    link = np.zeros_like(mac)
    if dense and not cfg.dram.ideal:
        whole = _whole_bytes(gemm, cfg)
        dram = math.ceil(sum(whole) / cfg.dram.bandwidth_bytes_per_cycle)
        link = np.ceil(_link_bytes(whole, col["M"][:, 0], col["N"][:, 0], col["K"][:, 0]) / _link_total(cfg))
    red_bytes = 2 * (col["K"][:, 0] - 1) * gemm.M * gemm.N * gemm.count * cfg.array.accumulator_bytes
    red = np.ceil(red_bytes / _link_total(cfg))
    bound = np.maximum(np.maximum(mac, dram), link) + red
    order = np.lexsort((parts, mac, bound))
    grids = np.stack([col[d][order, 0] for d in DIMS], axis=1).astype(np.int64)
    return grids, bound[order].astype(np.int64), bool(mac[order[0]] > max(dram, link[order[0]]))


def _factors(dim: str, spans, cfg: AccelConfig, k_ratio: float, dims) -> list[int]:
    """The cost factor of each cut of ``dim`` (see :func:`lower_bound`)."""
    ext = [hi - lo for lo, hi in spans]
    if dim == "K":
        ext = [max(1, math.ceil(e * k_ratio)) for e in ext]
    if dims is not None and dim in dims[:2]:
        unit = cfg.array.rows if dim == dims[0] else cfg.array.cols
        ext = [-(-e // unit) for e in ext]
    return ext


@dataclass(frozen=True, slots=True)
class PartTiming:
    """One part planned and timed on its core (all its repetitions back to back)."""

    cycles: int
    compute_cycles: int
    counts: EventCounts
    macs_dense: int
    macs_effectual: int
    folds: int
    tiles: int
    link_bytes: int  # bytes the core moved over its link to the L2 (or DRAM)
    mapping: str
    psum_spill_bytes: int
    operand_bytes: tuple[int, int, int]  # stored bytes of the part's A, B and Out slices (compression included)


@dataclass(frozen=True, slots=True)
class ChipOutcome:
    """A partitioned GEMM: what :func:`sparsesim.simulation.engine.run_gemm` makes its outcome of."""

    partition: Partition
    waves: int
    cycles: int
    compute_cycles: int
    counts: EventCounts
    macs_dense: int
    macs_effectual: int
    folds: int
    tiles: int
    columns: dict


def core_config(cfg: AccelConfig, active: int) -> AccelConfig:
    """One core of ``cfg``'s chip while ``active`` cores run: the same array and buffers, its
    memory the link to the L2 (or the DRAM) at an equal share of that bandwidth."""
    chip, l2 = cfg.chip, cfg.chip.l2
    if l2.size_bytes:
        bandwidth, latency = l2.bandwidth_bytes_per_cycle / active, l2.latency_cycles
    else:
        bandwidth, latency = cfg.dram.bandwidth_bytes_per_cycle / active, cfg.dram.latency_cycles
    return dataclasses.replace(cfg, chip=dataclasses.replace(chip, cores=1, l2=L2Config()),
                               dram=dataclasses.replace(cfg.dram, bandwidth_bytes_per_cycle=bandwidth,
                                                        latency_cycles=latency))


class _Slices:
    """The operand slices the parts touch (A by count, M, K; B by count, K, N; Out by count,
    M, N) and their dense bytes at the element width (A of a convolution: its feature-map
    footprint)."""

    def __init__(self, gemm: Gemm, cfg: AccelConfig):
        self.gemm, self.elem = gemm, cfg.array.element_bytes

    def a(self, p: Part) -> int:
        ms, ks = p.m[1] - p.m[0], p.k[1] - p.k[0]
        conv = self.gemm.conv
        per = int(conv.footprint(ms, ks)) if conv is not None else ms * ks
        return p.reps * per * self.elem

    def b(self, p: Part) -> int:
        return p.reps * (p.k[1] - p.k[0]) * (p.n[1] - p.n[0]) * self.elem

    def out(self, p: Part) -> int:
        return p.reps * (p.m[1] - p.m[0]) * (p.n[1] - p.n[0]) * self.elem

    def keys(self, p: Part) -> tuple[tuple, tuple, tuple]:
        c, m, n, k = p.grid
        return ("a", c, m, k), ("b", c, k, n), ("o", c, m, n)

    def dense_total(self, parts: list[Part]) -> int:
        """Bytes of every distinct slice once, stored dense (what the L2 must hold at most)."""
        if self.gemm.conv is None:  # the slices tile the operands exactly
            g = self.gemm
            return g.count * (g.M * g.K + g.K * g.N + g.M * g.N) * self.elem
        got: dict[tuple, int] = {}
        for p in parts:
            for key, size in zip(self.keys(p), (self.a(p), self.b(p), self.out(p))):
                got.setdefault(key, size)
        return sum(got.values())


def _reduction_bytes(gemm: Gemm, partition: Partition, cfg: AccelConfig) -> int:
    """Partial sums written and read once each when K is split: ``2 (parts_K - 1) M N count``
    accumulator words."""
    return 2 * (partition.K - 1) * gemm.M * gemm.N * gemm.count * cfg.array.accumulator_bytes


def _link_total(cfg: AccelConfig) -> float:
    """Bytes per cycle over which the reduction's partial sums move (all cores together)."""
    l2 = cfg.chip.l2
    return l2.bandwidth_bytes_per_cycle if l2.size_bytes else cfg.dram.bandwidth_bytes_per_cycle


def lower_bound(gemm: Gemm, partition: Partition, cfg: AccelConfig, k_align: int = 1,
                k_ratio: float = 1.0, dense: bool = True, dims: tuple[str, str, str] | None = None) -> tuple[int, int]:
    """``(bound, compute bound)``: cycles ``partition`` cannot beat, and the compute part of it.

    A part's compute cannot beat its folds: with the dataflow's ``dims`` (the GEMM dimensions on
    the array's rows, columns and time), a part of extents ``e`` has ``ceil(e_row/R)
    ceil(e_col/C)`` folds that each stream ``e_time`` steps (without ``dims``: its MACs at the
    core's peak); K counts ``k_ratio`` MAC slots per index (N:M's ``n/m``). The waves run one
    after another, each as long as its slowest part, so they take at least the largest part's
    time, the number of waves times the smallest's, and the sum over the parts over the cores.
    A dense GEMM cannot beat its compulsory DRAM bytes at the DRAM bandwidth either; the K
    reduction comes after both. Exact for dense and N:M work; zero-skipping parts can beat it,
    so there the search may stop early."""
    cores = cfg.chip.cores
    # per dimension: the cost factor of each of its cuts (a part's cost is their product)
    factors = [_factors(dim, cuts(total, p, align), cfg, k_ratio, dims)
               for dim, total, p, align in (("count", gemm.count, partition.count, 1), ("M", gemm.M, partition.M, 1),
                                            ("N", gemm.N, partition.N, 1), ("K", gemm.K, partition.K, k_align))]
    scale = 1 if dims is not None else macs_per_cycle(cfg)
    parts = math.prod(len(f) for f in factors)
    waves = -(-parts // cores)
    largest = math.prod(max(f) for f in factors)
    smallest = math.prod(min(f) for f in factors)
    total = math.prod(sum(f) for f in factors)
    mac = math.ceil(max(largest, waves * smallest, total / cores) / scale)
    dram = link = 0
    if dense and not cfg.dram.ideal:
        whole = _whole_bytes(gemm, cfg)
        dram = math.ceil(sum(whole) / cfg.dram.bandwidth_bytes_per_cycle)
        n = {dim: len(f) for dim, f in zip(DIMS, factors)}
        link = math.ceil(_link_bytes(whole, n["M"], n["N"], n["K"]) / _link_total(cfg))
    red = math.ceil(_reduction_bytes(gemm, partition, cfg) / _link_total(cfg)) if partition.K > 1 else 0
    return max(mac, dram, link) + red, mac


def _link_bytes(whole: tuple[int, int, int], parts_m, parts_n, parts_k):
    """Bytes the cores fetch and store over their links at least (the L2's, or the DRAM's where
    there is no L2): every part reads its slices of A and B and writes its slice of Out once,
    so A (``whole[0]``) is read by each of the ``parts_n`` column parts, B by each of the
    ``parts_m`` row parts, Out written by each of the ``parts_k`` K parts. The cores share the
    link's bandwidth, so all of it takes at least these bytes over that bandwidth."""
    a, b, out = whole
    return parts_n * a + parts_m * b + parts_k * out


def _whole_bytes(gemm: Gemm, cfg: AccelConfig) -> tuple[int, int, int]:
    """Dense bytes of the whole GEMM's A, B and Out that every schedule moves at least: A of a
    convolution is left out (the slices the cores read of a strided feature map can be fewer
    than its footprint, so no simple count bounds them)."""
    elem = cfg.array.element_bytes
    a = 0 if gemm.conv is not None else gemm.M * gemm.K
    return gemm.count * a * elem, gemm.count * gemm.K * gemm.N * elem, gemm.count * gemm.M * gemm.N * elem


PartTimer = Callable[[Part, AccelConfig], PartTiming]

_RANKED: OrderedDict = OrderedDict()
"""Candidates ranked by lower bound, per GEMM and chip (shared by the dataflows' searches)."""


def _l2_dram_bytes(wave: list[Part], timings: list[PartTiming], slices: _Slices, seen: set, l2_bytes: int,
                   fits: bool, held: int) -> tuple[int, int]:
    """``(read, write)`` DRAM bytes of one wave behind the L2.

    * Across cores: the wave's cores stream their slices' K in step, so what they hold at once
      is at most their operand buffers (``held`` each); where that fits the L2, a slice two
      cores share comes from DRAM once (once per GEMM where ``fits``: ``seen`` keeps the slices
      of earlier waves), otherwise once per part.
    * Within a core: bytes a core fetches beyond its slices (an operand re-read because its
      slice outgrows the core's buffers) hit the L2 while the wave's slices all fit in it, and
      go to DRAM otherwise.
    """
    shared = fits or len(wave) * held <= l2_bytes
    reads = writes = 0
    own = set() if shared else None
    for p, t in zip(wave, timings):
        for key, size in zip(slices.keys(p), t.operand_bytes):
            if own is None or key not in seen:
                if own is not None:
                    seen.add(key)
                if key[0] == "o":
                    writes += size
                else:
                    reads += size
    parts_bytes = sum(sum(t.operand_bytes) for t in timings)
    if not fits and parts_bytes > l2_bytes:  # re-reads of slices larger than the L2 can keep
        reads += sum(max(0, t.counts.dram_read_bytes - t.operand_bytes[0] - t.operand_bytes[1]) for t in timings)
        writes += sum(max(0, t.counts.dram_write_bytes - t.operand_bytes[2]) for t in timings)
    # never more than the cores fetched (compressed operands, or slices a core skips)
    return (min(reads, sum(t.counts.dram_read_bytes for t in timings)),
            min(writes, sum(t.counts.dram_write_bytes for t in timings)))


def evaluate(gemm: Gemm, cfg: AccelConfig, partition: Partition, timer: PartTimer, k_align: int = 1,
             side_read: int = 0, side_write: int = 0) -> ChipOutcome:
    """Time ``partition`` of ``gemm`` on ``cfg``'s chip (``timer`` plans and times one part on a
    core config); ``side_read``/``side_write``: the features' DRAM traffic beside the GEMM."""
    chip = cfg.chip
    cores = chip.cores
    parts = parts_of(gemm, partition, k_align)
    slices = _Slices(gemm, cfg)
    has_l2 = chip.l2.size_bytes > 0
    fits = has_l2 and slices.dense_total(parts) <= chip.l2.size_bytes
    seen: set = set()
    stored: dict[tuple, int] = {}  # every distinct slice's stored bytes: the chip's compulsory traffic
    cycles = compute = 0
    counts = EventCounts()
    dense = eff = folds = tiles = link = spill = 0
    dram_read = dram_write = 0
    mappings: list[str] = []
    waves = [parts[i:i + cores] for i in range(0, len(parts), cores)]
    held = cfg.buffers.a.size_bytes + cfg.buffers.b.size_bytes  # operand bytes one core holds on chip
    configs: dict[int, AccelConfig] = {}
    uses: dict[int, tuple[PartTiming, int]] = {}
    for wave in waves:
        active = len(wave)
        core = configs.get(active) or configs.setdefault(active, core_config(cfg, active))
        timings = [timer(p, core) for p in wave]
        wave_link = sum(t.link_bytes for t in timings)
        if has_l2:
            reads, writes = _l2_dram_bytes(wave, timings, slices, seen if fits else set(), chip.l2.size_bytes,
                                           fits, held)
        else:
            reads = sum(t.counts.dram_read_bytes for t in timings)
            writes = sum(t.counts.dram_write_bytes for t in timings)
        for p, t in zip(wave, timings):
            for key, size in zip(slices.keys(p), t.operand_bytes):
                stored.setdefault(key, size)
        wave_cycles = max(t.cycles for t in timings)
        if has_l2 and not cfg.dram.ideal:
            wave_cycles = max(wave_cycles, math.ceil((reads + writes) / cfg.dram.bandwidth_bytes_per_cycle))
        cycles += wave_cycles
        compute += max(t.compute_cycles for t in timings)
        dram_read, dram_write = dram_read + reads, dram_write + writes
        for t in timings:  # parts of one shape share their timing: count each once, scaled
            held_t = uses.get(id(t))
            uses[id(t)] = (t, 1 if held_t is None else held_t[1] + 1)
        link += wave_link
        mappings.append(timings[0].mapping)
    return _finish(gemm, cfg, partition, list(uses.values()), len(parts), len(waves), cycles, compute,
                   dram_read, dram_write, link, sum(stored.values()), mappings[0], side_read, side_write)


def _finish(gemm: Gemm, cfg: AccelConfig, partition: Partition, uses: list, n_parts: int, n_waves: int,
            cycles: int, compute: int, dram_read: int, dram_write: int, link: int, stored: int, mapping: str,
            side_read: int, side_write: int) -> ChipOutcome:
    """A partition's outcome from its waves' totals (``uses``: each distinct part timing and how
    many parts had it): the features' side traffic, the K reduction and the row columns."""
    has_l2 = cfg.chip.l2.size_bytes > 0
    counts = EventCounts()
    dense = eff = folds = tiles = spill = 0
    for t, n in uses:
        counts = counts + t.counts.scaled(n)
        dense, eff, folds, tiles = (dense + n * t.macs_dense, eff + n * t.macs_effectual, folds + n * t.folds,
                                    tiles + n * t.tiles)
        spill += n * t.psum_spill_bytes
    dram_read, dram_write = dram_read + side_read, dram_write + side_write
    if not cfg.dram.ideal:  # the features' traffic beside the GEMM shares the DRAM with it
        cycles = max(cycles, math.ceil((dram_read + dram_write) / cfg.dram.bandwidth_bytes_per_cycle))
    red_cycles = 0
    extra = EventCounts()
    if partition.K > 1:  # after the waves: the partial sums of the K parts added up
        red = _reduction_bytes(gemm, partition, cfg)
        red_cycles = math.ceil(red / _link_total(cfg))
        adds = (partition.K - 1) * gemm.M * gemm.N * gemm.count
        extra = EventCounts(rf_accesses=adds, accumulator_rmw=adds)
        if has_l2:
            link += red
        else:
            dram_read, dram_write = dram_read + red // 2, dram_write + red - red // 2
        cycles += red_cycles
    counts = dataclasses.replace(counts + extra, dram_read_bytes=dram_read, dram_write_bytes=dram_write)
    compulsory = min(stored, dram_read + dram_write)
    columns = {
        "mapping": f"{partition.text} in {n_waves} waves; core: {mapping}",
        "dram_compulsory_bytes": compulsory,
        "dram_lower_bound_bytes": compulsory,
        "psum_spill_bytes": spill,
        "chip_partition": partition.text,
        "chip_waves": n_waves,
        "chip_cores_active": min(cfg.chip.cores, n_parts),
        "l2_bytes": link if has_l2 else 0,
        "reduction_cycles": red_cycles,
    }
    return ChipOutcome(partition, n_waves, cycles, compute, counts, dense, eff, folds, tiles, columns)


def evaluate_dense(gemm: Gemm, cfg: AccelConfig, partition: Partition, timer: PartTimer, k_align: int = 1,
                   side_read: int = 0, side_write: int = 0) -> ChipOutcome:
    """:func:`evaluate` where a part's timing depends on its extents alone (dense work): the same
    numbers with array passes over the parts instead of a loop, each of the at most 16 part
    shapes timed once per number of active cores (the tests hold it equal to :func:`evaluate`)."""
    chip = cfg.chip
    cores, l2 = chip.cores, chip.l2.size_bytes
    axes = (cuts(gemm.count, partition.count), cuts(gemm.M, partition.M), cuts(gemm.N, partition.N),
            cuts(gemm.K, partition.K, k_align))
    shape = tuple(len(a) for a in axes)
    total = math.prod(shape)
    ci, mi, ni, ki = np.unravel_index(np.arange(total), shape)
    grid = (ci, mi, ni, ki)
    kind = sum(((g == n - 1).astype(np.int64) << (3 - d)) for d, (g, n) in enumerate(zip(grid, shape)))
    n_waves = -(-total // cores)
    wave = np.arange(total) // cores
    last_active = total - (n_waves - 1) * cores
    active = np.where(wave == n_waves - 1, last_active, cores)
    # the parts' timings: one per (shape kind, active cores), the first part of each timed
    _, first, t_of = np.unique(kind * (cores + 1) + active, return_index=True, return_inverse=True)
    t_of = t_of.ravel()
    configs: dict[int, AccelConfig] = {}
    timings = []
    for i in first:
        act = int(active[i])
        core = configs.get(act) or configs.setdefault(act, core_config(cfg, act))
        grid_i = (int(ci[i]), int(mi[i]), int(ni[i]), int(ki[i]))
        timings.append(timer(Part(*(axes[d][grid_i[d]] for d in range(4)), grid_i), core))

    def col(f):
        return np.array([f(t) for t in timings], dtype=np.int64)[t_of]

    cyc, comp = col(lambda t: t.cycles), col(lambda t: t.compute_cycles)
    rd, wr, link = col(lambda t: t.counts.dram_read_bytes), col(lambda t: t.counts.dram_write_bytes), \
        col(lambda t: t.link_bytes)
    ob = [col(lambda t, j=j: t.operand_bytes[j]) for j in range(3)]
    starts = np.arange(0, total, cores)
    wave_cycles = np.maximum.reduceat(cyc, starts)
    compute = int(np.maximum.reduceat(comp, starts).sum())

    def per_wave(values, mask=None):
        out = np.zeros(n_waves, dtype=np.int64)
        np.add.at(out, wave if mask is None else wave[mask], values if mask is None else values[mask])
        return out

    slice_keys = ((ci * shape[1] + mi) * shape[3] + ki, (ci * shape[3] + ki) * shape[2] + ni,
                  (ci * shape[1] + mi) * shape[2] + ni)
    stored = 0
    for keyv, size in zip(slice_keys, ob):
        stored += int(size[np.unique(keyv, return_index=True)[1]].sum())
    if l2:
        parts = parts_of(gemm, partition, k_align) if gemm.conv is not None else []  # closed form otherwise
        fits = _Slices(gemm, cfg).dense_total(parts) <= l2
        held = cfg.buffers.a.size_bytes + cfg.buffers.b.size_bytes
        shared_w = np.full(n_waves, True) if fits else (np.where(np.arange(n_waves) == n_waves - 1, last_active,
                                                                  cores) * held <= l2)
        shared = shared_w[wave]
        sums = []
        for keyv, size in zip(slice_keys, ob):
            if fits:
                once = np.zeros(total, dtype=bool)
                once[np.unique(keyv, return_index=True)[1]] = True
            else:
                once = np.zeros(total, dtype=bool)
                once[np.unique(wave * (int(keyv.max()) + 1) + keyv, return_index=True)[1]] = True
            take = np.where(shared, once, True)
            sums.append(per_wave(size, take))
        reads, writes = sums[0] + sums[1], sums[2]
        if not fits:
            big = per_wave(ob[0] + ob[1] + ob[2]) > l2
            reads = reads + np.where(big, per_wave(np.maximum(0, rd - ob[0] - ob[1])), 0)
            writes = writes + np.where(big, per_wave(np.maximum(0, wr - ob[2])), 0)
        reads = np.minimum(reads, per_wave(rd))
        writes = np.minimum(writes, per_wave(wr))
        if not cfg.dram.ideal:
            bw = cfg.dram.bandwidth_bytes_per_cycle
            wave_cycles = np.maximum(wave_cycles, np.array([math.ceil(int(x) / bw) for x in reads + writes],
                                                           dtype=np.int64))
    else:
        reads, writes = per_wave(rd), per_wave(wr)
    counts_of = np.bincount(t_of, minlength=len(timings))
    uses = [(t, int(n)) for t, n in zip(timings, counts_of) if n]
    return _finish(gemm, cfg, partition, uses, total, n_waves, int(wave_cycles.sum()), compute, int(reads.sum()),
                   int(writes.sum()), int(link.sum()), stored, timings[int(t_of[0])].mapping, side_read,
                   side_write)


def search(gemm: Gemm, cfg: AccelConfig, timer: PartTimer, k_align: int = 1, k_ratio: float = 1.0,
           side_read: int = 0, side_write: int = 0, exhaustive: bool = False, dense: bool = True,
           dims: tuple[str, str, str] | None = None) -> ChipOutcome:
    """The partition of ``gemm`` with the fewest cycles (ties: fewer DRAM bytes, then fewer
    parts), by branch and bound over :func:`candidates` ranked by :func:`lower_bound` (ties:
    the lower compute bound, then fewer parts); ``exhaustive`` times every candidate (for tests
    against brute force). ``dense``: a part's timing depends on its extents alone, so
    :func:`evaluate_dense` times the candidates."""
    key = (gemm, cfg.chip, cfg.array, cfg.dram, k_align, k_ratio, dense, dims)
    found = _RANKED.get(key)
    if found is None:  # the same shape recurs (layers, decode steps, repetitions)
        found = _RANKED[key] = ranked(gemm, cfg, k_align, k_ratio, dense, dims)
        if len(_RANKED) > 4096:
            _RANKED.popitem(last=False)
    best: ChipOutcome | None = None
    evaluated = 0
    grids, bounds, compute_bound = found
    # a GEMM whose every dimension is small has every grid as a candidate; its search is not
    # budgeted, so it is exact (the bound is a true one)
    # (a sparse candidate replays every part's masks, so sparse work keeps the small budget)
    budget = (None if max(gemm.count, gemm.M, gemm.N, gemm.K) <= SMALL else
              cfg.chip.max_evaluations_compute_bound if compute_bound and dense else cfg.chip.max_evaluations)
    for row, bound in zip(grids.tolist(), bounds.tolist()):
        if best is not None and not exhaustive:
            if (budget is not None and evaluated >= budget) or bound > best.cycles:
                break
        p = Partition(*row)
        out = (evaluate_dense if dense else evaluate)(gemm, cfg, p, timer, k_align, side_read, side_write)
        evaluated += 1
        key = (out.cycles, out.counts.dram_read_bytes + out.counts.dram_write_bytes, p.parts)
        if best is None or key < (best.cycles, best.counts.dram_read_bytes + best.counts.dram_write_bytes,
                                  best.partition.parts):
            best = out
    return best

