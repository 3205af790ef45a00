"""The mapper: the SRAM-level loop nest of one GEMM on one dataflow, searched apart from its cost.

A *nest* (:class:`Mapping`) cuts the GEMM ``Out[M x N] = A[M x K] . B[K x N]`` into tiles of
``tile_M x tile_N x tile_K`` elements and visits them in a loop ``order`` (outermost first,
a permutation of ``MNK``). The two spatial dimensions of the dataflow (``os``: M, N; ``ws``:
K, N; ``is``: K, M) are tiled in whole array blocks (``R`` or ``C``), so a tile is a block of
folds; the streamed (time) dimension is cut into *chunks* of at least ``R`` elements, so that
with fold overlap the re-preload (``ws``/``is``) hides behind the chunk's streaming as it hides
behind a whole fold's, and the array's compute cycles of a dense GEMM never change. For
``os`` the streamed dimension is the reduction held in the PEs, so its chunks stay innermost
(the array sees one uninterrupted fold; only the buffer is refilled in pieces).

Like ZigZag's stages, three jobs are kept apart:

* :class:`NestSpace` *enumerates* the legal nests (every legal tile size on small GEMMs, else
  powers of two of the block, halves, thirds and the whole dimension; loop orders less those
  that are equivalent because a loop runs once) and *prunes* those the tile model cannot run;
* :func:`evaluate` is the *cost model*: it builds the tile schedule and event counts of one nest
  (the same :class:`~sparsesim.hardware.schedule.TileSchedule` the run then times with SimPy) and
  times it with the exact event recurrence of that SimPy pipeline
  (:func:`~sparsesim.hardware.kernels.pipeline_cycles`, Numba, held to SimPy by the tests);
* :func:`search` *picks*: candidates ranked by a closed-form lower bound of the objective are
  evaluated in that order until the next bound cannot beat the best (branch and bound, at most
  ``mapper.max_evaluations`` evaluations), so the chosen nest is the best of all legal nests
  when the budget is not exhausted (the tests check it against brute force).

The legacy schedule (``mapper.policy: legacy``) competes with the searched nest in
:meth:`~sparsesim.dataflows.base.SystolicDataflow.plan`, unless a nest is pinned.

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

Communication bounds (every row carries both; derivation in :func:`dram_bounds` and
``docs/mapper.md``): the compulsory bytes (each operand read once, the output written once)
and the I/O lower bound of blocked matrix multiplication for these partitioned buffers.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from sparsesim.hardware.config import AccelConfig, read_mapping
from sparsesim.hardware.energy import energy_breakdown_pj, energy_table
from sparsesim.hardware.kernels import nest_tiles, pipeline_cycles
from sparsesim.hardware.schedule import EventCounts, TileSchedule
from sparsesim.core.errors import field_error
from sparsesim.workloads.gemm import Gemm

DIMS = ("M", "N", "K")
OPERAND_DIMS = {"A": ("M", "K"), "B": ("K", "N"), "Out": ("M", "N")}
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

    def __init__(self, df, gemm: Gemm, cfg: AccelConfig, stream: np.ndarray | None = None,
                 scale_a: float = 1.0, scale_b: float = 1.0, out_reserved_bytes: int = 0) -> None:
        self.df, self.gemm, self.cfg = df, gemm, cfg
        self.R, self.C = cfg.array.rows, cfg.array.cols
        self.D = {"M": gemm.M, "N": gemm.N, "K": gemm.K}
        self.block = {df.row_dim: self.R, df.col_dim: self.C, df.time_dim: 1}
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
        fr, fc = -(-self.D[df.row_dim] // self.R), -(-self.D[df.col_dim] // self.C)
        if grid_stream is None:
            grid_stream = np.full((fr, fc), self.D[df.time_dim], dtype=np.int64)
        self.stream = np.ascontiguousarray(grid_stream, dtype=np.int64)
        self.dense_stream = stream is None
        spacing, epilogue = df.fold_cycles(self.stream, self.R, self.C, self.overlap)
        self.spacing = np.ascontiguousarray(np.broadcast_to(spacing, self.stream.shape), dtype=np.int64)
        self.epilogue = int(epilogue)
        self.compute_total = int(self.spacing.sum()) + self.epilogue
        self._memo: dict = {}  # per-space cache of tile sizes -> operand fits and bytes
        self._total = {op: self._operand_total(op) for op in ("A", "B", "Out")}

    # ------------------------------------------------------------ operand sizes
    def a_bytes(self, ext_m: np.ndarray, ext_k: np.ndarray) -> np.ndarray:
        """DRAM bytes of A tiles with the given (broadcast) extents: the im2col block, or for a
        convolution the feature-map pixels it needs, whichever is smaller."""
        dense = ext_m * ext_k * self.width["A"]
        if self.conv is None:
            return np.ceil(dense).astype(np.int64)
        return np.ceil(np.minimum(dense, self.conv.footprint(ext_m, ext_k) * self.fm_width)).astype(np.int64)

    def a_tile(self, tm: int, tk: int) -> int:
        """Bytes of one A tile of ``tm x tk`` (cached per space)."""
        key = ("a", tm, tk)
        if key not in self._memo:
            self._memo[key] = int(self.a_bytes(np.array(tm), np.array(tk)))
        return self._memo[key]

    def operand_total(self, op: str) -> int:
        """Bytes of a whole operand as stored (output at element width)."""
        return self._total[op]

    def _operand_total(self, op: str) -> int:
        M, N, K = self.D["M"], self.D["N"], self.D["K"]
        if op == "A":
            return int(self.a_bytes(np.array(M), np.array(K)))
        if op == "B":
            return int(math.ceil(K * N * self.width["B"]))
        return M * N * self.elem

    # ------------------------------------------------------------ candidates
    def tile_candidates(self, dim: str) -> list[int]:
        """Tile sizes along ``dim``: whole blocks (powers of two and equal splits) and the whole."""
        D, b = self.D[dim], self.block[dim]
        if dim == self.df.time_dim:
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
        if dim != self.df.time_dim:
            return sorted({min(c * b, D) for c in range(1, -(-D // b) + 1)})
        if self.df.time_dim != "K" and not self.overlap:
            return [D]
        return [t for t in range(1, D + 1) if t == D or (t >= (self.R if dim != "K" else 1) and self.chunk_ok(D, t))]

    def _all_tiles_count_small(self) -> dict[str, list[int]] | None:
        """:meth:`all_tiles` of every dimension if their combinations number at most EXHAUSTIVE,
        else None (without listing a long streamed dimension size by size)."""
        lengths = {d: -(-self.D[d] // self.block[d]) for d in DIMS if d != self.df.time_dim}
        if math.prod(lengths.values()) > EXHAUSTIVE:
            return None
        every = {d: self.all_tiles(d) for d in lengths}
        tdim = self.df.time_dim
        D = self.D[tdim]
        if tdim != "K" and not self.overlap:
            every[tdim] = [D]
        elif tdim == "K":
            every[tdim] = list(range(1, D + 1))
        else:  # ws/is: every chunk, the last too, at least R long
            t = np.arange(self.R, D + 1, dtype=np.int64)
            last = D - (-(-D // t) - 1) * t
            every[tdim] = sorted(set(t[last >= self.R].tolist()) | {D})
        return every if math.prod(len(v) for v in every.values()) <= EXHAUSTIVE else None

    def _chunk_candidates(self, D: int) -> list[int]:
        if self.df.time_dim != "K" and not self.overlap:
            return [D]  # without fold overlap every chunk would pay its own fill and drain
        lo = self.R if self.df.time_dim != "K" else 1
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
        if self.df.time_dim == "K":
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
            if self.df.time_dim == "K" and n["K"] > 1 and order[-1] != "K":
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
            if d == self.df.time_dim:
                if not self.chunk_ok(D, min(t, D)):
                    raise field_error(f"mapper.tiles.{d}", f"{t} cuts the streamed dimension {d}={D} of "
                                      f"{self.df.name} into chunks shorter than the {self.R} rows (or without "
                                      "fold overlap), which would change the array's compute cycles")
            elif t < D and t % b:
                raise field_error(f"mapper.tiles.{d}", f"{t} is not a multiple of the array's {b} "
                                  f"({self.df.name} maps {d} onto the array) nor the whole {d}={D}")
        if sorted(m.order) != sorted(DIMS):
            raise field_error("mapper.order", f"expected a permutation of MNK, got {m.order!r}")
        if self.df.time_dim == "K" and -(-self.D["K"] // m.tile_K) > 1 and m.order[-1] != "K":
            raise field_error("mapper.order", "os holds partial sums in the PEs: a chunked K must be innermost")

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
        df = self.df
        one_fold = (t[df.row_dim] <= self.R) & (t[df.col_dim] <= self.C)
        ok = np.ones(t["M"].shape, dtype=bool)
        for op in ("A", "B"):
            resident, reusable = self._fits_array(op, t)
            ok &= resident | reusable | one_fold
        if df.time_dim == "K":
            ok &= ~((t["K"] < self.D["K"]) & ((t[df.row_dim] > self.R) | (t[df.col_dim] > self.C)))
        out_whole = self.D["M"] * self.D["N"] * self.acc <= self.full["Out"]
        if df.time_dim != "K" and not out_whole:
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
        df = self.df
        one_fold = tiles[df.row_dim] <= self.R and tiles[df.col_dim] <= self.C
        probe = Mapping(tiles["M"], tiles["N"], tiles["K"], "MNK")
        for op in ("A", "B"):  # a tile reused across its folds must be on chip to be reused
            resident, reusable = self._fits(op, probe)
            if not (resident or reusable or one_fold):
                return False
        if df.time_dim == "K" and tiles["K"] < self.D["K"]:
            if tiles[df.row_dim] > self.R or tiles[df.col_dim] > self.C:
                return False
        out_whole = self.D["M"] * self.D["N"] * self.acc <= self.full["Out"]
        out_tile = min(tiles["M"], self.D["M"]) * min(tiles["N"], self.D["N"]) * self.acc
        if df.time_dim != "K" and not out_whole and out_tile > self.half["Out"] and tiles["K"] > self.R \
                and tiles["K"] < self.D["K"]:
            return False
        if df.time_dim != "K" and not out_whole and out_tile > self.half["Out"] and self.D["K"] > self.R \
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

    def _visits(self, op: str, m: Mapping, n: dict[str, int]) -> int:
        """How many times each tile of ``op`` is brought on chip (closed form of the loop nest)."""
        resident, reusable = self._fits(op, m)
        if resident:
            return 1
        deps = OPERAND_DIMS[op]
        if not reusable and op == "Out":
            return math.prod(n[d] for d in DIMS if d not in deps)
        inner = max((i for i, d in enumerate(m.order) if d in deps and n[d] > 1), default=-1)
        return math.prod(n[d] for d in m.order[:max(inner, 0)] if d not in deps) if inner >= 0 else 1

    def fetch_events(self, m: Mapping) -> int:
        """Fewest tiles that load something: the most tile fetches of any one operand."""
        n = {d: -(-self.D[d] // m.tile(d)) for d in DIMS}
        return max(self._visits(op, m, n) * math.prod(n[d] for d in OPERAND_DIMS[op]) for op in ("A", "B"))

    def traffic(self, m: Mapping) -> Traffic:
        n = {d: -(-self.D[d] // m.tile(d)) for d in DIMS}
        resident = tuple(op for op in ("A", "B", "Out") if self._fits(op, m)[0])
        # a resident conv input is its feature map once (halos shared by tiles stay on chip)
        read_a = self.operand_total("A") if "A" in resident else self._sum_a(m) * self._visits("A", m, n)
        read_b = self.operand_total("B") * self._visits("B", m, n)
        # a tile larger than its buffer half keeps what fits across consecutive uses and
        # refetches the rest each time (the legacy schedule's rule)
        tiles = math.prod(n.values())
        for op in ("A", "B"):
            if op not in resident and not self._fits(op, m)[1]:
                again = tiles // math.prod(n[d] for d in OPERAND_DIMS[op]) - self._visits(op, m, n)
                extra = again * self._sum_excess(op, m)
                read_a, read_b = (read_a + extra, read_b) if op == "A" else (read_a, read_b + extra)
        out_elems = self.D["M"] * self.D["N"]
        spills = self._visits("Out", m, n) - 1
        return Traffic(read_a, read_b, spills * out_elems * self.acc, out_elems * self.elem,
                       spills * out_elems * self.acc, resident)

    def _sum_excess(self, op: str, m: Mapping) -> int:
        """Bytes by which the tiles of ``op`` exceed its buffer half, summed over its tiles."""
        key = ("excess", op, m.tile_M, m.tile_N, m.tile_K)
        if key not in self._memo:
            em, en, ek = (_extents(self.D[d], m.tile(d)) for d in DIMS)
            if op == "A":
                sizes = self.a_bytes(em[:, None], ek[None, :])
            else:
                sizes = np.ceil(ek[:, None] * en[None, :] * self.width["B"]).astype(np.int64)
            self._memo[key] = int(np.maximum(sizes - self.half[op], 0).sum())
        return self._memo[key]

    def _sum_a(self, m: Mapping) -> int:
        """Bytes of all A tiles of the nest (more than A once where feature-map halos overlap)."""
        key = ("sum_a", m.tile_M, m.tile_K)
        if key not in self._memo:
            self._memo[key] = self._sum_a_uncached(m)
        return self._memo[key]

    def _sum_a_uncached(self, m: Mapping) -> int:
        em = _extents(self.D["M"], m.tile_M)
        ek = _extents(self.D["K"], m.tile_K)
        return int(self.a_bytes(em[:, None], ek[None, :]).sum())

    def first_last(self, m: Mapping) -> tuple[int, int]:
        """Bytes the first tile must load and the last tile must store (for the lower bound)."""
        tm, tn, tk = (min(m.tile(d), self.D[d]) for d in DIMS)
        first = self.a_tile(tm, tk) + math.ceil(tk * tn * self.width["B"])
        lm = self.D["M"] - (-(-self.D["M"] // tm) - 1) * tm
        ln = self.D["N"] - (-(-self.D["N"] // tn) - 1) * tn
        return first, lm * ln * self.elem


# ---------------------------------------------------------------- the cost model


def evaluate(space: NestSpace, m: Mapping, *, timed: bool = True) -> Evaluation:
    """Build the tile schedule and event counts of nest ``m`` and time it: the same pipeline
    as the run's SimPy timing (:mod:`sparsesim.hardware.timing`), by its exact event recurrence
    (:func:`~sparsesim.hardware.kernels.pipeline_cycles`, checked against SimPy in the tests).
    The per-tile loads, computes and stores come from one Numba pass over the tiles
    (:func:`~sparsesim.hardware.kernels.nest_tiles`; :func:`_evaluate_reference` is its NumPy twin)."""
    df, D = space.df, space.D
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
        space.operand_total("A"), space.spacing, m.tile(df.time_dim), D[df.time_dim],
        np.array([_fold_group(m.tile(df.row_dim), D[df.row_dim], space.R, space.spacing.shape[0]),
                  _fold_group(m.tile(df.col_dim), D[df.col_dim], space.C, space.spacing.shape[1])], dtype=np.int64),
        np.array([dim_id[df.row_dim], dim_id[df.col_dim], dim_id[df.time_dim]], dtype=np.int64))
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
    df, D = space.df, space.D
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
    tdim = df.time_dim
    cum = np.concatenate([[0], np.cumsum(ext[tdim])])
    sp = space.spacing[:, :, None]
    split = (sp * cum[None, None, :]) // D[tdim]
    chunk = np.diff(split, axis=2)  # (row folds, col folds, chunks)
    rows_per = max(1, m.tile(df.row_dim) // space.R) if m.tile(df.row_dim) < D[df.row_dim] else chunk.shape[0]
    cols_per = max(1, m.tile(df.col_dim) // space.C) if m.tile(df.col_dim) < D[df.col_dim] else chunk.shape[1]
    chunk = np.add.reduceat(chunk, np.arange(0, chunk.shape[0], rows_per), axis=0)
    chunk = np.add.reduceat(chunk, np.arange(0, chunk.shape[1], cols_per), axis=1)
    per_tile = chunk[idx[df.row_dim], idx[df.col_dim], idx[tdim]]
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
    and the energy of its counts over that time."""
    cfg = space.cfg
    cycles = space.compute_total if cfg.dram.ideal else pipeline_cycles(
        schedule.load_bytes, schedule.compute_cycles + schedule.ports, schedule.store_bytes,
        float(cfg.dram.bandwidth_bytes_per_cycle), int(cfg.dram.latency_cycles), int(schedule.epilogue_cycles))
    return cycles, _energy(space, counts, cycles)


