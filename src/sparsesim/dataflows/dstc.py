"""The dual-side sparse tensor core (``array.kind: dstc``): outer products of condensed vectors.

DSTC (Wang, Zhang, Xie, Guo, Liu, Leng, "Dual-side Sparse Tensor Core", ISCA 2021, arXiv
2105.09564) stores both operands as values plus a bitmap and computes a GEMM as a sum over
``k`` of outer products ``A[:, k] x B[k, :]``. Only the nonzeros of A's column and B's row are
fed to the multipliers (the *condensed* vectors), so every product issued is effectual, and
the products are scattered into an accumulation buffer at the (row, column) coordinates the
bitmaps give. docs/architectures/dstc.md says which parts of this are the paper's and which
are our assumptions (each assumption is a key of :class:`~sparsesim.hardware.config.DstcConfig`).

Cycle rule, per output tile of ``dstc.tile_m x dstc.tile_n`` on the ``array.rows x
array.cols`` (``Pm x Pn``) multiplier grid, from the real masks: for each ``k`` let ``a_k`` be
the nonzeros of ``A[tile rows, k]`` and ``b_k`` those of ``B[k, tile cols]`` (the tile's extent
where that operand is streamed dense). With ``dstc.packing: per_k`` the condensed outer product
of ``k`` takes ``ceil(a_k/Pm) * ceil(b_k/Pn)`` cycles (0 if either is 0), so a tile costs
``CA @ CB`` summed over its ``k``, with ``CA[tile, k] = ceil(a_k/Pm)`` and ``CB[k, tile] =
ceil(b_k/Pn)``: one matrix product for all tiles. Bank conflicts of the scattered products
(``dstc.acc_banks``) replace ``ceil(b_k/Pn)`` by the conflict-serialised cost of B's condensed
chunks. A finished tile drains from the accumulation buffer at ``dstc.drain_words_per_cycle``.
With dense operands a tile costs ``K * ceil(Mt/Pm) * ceil(Nt/Pn)`` plus its drain: the dense
tensor core on the same grid (tests/dataflows/test_dstc.py checks it by hand).
"""

from __future__ import annotations

import numpy as np

from sparsesim.core.errors import field_error
from sparsesim.dataflows.array_kind import ARRAY_KINDS, ArrayKind
from sparsesim.dataflows.base import DATAFLOWS, Plan
from sparsesim.dataflows.tiled import ArrayWork, TiledDataflow, choose_nest, dense_work, tiled_plan
from sparsesim.hardware.config import AccelConfig
from sparsesim.hardware.schedule import EventCounts
from sparsesim.workloads.gemm import Gemm

KIND = "dstc"


class DstcKind(ArrayKind):
    name = KIND
    summary = ("dual-side sparse tensor core: rows x cols multipliers, outer products of bitmap-condensed "
               "A columns and B rows into an output tile (Wang et al., ISCA 2021)")

    def extra_area_um2(self, cfg: AccelConfig, table) -> dict[str, float]:
        """The line buffers that feed the grid, Sparseloop's description (64 x 16 b of data and
        32 x 4 b of bitmap metadata), at the table's SRAM area per bit; the accumulation buffer
        is ``buffers.out``, already counted."""
        return {"line_buffers": (64 * 16 + 32 * 4) * table.sram_um2_per_bit}

    def check(self, cfg: AccelConfig) -> None:
        if cfg.array.nm_ratios:
            raise field_error("array.nm_ratios", "the dstc kind has no N:M MAC units (its sparsity is the "
                                                 "bitmap-condensed operands); set array.nm_ratios: []")
        if cfg.array.lanes != "systolic":
            raise field_error("array.lanes", "the dstc grid issues one outer product at a time; "
                                             "decoupled lanes are a systolic-array option")
        banks = cfg.dstc.acc_banks
        if banks and banks < cfg.array.cols:
            raise field_error("dstc.acc_banks", f"must be 0 or >= array.cols ({cfg.array.cols}), got {banks}: "
                                                "with fewer banks than grid columns even dense outer products "
                                                "would conflict")


