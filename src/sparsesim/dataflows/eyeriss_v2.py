"""Eyeriss v2: PEs that keep input activations and weights in CSC form and skip both sides' zeros,
in clusters on a hierarchical mesh (Chen, Yang, Emer, Sze, "Eyeriss v2", IEEE JETCAS 2019, arXiv
1807.07928). Registers the array kind ``eyeriss_v2`` and its dataflow of the same name.

GEMM vocabulary: ``Out[M x N] = A[M x K] . B[K x N]``; for a conv in ``fwd``, M runs over output
pixels, N over output channels and K over the window ``C x R x S`` (im2col order), so A holds the
input activations (iacts) and B the weights.

**One PE** (the cycle rule, docs/architectures/eyeriss_v2.md): the PE holds a tile of ``n0``
output channels of one pixel in its psum scratchpad (``n0 = min(N, eyeriss.psum_spad_entries)``)
and a K chunk of ``k0`` weight columns of that channel tile in its weight scratchpad
(``k0 = min(weight_address_entries, iact_spad_entries, weight_spad_entries // n0)``: the
scratchpads at their dense size). For each pixel ``m`` and each nonzero iact ``A[m, k]`` of the
chunk it reads weight column ``k`` and spends ``ceil(nnz_w(k, tile) / simd)`` cycles on its
nonzero weights (plus ``empty_column_cycles`` when the column is empty in the tile). An operand
whose zeros are not skipped counts as dense. This is exact against the Sparseloop artifact's
ground truth of a 1-MAC PE (:mod:`sparsesim.references.eyeriss_v2`). The chunking changes which
passes are made (and what is refetched, charged in the events), never the MAC count.

**The array**: ``array.rows x array.cols`` PEs in clusters of ``cluster_rows x cluster_cols``.
A simpler mapping than the paper's (documented): the channel tiles go to groups of clusters
(``Pn = min(tiles, clusters)`` groups of ``clusters // Pn`` clusters each; weights multicast to a
group, iacts broadcast across groups), the pixels to the PEs of a group. A *step* is one pixel x
one K chunk x one channel tile per PE; it takes the max over the PEs of ``eyeriss.sync``'s domain
(``pe``: decoupled PEs, each PE's sum; ``cluster``: per cluster the sum over steps of the max
over its PEs, the slowest cluster; ``array``: the sum over steps of the max over all PEs). That
is where load imbalance between PEs shows.

Loop order inside a buffer block: channel tiles, then K chunks (the weight chunk loaded once into
each PE of the group), then pixels (their iacts streamed); partial sums go back to the output
buffer after every K chunk (the GLB psum banks), read again for the next.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from sparsesim.core.errors import field_error
from sparsesim.dataflows.array_kind import ARRAY_KINDS, ArrayKind
from sparsesim.dataflows.base import DATAFLOWS, Plan
from sparsesim.dataflows.tiled import ArrayWork, TiledDataflow, array_work, choose_nest, dense_work, tiled_plan
from sparsesim.hardware.config import AccelConfig
from sparsesim.hardware.schedule import EventCounts
from sparsesim.workloads.gemm import Gemm

EYERISS_V2 = "eyeriss_v2"


def clusters(cfg: AccelConfig) -> int:
    """Clusters of ``cfg``'s array."""
    e = cfg.eyeriss
    return (cfg.array.rows // e.cluster_rows) * (cfg.array.cols // e.cluster_cols)


class EyerissV2Kind(ArrayKind):
    name = EYERISS_V2
    summary = "Eyeriss v2: CSC iacts and weights skipped on both sides in each PE, clusters of PEs on a mesh"

    def macs_per_cycle(self, cfg: AccelConfig) -> int:
        return cfg.array.pes * cfg.eyeriss.simd

    def extra_area_um2(self, cfg: AccelConfig, table) -> dict[str, float]:
        """Each PE's three scratchpads at the table's SRAM area per bit (a register-file cell is
        larger, so this is a floor): iact and weight data entries with their zero-run counts,
        the weight address entries, and the psum entries at accumulator width."""
        e, bits = cfg.eyeriss, 8 * cfg.array.element_bytes
        per_pe = (e.iact_spad_entries * (bits + e.iact_count_bits)
                  + e.weight_spad_entries * (bits + e.weight_count_bits)
                  + e.weight_address_entries * e.weight_address_bits
                  + e.psum_spad_entries * 8 * cfg.array.accumulator_bytes)
        return {"pe_scratchpads": cfg.array.pes * per_pe * table.sram_um2_per_bit}

    def check(self, cfg: AccelConfig) -> None:
        e = cfg.eyeriss
        if cfg.array.nm_ratios:
            raise field_error("array.nm_ratios", "Eyeriss v2 PEs have no N:M MAC units: set array.nm_ratios: []")
        if cfg.array.lanes == "decoupled":
            raise field_error("array.lanes", "Eyeriss v2 PEs synchronise by eyeriss.sync, not by systolic lanes")
        if cfg.array.rows % e.cluster_rows:
            raise field_error("eyeriss.cluster_rows", f"array.rows {cfg.array.rows} is not a multiple of "
                                                      f"{e.cluster_rows}")
        if cfg.array.cols % e.cluster_cols:
            raise field_error("eyeriss.cluster_cols", f"array.cols {cfg.array.cols} is not a multiple of "
                                                      f"{e.cluster_cols}")


def pe_tile(gemm: Gemm, cfg: AccelConfig) -> tuple[int, int]:
    """``(n0, k0)``: the output channels and the K chunk one PE holds (module docstring)."""
    e = cfg.eyeriss
    n0 = min(gemm.N, e.psum_spad_entries)
    k0 = min(gemm.K, e.weight_address_entries, e.iact_spad_entries, max(1, e.weight_spad_entries // n0))
    return n0, k0


def is_depthwise(gemm: Gemm) -> bool:
    """A depthwise conv's GEMM: groups with one input channel each."""
    return gemm.conv is not None and gemm.count > 1 and gemm.conv.channels == 1


def column_cost(b: np.ndarray | None, K: int, N: int, n0: int, simd: int, empty_cycles: int) -> np.ndarray:
    """``(K, tiles)`` cycles one nonzero iact at reduction index k costs in each channel tile of
    ``n0``: ``ceil(nnz_w(k, tile) / simd)`` (``empty_cycles`` where that is 0); ``b`` None: dense."""
    tiles = -(-N // n0)
    if b is None:
        widths = np.minimum(n0, N - n0 * np.arange(tiles))
        nnz = np.broadcast_to(widths, (K, tiles)).astype(np.int64)
    else:
        pad = np.zeros((K, tiles * n0), dtype=np.int64)
        pad[:, :N] = b
        nnz = pad.reshape(K, tiles, n0).sum(axis=2)
    cost = -(-nnz // simd)
    return np.where(nnz == 0, empty_cycles, cost).astype(np.float64)


def unit_cycles(a: np.ndarray, cost: np.ndarray, k0: int) -> np.ndarray:
    """``(chunks, pixels, tiles)`` cycles of each unit of work (one pixel x one K chunk x one channel
    tile): the sum over the chunk's nonzero iacts of their weight column's cost. ``a``: ``(m, k)``
    iacts counted (0/1), ``cost``: ``(k, tiles)`` from :func:`column_cost`."""
    m, k = a.shape
    chunks = -(-k // k0)
    ap = np.zeros((m, chunks * k0), dtype=np.float64)
    ap[:, :k] = a
    cp = np.zeros((chunks * k0, cost.shape[1]), dtype=np.float64)
    cp[:k] = cost
    # float64 products of small integers are exact (every sum here is far below 2**53)
    return np.matmul(ap.reshape(m, chunks, k0).transpose(1, 0, 2), cp.reshape(chunks, k0, -1))


@dataclasses.dataclass(frozen=True, slots=True)
class Spread:
    """How one buffer block's units lie on the array: ``groups`` channel tiles at once, each on
    ``clusters_per_group`` clusters of ``cluster_pes`` PEs (``pixels`` PEs per group)."""

    groups: int
    clusters_per_group: int
    cluster_pes: int

    @property
    def pixels(self) -> int:
        return self.clusters_per_group * self.cluster_pes


def spread(tiles: int, cfg: AccelConfig) -> Spread:
    """The spatial mapping of a block with ``tiles`` channel tiles (module docstring)."""
    c = clusters(cfg)
    groups = min(tiles, c)
    return Spread(groups, c // groups, cfg.eyeriss.cluster_rows * cfg.eyeriss.cluster_cols)


def synced_cycles(units: np.ndarray, sp: Spread, sync: str) -> int:
    """Cycles of a block's ``(chunks, pixels, tiles)`` units on the array, synchronised by ``sync``.

    Pixels are dealt to the ``sp.pixels`` PEs of a group in rounds, tiles to the ``sp.groups``
    groups in rounds; PE ``j`` of a group sits in cluster ``j // cluster_pes`` of it."""
    chunks, m, t = units.shape
    rm, rn = -(-m // sp.pixels), -(-t // sp.groups)
    grid = np.zeros((chunks, rm * sp.pixels, rn * sp.groups))
    grid[:, :m, :t] = units
    # axes: chunk, pixel round, cluster in group, PE in cluster, tile round, group
    grid = grid.reshape(chunks, rm, sp.clusters_per_group, sp.cluster_pes, rn, sp.groups)
    steps = (0, 1, 4)
    if sync == "pe":
        return int(grid.sum(axis=steps).max())
    if sync == "cluster":
        return int(grid.max(axis=3).sum(axis=(0, 1, 3)).max())
    return int(grid.max(axis=(2, 3, 5)).sum())


def granule(gemm: Gemm, cfg: AccelConfig) -> tuple[int, int, int]:
    """Smallest buffer block that keeps the array busy where the GEMM can: the channel tiles of
    every cluster group (N) and a pixel per PE of a group (M), whole K chunks (K). Without it the
    nest, chosen for DRAM bytes alone, may cut N into single tiles and idle most clusters."""
    n0, k0 = pe_tile(gemm, cfg)
    sp = spread(-(-gemm.N // n0), cfg)
    return min(gemm.M, sp.pixels), min(gemm.N, sp.groups * n0), k0


class EyerissV2(TiledDataflow):
    """Eyeriss v2's PEs and clusters (module docstring): cycles per buffer block from the masks."""

    name = EYERISS_V2
    array_kind = EYERISS_V2

    @property
    def label(self) -> str:
        return "Eyeriss v2"

    @property
    def rank(self) -> int:
        return 200

    def work(self, gemm: Gemm, cfg: AccelConfig, masks, effects, **options) -> ArrayWork:
        """:func:`~sparsesim.dataflows.tiled.array_work`; a depthwise conv with
        ``eyeriss.depthwise_skip`` off keeps its zeros (gated where a feature is aware of them)."""
        work = array_work(gemm, cfg, masks, effects, **options)
        if is_depthwise(gemm) and not cfg.eyeriss.depthwise_skip:
            work = dataclasses.replace(work, a=None, b=None)
        return work

    def plan(self, gemm: Gemm, cfg: AccelConfig, work: ArrayWork | None = None) -> Plan:
        work = dense_work(gemm) if work is None else work
        run = work.gemm
        M, N, K = run.M, run.N, run.K
        e = cfg.eyeriss
        n0, k0 = pe_tile(run, cfg)
        nest = choose_nest(gemm, cfg, work, granule(run, cfg))
        a = None if work.a is None else work.a.astype(np.float64)
        cost = column_cost(None if work.b is None else work.b.astype(np.int64), K, N, n0, e.simd,
                           e.empty_column_cycles)
        b_nnz = None if work.b is None else work.b.astype(np.int64)
        elem, acc = cfg.array.element_bytes, cfg.array.accumulator_bytes
        cycles = np.zeros(len(nest.blocks), dtype=np.int64)
        iact_passes = weight_fills = 0
        a_bits = b_bits = a_bytes = b_bytes = out_bytes = 0
        for i, (m0, m1, c0, c1, q0, q1) in enumerate(nest.blocks):
            t0, t1 = c0 // n0, -(-c1 // n0)
            a_blk = np.ones((m1 - m0, q1 - q0)) if a is None else a[m0:m1, q0:q1]
            units = unit_cycles(a_blk, cost[q0:q1, t0:t1], k0)
            sp = spread(t1 - t0, cfg)
            cycles[i] = synced_cycles(units, sp, e.sync)
            mb, nb, kb, tiles = m1 - m0, c1 - c0, q1 - q0, t1 - t0
            chunks = -(-kb // k0)
            rounds_n = -(-tiles // sp.groups)
            nnz_a = int(a_blk.sum())
            nnz_b = nb * kb if b_nnz is None else int(b_nnz[q0:q1, c0:c1].sum())
            iact_passes += nnz_a * tiles  # each channel tile's pass reads the pixel's iacts once
            weight_fills += nnz_b * min(sp.pixels, mb)  # every PE of the group gets the chunk
            a_bytes += nnz_a * elem * rounds_n  # broadcast across groups: one buffer read per tile round
            b_bytes += nnz_b * elem  # multicast to a group's PEs: one buffer read per block
            if work.a is not None:  # CSC: a run count per nonzero, a column address per (pixel, chunk)
                a_bits += (nnz_a * e.iact_count_bits + mb * chunks * e.iact_address_bits) * rounds_n
            if work.b is not None:  # a run count per nonzero, a column address per (k, channel tile)
                b_bits += nnz_b * e.weight_count_bits + kb * tiles * e.weight_address_bits
            # partial sums leave the PEs after each K chunk and come back for the next
            out_bytes += mb * nb * acc * (2 * chunks - (1 if q0 == 0 else 0))
        a_cnt = np.full(K, M, dtype=np.float64) if a is None else a.sum(axis=0)
        b_cnt = np.full(K, N, dtype=np.float64) if b_nnz is None else b_nnz.sum(axis=1).astype(np.float64)
        issued = int(a_cnt @ b_cnt)  # MACs of the operands as streamed (zeros of unskipped ones included)
        performed = work.macs_effectual if work.zero_aware else issued
        counts = EventCounts(macs_performed=performed, macs_gated=issued - performed,
                             rf_accesses=2 * iact_passes + weight_fills + 2 * issued, accumulator_rmw=issued,
                             sram_a_bytes=a_bytes, sram_b_bytes=b_bytes, sram_out_bytes=out_bytes,
                             metadata_a_bytes=math.ceil(a_bits / 8), metadata_b_bytes=math.ceil(b_bits / 8))
        return tiled_plan(self.name, gemm, cfg, work, nest, cycles, counts, epilogue_cycles=e.fill_cycles)


ARRAY_KINDS.add(EYERISS_V2, EyerissV2Kind())
DATAFLOWS.add(EYERISS_V2, EyerissV2())