def _energy(space: NestSpace, counts: EventCounts, cycles: int) -> float:
    """The part of the energy that depends on the nest: DRAM traffic and leakage over time
    (on-chip accesses per MAC do not depend on the tile sizes)."""
    table = energy_table(space.cfg.energy_table)
    parts = energy_breakdown_pj(counts, space.cfg, cycles, table)
    return parts["dram"] + parts["leakage"]


# ---------------------------------------------------------------- the search


def _cycles_bound(space: NestSpace, m: Mapping, traffic: Traffic) -> int:
    """A lower bound of the SimPy-timed cycles of a nest: the array cannot start before the
    first tile's operands arrive and the last store follows the last compute (drain included);
    the shared DRAM channel is busy for every byte moved."""
    cfg = space.cfg
    if cfg.dram.ideal:
        return space.compute_total
    bw, lat = cfg.dram.bandwidth_bytes_per_cycle, cfg.dram.latency_cycles
    first, last = space.first_last(m)
    chain = math.ceil(first / bw) + lat + space.compute_total + (math.ceil(last / bw) + lat if last else 0)
    # double buffering: tile t's load starts only after tile t-2 is consumed, so the loads,
    # latencies and computes of every other tile form a chain; the longer of the two chains
    # is at least their mean
    reads = traffic.read_a + traffic.read_b + traffic.read_psum
    fetches = space.fetch_events(m)
    pairs = (reads / bw + fetches * lat + space.compute_total - space.epilogue) / 2
    return max(chain, math.ceil(traffic.total / bw), math.floor(pairs))


