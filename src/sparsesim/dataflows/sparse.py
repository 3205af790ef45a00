"""Sparse mapping: from the real zero masks of a GEMM's operands to per-fold stream lengths.

Which cycles a zero can remove depends on the dataflow, because the dataflow decides which
PEs move in lockstep (docs/design.md section 1):

* ``os`` streams both A (along PE rows) and B (along PE columns) through K. A step of K is
  skippable for a fold only if no PE of the fold has an effectual MAC in it: the fold's
  A-slice is all zero (input skipping) or its B-slice is all zero (weight skipping).
* ``ws`` streams A through M past stationary weights; a step (one row of A) is skippable when
  the A values entering all PE rows of the fold are zero. A zero *stationary* weight cannot
  remove a cycle, only gate it.
* ``is`` streams B through N past stationary inputs, symmetrically.

On the decoupled-lane array each PE row advances on its own operand queue and all rows meet
every ``array.sync_window_steps`` streamed steps, so a window costs its busiest lane.

N:M weights compact the reduction: ``K`` becomes ``ceil(K/m) * n`` MAC slots. Where K is
streamed (``os``) a time unit is one group of ``m`` activations that costs ``n`` cycles; where
K is spatial (``ws``, ``is``) each PE row holds one of the ``n`` kept weights (``ws``) or the
``m`` activations of a group behind an ``m``-input multiplexer (``is``; an assumption, since the
streamed weights carry per-column indices), so the fold grid has ``ceil(K/m) * n`` rows.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from sparsesim.hardware.config import AccelConfig
from sparsesim.hardware.kernels import block_any, decoupled_steps, lockstep_steps
from sparsesim.sparsity.base import GemmEffects, NMPattern
from sparsesim.workloads.gemm import Gemm


@dataclass(frozen=True, slots=True)
class SparseWork:
    """What the sparse features make of one GEMM, for :meth:`SystolicDataflow.plan`.

    ``gemm`` is the GEMM the array runs (K compacted by N:M); ``stream`` the streamed cycles
    of each fold as a (row block, column block) grid (None: dense streaming of ``gemm``). ``scale_a``/``scale_b``
    are the operands' stored bytes relative to a dense ``gemm`` layout (compression, or the
    full activations behind a compacted K); ``meta_a``/``meta_b`` the fraction of those bytes
    that is metadata (bitmaps, N:M indices).
    """

    gemm: Gemm
    stream: np.ndarray | None
    macs_dense: int
    macs_effectual: int
    zero_aware: bool  # ineffectual MACs in executed steps are gated, not performed
    scale_a: float = 1.0
    scale_b: float = 1.0
    meta_a: float = 0.0
    meta_b: float = 0.0
    compressed_a: bool = False  # stored as values + bitmap: on-chip reads are the compressed block
    compressed_b: bool = False
    out_reserved_bytes: int = 0  # output-buffer bytes held by other state (delta reference/accumulators)


@dataclass(frozen=True, slots=True)
class OperandMasks:
    """Nonzero masks (uint8) of one GEMM's operands after every replay-time transformation."""

    a: np.ndarray  # (M, K)
    b: np.ndarray | None  # (K, N); None where no switched-on feature looks at B's zeros (all taken as nonzero)


