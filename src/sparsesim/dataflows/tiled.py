"""What the array kinds beyond the systolic grid share: their sparse work and their buffer-level nest.

The systolic dataflows map a GEMM fold by fold and search their SRAM nests with the mapper
(:mod:`sparsesim.mapping`), whose time model is the systolic fold. The other array kinds
(Eyeriss v2's PEs, SIGMA, the dual-side sparse tensor core) compute an on-chip block of the
GEMM with their own cycle rule, from the operands' real masks; what they share is here:

* :class:`ArrayWork`, the work of one GEMM group as the switched-on features leave it: the
  nonzero masks of the operands whose zeros the hardware skips (None where it streams the
  operand dense), the effectual MACs, and the operands' stored sizes relative to dense;
  :func:`array_work` builds it with the same rules as the systolic
  :func:`~sparsesim.dataflows.sparse.sparse_work` (bitmap compression of skipped operands where
  smaller, weight rows behind all-zero activation columns gathered at burst granularity).
* :func:`choose_nest`, the buffer-level mapping of such a kind: the GEMM cut into blocks of
  ``tile_M x tile_N`` outputs (multiples of the kind's spatial granule) and ``tile_K``
  reduction chunks, visited with N or M outside; the output block stays in the output
  buffer across its K chunks (these arrays keep partial sums on chip), an operand block is
  kept resident across the inner loop when the inner loop does not change it, and the
  whole operand stays when it fits the half buffer. Among the nests whose blocks fit the half
  buffers and that have at most ``mapper.max_tiles`` blocks, the one moving the fewest DRAM
  bytes wins (ties: fewer blocks). Its bounds are the systolic mapper's (compulsory bytes and
  the communication lower bound, :func:`sparsesim.mapping.dram_bounds`), which hold for any
  dataflow on the same buffers.
* :class:`TiledDataflow`, the base of their dataflows (its ``work`` is :func:`array_work`).
* :func:`tiled_plan`, which turns a nest and the kind's cycles per block into a
  :class:`~sparsesim.dataflows.base.Plan` that the memory model times like any other.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sparsesim import mapping
from sparsesim.hardware.config import AccelConfig
from sparsesim.hardware.schedule import EventCounts, TileSchedule
from sparsesim.dataflows.base import DATAFLOWS, Dataflow, Plan, with_ports
from sparsesim.dataflows.sparse import (OperandMasks, WeightFetchSkip, _compressed_scale, _exact_scale,
                                        gather_live_rows)
from sparsesim.sparsity.base import GemmEffects, NMPattern
from sparsesim.workloads.gemm import Gemm


@dataclass(frozen=True, slots=True)
class ArrayWork:
    """One GEMM group as the sparse features leave it, for a non-systolic kind's plan.

    ``a``/``b``: uint8 nonzero masks ``(M, K)`` / ``(K, N)`` of ``gemm`` where that operand's
    zeros are *skipped*; None where the hardware streams it dense (its zeros cost cycles).
    ``scale_*``: stored bytes relative to dense (bitmap compression, gathered weight rows);
    ``meta_*``: the metadata share of them. ``zero_aware``: ineffectual MACs are gated where
    they are not skipped."""

    gemm: Gemm
    a: np.ndarray | None
    b: np.ndarray | None
    macs_dense: int
    macs_effectual: int
    zero_aware: bool
    scale_a: float = 1.0
    scale_b: float = 1.0
    meta_a: float = 0.0
    meta_b: float = 0.0
    compressed_a: bool = False
    compressed_b: bool = False
    out_reserved_bytes: int = 0  # output-buffer bytes held by feature state (delta)


def array_work(gemm: Gemm, cfg: AccelConfig, masks: OperandMasks, effects: GemmEffects, *,
               nm: NMPattern | None = None, density_a: float | None = None, density_b: float | None = None,
               weight_skip: WeightFetchSkip | None = None) -> ArrayWork:
    """The :class:`ArrayWork` of one group (the arguments are those of
    :func:`~sparsesim.dataflows.sparse.sparse_work`). N:M weights reach these kinds only as
    zeros of B (their ``array.nm_ratios`` is empty, so the ``nm`` feature is refused)."""
    if nm is not None:
        raise ValueError("array_work: N:M MAC units are a systolic-array feature")
    elem = cfg.array.element_bytes
    a_nz, b_nz = masks.a, masks.b
    M, N, K = gemm.M, gemm.N, gemm.K
    K_dense = K
    if effects.a.compress and density_a is None:  # the whole A's density, before any rows are gathered
        density_a = float(a_nz.mean()) if a_nz.size else 0.0
    scale_b_fixed = None
    if weight_skip is not None:
        if effects.b.compress:
            raise ValueError("array_work: weight rows are skipped only from a dense B")
        gemm, a_nz, b_nz, fetched = gather_live_rows(gemm, a_nz, b_nz, weight_skip, elem)
        K = gemm.K
        scale_b_fixed = _exact_scale(fetched, K * N * elem)
    if b_nz is None and (effects.b.aware or (effects.b.compress and density_b is None)):
        raise ValueError("array_work: the features switched on need the B mask")
    per_a = a_nz.sum(axis=0, dtype=np.int64) if effects.a.aware else np.full(K, M, dtype=np.int64)
    per_b = b_nz.sum(axis=1, dtype=np.int64) if effects.b.aware else np.full(K, N, dtype=np.int64)
    scale_a = scale_b = 1.0
    meta_a = meta_b = 0.0
    packed_a = packed_b = False
    if effects.a.compress:
        scale_a, meta_a = _compressed_scale(density_a, elem)
        packed_a = scale_a < 1.0
    if effects.b.compress:
        d = float(b_nz.mean()) if density_b is None else density_b
        scale_b, meta_b = _compressed_scale(d, elem)
        packed_b = scale_b < 1.0
    if scale_b_fixed is not None:
        scale_b = scale_b_fixed
    return ArrayWork(gemm, np.ascontiguousarray(a_nz) if effects.a.skip else None,
                     np.ascontiguousarray(b_nz) if effects.b.skip else None,
                     M * N * K_dense, int(per_a @ per_b), effects.a.aware or effects.b.aware,
                     scale_a, scale_b, meta_a, meta_b, packed_a, packed_b)


class TiledDataflow(Dataflow):
    """A dataflow of a non-systolic kind: its work is :func:`array_work` of the masks (a kind
    that treats some GEMMs differently overrides :meth:`work`); it implements :meth:`plan`,
    usually :func:`choose_nest`, its cycle rule per block, then :func:`tiled_plan`."""

    def work(self, gemm: Gemm, cfg: AccelConfig, masks: OperandMasks, effects: GemmEffects, **options) -> ArrayWork:
        return array_work(gemm, cfg, masks, effects, **options)


def dense_work(gemm: Gemm) -> ArrayWork:
    """The work of a dense group: no masks, every MAC effectual."""
    macs = gemm.M * gemm.N * gemm.K
    return ArrayWork(gemm, None, None, macs, macs, False)


@dataclass(frozen=True, slots=True)
class Nest:
    """A buffer-level nest of one GEMM group: blocks in visiting order, each with the DRAM
    bytes it loads and stores. ``blocks`` is an ``(n, 6)`` int64 array of ``m0, m1, n0, n1,
    k0, k1`` (half-open)."""

    tile_M: int
    tile_N: int
    tile_K: int
    order: str  # "NMK" (N blocks outside) or "MNK"
    blocks: np.ndarray
    load_a: np.ndarray
    load_b: np.ndarray
    store: np.ndarray
    compulsory_bytes: int
    lower_bound_bytes: int
    resident: tuple[str, ...]

    @property
    def text(self) -> str:
        return mapping.mapping_text(mapping.Mapping(self.tile_M, self.tile_N, self.tile_K, self.order), self.resident)


def _candidates(total: int, granule: int) -> list[int]:
    sizes = {total}
    t = max(1, granule)
    while t < total:
        sizes.add(t)
        t *= 2
    return sorted(sizes)


def choose_nest(gemm: Gemm, cfg: AccelConfig, work: ArrayWork, granule: tuple[int, int, int] = (1, 1, 1)) -> Nest:
    """The nest of ``work``'s GEMM on ``cfg``'s buffers (see the module docstring);
    ``granule``: the block sizes along M, N, K the kind computes at once (tiles are multiples)."""
    run = work.gemm
    M, N, K = run.M, run.N, run.K
    elem, acc = cfg.array.element_bytes, cfg.array.accumulator_bytes
    space = mapping.NestSpace(DATAFLOWS.get("os").kind, run, cfg, None, work.scale_a, work.scale_b,
                              work.out_reserved_bytes)
    compulsory, bound = mapping.dram_bounds(space)
    half = space.half
    total_a, total_b = space.operand_total("A"), space.operand_total("B")
    best = None
    for tm in _candidates(M, granule[0]):
        for tn in _candidates(N, granule[1]):
            if tm * tn * acc > max(half["Out"], 1) and (tm, tn) != (min(M, granule[0]), min(N, granule[1])):
                continue
            for tk in _candidates(K, granule[2]):
                a_blk, b_blk = space.a_tile(tm, tk), math.ceil(tk * tn * space.width["B"])
                if (a_blk > half["A"] or b_blk > half["B"]) and tk > min(K, granule[2]):
                    continue
                mb, nb, kb = -(-M // tm), -(-N // tn), -(-K // tk)
                for order in ("NMK", "MNK"):
                    if kb == 1 and order == "NMK":  # B block kept across the M loop
                        a_traffic = total_a if total_a <= half["A"] else total_a * nb
                        b_traffic, resident = total_b, ("A", "B") if total_a <= half["A"] else ("B",)
                    elif kb == 1:
                        b_traffic = total_b if total_b <= half["B"] else total_b * mb
                        a_traffic, resident = total_a, ("A", "B") if total_b <= half["B"] else ("A",)
                    else:
                        a_traffic, b_traffic, resident = total_a * nb, total_b * mb, ()
                    blocks = mb * nb * kb
                    key = (blocks > cfg.mapper.max_tiles, a_traffic + b_traffic, blocks, order)
                    if best is None or key < best[0]:
                        best = (key, tm, tn, tk, order, resident)
    _, tm, tn, tk, order, resident = best
    return _nest(run, space, tm, tn, tk, order, resident, compulsory, bound, elem)


def _nest(run: Gemm, space, tm: int, tn: int, tk: int, order: str, resident: tuple, compulsory: int,
          bound: int, elem: int) -> Nest:
    M, N, K = run.M, run.N, run.K
    m_starts, n_starts, k_starts = (np.arange(0, d, t, dtype=np.int64) for d, t in ((M, tm), (N, tn), (K, tk)))
    rows = []
    outer, inner = (n_starts, m_starts) if order == "NMK" else (m_starts, n_starts)
    for u in outer:
        for v in inner:
            m0, n0 = (v, u) if order == "NMK" else (u, v)
            for k0 in k_starts:
                rows.append((m0, min(m0 + tm, M), n0, min(n0 + tn, N), k0, min(k0 + tk, K)))
    blocks = np.array(rows, dtype=np.int64).reshape(-1, 6)
    ext_m, ext_n, ext_k = blocks[:, 1] - blocks[:, 0], blocks[:, 3] - blocks[:, 2], blocks[:, 5] - blocks[:, 4]
    a_bytes = space.a_bytes(ext_m, ext_k)
    b_bytes = np.ceil(ext_k * ext_n * space.width["B"]).astype(np.int64)
    kb = len(k_starts)
    first_outer = blocks[:, 2] == 0 if order == "NMK" else blocks[:, 0] == 0
    first_inner = blocks[:, 0] == 0 if order == "NMK" else blocks[:, 2] == 0
    load_a, load_b = a_bytes.copy(), b_bytes.copy()
    if kb == 1:
        if order == "NMK":
            load_b = np.where(first_inner, b_bytes, 0)  # the B panel stays across the M loop
            if "A" in resident:
                load_a = np.where(first_outer, a_bytes, 0)
        else:
            load_a = np.where(first_inner, a_bytes, 0)
            if "B" in resident:
                load_b = np.where(first_outer, b_bytes, 0)
    last_k = blocks[:, 5] == K
    store = np.where(last_k, ext_m * ext_n * elem, 0).astype(np.int64)
    return Nest(tm, tn, tk, order, blocks, load_a.astype(np.int64), load_b.astype(np.int64), store,
                compulsory, bound, resident)


def tiled_plan(name: str, gemm: Gemm, cfg: AccelConfig, work: ArrayWork, nest: Nest, block_cycles: np.ndarray,
               array_counts: EventCounts, *, epilogue_cycles: int = 0, folds: int | None = None) -> Plan:
    """The :class:`~sparsesim.dataflows.base.Plan` of ``work`` mapped as ``nest``: the kind's
    stall-free ``block_cycles`` per block, ``array_counts`` its on-chip events (MACs, register
    and buffer reads by the array), to which the nest adds the buffer fills and drains and
    the DRAM traffic. ``folds``: the kind's count of array passes (default: blocks)."""
    load = nest.load_a + nest.load_b
    counts = dataclasses.replace(
        array_counts,
        sram_a_bytes=array_counts.sram_a_bytes + int(nest.load_a.sum()),
        sram_b_bytes=array_counts.sram_b_bytes + int(nest.load_b.sum()),
        sram_out_bytes=array_counts.sram_out_bytes + int(nest.store.sum()),
        dram_read_bytes=int(load.sum()),
        dram_write_bytes=int(nest.store.sum()),
    )
    schedule = TileSchedule(load.astype(np.int64), np.asarray(block_cycles, dtype=np.int64),
                            nest.store, int(epilogue_cycles))
    plan = Plan(name, gemm, schedule, counts, work.macs_dense, work.macs_effectual,
                len(nest.blocks) if folds is None else folds, nest.order[0], mapping=nest.text,
                dram_compulsory_bytes=nest.compulsory_bytes, dram_lower_bound_bytes=nest.lower_bound_bytes,
                psum_spill_bytes=0)
    return with_ports(plan, cfg)


BlockCycles = Callable[[ArrayWork, np.ndarray], np.ndarray]
"""A kind's cycle rule: stall-free cycles of each block (rows of ``m0, m1, n0, n1, k0, k1``)."""