_ORDER_POS = np.array([[order.index(d) for d in DIMS] for order in ORDERS], dtype=np.int64)
"""Position of M, N, K (columns) in each loop order of ORDERS (rows), outermost 0."""
_ORDER_RANK = np.array([sorted(ORDERS).index(o) for o in ORDERS], dtype=np.int64)
"""Rank of each loop order of ORDERS as text (the search's tie-break compares orders as text)."""


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
    if cfg.dram.ideal:
        bound = np.full(tm.shape, space.compute_total, dtype=np.int64)
    else:
        bw, lat = cfg.dram.bandwidth_bytes_per_cycle, cfg.dram.latency_cycles
        ctm, ctn, ctk = (np.minimum(t[d], D[d]) for d in DIMS)
        first = space.a_bytes(ctm, ctk) + b_bytes(ctk, ctn)
        last = (D["M"] - (n["M"] - 1) * ctm) * (D["N"] - (n["N"] - 1) * ctn) * space.elem
        chain = np.ceil(first / bw).astype(np.int64) + lat + space.compute_total + np.where(
            last > 0, np.ceil(last / bw).astype(np.int64) + lat, 0)
        fetches = np.maximum(vis["A"] * n["M"] * n["K"], vis["B"] * n["K"] * n["N"])
        pairs = (reads / bw + fetches * lat + space.compute_total - space.epilogue) / 2
        bound = np.maximum(np.maximum(chain, np.ceil(total / bw).astype(np.int64)), np.floor(pairs).astype(np.int64))
    return {"bound": bound, "total": total, "reads": reads, "writes": writes, "tiles": tiles}


