"""The mapper's space: the SRAM-level loop nests a dataflow allows for one GEMM, with their snapping.

A *nest* (:class:`Mapping`) cuts the GEMM ``Out[M x N] = A[M x K] . B[K x N]`` into tiles of
``tile_M x tile_N x tile_K`` elements and visits them in a loop ``order`` (outermost first,
a permutation of ``MNK``). :class:`NestSpace` holds one (GEMM, hardware, dataflow, sparse
sizes) problem: the operands' stored sizes and what fits the buffers, and it *enumerates* the
legal nests (every legal tile size on small GEMMs, else powers of two of the array block,
halves, thirds and the whole dimension; loop orders less those that are equivalent because a
loop runs once) and *prunes* those the tile model cannot run. The dataflow comes in as its
:class:`~sparsesim.hardware.dataflow_kind.DataflowKind` (this package never imports
:mod:`sparsesim.dataflows`). What a nest costs is :mod:`.cost`; which nest wins, :mod:`.search`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from sparsesim.core.errors import field_error
from sparsesim.hardware.config import AccelConfig
from sparsesim.hardware.dataflow_kind import DataflowKind
from sparsesim.workloads.gemm import Gemm

DIMS = ("M", "N", "K")
ORDERS = tuple("".join(p) for p in itertools.permutations(DIMS))
EXHAUSTIVE = 96
"""Tile-size combinations up to which every legal size is a candidate (else the pruned lists)."""
MAX_TILES = 200_000
"""Largest tile count of a searched candidate (pinned nests may exceed it)."""


@dataclass(frozen=True, slots=True)
class Mapping:
    """One SRAM-level loop nest: tile sizes (GEMM elements) and loop order (outermost first)."""

    tile_M: int
    tile_N: int
    tile_K: int
    order: str

    def tile(self, dim: str) -> int:
        return {"M": self.tile_M, "N": self.tile_N, "K": self.tile_K}[dim]



def mapping_text(m: Mapping, resident: tuple[str, ...]) -> str:
    """The mapping as the row records it, e.g. ``order=NMK tiles=M:128,N:64,K:147 resident=B``."""
    text = f"order={m.order} tiles=M:{m.tile_M},N:{m.tile_N},K:{m.tile_K}"
    return text + (f" resident={'+'.join(resident)}" if resident else "")


def _snap(width: float) -> float:
    """A byte width computed through a ratio, snapped to the nearest 1e-9 when it is within
    rounding error of it (so that ``ceil`` of a whole byte count does not gain a byte)."""
    snapped = round(width, 9)
    return snapped if abs(width - snapped) < 1e-12 else width


def _extents(total: int, block: int) -> np.ndarray:
    n = -(-total // block)
    sizes = np.full(n, block, dtype=np.int64)
    sizes[-1] = total - block * (n - 1)
    return sizes



class NestSpace:
    """Everything about one (GEMM, hardware, dataflow, sparse sizes) that nests are built from.

    ``stream`` is the per-fold streamed length grid ``(row blocks, column blocks)`` (None:
    dense, every fold streams the whole time dimension); ``scale_a``/``scale_b`` the operands'
    stored bytes relative to dense (compression, N:M values plus indices).
    """

    def __init__(self, kind: DataflowKind, gemm: Gemm, cfg: AccelConfig, stream: np.ndarray | None = None,
                 scale_a: float = 1.0, scale_b: float = 1.0, out_reserved_bytes: int = 0) -> None:
        self.kind, self.gemm, self.cfg = kind, gemm, cfg
        self.R, self.C = cfg.array.rows, cfg.array.cols
        self.D = {"M": gemm.M, "N": gemm.N, "K": gemm.K}
        self.block = {kind.row_dim: self.R, kind.col_dim: self.C, kind.time_dim: 1}
        self.elem = cfg.array.element_bytes
        self.acc = cfg.array.accumulator_bytes
        self.width = {"A": self.elem * scale_a, "B": self.elem * scale_b}
        out_size = max(cfg.buffers.out.size_bytes - out_reserved_bytes, 0)
        self.full = {"A": cfg.buffers.a.size_bytes, "B": cfg.buffers.b.size_bytes, "Out": out_size}
        self.half = {k: v // 2 for k, v in self.full.items()}
        self.overlap = cfg.array.fold_overlap
        self.conv = gemm.conv
        # bytes of one stored feature-map element: A's width without the N:M compaction of K
        # (a compacted K slot stands for m/n stored activations, a feature-map element for one)
        self.fm_width = self.width["A"]
        if self.conv is not None and self.conv.compacted is not None:
            self.fm_width = _snap(self.width["A"] * gemm.K / self.conv.k_dense)
        grid_stream = stream
        fr, fc = -(-self.D[kind.row_dim] // self.R), -(-self.D[kind.col_dim] // self.C)
        if grid_stream is None:
            grid_stream = np.full((fr, fc), self.D[kind.time_dim], dtype=np.int64)
        self.stream = np.ascontiguousarray(grid_stream, dtype=np.int64)
        self.dense_stream = stream is None
        spacing, epilogue = kind.fold_cycles(self.stream, self.R, self.C, self.overlap)
        self.spacing = np.ascontiguousarray(np.broadcast_to(spacing, self.stream.shape), dtype=np.int64)
        self.epilogue = int(epilogue)
        self.compute_total = int(self.spacing.sum()) + self.epilogue
        self._memo: dict = {}  # per-space cache of tile sizes -> operand fits and bytes
        self._total = {op: self._operand_total(op) for op in ("A", "B", "Out")}

    # ------------------------------------------------------------ operand sizes
    def a_bytes(self, ext_m: np.ndarray, ext_k: np.ndarray, slack: float = 0.0) -> np.ndarray:
        """DRAM bytes of A tiles with the given (broadcast) extents: the im2col block, or for a
        convolution the feature-map pixels it needs, whichever is smaller. ``slack``: bytes a
        product may exceed an integer by before it rounds up (see :meth:`operand_floor`)."""
        dense = ext_m * ext_k * self.width["A"]
        if self.conv is not None:
            dense = np.minimum(dense, self.conv.footprint(ext_m, ext_k) * self.fm_width)
        return np.ceil(dense - slack).astype(np.int64)

    def a_tile(self, tm: int, tk: int) -> int:
        """Bytes of one A tile of ``tm x tk`` (cached per space)."""
        key = ("a", tm, tk)
        if key not in self._memo:
            self._memo[key] = int(self.a_bytes(np.array(tm), np.array(tk)))
        return self._memo[key]

    def operand_total(self, op: str) -> int:
        """Bytes of a whole operand as stored (output at element width)."""
        return self._total[op]

    def operand_floor(self, op: str) -> int:
        """:meth:`operand_total` rounded up only past float error: a compressed operand's width
        is a ratio, and ``M * K * width`` may come out a hair above the integer byte count it
        stands for, which tiles summing the same bytes in parts do not gain. The bounds use it,
        so no schedule can move fewer bytes than they say."""
        return self._operand_total(op, slack=1e-6)

    def _operand_total(self, op: str, slack: float = 0.0) -> int:
        M, N, K = self.D["M"], self.D["N"], self.D["K"]
        if op == "A":
            return int(self.a_bytes(np.array(M), np.array(K), slack))
        if op == "B":
            return int(math.ceil(K * N * self.width["B"] - slack))
        return M * N * self.elem

    # ------------------------------------------------------------ candidates
    def tile_candidates(self, dim: str) -> list[int]:
        """Tile sizes along ``dim``: whole blocks (powers of two and equal splits) and the whole."""
        D, b = self.D[dim], self.block[dim]
        if dim == self.kind.time_dim:
            return self._chunk_candidates(D)
        folds = -(-D // b)
        counts = {folds}
        p = 1
        while p < folds:
            counts.add(p)
            p *= 2
        counts.add(max(1, -(-folds // 2)))
        return sorted({min(c * b, D) for c in counts})

    def all_tiles(self, dim: str) -> list[int]:
        """Every legal tile size along ``dim`` (the exhaustive space of small GEMMs)."""
        D, b = self.D[dim], self.block[dim]
        if dim != self.kind.time_dim:
            return sorted({min(c * b, D) for c in range(1, -(-D // b) + 1)})
        if not self.kind.reduction_in_time and not self.overlap:
            return [D]
        lo = 1 if self.kind.reduction_in_time else self.R
        return [t for t in range(1, D + 1) if t == D or (t >= lo and self.chunk_ok(D, t))]

    def _all_tiles_count_small(self) -> dict[str, list[int]] | None:
        """:meth:`all_tiles` of every dimension if their combinations number at most EXHAUSTIVE,
        else None (without listing a long streamed dimension size by size)."""
        lengths = {d: -(-self.D[d] // self.block[d]) for d in DIMS if d != self.kind.time_dim}
        if math.prod(lengths.values()) > EXHAUSTIVE:
            return None
        every = {d: self.all_tiles(d) for d in lengths}
        tdim = self.kind.time_dim
        D = self.D[tdim]
        if not self.kind.reduction_in_time and not self.overlap:
            every[tdim] = [D]
        elif self.kind.reduction_in_time:
            every[tdim] = list(range(1, D + 1))
        else:  # ws/is: every chunk, the last too, at least R long
            t = np.arange(self.R, D + 1, dtype=np.int64)
            last = D - (-(-D // t) - 1) * t
            every[tdim] = sorted(set(t[last >= self.R].tolist()) | {D})
        return every if math.prod(len(v) for v in every.values()) <= EXHAUSTIVE else None

    def _chunk_candidates(self, D: int) -> list[int]:
        if not self.kind.reduction_in_time and not self.overlap:
            return [D]  # without fold overlap every chunk would pay its own fill and drain
        lo = self.R if not self.kind.reduction_in_time else 1
        sizes = {D}
        c = self.R
        while c < D:
            sizes.add(c)
            c *= 2
        for k in range(2, 9):  # equal splits: small GEMMs pipeline best in a few even chunks
            sizes.add(-(-D // k))
        return sorted(t for t in sizes if t == D or (t >= lo and self.chunk_ok(D, t)))

    def chunk_ok(self, D: int, t: int) -> bool:
        """A time chunk keeps dense compute exact: every chunk (the last too) at least ``R`` long
        where the chunk is a fold of its own (ws/is); any size for os (the fold is unbroken)."""
        if t >= D:
            return True
        if self.kind.reduction_in_time:
            return True
        if not self.overlap:
            return False
        last = D - (-(-D // t) - 1) * t
        return t >= self.R and last >= self.R

    def orders_for(self, tiles: dict[str, int]) -> list[str]:
        """Loop orders that differ in effect: loops that run once are dropped, and the order of
        what remains is kept once. os keeps a chunked reduction innermost."""
        n = {d: -(-self.D[d] // tiles[d]) for d in DIMS}
        seen, out = set(), []
        for order in ORDERS:
            if self.kind.reduction_in_time and n["K"] > 1 and order[-1] != "K":
                continue
            key = "".join(d for d in order if n[d] > 1)
            if key not in seen:
                seen.add(key)
                out.append(order)
        return out

    def check(self, m: Mapping) -> None:
        """Refuse a nest the array cannot run (pinned mappings come through here)."""
        for d in DIMS:
            t, D, b = m.tile(d), self.D[d], self.block[d]
            if t < 1:
                raise field_error(f"mapper.tiles.{d}", f"must be >= 1, got {t}")
            if d == self.kind.time_dim:
                if not self.chunk_ok(D, min(t, D)):
                    raise field_error(f"mapper.tiles.{d}", f"{t} cuts the streamed dimension {d}={D} of "
                                      f"{self.kind.name} into chunks shorter than the {self.R} rows (or without "
                                      "fold overlap), which would change the array's compute cycles")
            elif t < D and t % b:
                raise field_error(f"mapper.tiles.{d}", f"{t} is not a multiple of the array's {b} "
                                  f"({self.kind.name} maps {d} onto the array) nor the whole {d}={D}")
        if sorted(m.order) != sorted(DIMS):
            raise field_error("mapper.order", f"expected a permutation of MNK, got {m.order!r}")
        if self.kind.reduction_in_time and -(-self.D["K"] // m.tile_K) > 1 and m.order[-1] != "K":
            raise field_error("mapper.order",
                              f"{self.kind.name} holds partial sums in the PEs: a chunked K must be innermost")

    def candidates(self) -> list[Mapping]:
        """Every nest of the space, pinned sizes and order respected."""
        mc = self.cfg.mapper
        pinned = {"M": mc.tiles.M, "N": mc.tiles.N, "K": mc.tiles.K}
        every = {d: self.all_tiles(d) for d in DIMS}
        small = math.prod(len(v) for v in every.values()) <= EXHAUSTIVE
        sizes = {d: ([min(pinned[d], self.D[d])] if pinned[d] else every[d] if small else self.tile_candidates(d))
                 for d in DIMS}
        out = []
        over: list[dict] = []
        fewest = MAX_TILES + 1
        for tm in sizes["M"]:
            for tn in sizes["N"]:
                for tk in sizes["K"]:
                    tiles = {"M": tm, "N": tn, "K": tk}
                    tiles_n = math.prod(-(-self.D[d] // tiles[d]) for d in DIMS)
                    if tiles_n > MAX_TILES and not any(pinned.values()):
                        continue
                    if not self.legal(tiles):
                        continue
                    if tiles_n > mc.max_tiles and not any(pinned.values()):
                        fewest = min(fewest, tiles_n)
                        over.append(tiles)
                        continue
                    orders = [mc.order] if mc.order else self.orders_for(tiles)
                    out.extend(Mapping(tm, tn, tk, o) for o in orders)
        if not out:  # every nest has more than mapper.max_tiles tiles: those with the fewest
            for tiles in over:
                if math.prod(-(-self.D[d] // tiles[d]) for d in DIMS) == fewest and self.legal(tiles):
                    out.extend(Mapping(tiles["M"], tiles["N"], tiles["K"], o)
                               for o in ([mc.order] if mc.order else self.orders_for(tiles)))
        smallest = math.prod(-(-self.D[d] // min(sizes[d])) for d in DIMS)
        if not out and not any(pinned.values()) and (not over or smallest > MAX_TILES):
            return []  # no nest the search may afford: the plan falls back to the legacy schedule
        if not out:  # nothing fits: the smallest tiles, streaming through the buffers
            tiles = {d: min(sizes[d]) for d in DIMS}
            out = [Mapping(tiles["M"], tiles["N"], tiles["K"], mc.order or o) for o in
                   ([mc.order] if mc.order else self.orders_for(tiles))]
        return out

    def candidate_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The nests of :meth:`candidates` as arrays ``(tile_M, tile_N, tile_K, order index into
        ORDERS)``, built with one array pass over the tile-size grid instead of a loop per size
        (the search's hot path; the tests hold it to :meth:`candidates`)."""
        mc = self.cfg.mapper
        pinned = {"M": mc.tiles.M, "N": mc.tiles.N, "K": mc.tiles.K}
        free = not any(pinned.values())
        every = self._all_tiles_count_small()
        sizes = {d: ([min(pinned[d], self.D[d])] if pinned[d] else every[d] if every else self.tile_candidates(d))
                 for d in DIMS}
        tm, tn, tk = (g.ravel() for g in np.meshgrid(*(np.asarray(sizes[d], dtype=np.int64) for d in DIMS),
                                                      indexing="ij"))
        t = {"M": tm, "N": tn, "K": tk}
        n = {d: -(-self.D[d] // t[d]) for d in DIMS}
        tiles_n = n["M"] * n["N"] * n["K"]
        legal = self._legal_array(t)
        if free:
            legal &= tiles_n <= MAX_TILES
            over = legal & (tiles_n > mc.max_tiles)
        else:
            over = np.zeros_like(legal)
        ok = legal & ~over
        if not ok.any() and over.any():  # every nest has more than mapper.max_tiles tiles: the fewest
            ok = over & (tiles_n == tiles_n[over].min())
        if not ok.any():
            smallest = math.prod(-(-self.D[d] // min(sizes[d])) for d in DIMS)
            if free and (not over.any() or smallest > MAX_TILES):
                return tuple(np.zeros(0, dtype=np.int64) for _ in range(4))
            ok = (tm == min(sizes["M"])) & (tn == min(sizes["N"])) & (tk == min(sizes["K"]))
        sel = np.flatnonzero(ok)
        pattern = (n["M"][sel] > 1) * 4 + (n["N"][sel] > 1) * 2 + (n["K"][sel] > 1)
        present = set(pattern.tolist())
        per = [self._orders_by_pattern(p) if p in present else [] for p in range(8)]
        counts = np.array([len(o) for o in per], dtype=np.int64)[pattern]
        rep = np.repeat(sel, counts)
        order_idx = np.concatenate([np.asarray(per[p], dtype=np.int64) for p in pattern]) if sel.size \
            else np.zeros(0, dtype=np.int64)
        return tm[rep], tn[rep], tk[rep], order_idx

    def _orders_by_pattern(self, pattern: int) -> list[int]:
        """ORDERS indices of :meth:`orders_for` for tiles whose loops run more than once as the
        bits of ``pattern`` (M 4, N 2, K 1) say (or the pinned order)."""
        mc = self.cfg.mapper
        if mc.order:
            return [ORDERS.index(mc.order)] if mc.order in ORDERS else []
        probe = {d: (1 if pattern & bit else self.D[d]) for d, bit in zip(DIMS, (4, 2, 1))}
        return [ORDERS.index(o) for o in self.orders_for(probe)]

    def _legal_array(self, t: dict[str, np.ndarray]) -> np.ndarray:
        """:meth:`legal` over arrays of tile sizes."""
        kind = self.kind
        one_fold = (t[kind.row_dim] <= self.R) & (t[kind.col_dim] <= self.C)
        ok = np.ones(t["M"].shape, dtype=bool)
        for op in ("A", "B"):
            resident, reusable = self._fits_array(op, t)
            ok &= resident | reusable | one_fold
        if kind.reduction_in_time:
            ok &= ~((t["K"] < self.D["K"]) & ((t[kind.row_dim] > self.R) | (t[kind.col_dim] > self.C)))
        out_whole = self.D["M"] * self.D["N"] * self.acc <= self.full["Out"]
        if not kind.reduction_in_time and not out_whole:
            big = np.minimum(t["M"], self.D["M"]) * np.minimum(t["N"], self.D["N"]) * self.acc > self.half["Out"]
            ok &= ~(big & (t["K"] > self.R) & (t["K"] < self.D["K"]))
            if self.D["K"] > self.R:
                ok &= ~(big & (t["K"] >= self.D["K"]))
        return ok

    def _fits_array(self, op: str, t: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_fits` over arrays of tile sizes (the resident flag is the same for all)."""
        D = self.D
        if op == "Out":
            whole = D["M"] * D["N"] * self.acc <= self.full["Out"]
            tile = np.minimum(t["M"], D["M"]) * np.minimum(t["N"], D["N"]) * self.acc
        elif op == "A":
            whole = self.operand_total("A") <= self.full["A"]
            tile = self.a_bytes(np.minimum(t["M"], D["M"]), np.minimum(t["K"], D["K"]))
        else:
            whole = self.operand_total("B") <= self.full["B"]
            tile = np.ceil(np.minimum(t["K"], D["K"]) * np.minimum(t["N"], D["N"]) * self.width["B"]).astype(np.int64)
        return np.full(tile.shape, whole, dtype=bool), tile <= self.half[op]

    def legal(self, tiles: dict[str, int]) -> bool:
        """Nests the tile model describes faithfully: an operand tile that spans several folds
        fits its buffer half (or the whole operand its buffer), since the folds reuse it; a
        chunked os reduction leaves one fold per tile (the PEs hold its partial sums until its
        last chunk); an output tile that fits nowhere holds one block of the reduction (its
        partial sums spill after every fold)."""
        kind = self.kind
        one_fold = tiles[kind.row_dim] <= self.R and tiles[kind.col_dim] <= self.C
        probe = Mapping(tiles["M"], tiles["N"], tiles["K"], "MNK")
        for op in ("A", "B"):  # a tile reused across its folds must be on chip to be reused
            resident, reusable = self._fits(op, probe)
            if not (resident or reusable or one_fold):
                return False
        if kind.reduction_in_time and tiles["K"] < self.D["K"]:
            if tiles[kind.row_dim] > self.R or tiles[kind.col_dim] > self.C:
                return False
        out_whole = self.D["M"] * self.D["N"] * self.acc <= self.full["Out"]
        out_tile = min(tiles["M"], self.D["M"]) * min(tiles["N"], self.D["N"]) * self.acc
        if not kind.reduction_in_time and not out_whole and out_tile > self.half["Out"] and tiles["K"] > self.R \
                and tiles["K"] < self.D["K"]:
            return False
        if not kind.reduction_in_time and not out_whole and out_tile > self.half["Out"] and self.D["K"] > self.R \
                and tiles["K"] >= self.D["K"]:
            return False
        return True

    # ------------------------------------------------------------ closed-form traffic
    def _fits(self, op: str, m: Mapping) -> tuple[bool, bool]:
        """``(resident, reusable)``: the whole operand stays in its whole buffer; a tile of it
        fits the half that double buffering leaves."""
        key = (op, m.tile_M, m.tile_N, m.tile_K)
        if key not in self._memo:
            self._memo[key] = self._fits_uncached(op, m)
        return self._memo[key]

    def _fits_uncached(self, op: str, m: Mapping) -> tuple[bool, bool]:
        if op == "Out":
            whole = self.D["M"] * self.D["N"] * self.acc
            tile = min(m.tile_M, self.D["M"]) * min(m.tile_N, self.D["N"]) * self.acc
            return whole <= self.full["Out"], tile <= self.half["Out"]
        if op == "A":
            tile = self.a_tile(min(m.tile_M, self.D["M"]), min(m.tile_K, self.D["K"]))
        else:
            tile = math.ceil(min(m.tile_K, self.D["K"]) * min(m.tile_N, self.D["N"]) * self.width["B"])
        return self.operand_total(op) <= self.full[op], tile <= self.half[op]