def _tile_counts(mask: np.ndarray | None, length: int, other: int, tile: int, axis: int) -> np.ndarray:
    """Nonzeros per (tile, k) of an operand: ``mask`` is ``(length, other)`` with ``axis`` 0
    (A: rows M, columns K) or ``(other, length)`` with ``axis`` 1 (B); ``None`` (streamed
    dense) gives the tiles' extents. Result: ``(tiles, other)`` for A, ``(other, tiles)`` for B."""
    tiles = -(-length // tile)
    if mask is None:
        ext = np.full(tiles, tile, dtype=np.int64)
        ext[-1] = length - tile * (tiles - 1)
        return np.repeat(ext[:, None], other, axis=1) if axis == 0 else np.repeat(ext[None, :], other, axis=0)
    pad = tiles * tile - length
    if axis == 0:
        m = np.pad(mask, ((0, pad), (0, 0))) if pad else mask
        return m.reshape(tiles, tile, other).sum(axis=1, dtype=np.int64)
    m = np.pad(mask, ((0, 0), (0, pad))) if pad else mask
    return m.reshape(other, tiles, tile).sum(axis=2, dtype=np.int64)


def conflict_cost(b: np.ndarray, tile_n: int, cols: int, banks: int) -> np.ndarray:
    """Cycles each condensed B row ``(K, N tiles)`` needs per issued A chunk when output column
    ``c`` of a tile lives in accumulation bank ``c mod banks`` and a bank accepts one grid
    column's products a cycle: B's condensed row is cut into chunks of ``cols`` nonzeros (one
    grid pass each), and a chunk whose columns share a bank is serialised over as many cycles
    as the busiest bank has columns. Without conflicts this is ``ceil(b_k / cols)``."""
    K, N = b.shape
    tiles = -(-N // tile_n)
    m = np.zeros((K, tiles * tile_n), dtype=np.int64)
    m[:, :N] = b
    m = m.reshape(K, tiles, tile_n)
    rank = np.cumsum(m, axis=2) - 1  # position of each nonzero in the condensed row
    chunks = -(-tile_n // cols)
    kk, tt, pos = np.nonzero(m)
    chunk = rank[kk, tt, pos] // cols
    idx = ((kk * tiles + tt) * chunks + chunk) * banks + pos % banks
    per_bank = np.bincount(idx, minlength=K * tiles * chunks * banks).reshape(K, tiles, chunks, banks)
    return per_bank.max(axis=3).sum(axis=2)


def _over_blocks(per_tile: np.ndarray, blocks: np.ndarray, Mt: int, Nt: int) -> np.ndarray:
    """A per-tile ``(M tiles, N tiles)`` quantity summed over each block's tiles (2-D prefix sums)."""
    pre = np.zeros((per_tile.shape[0] + 1, per_tile.shape[1] + 1), dtype=np.int64)
    pre[1:, 1:] = per_tile.cumsum(axis=0).cumsum(axis=1)
    t0, t1 = blocks[:, 0] // Mt, -(-blocks[:, 1] // Mt)
    u0, u1 = blocks[:, 2] // Nt, -(-blocks[:, 3] // Nt)
    return pre[t1, u1] - pre[t0, u1] - pre[t1, u0] + pre[t0, u0]


def block_cycles(work: ArrayWork, cfg: AccelConfig, blocks: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Stall-free cycles of each nest block (rows ``m0, m1, n0, n1, k0, k1``, multiples of the
    output tile), the drain epilogue after the last block, and the multiplier slots issued."""
    g = work.gemm
    M, N, K = g.M, g.N, g.K
    Pm, Pn = cfg.array.rows, cfg.array.cols
    d = cfg.dstc
    Mt, Nt = min(d.tile_m, M), min(d.tile_n, N)
    a_cnt = _tile_counts(work.a, M, K, Mt, 0)  # (M tiles, K)
    b_cnt = _tile_counts(work.b, N, K, Nt, 1)  # (K, N tiles)
    ca = -(-a_cnt // Pm)
    if work.b is not None and d.acc_banks and d.acc_banks < Nt:
        cb = conflict_cost(work.b, Nt, Pn, d.acc_banks)
    else:  # one bank per tile column (or B dense): the products of a grid pass never share a bank
        cb = -(-b_cnt // Pn)
    out = np.zeros(len(blocks), dtype=np.int64)
    issued = 0
    # blocks sharing a K chunk share one product of the (tile, k) cost matrices
    chunks, inverse = np.unique(blocks[:, 4:6], axis=0, return_inverse=True)
    for c, (k0, k1) in enumerate(chunks):
        if d.packing == "per_k":  # float64 products are exact far beyond these counts
            per_tile = np.rint(ca[:, k0:k1].astype(np.float64) @ cb[k0:k1].astype(np.float64)).astype(np.int64)
            issued += int(per_tile.sum()) * Pm * Pn
            if not d.decode_overlap:  # one decode cycle per k step the tile issues
                steps = (ca[:, k0:k1] > 0).astype(np.float64) @ (cb[k0:k1] > 0).astype(np.float64)
                per_tile = per_tile + np.rint(steps).astype(np.int64)
        else:
            prods = np.rint(a_cnt[:, k0:k1].astype(np.float64) @ b_cnt[k0:k1].astype(np.float64)).astype(np.int64)
            per_tile = -(-prods // (Pm * Pn))
            issued += int(per_tile.sum()) * Pm * Pn
        sel = np.flatnonzero(inverse.ravel() == c)
        out[sel] = _over_blocks(per_tile, blocks[sel], Mt, Nt)
    # the drain of each finished output tile, at the accumulation buffer's bandwidth (edge tiles
    # drain only what they hold)
    w = d.drain_words_per_cycle
    ext_m = np.minimum(np.arange(a_cnt.shape[0]) * Mt + Mt, M) - np.arange(a_cnt.shape[0]) * Mt
    ext_n = np.minimum(np.arange(b_cnt.shape[1]) * Nt + Nt, N) - np.arange(b_cnt.shape[1]) * Nt
    drain = -(-(ext_m[:, None] * ext_n[None, :]) // w)
    epilogue = 0
    if d.drain_overlap:  # hidden behind the next tile's products; the last tile's drain is exposed
        epilogue = int(drain.max())
    else:
        last = np.flatnonzero(blocks[:, 5] == K)
        out[last] += _over_blocks(drain, blocks[last], Mt, Nt)
    return out, epilogue, issued


def array_counts(work: ArrayWork, cfg: AccelConfig, issued_slots: int) -> EventCounts:
    """On-chip events of the core itself: products, the line-buffer operand reads and the
    accumulation buffer's read-modify-writes, and the array's reads of A and B from the
    global buffer (each output tile reads its A row panel and B column panel once, stored
    compressed where the features compress them; the bitmap share priced as metadata)."""
    g = work.gemm
    elem = cfg.array.element_bytes
    Mt, Nt = min(cfg.dstc.tile_m, g.M), min(cfg.dstc.tile_n, g.N)
    performed = work.macs_effectual if work.zero_aware else work.macs_dense
    gated = max(0, issued_slots - performed) if work.zero_aware else 0
    a_elems = g.M * g.K * -(-g.N // Nt)
    b_elems = g.K * g.N * -(-g.M // Mt)
    sram_a, sram_b = int(a_elems * elem * work.scale_a), int(b_elems * elem * work.scale_b)
    meta_a, meta_b = int(sram_a * work.meta_a), int(sram_b * work.meta_b)
    return EventCounts(
        macs_performed=performed,
        macs_gated=gated,
        rf_accesses=3 * performed,  # two line-buffer operand reads and the accumulator update
        accumulator_rmw=performed,  # in the accumulation buffer, priced at accumulator width
        sram_a_bytes=sram_a - meta_a,
        sram_b_bytes=sram_b - meta_b,
        metadata_a_bytes=meta_a,
        metadata_b_bytes=meta_b,
    )


class DstcDataflow(TiledDataflow):
    """Output-stationary outer products: each output tile stays in the accumulation buffer
    while every ``k`` of its block streams A's condensed column and B's condensed row."""

    name = KIND
    array_kind = KIND

    @property
    def rank(self) -> int:
        return 40

    def plan(self, gemm: Gemm, cfg: AccelConfig, work: ArrayWork | None = None) -> Plan:
        work = dense_work(gemm) if work is None else work
        run = work.gemm
        nest = choose_nest(gemm, cfg, work, (min(cfg.dstc.tile_m, run.M), min(cfg.dstc.tile_n, run.N), 1))
        cycles, epilogue, issued = block_cycles(work, cfg, nest.blocks)
        return tiled_plan(self.name, gemm, cfg, work, nest, cycles, array_counts(work, cfg, issued),
                          epilogue_cycles=epilogue)


ARRAY_KINDS.add(KIND, DstcKind())
DATAFLOWS.add(KIND, DstcDataflow())