def search(space: NestSpace, *, reference: bool = False) -> Evaluation | None:
    """The best nest of ``space`` for ``mapper.objective``.

    ``cycles``: fewest cycles, where nests within ``mapper.cycles_tolerance`` of the fastest
    count as equally fast and the one moving the fewest DRAM bytes (then the fewest tiles)
    among them wins (a compute-bound GEMM has many nests of the same speed; fewer bytes is less
    energy). ``dram_bytes``: fewest bytes (closed form), ties to fewer cycles. ``energy``:
    least nest-dependent energy (DRAM traffic plus leakage over the run).

    Branch and bound: candidates are ranked by a closed-form lower bound of the objective
    (:func:`_cycles_bound`) and evaluated exactly in that order until the next bound cannot
    beat the best found, at most ``mapper.max_evaluations`` of them (so on small spaces the
    result is the best of all legal nests; on large ones the budget can end the search first).

    The candidates are scored in one array pass (:func:`score`) and ranked with ``np.lexsort``
    on the same keys as the reference (:func:`_search_reference`, per-nest scoring and Python
    sorts; ``reference=True`` runs it), so both pick the same nest (the tests check it); only
    the nests evaluated exactly become :class:`Mapping` objects.
    """
    if reference:
        return _search_reference(space)
    mc = space.cfg.mapper
    budget = mc.max_evaluations
    tm, tn, tk, oi = space.candidate_table()
    if not tm.size:
        return None
    s = score(space, tm, tn, tk, oi)
    bound, total, tiles = s["bound"], s["total"], s["tiles"]
    tie = (tk, tn, tm, _ORDER_RANK[oi], tiles)  # np.lexsort keys, last primary: tiles, order, M, N, K
    done: dict[Mapping, Evaluation] = {}

    def exact(i: int) -> Evaluation:
        m = Mapping(int(tm[i]), int(tn[i]), int(tk[i]), ORDERS[oi[i]])
        if m not in done:
            done[m] = evaluate(space, m)
        return done[m]

    def ranked(keys: tuple, pool: np.ndarray | None = None) -> list[int]:
        """Candidate indices sorted by ``keys`` (primary first), then the tie keys."""
        idx = np.arange(tm.size) if pool is None else np.flatnonzero(pool)
        order = np.lexsort(tuple(k[idx] for k in tie + tuple(reversed(keys))))
        return idx[order].tolist()

    def fastest_of(pool: np.ndarray | None) -> Evaluation:
        best = None
        for i in ranked((bound, total), pool):
            if best is not None and (int(bound[i]) > best.cycles or len(done) >= budget):
                break
            ev = exact(i)
            if best is None or (ev.cycles, ev.dram_bytes, len(ev.schedule)) < (best.cycles, best.dram_bytes,
                                                                               len(best.schedule)):
                best = ev
        return best

    if mc.objective == "dram_bytes":
        return fastest_of(total == total.min())
    if mc.objective == "energy":
        energy = np.array([_energy(space, EventCounts(dram_read_bytes=r, dram_write_bytes=w), b) for r, w, b in
                           zip(s["reads"].tolist(), s["writes"].tolist(), bound.tolist())], dtype=np.float64)
        best = None
        for i in ranked((energy, total)):
            if best is not None and (energy[i] > best.energy_pj or len(done) >= budget):
                break
            ev = exact(i)
            if best is None or (ev.energy_pj, ev.dram_bytes) < (best.energy_pj, best.dram_bytes):
                best = ev
        return best
    # cycles: the fastest time first, then the fewest bytes (and tiles) within the tolerance
    fastest = fastest_of(None)
    limit = fastest.cycles * (1.0 + mc.cycles_tolerance)
    own = (fastest.dram_bytes, len(fastest.schedule))
    spent = 0
    for i in ranked((total, tiles), bound <= limit):
        if (int(total[i]), int(tiles[i])) >= own or spent >= budget:
            break
        m = Mapping(int(tm[i]), int(tn[i]), int(tk[i]), ORDERS[oi[i]])
        spent += m not in done
        ev = exact(i)
        if ev.cycles <= limit:
            return ev
    return fastest