def _spans(total: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(0, total, block, dtype=np.int64)
    return starts, np.minimum(starts + block, total)


def _group_any_cols(nz: np.ndarray, m: int) -> np.ndarray:
    """``(S, K)`` -> ``(S, ceil(K/m))``: any nonzero within each group of ``m`` columns."""
    s, k = nz.shape
    g = -(-k // m)
    padded = np.zeros((s, g * m), dtype=np.uint8)
    padded[:, :k] = nz
    return padded.reshape(s, g, m).max(axis=2)


def _group_counts_rows(nz: np.ndarray, m: int) -> np.ndarray:
    """``(K, N)`` -> ``(ceil(K/m), N)``: nonzeros within each group of ``m`` rows."""
    k, n = nz.shape
    g = -(-k // m)
    padded = np.zeros((g * m, n), dtype=np.int64)
    padded[:k] = nz
    return padded.reshape(g, m, n).sum(axis=1)


def _per_k_nonzeros(mask: np.ndarray | None, k: int, other: int, axis: int) -> np.ndarray:
    """Nonzeros of each reduction index ``k`` of an operand mask (``axis``: the non-K axis), or
    ``other`` for every ``k`` when its zeros are not looked at (an all-ones mask, never built:
    for a decode GEMV's weight it would be as large as the weight)."""
    if mask is None:
        return np.full(k, other, dtype=np.int64)
    return mask.sum(axis=axis, dtype=np.int64)


def _exact_scale(nbytes: int, dense_bytes: int) -> float:
    """``nbytes / dense_bytes`` as the largest float whose product with ``dense_bytes`` does not
    exceed ``nbytes``: the mapper rounds byte counts up, and a ratio whose product came out a
    hair above the integer would make its bound one byte more than the tiles it sums."""
    scale = nbytes / dense_bytes
    while dense_bytes * scale > nbytes:
        scale = math.nextafter(scale, 0.0)
    return scale


def _compressed_scale(density: float, elem: int) -> tuple[float, float]:
    """Bytes of values + 1-bit bitmap relative to dense, and the metadata share of them."""
    packed = density + 1.0 / (8 * elem)
    if packed >= 1.0:
        return 1.0, 0.0  # the format falls back to dense when compression does not pay
    return packed, (1.0 / (8 * elem)) / packed


def gather_live_rows(gemm: Gemm, a_nz: np.ndarray, b_nz: np.ndarray | None, weight_skip: WeightFetchSkip,
                     elem: int) -> tuple[Gemm, np.ndarray, np.ndarray | None, int]:
    """A GEMM group with the weight rows behind all-zero activation columns skipped: the GEMM
    the array runs, the masks of A and B over its K, and the bytes of B actually fetched.

    Whole bursts are fetched: the live rows and the dead bytes sharing their bursts (one row at
    least). A convolution keeps its K: its input is read as a feature map (with halo), which
    gathering the live weight rows does not change, so only B's bytes shrink. Otherwise the live
    rows are gathered (one kept when none is live, so that a GEMM remains) and A is no longer
    read as a feature map."""
    fetched = max(weight_skip.dense_bytes - weight_skip.skipped_bytes, gemm.N * elem)
    if gemm.conv is not None:
        return gemm, a_nz, b_nz, fetched
    live = weight_skip.live
    keep = np.flatnonzero(live) if live.any() else np.zeros(1, dtype=np.int64)
    a_nz = np.ascontiguousarray(a_nz[:, keep])
    b_nz = None if b_nz is None else np.ascontiguousarray(b_nz[keep])
    return Gemm(gemm.M, gemm.N, keep.size, 1, None), a_nz, b_nz, fetched


def sparse_work(df, gemm: Gemm, cfg: AccelConfig, masks: OperandMasks, effects: GemmEffects, *,
                nm: NMPattern | None = None, density_a: float | None = None, density_b: float | None = None,
                weight_skip: WeightFetchSkip | None = None) -> SparseWork:
    """Per-fold stream lengths and effectual work of one GEMM (one of its ``count`` groups).

    ``effects``: what the switched-on features do with each operand's zeros, composed
    (:class:`~sparsesim.sparsity.base.GemmEffects`): ``skip`` (its zeros may remove cycles),
    ``aware`` (its zeros are detected at all, gating or skipping, so they count as ineffectual),
    ``compress`` (stored as values + bitmap when smaller). ``nm``: the
    :class:`~sparsesim.sparsity.base.NMPattern` when the B operand is N:M along K (``stored_dense``:
    the N:M weights are kept dense in memory and pruned while loading, no pre-generation);
    ``density_*``: the nonzero fraction of the *stored* tensor behind each operand (im2col
    repeats inputs and adds padding, neither of which is stored), used for compressed sizes;
    default: the operand mask's own density.
    ``weight_skip``: the weight rows behind all-zero activation columns are skipped
    (:func:`weight_fetch_skip` of these masks, over all of M): only the live rows are gathered,
    stored compactly on chip and mapped, so the array runs the GEMM with K cut to the live
    rows (which removes no effectual MAC, and on ``ws``/``is`` removes whole folds), A keeps
    its stored bytes, and B is sized by the bytes actually fetched (whole bursts). A
    convolution keeps its K and its feature-map reads of A; only B shrinks to the fetched bytes.
    """
    skip_a, skip_b = effects.a.skip, effects.b.skip
    aware_a, aware_b = effects.a.aware, effects.b.aware
    compress_a, compress_b = effects.a.compress, effects.b.compress
    nm_stored_dense = nm is not None and nm.stored_dense
    R, C = cfg.array.rows, cfg.array.cols
    elem = cfg.array.element_bytes
    M, N, K = gemm.M, gemm.N, gemm.K
    a_nz, b_nz = masks.a, masks.b
    K_dense = K
    if compress_a and density_a is None:  # the whole A's density, before any rows are gathered
        density_a = float(a_nz.mean()) if a_nz.size else 0.0
    b_fetched_bytes = None
    if weight_skip is not None:
        if nm is not None or compress_b:
            raise ValueError("sparse_work: weight rows are skipped only from a dense B")
        gemm, a_nz, b_nz, b_fetched_bytes = gather_live_rows(gemm, a_nz, b_nz, weight_skip, elem)
        K = gemm.K
    if b_nz is None and (aware_b or skip_b or nm or (compress_b and density_b is None)):
        raise ValueError("sparse_work: the features switched on need the B mask")
    # MACs with both operands nonzero, sum_k nnz(A[:, k]) * nnz(B[k, :]) (exact); an operand
    # whose zeros are not detected counts as all ones
    macs_eff = int(_per_k_nonzeros(a_nz if aware_a else None, K, M, 0)
                   @ _per_k_nonzeros(b_nz if (aware_b or nm) else None, K, N, 1))
    # MAC slots per output under N:M: n per group of m, fewer in a short last group
    k_eff = K if nm is None else (K // nm[1]) * nm[0] + min(nm[0], K % nm[1])
    if nm is not None and k_eff >= K:  # groups no longer than n: nothing to compact
        nm = None
        k_eff = K
    # A stays the feature map behind a convolution when N:M compacts K: the multiplexers pick
    # among activations already on chip, so DRAM reads them as for the dense GEMM
    conv = gemm.conv
    if conv is not None and k_eff < K:
        conv = dataclasses.replace(conv, compacted=(nm[0], nm[1]))
    run = Gemm(M, N, k_eff, 1, conv)
    decoupled = cfg.array.lanes == "decoupled"
    window = cfg.array.sync_window_steps

    stream = None
    if skip_a or skip_b:
        if df.kind.reduction_in_time:  # os: time units are single k, or N:M groups costing n cycles
            if nm is None:
                a_units = a_nz
                b_units = np.ascontiguousarray(b_nz.T) if skip_b else None
                cost = np.ones(K, dtype=np.int64)
            else:
                a_units = _group_any_cols(a_nz, nm[1])
                b_units = _group_any_cols(np.ascontiguousarray(b_nz.T), nm[1]) if skip_b else None
                cost = np.full(a_units.shape[1], nm[0], dtype=np.int64)
                cost[-1] = k_eff - nm[0] * (cost.size - 1)  # the short last group
            n_units = cost.size
            if not skip_a:
                a_units = np.ones((M, n_units), dtype=np.uint8)
            if skip_b:
                col_alive = block_any(b_units, *_spans(N, C))
            else:  # every unit alive in every column block (what block_any of all ones gives)
                col_alive = np.ones((-(-N // C), n_units), dtype=np.uint8)
            if decoupled:
                # lanes count MAC slots: a unit (one k, or one N:M group) repeated for its cost
                lanes = np.ascontiguousarray(np.repeat(a_units, cost, axis=1))
                slots_alive = np.ascontiguousarray(np.repeat(col_alive, cost, axis=1))
                grid = decoupled_steps(lanes, R, slots_alive, window)
            else:
                grid = lockstep_steps(block_any(a_units, *_spans(M, R)), col_alive, cost)
        else:  # ws (A streams through M) or is (B streams through N); K is spatial
            streamed_is_a = "A" in df.kind.zero_skippable  # ws streams A, is streams B
            if (streamed_is_a and skip_a) or (not streamed_is_a and skip_b):
                if streamed_is_a:
                    lanes = np.ascontiguousarray(a_nz.T)  # (K, M)
                    if nm is not None:
                        lanes = np.repeat(_group_any_cols(a_nz, nm[1]).T, nm[0], axis=0)
                else:
                    lanes = b_nz  # (K, N)
                    if nm is not None:
                        counts = _group_counts_rows(b_nz, nm[1])  # (G, N)
                        slots = np.arange(nm[0])[None, :, None]
                        lanes = (counts[:, None, :] > slots).reshape(-1, b_nz.shape[1]).astype(np.uint8)
                lanes = np.ascontiguousarray(lanes[:k_eff], dtype=np.uint8)
                t_len = lanes.shape[1]
                n_cols = -(-(N if streamed_is_a else M) // C)
                alive = np.ones((1, t_len), dtype=np.uint8)
                if decoupled:
                    col = decoupled_steps(lanes, R, alive, window)
                else:
                    col = lockstep_steps(block_any(lanes, *_spans(k_eff, R)), alive, np.ones(t_len, dtype=np.int64))
                grid = np.repeat(col, n_cols, axis=1)
            else:
                grid = None
        stream = grid

    scale_a = K_dense / k_eff
    scale_b, meta_a, meta_b = 1.0, 0.0, 0.0
    packed_a = packed_b = False
    if compress_a:
        s, meta_a = _compressed_scale(density_a, elem)
        scale_a *= s
        packed_a = s < 1.0
    if nm is not None and nm_stored_dense:  # pruned on the fly while loading dense weights
        scale_b = K / k_eff
    elif nm is not None:
        idx_bytes = nm[2] / 8.0
        scale_b = (elem + idx_bytes) / elem
        meta_b = idx_bytes / (elem + idx_bytes)
    elif compress_b:
        scale_b, meta_b = _compressed_scale(float(b_nz.mean()) if density_b is None else density_b, elem)
        packed_b = scale_b < 1.0
    if b_fetched_bytes is not None:
        scale_b = _exact_scale(b_fetched_bytes, K * N * elem)
    return SparseWork(run, stream, M * N * K_dense, macs_eff, aware_a or aware_b, scale_a, scale_b, meta_a, meta_b,
                      packed_a, packed_b)


LAYOUTS = ("k_major", "n_major")
"""How a weight operand B (K x N) lies in DRAM: ``k_major``, the N weights of one reduction index
contiguous (what activation-sparse kernels choose so that a dead input skips a contiguous
row: Deja Vu's and CATS's kernels store the down projection this way); ``n_major``, the K
weights of one output contiguous (PyTorch's ``[out, in]`` Linear layout), where a dead input's
weights are strided over every output and a burst is skipped only when every input it
covers is dead."""


@dataclass(frozen=True, slots=True)
class WeightFetchSkip:
    """What skipping the weight rows behind all-zero activation columns saves of one pass over
    a weight B (``K x N``, ``dense_bytes = K * N * element_bytes``).

    ``skipped_bytes``: its bytes not fetched (``live``: which of its rows have a live activation);
    ``bound_bytes``: the bytes of its rows with a
    live activation, which any schedule must fetch at least once whatever its tiling or burst
    size; ``bitmap_bytes``: the skip bitmap that drives the gather (one bit per row).
    """

    skipped_bytes: int
    bound_bytes: int
    bitmap_bytes: int
    dense_bytes: int
    live: np.ndarray = field(compare=False, repr=False)  # (K,) bool: the rows fetched


def _runs(dead: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` of the maximal runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate(([0], dead.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _free_bytes(starts: np.ndarray, ends: np.ndarray, total: int, burst: int) -> int:
    """Bytes of the bursts (``[j*burst, (j+1)*burst)``, the last one cut at ``total``) that lie
    wholly inside one of the byte ranges ``[starts, ends)``: the bursts DRAM need not move when
    only those ranges are dead. A burst touching a live byte is moved whole."""
    if starts.size == 0:
        return 0
    first = -(-starts // burst) * burst  # the first burst boundary at or after each start
    last = np.where(ends == total, ends, (ends // burst) * burst)  # the final partial burst ends at total
    return int(np.maximum(last - first, 0).sum())


def _skipped(live: np.ndarray, n_cols: int, elem: int, burst: int, layout: str) -> int:
    """Bytes of a weight whose rows ``~live`` are dead that lie in wholly dead bursts."""
    K = live.size
    dead = ~live
    if K == 0 or n_cols == 0 or not dead.any():
        return 0
    if layout == "k_major":  # row k holds bytes [k*N*e, (k+1)*N*e)
        row = n_cols * elem
        s, t = _runs(dead)
        return _free_bytes(s * row, t * row, K * row, burst)
    # n_major: output n holds bytes [n*K*e, (n+1)*K*e), every output with the same dead inputs;
    # after p outputs the pattern is burst-aligned again, so p outputs are computed and repeated
    row = K * elem
    p = burst // math.gcd(row, burst)

    def rows(r: int) -> int:
        if r == 0:
            return 0
        s, t = _runs(np.tile(dead, r))
        return _free_bytes(s * elem, t * elem, r * row, burst)

    return (n_cols // p) * rows(p) + rows(n_cols % p)


def weight_fetch_skip(live: np.ndarray, n_cols: int, element_bytes: int, burst_bytes: int,
                      layout: str = "k_major") -> WeightFetchSkip:
    """Weight bytes not fetched when the weights behind all-zero activation columns are skipped.

    ``live``: per reduction index ``k`` of B (``K x N=n_cols``), whether its activation column
    holds a nonzero over the rows of A that share one fetch of B (the whole GEMM, for the
    replay). B is stored dense in ``layout`` (:data:`LAYOUTS`) from a burst-aligned address,
    and DRAM moves whole bursts of ``burst_bytes``: a burst is not fetched only when every byte
    of B in it belongs to a dead row. So contiguous dead rows save whole bursts across row
    boundaries, while scattered ones save only the bursts a dead row covers alone (nothing when
    a row is shorter than a burst, or, in ``n_major``, when fewer than a burst's worth of
    consecutive inputs are dead).
    """
    if burst_bytes < 1:
        raise ValueError("weight_fetch_skip: burst_bytes must be positive")
    if layout not in LAYOUTS:
        raise ValueError(f"weight_fetch_skip: unknown layout {layout!r}")
    live = np.asarray(live, dtype=bool)
    K = live.size
    row = n_cols * element_bytes
    return WeightFetchSkip(_skipped(live, n_cols, element_bytes, burst_bytes, layout), int(live.sum()) * row,
                           -(-K // 8), K * row, live)


def weight_gather_bursts(live: np.ndarray, n_cols: int, element_bytes: int, granule_bytes: int,
                         device_burst_bytes: int, layout: str = "k_major") -> np.ndarray:
    """The DRAM burst addresses one fetch-skipping pass over a weight B (``K x N=n_cols``) reads.

    The accelerator requests B in aligned granules of ``granule_bytes`` and skips a granule
    whose every byte belongs to a dead row (``~live``), as :func:`weight_fetch_skip` counts; the
    DRAM serves each requested granule as the aligned device bursts of ``device_burst_bytes``
    that cover it (a granule smaller than a burst still moves the whole burst, once). Returns the
    sorted, distinct burst indices (burst ``j`` holds bytes ``[j*b, (j+1)*b)`` of B, B at a
    burst-aligned base), in request order: B read front to back.
    """
    if granule_bytes < 1 or device_burst_bytes < 1:
        raise ValueError("weight_gather_bursts: granule_bytes and device_burst_bytes must be positive")
    if layout not in LAYOUTS:
        raise ValueError(f"weight_gather_bursts: unknown layout {layout!r}")
    live = np.asarray(live, dtype=bool)
    K = live.size
    total = K * n_cols * element_bytes
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    # each granule's elements [a, b) (element i holds bytes [i*e, (i+1)*e)); live rows counted
    # over them with a prefix sum of ``live``
    start = np.arange(-(-total // granule_bytes), dtype=np.int64) * granule_bytes
    a = start // element_bytes
    b = -(-np.minimum(start + granule_bytes, total) // element_bytes)
    before = np.concatenate(([0], np.cumsum(live, dtype=np.int64)))
    if layout == "k_major":  # element i is row i // N
        count = before[(b - 1) // n_cols + 1] - before[a // n_cols]
    else:  # element i is row i % K: a granule's rows run from a % K and wrap at most once
        lo, n = a % K, b - a
        wraps = lo + n > K
        count = np.where(n >= K, before[K],
                         np.where(wraps, before[K] - before[lo] + before[np.minimum(lo + n - K, K)],
                                  before[np.minimum(lo + n, K)] - before[lo]))
    wanted = np.flatnonzero(count > 0)
    if granule_bytes % device_burst_bytes == 0:  # whole bursts per granule: no overlap, no sort
        per = granule_bytes // device_burst_bytes
        bursts = (wanted[:, None] * per + np.arange(per)).ravel()
        return bursts[bursts < -(-total // device_burst_bytes)]
    first = wanted * granule_bytes // device_burst_bytes
    last = (np.minimum((wanted + 1) * granule_bytes, total) - 1) // device_burst_bytes
    spans = last - first + 1
    bursts = np.repeat(first, spans) + (np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans))
    return np.unique(bursts)
