"""The mapper's cost model: what one nest of a :class:`~.space.NestSpace` costs, and bounds of it.

* the closed-form traffic of a nest (:func:`traffic`: how often each operand tile is brought on
  chip, its footprint and the partial-sum spills; :func:`fetch_events`, :func:`first_last`);
* :func:`evaluate` builds the tile schedule and event counts of one nest (the same
  :class:`~sparsesim.hardware.schedule.TileSchedule` the run then times with SimPy) and times it
  with the exact event recurrence of that SimPy pipeline
  (:func:`~sparsesim.hardware.kernels.pipeline_cycles`, Numba, held to SimPy by the tests), and
  prices its nest-dependent energy;
* closed-form lower bounds that the search ranks by: :func:`cycles_bound` per nest and
  :func:`score` for arrays of candidates at once;
* the communication bounds of the whole GEMM, :func:`dram_bounds` (compulsory bytes and the
  I/O lower bound of blocked matrix multiplication for these partitioned buffers; derivation in
  its docstring and ``docs/mapper.md``).

Buffer rules. An operand whose whole (compressed) size fits its whole buffer stays resident
and is fetched once. Otherwise it streams through double buffering: a tile of it may be
reused across the loops inside its innermost own loop only if the tile fits half the buffer;
a tile that does not fit keeps what fits across consecutive uses and refetches the rest (and
spans one fold only, since its folds could not reuse it). Partial sums stay in the output
buffer while the reduction loop runs inside the output tile's loops and the tile (at
accumulator width) fits half the output buffer (all of it when the whole output fits); only
otherwise are they spilled, written and read back at accumulator width.

Convolutions (``Gemm.conv``): the A operand of ``fwd`` and ``bwd_weight`` is the im2col
expansion of the input feature map. A tile fetches the feature-map pixels its output rows
need (halo rows included, all taps of each channel it touches) and the expansion happens on
chip, so the DRAM bytes of an A tile are its feature-map footprint, never more than its
im2col size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sparsesim.hardware.energy import config_energy_table, energy_breakdown_pj
from sparsesim.hardware.kernels import nest_tiles
from sparsesim.hardware.memory import memory_model
from sparsesim.hardware.schedule import EventCounts, TileSchedule
from sparsesim.hardware.dataflow_kind import OPERAND_DIMS
from sparsesim.mapping.space import DIMS, ORDERS, Mapping, NestSpace, _extents

@dataclass(frozen=True, slots=True)
class Traffic:
    """DRAM bytes of one nest (one repetition of the GEMM), closed form."""

    read_a: int
    read_b: int
    read_psum: int
    write_out: int
    write_spill: int
    resident: tuple[str, ...]

    @property
    def total(self) -> int:
        return self.read_a + self.read_b + self.read_psum + self.write_out + self.write_spill


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A nest evaluated: its schedule, counts and objective values (one repetition)."""

    mapping: Mapping
    schedule: TileSchedule
    counts: EventCounts
    traffic: Traffic
    cycles: int
    energy_pj: float

    @property
    def dram_bytes(self) -> int:
        return self.counts.dram_read_bytes + self.counts.dram_write_bytes



def visits(space: NestSpace, op: str, m: Mapping, n: dict[str, int]) -> int:
    """How many times each tile of ``op`` is brought on chip (closed form of the loop nest)."""
    resident, reusable = space._fits(op, m)
    if resident:
        return 1
    deps = OPERAND_DIMS[op]
    if not reusable and op == "Out":
        return math.prod(n[d] for d in DIMS if d not in deps)
    inner = max((i for i, d in enumerate(m.order) if d in deps and n[d] > 1), default=-1)
    return math.prod(n[d] for d in m.order[:max(inner, 0)] if d not in deps) if inner >= 0 else 1