def _search_reference(space: NestSpace) -> Evaluation | None:
    """:func:`search` as first written: every candidate scored one nest at a time and ranked
    with Python sorts (slow; the tests hold the fast path to it)."""
    cfg = space.cfg
    mc = cfg.mapper
    budget = mc.max_evaluations
    rows = _rows_reference(space)
    if not rows:
        return None
    done: dict[Mapping, Evaluation] = {}

    def exact(m: Mapping) -> Evaluation:
        if m not in done:
            done[m] = evaluate(space, m)
        return done[m]

    def tie(r):
        return (r[2], r[3].order, r[3].tile_M, r[3].tile_N, r[3].tile_K)

    def fastest_of(pool) -> Evaluation:
        best = None
        for r in sorted(pool, key=lambda r: (r[0], r[1], tie(r))):
            if best is not None and (r[0] > best.cycles or len(done) >= budget):
                break
            ev = exact(r[3])
            if best is None or (ev.cycles, ev.dram_bytes, len(ev.schedule)) < (best.cycles, best.dram_bytes,
                                                                               len(best.schedule)):
                best = ev
        return best

    if mc.objective == "dram_bytes":
        least = min(r[1] for r in rows)
        return fastest_of([r for r in rows if r[1] == least])
    if mc.objective == "energy":
        bounds = {r[3]: _energy(space, EventCounts(dram_read_bytes=r[4], dram_write_bytes=r[5]), r[0]) for r in rows}

        def energy_bound(r):
            return bounds[r[3]]
        best = None
        for r in sorted(rows, key=lambda r: (energy_bound(r), r[1], tie(r))):
            if best is not None and (energy_bound(r) > best.energy_pj or len(done) >= budget):
                break
            ev = exact(r[3])
            if best is None or (ev.energy_pj, ev.dram_bytes) < (best.energy_pj, best.dram_bytes):
                best = ev
        return best
    # cycles: the fastest time first, then the fewest bytes (and tiles) within the tolerance
    fastest = fastest_of(rows)
    limit = fastest.cycles * (1.0 + mc.cycles_tolerance)
    own = (fastest.dram_bytes, len(fastest.schedule))
    spent = 0
    for r in sorted((r for r in rows if r[0] <= limit), key=lambda r: (r[1], r[2], tie(r))):
        if (r[1], r[2]) >= own or spent >= budget:
            break
        spent += r[3] not in done
        ev = exact(r[3])
        if ev.cycles <= limit:
            return ev
    return fastest


def _rows(space: NestSpace) -> list[tuple]:
    """``(cycle bound, total bytes, tiles, nest, read bytes, write bytes)`` of every candidate,
    scored in one array pass."""
    tm, tn, tk, oi = space.candidate_table()
    if not tm.size:
        return []
    s = score(space, tm, tn, tk, oi)
    nests = [Mapping(a, b, c, ORDERS[o]) for a, b, c, o in zip(tm.tolist(), tn.tolist(), tk.tolist(), oi.tolist())]
    return list(zip(s["bound"].tolist(), s["total"].tolist(), s["tiles"].tolist(), nests, s["reads"].tolist(),
                    s["writes"].tolist()))


def _rows_reference(space: NestSpace) -> list[tuple]:
    """:func:`_rows` one nest at a time with the per-nest closed forms (the slow reference)."""
    rows = []
    for m in space.candidates():
        tr = space.traffic(m)
        tiles = math.prod(-(-space.D[d] // m.tile(d)) for d in DIMS)
        rows.append((_cycles_bound(space, m, tr), tr.total, tiles, m, tr.read_a + tr.read_b + tr.read_psum,
                     tr.write_out + tr.write_spill))
    return rows


@lru_cache(maxsize=8192)
def _search_cached(df_name: str, gemm: Gemm, cfg: AccelConfig, stream_key: tuple | None,
                   scale_a: float, scale_b: float, out_reserved: int) -> Mapping:
    from sparsesim.dataflows.base import DATAFLOWS

    stream = None
    if stream_key is not None:
        shape, length = stream_key
        stream = np.full(shape, length, dtype=np.int64)
    space = NestSpace(DATAFLOWS.get(df_name), gemm, cfg, stream, scale_a, scale_b, out_reserved)
    best = search(space)
    return None if best is None else best.mapping


def pinned(cfg: AccelConfig, space: NestSpace) -> bool:
    """Whether the config or a mapping file pins this GEMM's nest (then nothing competes)."""
    mc = cfg.mapper
    return bool(mc.order or mc.tiles.M or mc.tiles.N or mc.tiles.K or _from_file(space) is not None)


def pick_plan(space: NestSpace, plans: list):
    """The best of whole plans (the searched nest and the legacy schedules) by the same
    objective and rules as :func:`search`."""
    cfg = space.cfg
    mc = cfg.mapper

    def cycles(p) -> int:
        s = p.schedule
        if cfg.dram.ideal:
            return s.compute_total_cycles
        return pipeline_cycles(s.load_bytes, s.compute_cycles + s.ports, s.store_bytes, float(cfg.dram.bandwidth_bytes_per_cycle),
                               int(cfg.dram.latency_cycles), int(s.epilogue_cycles))

    scored = [(cycles(p), p.counts.dram_read_bytes + p.counts.dram_write_bytes, i, p) for i, p in enumerate(plans)]
    if mc.objective == "dram_bytes":
        return min(scored, key=lambda r: (r[1], r[0], r[2]))[3]
    if mc.objective == "energy":
        return min(scored, key=lambda r: (_energy(space, r[3].counts, r[0]), r[1], r[2]))[3]
    limit = min(r[0] for r in scored) * (1.0 + mc.cycles_tolerance)
    return min((r for r in scored if r[0] <= limit), key=lambda r: (r[1], r[0], r[2]))[3]


def choose(space: NestSpace) -> Evaluation | None:
    """The nest the run uses: pinned by the mapping file or config, else searched (cached by
    shape, hardware, dataflow and sparse sizes)."""
    pinned = _from_file(space)
    if pinned is not None:
        space.check(pinned)
        return evaluate(space, pinned, timed=False)
    mc = space.cfg.mapper
    if mc.order and all((mc.tiles.M, mc.tiles.N, mc.tiles.K)):
        m = Mapping(min(mc.tiles.M, space.D["M"]), min(mc.tiles.N, space.D["N"]), min(mc.tiles.K, space.D["K"]),
                    mc.order)
        space.check(m)
        return evaluate(space, m, timed=False)
    for d, t in (("M", mc.tiles.M), ("N", mc.tiles.N), ("K", mc.tiles.K)):
        if t:
            probe = {x: space.D[x] for x in DIMS}
            probe[d] = min(t, space.D[d])
            space.check(Mapping(probe["M"], probe["N"], probe["K"], mc.order or "MNK"))
    # A sparse GEMM is searched with its stored sizes (rounded up to 1/8) and dense streaming,
    # so it shares the search of its dense twin where the sizes agree (zero-skipping without
    # compression); its real per-fold stream lengths are evaluated in the chosen nest.
    stream_key = None
    m = _search_cached(space.df.name, dataclasses.replace(space.gemm, count=1), search_hardware(space.cfg), stream_key,
                       _rounded(space.width["A"] / space.elem), _rounded(space.width["B"] / space.elem),
                       space.cfg.buffers.out.size_bytes - space.full["Out"])
    if m is None:  # no affordable nest (more than MAX_TILES tiles in every one)
        return None
    return evaluate(space, m, timed=False)  # the run times it


def search_hardware(cfg: AccelConfig) -> AccelConfig:
    """The config as the search cache key: the fields a dense-streamed search never reads are
    set to fixed values, so runs that differ only there share their searches (the sparsity
    features, names, and the array's lane organisation, sync window, N:M ratios and dataflow
    list, which act only on sparse streams and the choice of dataflow, never on a nest's
    dense-streamed schedule, bytes, cycles or energy)."""
    array = dataclasses.replace(cfg.array, lanes="systolic", sync_window_steps=1, nm_ratios=(), dataflows=())
    return dataclasses.replace(cfg, sparsity=(), name="", description="", array=array)


def _rounded(scale: float) -> float:
    """A stored-size ratio rounded up to 1/8 (a search key; never below the real size, so the
    searched tiles still fit)."""
    return math.ceil(scale * 8) / 8


def _from_file(space: NestSpace) -> Mapping | None:
    """The nest a mapping file pins for this GEMM shape and dataflow, if any.

    File format (YAML)::

        mappings:
          - {M: 12544, N: 64, K: 147, dataflow: ws, order: NMK, tiles: {M: 1024, N: 64, K: 147}}

    ``dataflow`` may be omitted (any dataflow); shapes not listed are searched.
    """
    path = space.cfg.mapper.file
    if not path:
        return None
    data = _read_mapping_file(path)
    g = space.gemm
    for i, entry in enumerate(data):
        if (entry["M"], entry["N"], entry["K"]) == (g.M, g.N, g.K) and entry.get("dataflow", space.df.name) == space.df.name:
            t = entry["tiles"]
            return Mapping(min(int(t["M"]), g.M), min(int(t["N"]), g.N), min(int(t["K"]), g.K), str(entry["order"]))
    return None


@lru_cache(maxsize=16)
def _read_mapping_file(path: str) -> tuple:
    data = read_mapping(Path(path))
    entries = data.get("mappings")
    if not isinstance(entries, list):
        raise field_error("mapper.file", f"{path}: expected a `mappings:` list")
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not {"M", "N", "K", "order", "tiles"} <= set(e) or not isinstance(e["tiles"], dict) \
                or not {"M", "N", "K"} <= set(e["tiles"]):
            raise field_error("mapper.file", f"{path}: mappings[{i}] needs M, N, K, order and tiles: {{M, N, K}}")
    return tuple(entries)


# ---------------------------------------------------------------- bounds


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
    compulsory = space.operand_total("A") + space.operand_total("B") + space.operand_total("Out")
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