def fetch_events(space: NestSpace, m: Mapping) -> int:
    """Fewest tiles that load something: the most tile fetches of any one operand."""
    n = {d: -(-space.D[d] // m.tile(d)) for d in DIMS}
    return max(visits(space, op, m, n) * math.prod(n[d] for d in OPERAND_DIMS[op]) for op in ("A", "B"))

def traffic(space: NestSpace, m: Mapping) -> Traffic:
    n = {d: -(-space.D[d] // m.tile(d)) for d in DIMS}
    resident = tuple(op for op in ("A", "B", "Out") if space._fits(op, m)[0])
    # a resident conv input is its feature map once (halos shared by tiles stay on chip)
    read_a = space.operand_total("A") if "A" in resident else _sum_a(space, m) * visits(space, "A", m, n)
    read_b = space.operand_total("B") * visits(space, "B", m, n)
    # a tile larger than its buffer half keeps what fits across consecutive uses and
    # refetches the rest each time (the legacy schedule's rule)
    tiles = math.prod(n.values())
    for op in ("A", "B"):
        if op not in resident and not space._fits(op, m)[1]:
            again = tiles // math.prod(n[d] for d in OPERAND_DIMS[op]) - visits(space, op, m, n)
            extra = again * sum_excess(space, op, m)
            read_a, read_b = (read_a + extra, read_b) if op == "A" else (read_a, read_b + extra)
    out_elems = space.D["M"] * space.D["N"]
    spills = visits(space, "Out", m, n) - 1
    return Traffic(read_a, read_b, spills * out_elems * space.acc, out_elems * space.elem,
                   spills * out_elems * space.acc, resident)

def sum_excess(space: NestSpace, op: str, m: Mapping) -> int:
    """Bytes by which the tiles of ``op`` exceed its buffer half, summed over its tiles."""
    key = ("excess", op, m.tile_M, m.tile_N, m.tile_K)
    if key not in space._memo:
        em, en, ek = (_extents(space.D[d], m.tile(d)) for d in DIMS)
        if op == "A":
            sizes = space.a_bytes(em[:, None], ek[None, :])
        else:
            sizes = np.ceil(ek[:, None] * en[None, :] * space.width["B"]).astype(np.int64)
        space._memo[key] = int(np.maximum(sizes - space.half[op], 0).sum())
    return space._memo[key]

def _sum_a(space: NestSpace, m: Mapping) -> int:
    """Bytes of all A tiles of the nest (more than A once where feature-map halos overlap)."""
    key = ("sum_a", m.tile_M, m.tile_K)
    if key not in space._memo:
        space._memo[key] = _sum_a_uncached(space, m)
    return space._memo[key]

def _sum_a_uncached(space: NestSpace, m: Mapping) -> int:
    em = _extents(space.D["M"], m.tile_M)
    ek = _extents(space.D["K"], m.tile_K)
    return int(space.a_bytes(em[:, None], ek[None, :]).sum())

def first_last(space: NestSpace, m: Mapping) -> tuple[int, int]:
    """Bytes the first tile must load and the last tile must store (for the lower bound)."""
    tm, tn, tk = (min(m.tile(d), space.D[d]) for d in DIMS)
    first = space.a_tile(tm, tk) + math.ceil(tk * tn * space.width["B"])
    lm = space.D["M"] - (-(-space.D["M"] // tm) - 1) * tm
    ln = space.D["N"] - (-(-space.D["N"] // tn) - 1) * tn
    return first, lm * ln * space.elem



# ---------------------------------------------------------------- the cost model


def evaluate(space: NestSpace, m: Mapping, *, timed: bool = True) -> Evaluation:
    """Build the tile schedule and event counts of nest ``m`` and time it: the same pipeline
    as the run's SimPy timing (:mod:`sparsesim.hardware.timing`), by its exact event recurrence
    (:func:`~sparsesim.hardware.kernels.pipeline_cycles`, checked against SimPy in the tests).
    The per-tile loads, computes and stores come from one Numba pass over the tiles
    (:func:`~sparsesim.hardware.kernels.nest_tiles`; :func:`_evaluate_reference` is its NumPy twin)."""
    flow, D = space.kind, space.D
    n = {d: -(-D[d] // m.tile(d)) for d in DIMS}
    kind = {d: np.array([m.tile(d), D[d] - m.tile(d) * (n[d] - 1)], dtype=np.int64) for d in DIMS}
    key = ("a_kind", m.tile_M, m.tile_K)  # the same A tiles recur across loop orders and N tiles
    if key not in space._memo:
        space._memo[key] = np.ascontiguousarray(space.a_bytes(kind["M"][:, None], kind["K"][None, :]), dtype=np.int64)
    a_kind = space._memo[key]
    b_kind = np.ceil(kind["K"][:, None] * kind["N"][None, :] * space.width["B"]).astype(np.int64)
    fits = {op: space._fits(op, m) for op in ("A", "B", "Out")}
    flags = np.array([*fits["A"], *fits["B"], *fits["Out"], fits["A"][0] and space.conv is not None], dtype=np.bool_)
    dim_id = {d: i for i, d in enumerate(DIMS)}
    load, compute, store, sums = nest_tiles(
        np.array([n[d] for d in m.order], dtype=np.int64), np.array([dim_id[d] for d in m.order], dtype=np.int64),
        a_kind, b_kind, kind["M"][:, None] * kind["N"][None, :],
        kind["M"][:, None] * kind["K"][None, :], flags, space.half["A"], space.half["B"], space.acc, space.elem,
        space.operand_total("A"), space.spacing, m.tile(flow.time_dim), D[flow.time_dim],
        np.array([_fold_group(m.tile(flow.row_dim), D[flow.row_dim], space.R, space.spacing.shape[0]),
                  _fold_group(m.tile(flow.col_dim), D[flow.col_dim], space.C, space.spacing.shape[1])], dtype=np.int64),
        np.array([dim_id[flow.row_dim], dim_id[flow.col_dim], dim_id[flow.time_dim]], dtype=np.int64))
    schedule = TileSchedule(load_bytes=load, compute_cycles=compute, store_bytes=store,
                            epilogue_cycles=space.epilogue)
    read_a, read_b, read_psum, write_out, write_spill = (int(x) for x in sums)
    traffic = Traffic(read_a, read_b, read_psum, write_out, write_spill,
                      tuple(op for op in ("A", "B", "Out") if fits[op][0]))
    counts = EventCounts(dram_read_bytes=read_a + read_b + read_psum, dram_write_bytes=write_out + write_spill)
    cycles, energy = _timed(space, schedule, counts) if timed else (0, 0.0)
    return Evaluation(m, schedule, counts, traffic, cycles, energy)


def _fold_group(tile: int, total: int, block: int, folds: int) -> int:
    """How many folds along a spatial dimension one tile spans (all of them for a whole tile)."""
    return max(1, tile // block) if tile < total else folds

def _evaluate_reference(space: NestSpace, m: Mapping, *, timed: bool = True) -> Evaluation:
    """:func:`evaluate` in NumPy array steps, as first written (the readable twin of
    :func:`~sparsesim.hardware.kernels.nest_tiles`; the tests hold both to the same schedule)."""
    flow, D = space.kind, space.D
    n = {d: -(-D[d] // m.tile(d)) for d in DIMS}
    ext = {d: _extents(D[d], m.tile(d)) for d in DIMS}
    grids = np.meshgrid(*(np.arange(n[d], dtype=np.int64) for d in m.order), indexing="ij")
    idx = {d: g.ravel() for d, g in zip(m.order, grids)}
    T = idx["M"].size

    def key(op: str) -> np.ndarray:
        a, b = OPERAND_DIMS[op]
        return idx[a] * n[b] + idx[b]

    def fetched(op: str) -> np.ndarray:
        resident, reusable = space._fits(op, m)
        deps = OPERAND_DIMS[op]
        if resident:  # first touch of each tile: every loop it does not depend on at 0
            return np.logical_and.reduce([idx[d] == 0 for d in DIMS if d not in deps] or [np.ones(T, bool)])
        if not reusable and op == "Out":
            return np.ones(T, dtype=bool)
        k = key(op)
        return np.concatenate([[True], k[1:] != k[:-1]])

    def loads(op: str, tile: np.ndarray) -> np.ndarray:
        """New bytes per tile: a fetched tile whole; a tile too big for its half, used again
        right away, brings back what did not stay."""
        new = fetched(op)
        out = np.where(new, tile, 0)
        if not any(space._fits(op, m)):
            out = out + np.where(new, 0, np.maximum(tile - space.half[op], 0))
        return out

    a_tile = space.a_bytes(ext["M"][idx["M"]], ext["K"][idx["K"]])
    b_tile = np.ceil(ext["K"][idx["K"]] * ext["N"][idx["N"]] * space.width["B"]).astype(np.int64)
    out_tile = ext["M"][idx["M"]] * ext["N"][idx["N"]]
    load_a = loads("A", a_tile)
    if space._fits("A", m)[0] and space.conv is not None:  # resident feature map: fetched once in all
        share = np.cumsum(np.where(fetched("A"), ext["M"][idx["M"]] * ext["K"][idx["K"]], 0))
        cum = (space.operand_total("A") * share) // max(int(share[-1]), 1)
        load_a = np.diff(np.concatenate([[0], cum])).astype(np.int64)
    load_b = loads("B", b_tile)
    out_res, out_fit = space._fits("Out", m)
    last_k = idx["K"] == n["K"] - 1
    if out_res:
        enter = np.zeros(T, dtype=bool)
        leave_spill = np.zeros(T, dtype=bool)
    else:
        if out_fit:
            k = key("Out")
            enter = np.concatenate([[True], k[1:] != k[:-1]])
            leave = np.concatenate([k[1:] != k[:-1], [True]])
        else:
            enter = leave = np.ones(T, dtype=bool)
        enter = enter & (idx["K"] > 0)
        leave_spill = leave & ~last_k
    psum_read = np.where(enter, out_tile * space.acc, 0)
    store = np.where(last_k, out_tile * space.elem, 0) + np.where(leave_spill, out_tile * space.acc, 0)

    # compute: each fold's cycles (the array model's, untouched) split over its time chunks in
    # proportion to the chunk lengths, then summed per tile
    tdim = flow.time_dim
    cum = np.concatenate([[0], np.cumsum(ext[tdim])])
    sp = space.spacing[:, :, None]
    split = (sp * cum[None, None, :]) // D[tdim]
    chunk = np.diff(split, axis=2)  # (row folds, col folds, chunks)
    rows_per = max(1, m.tile(flow.row_dim) // space.R) if m.tile(flow.row_dim) < D[flow.row_dim] else chunk.shape[0]
    cols_per = max(1, m.tile(flow.col_dim) // space.C) if m.tile(flow.col_dim) < D[flow.col_dim] else chunk.shape[1]
    chunk = np.add.reduceat(chunk, np.arange(0, chunk.shape[0], rows_per), axis=0)
    chunk = np.add.reduceat(chunk, np.arange(0, chunk.shape[1], cols_per), axis=1)
    per_tile = chunk[idx[flow.row_dim], idx[flow.col_dim], idx[tdim]]
    schedule = TileSchedule(load_bytes=(load_a + load_b + psum_read).astype(np.int64),
                            compute_cycles=per_tile.astype(np.int64), store_bytes=store.astype(np.int64),
                            epilogue_cycles=space.epilogue)
    traffic = Traffic(int(load_a.sum()), int(load_b.sum()), int(psum_read.sum()),
                      int(np.where(last_k, out_tile * space.elem, 0).sum()),
                      int(np.where(leave_spill, out_tile * space.acc, 0).sum()),
                      tuple(op for op in ("A", "B", "Out") if space._fits(op, m)[0]))
    counts = EventCounts(dram_read_bytes=int(schedule.load_bytes.sum()), dram_write_bytes=int(store.sum()))
    cycles, energy = _timed(space, schedule, counts) if timed else (0, 0.0)
    return Evaluation(m, schedule, counts, traffic, cycles, energy)


def _timed(space: NestSpace, schedule: TileSchedule, counts: EventCounts) -> tuple[int, float]:
    """``(cycles, energy_pj)`` of one evaluated nest: the pipeline recurrence that equals the
    SimPy timing (:func:`sparsesim.hardware.kernels.pipeline_cycles`), SRAM port stalls included,
    and the energy of its counts over that time, its DRAM priced as its row prices it (from
    the DRAM's events where the memory model prices events)."""
    mem = memory_model(space.cfg)
    if mem.prices_events:
        cycles, dram_pj = mem.schedule_energy(schedule)
        return cycles, dram_pj + _leakage(space, counts, cycles)
    cycles = mem.cycles(schedule)
    return cycles, _energy(space, counts, cycles)


def _leakage(space: NestSpace, counts: EventCounts, cycles: int) -> float:
    return energy_breakdown_pj(counts, space.cfg, cycles, config_energy_table(space.cfg))["leakage"]


def _energy(space: NestSpace, counts: EventCounts, cycles: int) -> float:
    """The part of the energy that depends on the nest: DRAM traffic and leakage over time
    (on-chip accesses per MAC do not depend on the tile sizes), DRAM priced by its bytes."""
    table = config_energy_table(space.cfg)
    parts = energy_breakdown_pj(counts, space.cfg, cycles, table)
    return parts["dram"] + parts["leakage"]


def energy_bound(space: NestSpace, read_bytes: int, write_bytes: int, cycles: int) -> float:
    """A lower bound of :func:`_timed`'s energy for a nest moving these bytes in at least
    ``cycles`` (the memory model's :meth:`~sparsesim.hardware.memory.MemoryModel.energy_bound_pj`
    plus leakage over those cycles): the energy objective's branch and bound ranks by it."""
    counts = EventCounts(dram_read_bytes=read_bytes, dram_write_bytes=write_bytes)
    return memory_model(space.cfg).energy_bound_pj(read_bytes, write_bytes, cycles) + _leakage(space, counts, cycles)


# ---------------------------------------------------------------- bounds of a nest's cost


def cycles_bound(space: NestSpace, m: Mapping, traffic: Traffic) -> int:
    """A lower bound of the SimPy-timed cycles of a nest: the array cannot start before the
    first tile's operands arrive and the last store follows the last compute (drain included);
    the shared DRAM channel is busy for every byte moved."""
    first, last = first_last(space, m)
    return memory_model(space.cfg).pipeline_bound_cycles(
        first_load_bytes=first, last_store_bytes=last, read_bytes=traffic.read_a + traffic.read_b + traffic.read_psum,
        total_bytes=traffic.total, fetches=fetch_events(space, m), compute_cycles=space.compute_total,
        epilogue_cycles=space.epilogue)


_ORDER_POS = np.array([[order.index(d) for d in DIMS] for order in ORDERS], dtype=np.int64)
"""Position of M, N, K (columns) in each loop order of ORDERS (rows), outermost 0."""



def _tile_sum(f, total_x: int, tile_x: np.ndarray, total_y: int, tile_y: np.ndarray) -> np.ndarray:
    """``sum f(ext_x, ext_y)`` over the tile grid of every candidate, for an elementwise ``f``:
    every extent is the tile but the last, so the grid holds four kinds of tile."""
    nx, ny = -(-total_x // tile_x), -(-total_y // tile_y)
    lx, ly = total_x - (nx - 1) * tile_x, total_y - (ny - 1) * tile_y
    return ((nx - 1) * (ny - 1) * f(tile_x, tile_y) + (nx - 1) * f(tile_x, ly) + (ny - 1) * f(lx, tile_y)
            + f(lx, ly))


def score(space: NestSpace, tm: np.ndarray, tn: np.ndarray, tk: np.ndarray, order_idx: np.ndarray) -> dict:
    """The closed form of :meth:`NestSpace.traffic`, :meth:`NestSpace.fetch_events` and
    :func:`_cycles_bound` for arrays of candidates at once (one array pass instead of a Python
    call per nest; the tests hold it to the per-nest functions). Returns arrays ``bound``,
    ``total``, ``reads``, ``writes`` and ``tiles``."""
    D, cfg = space.D, space.cfg
    t = {"M": tm, "N": tn, "K": tk}
    n = {d: -(-D[d] // t[d]) for d in DIMS}
    pos = {d: _ORDER_POS[order_idx, i] for i, d in enumerate(DIMS)}
    tiles = n["M"] * n["N"] * n["K"]
    fits = {op: space._fits_array(op, t) for op in ("A", "B", "Out")}

    def visits(op: str) -> np.ndarray:
        resident, reusable = fits[op]
        deps = OPERAND_DIMS[op]
        other = next(d for d in DIMS if d not in deps)
        # the tile is refetched once per iteration of the other loop if that loop is outside a
        # loop of its own that runs more than once (see NestSpace._visits)
        again = np.zeros(tm.shape, dtype=bool)
        for d in deps:
            again |= (n[d] > 1) & (pos[d] > pos[other])
        v = np.where(again, n[other], 1)
        if op == "Out":
            v = np.where(reusable, v, n[other])
        return np.where(resident, 1, v)

    vis = {op: visits(op) for op in ("A", "B", "Out")}
    a_res = bool(space.operand_total("A") <= space.full["A"])
    if a_res:
        read_a = np.full(tm.shape, space.operand_total("A"), dtype=np.int64)
    else:
        read_a = _tile_sum(space.a_bytes, D["M"], tm, D["K"], tk) * vis["A"]
    read_b = space.operand_total("B") * vis["B"]
    wb = space.width["B"]

    def b_bytes(ek, en):
        return np.ceil(ek * en * wb).astype(np.int64)

    def excess(f, half):
        return lambda x, y: np.maximum(f(x, y) - half, 0)

    for op in ("A", "B"):
        resident, reusable = fits[op]
        spill = ~resident & ~reusable
        if not spill.any():
            continue
        d1, d2 = OPERAND_DIMS[op]
        again = tiles // (n[d1] * n[d2]) - vis[op]
        if op == "A":
            extra = again * _tile_sum(excess(space.a_bytes, space.half["A"]), D["M"], tm, D["K"], tk)
            read_a = read_a + np.where(spill, extra, 0)
        else:
            extra = again * _tile_sum(excess(b_bytes, space.half["B"]), D["K"], tk, D["N"], tn)
            read_b = read_b + np.where(spill, extra, 0)
    out_elems = D["M"] * D["N"]
    spills = vis["Out"] - 1
    read_psum = spills * out_elems * space.acc
    write_out = out_elems * space.elem
    reads = read_a + read_b + read_psum
    writes = write_out + read_psum
    total = reads + writes
    ctm, ctn, ctk = (np.minimum(t[d], D[d]) for d in DIMS)
    first = np.broadcast_to(space.a_bytes(ctm, ctk) + b_bytes(ctk, ctn), tm.shape)
    last = (D["M"] - (n["M"] - 1) * ctm) * (D["N"] - (n["N"] - 1) * ctn) * space.elem
    fetches = np.maximum(vis["A"] * n["M"] * n["K"], vis["B"] * n["K"] * n["N"])
    bound = memory_model(cfg).pipeline_bound_cycles(
        first_load_bytes=first, last_store_bytes=last, read_bytes=reads, total_bytes=total, fetches=fetches,
        compute_cycles=space.compute_total, epilogue_cycles=space.epilogue)
    return {"bound": bound, "total": total, "reads": reads, "writes": writes, "tiles": tiles}



# ---------------------------------------------------------------- bounds of the whole GEMM


def dram_bounds(space: NestSpace) -> tuple[int, int]:
    """``(compulsory, lower bound)`` DRAM bytes of one repetition of the GEMM on these buffers.

    *Compulsory*: every operand read once as stored (compressed sizes; a conv input as its
    feature map), the output written once at element width.

    *Communication lower bound* (red-blue pebbling with partitioned memories, after Hong and
    Kung 1981 and Irony, Toledo and Tiskin 2004). Cut the run into segments that each move
    exactly ``T`` bytes across the DRAM interface, ``T = qA + qB + qC`` (A reads, B reads,
    output/partial-sum traffic). Inside a segment the array can only use A elements that were
    in the A buffer at its start or were read in it, at most ``xA = (SA + qA) / wA`` of them
    (``SA`` the whole A buffer in bytes, ``wA`` bytes per element as stored; a conv input
    element feeds at most ``R*S`` im2col entries, so ``xA`` is multiplied by ``R*S``);
    likewise ``xB = (SB + qB) / wB``; and it can only touch outputs whose partial sums were in
    the output buffer at the start or the end of the segment, or crossed the interface in it:
    ``xC = 2 * SC / acc + qC / elem``. The ``R*C`` PEs hold one element of each operand
    (two operand registers and an accumulator), so each count also gains ``R*C`` elements. By the Loomis-Whitney inequality the MACs of a segment
    number at most ``F(T) = max sqrt(xA * xB * xC)`` over the split of ``T`` (solved by
    water-filling). Every segment but the last is full, so the run moves at least
    ``T * (ceil(MNK / F(T)) - 1)`` bytes; the bound is the best such value over a range of
    ``T``, and never less than the compulsory bytes. It is of order ``2 MNK / sqrt(S)`` for a
    balanced buffer of ``S`` elements, the classical result.
    """
    cfg = space.cfg
    compulsory = space.operand_floor("A") + space.operand_floor("B") + space.operand_floor("Out")
    D = space.D
    expand = space.conv.kernel_taps if space.conv is not None else 1
    # the PE array holds data too: each PE's two operand registers and its accumulator (one
    # element of each operand), which a tiny buffer would otherwise leave out of the count
    pes = space.R * space.C
    best = _io_bound(D["M"] * D["N"] * D["K"], expand / space.fm_width, 1.0 / space.width["B"], 1.0 / space.elem,
                     cfg.buffers.a.size_bytes + pes * space.fm_width / expand,
                     cfg.buffers.b.size_bytes + pes * space.width["B"],
                     (2 * cfg.buffers.out.size_bytes / space.acc + pes) * space.elem)
    return compulsory, max(compulsory, best)


@lru_cache(maxsize=4096)
def _io_bound(macs: int, rate_a: float, rate_b: float, rate_c: float, base_a: float, base_b: float,
              base_c: float) -> int:
    """Step 5 of :func:`dram_bounds`: the best ``T * (ceil(MNK / F(T)) - 1)`` over ``T``, where
    the operand ``i`` segment holds ``(base_i + q_i) * rate_i`` elements."""
    base = np.array([base_a, base_b, base_c], dtype=np.float64)
    rate = rate_a * rate_b * rate_c
    best = 0.0
    s_total = float(base.sum())
    for T in s_total * np.geomspace(1 / 64, 64, 25):
        f = _max_product(base, T) * rate
        segments = math.ceil(macs / math.sqrt(f)) - 1
        best = max(best, T * segments)
    return int(best)


def _max_product(base: np.ndarray, T: float) -> float:
    """``max prod(base_i + q_i)`` over ``q_i >= 0``, ``sum q_i = T`` (water-filling: raise the
    smallest terms to a common level)."""
    b = np.sort(base)
    for k in range(len(b), 0, -1):
        level = (b[:k].sum() + T) / k
        if level >= b[k - 1]:
            return float(level ** k * np.prod(b[k:]))
    return float(np.prod(b))  # pragma: no cover - k = 1 always succeeds
