"""Shared tiling and scheduling of a GEMM on a systolic array; the dataflow registry.

A dataflow is a *mapping*: which GEMM dimension goes to the PE rows, which to the columns,
and which is streamed through time (docs/design.md section 3.2):

=====  ========  ========  ===========  ================================================
name   rows      cols      time         stationary in the PEs
=====  ========  ========  ===========  ================================================
os     M         N         K            outputs (accumulate in place, drained after)
ws     K         N         M            weights ``B`` (preloaded, ``R`` cycles)
is     K         M         N            inputs ``A`` (preloaded, ``R`` cycles)
=====  ========  ========  ===========  ================================================

The GEMM is cut into *folds*, one per (row block, column block), visited outer-by-inner:
``os`` walks M blocks outside and N blocks inside; ``ws`` N outside, K inside; ``is`` M
outside, K inside, so ``ws``/``is`` accumulate partial sums over the inner K blocks.

Cycles of one fold with ``L`` elements streamed (SCALE-Sim v3 convention, every fold
occupying the full ``R x C`` array even at the edges): ``P + L + R + C - 2`` where ``P`` is the
preload (``R`` for ``ws``/``is``, ``0`` for ``os``) and ``R + C - 2`` the skew of filling and
draining the diagonal wavefront.

With ``array.fold_overlap`` (default) consecutive folds pipeline as in a real array: the next
fold's data enters right behind the current fold's last element, so only the first fill and
the last drain are paid, and a fold occupies the array for ``max(L, R)`` cycles (the preload
of the next stationary block, or the drain of the finished output block, takes ``R`` cycles
through the array and is hidden behind streaming when ``L >= R``; this assumes double-buffered
PE registers, as TPU-style arrays have). Without overlap, every fold pays its own fill and
drain, which reproduces SCALE-Sim v3 exactly.

Memory traffic follows from the buffers: each operand buffer is double-buffered, so half of
it holds the working set. An operand block reused across the inner loop stays on chip if it
fits, otherwise what does not fit is fetched again each time; an operand reused across the
outer loop keeps the part that fits resident ("pin what fits") and refetches the rest; partial
sums that do not fit in the output buffer spill to DRAM and are read back.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from sparsesim import mapping
from sparsesim.hardware.config import AccelConfig
from sparsesim.hardware.dataflow_kind import DataflowKind
from sparsesim.hardware.kernels import pack_tiles
from sparsesim.hardware.schedule import EventCounts, TileSchedule
from sparsesim.dataflows.sparse import SparseWork, sparse_work
from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import Gemm
from sparsesim.core.registry import Registry

MAX_FOLDS = 10_000_000
"""Largest fold grid planned for one GEMM (its per-fold arrays take about 400 bytes a fold)."""

DATAFLOWS: Registry = Registry("dataflow")
"""Every dataflow, by name (``os``, ``ws``, ``is``, ...)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A GEMM mapped onto the array: tile schedule, event counts and MAC totals.

    Everything is for *one* of the ``gemm.count`` repetitions; the caller scales.
    """

    dataflow: str
    gemm: Gemm
    schedule: TileSchedule
    counts: EventCounts
    macs_dense: int
    macs_effectual: int
    folds: int
    outer_dim: str  # GEMM dimension of the outermost loop of the nest (the loop order chosen)
    mapping: str = ""  # the SRAM-level nest used, as text (see sparsesim.mapping)
    dram_compulsory_bytes: int = 0  # each operand read once, the output written once
    dram_lower_bound_bytes: int = 0  # communication lower bound for these buffers
    psum_spill_bytes: int = 0  # partial sums written to and read back from DRAM


@dataclass(frozen=True, slots=True)
class FoldGrid:
    """Folds of one GEMM in loop order: arrays of shape ``(outer, inner)``."""

    rows_used: np.ndarray  # PE rows holding data in the fold
    cols_used: np.ndarray  # PE columns holding data in the fold
    stream: np.ndarray  # elements streamed through time in the fold (L)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows_used.shape


def with_ports(plan: Plan, cfg: AccelConfig) -> Plan:
    """``plan`` with the stalls of its SRAM ports: each buffer delivers ``banks * word_bytes``
    bytes a cycle (one word per bank and cycle, fills from DRAM and drains included); where
    the array's reads and writes of a buffer need more cycles than the compute takes, the
    array waits the difference, spread over the tiles in proportion to their compute."""
    sched, counts = plan.schedule, plan.counts
    busy = int(sched.compute_cycles.sum())
    if busy == 0:
        return plan
    buf = cfg.buffers
    need = max(math.ceil((counts.sram_a_bytes + counts.metadata_a_bytes) / (buf.a.banks * buf.a.word_bytes)),
               math.ceil((counts.sram_b_bytes + counts.metadata_b_bytes) / (buf.b.banks * buf.b.word_bytes)),
               math.ceil(counts.sram_out_bytes / (buf.out.banks * buf.out.word_bytes)))
    if need <= busy:
        return plan
    ports = np.ceil(sched.compute_cycles * ((need - busy) / busy)).astype(np.int64)
    return dataclasses.replace(plan, schedule=dataclasses.replace(sched, port_stall_cycles=ports))


class Dataflow(ABC):
    """How an op's GEMM is tiled and scheduled on the array. Subclasses register by name.

    ``array_kind`` names the registered array kind (:mod:`sparsesim.dataflows.array_kind`) the
    dataflow runs on: a config's ``array.kind`` admits only its own kind's dataflows.
    """

    name: str = ""
    array_kind: str = "systolic"

    @property
    def label(self) -> str:
        """Text figures and tables show for the dataflow."""
        return self.name

    @property
    def rank(self) -> int:
        """Place among the dataflows in figures and tables (one colour per dataflow in that order)."""
        return 100

    @abstractmethod
    def work(self, gemm: Gemm, cfg: AccelConfig, masks, effects, **options):
        """What the switched-on features make of one group of ``gemm`` on this dataflow, from
        its operands' real masks (:class:`~sparsesim.dataflows.sparse.OperandMasks`) and the
        features' composed effects: the ``work`` :meth:`plan` takes. ``options`` are those of
        :func:`~sparsesim.dataflows.sparse.sparse_work` (``nm``, ``density_a``, ``density_b``,
        ``weight_skip``). The result is a frozen dataclass (the replay keys reuse on its fields)."""

    @abstractmethod
    def plan(self, gemm: Gemm, cfg: AccelConfig, work: SparseWork | None = None) -> Plan:
        """Map ``gemm`` onto the array of ``cfg``.

        ``work`` (from :func:`sparsesim.dataflows.sparse.sparse_work`) carries what the sparse features
        change: the compacted GEMM, per-fold stream lengths, effectual MACs and the operands'
        compressed sizes. ``None`` is the dense GEMM.
        """


def _extents(total: int, block: int) -> np.ndarray:
    """Sizes of the blocks that cut ``total`` into pieces of ``block``: full, then the rest."""
    n = -(-total // block)
    sizes = np.full(n, block, dtype=np.int64)
    sizes[-1] = total - block * (n - 1)
    return sizes


class SystolicDataflow(Dataflow):
    """A dataflow on an ``R x C`` systolic array, described by its mapping alone.

    Subclasses set ``kind``, the :class:`~sparsesim.hardware.dataflow_kind.DataflowKind` that
    says which GEMM dimension goes to the PE rows, the columns and time, and which spatial
    block index is the outer loop; everything else (the stationary operand and its preload,
    the fold cycles) follows from it. The mapper and the reference twin take the same ``kind``.
    """

    kind: DataflowKind

    @property
    def name(self) -> str:
        return self.kind.name

    @property
    def label(self) -> str:
        return self.kind.label

    @property
    def rank(self) -> int:
        return self.kind.rank

    def work(self, gemm: Gemm, cfg: AccelConfig, masks, effects, **options) -> SparseWork:
        """:func:`~sparsesim.dataflows.sparse.sparse_work` on this dataflow."""
        return sparse_work(self, gemm, cfg, masks, effects, **options)

    # the mapping, as the kind states it (this class and the mapper read it; nothing tests the strings)
    @property
    def row_dim(self) -> str:
        return self.kind.row_dim

    @property
    def col_dim(self) -> str:
        return self.kind.col_dim

    @property
    def time_dim(self) -> str:
        return self.kind.time_dim

    @property
    def outer(self) -> str:
        return self.kind.outer

    @property
    def preload(self) -> bool:
        return self.kind.preload

    # ---------------------------------------------------------------- geometry
    def dims(self, gemm: Gemm) -> dict[str, int]:
        return {"M": gemm.M, "N": gemm.N, "K": gemm.K}

    def fold_grid(self, gemm: Gemm, rows: int, cols: int, outer: str | None = None) -> FoldGrid:
        """Row/column occupancy and dense stream length of every fold, loop order."""
        d = self.dims(gemm)
        row_ext = _extents(d[self.row_dim], rows)
        col_ext = _extents(d[self.col_dim], cols)
        if (outer or self.outer) == "row":
            r, c = np.meshgrid(row_ext, col_ext, indexing="ij")
        else:
            c, r = np.meshgrid(col_ext, row_ext, indexing="ij")
        return FoldGrid(r, c, np.full(r.shape, d[self.time_dim], dtype=np.int64))

    def fold_shape(self, gemm: Gemm, rows: int, cols: int) -> tuple[int, int]:
        """``(outer, inner)`` fold counts."""
        return self.kind.fold_shape(self.dims(gemm), rows, cols)

    def fold_cycles(self, stream: np.ndarray, rows: int, cols: int, overlap: bool) -> tuple[np.ndarray, int]:
        """Per-fold array occupancy in cycles (loop order) and the epilogue after the last fold.

        The sum of both is the stall-free compute time (see the module docstring).
        """
        return self.kind.fold_cycles(stream, rows, cols, overlap)

    def compute_cycles(self, gemm: Gemm, rows: int, cols: int, overlap: bool) -> int:
        """Stall-free dense compute cycles of one repetition (closed form, docs/design.md section 3.2)."""
        return self.kind.compute_cycles(self.dims(gemm), rows, cols, overlap)

    # ---------------------------------------------------------------- operands
    def _operand_axes(self) -> dict[str, set[str]]:
        """For A, B, Out: which spatial axes ("row", "col") the operand's block depends on."""
        dims = {"A": ("M", "K"), "B": ("K", "N"), "Out": ("M", "N")}
        axes = {}
        for op, ds in dims.items():
            s = set()
            if self.row_dim in ds:
                s.add("row")
            if self.col_dim in ds:
                s.add("col")
            axes[op] = s
        return axes

    def _loop_deps(self, outer: str) -> dict[str, str]:
        """For A, B, Out: ``"uv"``, ``"u"`` (outer only) or ``"v"`` (inner only)."""
        inner = "col" if outer == "row" else "row"
        deps = {}
        for op, s in self._operand_axes().items():
            if len(s) == 2:
                deps[op] = "uv"
            elif outer in s:
                deps[op] = "u"
            else:
                deps[op] = "v" if inner in s else "uv"
        return deps

    def plan(self, gemm: Gemm, cfg: AccelConfig, work: SparseWork | None = None) -> Plan:
        """Map ``gemm`` with the mapper (:mod:`sparsesim.mapping`), or with the legacy
        policy (``mapper.policy: legacy``): both fold loop orders, greedy runs of folds into
        the free buffer halves, the one moving fewer DRAM bytes kept (ties: the class's
        ``outer``). Either changes traffic and tiles, never the stall-free compute time of a
        dense GEMM."""
        run = work.gemm if work is not None else gemm
        self._check_folds(run, cfg)
        space = mapping.NestSpace(self.kind, run, cfg, work.stream if work is not None else None,
                                 work.scale_a if work is not None else 1.0, work.scale_b if work is not None else 1.0,
                                 work.out_reserved_bytes if work is not None else 0)
        compulsory, bound = mapping.dram_bounds(space)
        other = "col" if self.outer == "row" else "row"
        if cfg.mapper.policy == "legacy":
            plans = [self._plan(gemm, cfg, work, self.outer), self._plan(gemm, cfg, work, other)]
            best = min(plans, key=lambda p: p.counts.dram_read_bytes + p.counts.dram_write_bytes)
            return with_ports(dataclasses.replace(best, mapping=f"legacy outer={best.outer_dim}",
                                                  dram_compulsory_bytes=compulsory, dram_lower_bound_bytes=bound), cfg)
        ev = mapping.choose(space)
        mapped = [] if ev is None else [with_ports(self._mapped_plan(space, ev, work, compulsory, bound), cfg)]
        if mapped and mapping.pinned(cfg, space):
            return mapped[0]
        # the legacy schedule competes as one more candidate: it keeps part of an operand that
        # does not fit on chip across revisits ("pin what fits"), which the nests cannot express
        legacy = [with_ports(dataclasses.replace(p, mapping=f"legacy outer={p.outer_dim}",
                                                 dram_compulsory_bytes=compulsory, dram_lower_bound_bytes=bound), cfg)
                  for p in (self._plan(gemm, cfg, work, self.outer), self._plan(gemm, cfg, work, other))]
        return mapping.pick_plan(space, mapped + legacy)

    def _check_folds(self, gemm: Gemm, cfg: AccelConfig) -> None:
        R, C = cfg.array.rows, cfg.array.cols
        folds = int(np.prod(self.fold_shape(gemm, R, C)))
        if folds > MAX_FOLDS:
            raise InputError(f"GEMM {gemm.M}x{gemm.N}x{gemm.K}: {folds:,} folds on a {R}x{C} array; this "
                             f"simulator plans at most {MAX_FOLDS:,} folds per GEMM (use a bigger array or split it)")

    def _mapped_plan(self, space, ev, work: SparseWork | None, compulsory: int, bound: int) -> Plan:
        """The :class:`Plan` of an evaluated nest: its schedule, DRAM traffic and on-chip events."""
        cfg, gemm, m = space.cfg, space.gemm, ev.mapping
        R, C = space.R, space.C
        grid = self.fold_grid(gemm, R, C, "row")
        stream = space.stream
        chunks = -(-space.D[self.time_dim] // m.tile(self.time_dim))
        tr = ev.traffic
        base = self._array_counts(grid, stream, work, cfg, "row", stationary_repeats=chunks)
        counts = dataclasses.replace(
            base,
            sram_a_bytes=base.sram_a_bytes + tr.read_a,
            sram_b_bytes=base.sram_b_bytes + tr.read_b,
            # DRAM fills write the buffers; stores and spills read the output buffer, and
            # partial sums read back from DRAM are written into it
            sram_out_bytes=base.sram_out_bytes + tr.write_out + tr.write_spill + tr.read_psum,
            dram_read_bytes=ev.counts.dram_read_bytes,
            dram_write_bytes=ev.counts.dram_write_bytes,
        )
        macs_dense, eff = (base.macs_performed, base.macs_performed) if work is None else (work.macs_dense, work.macs_effectual)
        folds = int(grid.rows_used.size) * chunks
        return Plan(self.name, gemm, ev.schedule, counts, macs_dense, eff, folds, m.order[0],
                    mapping=mapping.mapping_text(m, tr.resident), dram_compulsory_bytes=compulsory,
                    dram_lower_bound_bytes=bound, psum_spill_bytes=tr.read_psum + tr.write_spill)

    def _plan(self, gemm: Gemm, cfg: AccelConfig, work: SparseWork | None, outer: str) -> Plan:
        if work is not None:
            gemm = work.gemm
        R, C = cfg.array.rows, cfg.array.cols
        self._check_folds(gemm, cfg)
        grid = self.fold_grid(gemm, R, C, outer)
        stream = work.stream if work is not None else None
        if stream is not None and outer == "col":  # SparseWork keeps (row block, column block)
            stream = np.ascontiguousarray(stream.T)
        scale = {"A": work.scale_a, "B": work.scale_b} if work is not None else {"A": 1.0, "B": 1.0}
        if stream is None:
            stream = grid.stream
        elif stream.shape != grid.shape:
            raise ValueError(f"stream shape {stream.shape} does not match fold grid {grid.shape}")
        stream = stream.astype(np.int64, copy=False)
        rows_u, cols_u = grid.rows_used, grid.cols_used
        d = self.dims(gemm)
        elem = cfg.array.element_bytes
        acc = cfg.array.accumulator_bytes
        reduction_inner = not self.kind.reduction_in_time  # K is spatial, so partial sums cross folds

        # Block (elements) of each operand touched by each fold; the time dim is whole.
        def block(op: str) -> np.ndarray:
            ds = {"A": ("M", "K"), "B": ("K", "N"), "Out": ("M", "N")}[op]
            size = np.ones(grid.shape, dtype=np.int64)
            for dim in ds:
                if dim == self.row_dim:
                    size = size * rows_u
                elif dim == self.col_dim:
                    size = size * cols_u
                else:
                    size = size * d[dim]
            return size

        deps = self._loop_deps(outer)
        cap = {"A": cfg.buffers.a.size_bytes // 2, "B": cfg.buffers.b.size_bytes // 2,
               "Out": cfg.buffers.out.size_bytes // 2}
        fo, fi = grid.shape
        load = {}
        for op in ("A", "B"):
            nbytes = np.ceil(block(op) * (elem * scale[op])).astype(np.int64)
            dep = deps[op]
            new = np.zeros(grid.shape, dtype=np.int64)
            if dep == "uv":
                new[:] = nbytes
            elif dep == "u":  # reused across the inner loop; what does not fit is refetched
                new[:, 0] = nbytes[:, 0]
                new[:, 1:] = np.maximum(0, nbytes[:, 1:] - cap[op])
            else:  # reused across the outer loop; the part that fits stays resident
                new[0, :] = nbytes[0, :]
                total = int(nbytes[0, :].sum())
                if total > cap[op] and fo > 1:
                    missing = 1.0 - cap[op] / total
                    new[1:, :] = np.ceil(nbytes[1:, :] * missing).astype(np.int64)
            load[op] = new

        out_elems = block("Out")
        store = np.zeros(grid.shape, dtype=np.int64)
        psum_read = np.zeros(grid.shape, dtype=np.int64)
        if deps["Out"] == "uv" or not reduction_inner:
            store[:] = out_elems * elem
        elif deps["Out"] == "u":  # partial sums of one block accumulate over the inner (K) loop
            store[:, -1] = out_elems[:, -1] * elem
            spill = np.maximum(0, out_elems * acc - cap["Out"])
            if fi > 1:
                store[:, :-1] += spill[:, :-1]
                psum_read[:, 1:] = spill[:, 1:]
        else:  # K is the outer loop: every block's partial sums live across all of it
            store[-1, :] = out_elems[-1, :] * elem
            total = int(out_elems[0, :].sum()) * acc
            if fo > 1 and total > cap["Out"]:
                share = 1.0 - cap["Out"] / total  # what does not fit spills, pinned part stays
                spill = np.ceil(out_elems * acc * share).astype(np.int64)
                store[:-1, :] += spill[:-1, :]
                psum_read[1:, :] = spill[1:, :]

        cycles, epilogue = self.fold_cycles(stream, R, C, cfg.array.fold_overlap)
        cycles = np.broadcast_to(cycles, grid.shape)
        loads = load["A"] + load["B"] + psum_read

        # Tiles: maximal runs of consecutive folds (loop order) whose new data fits the free
        # half of each buffer, packed greedily.
        starts = pack_tiles(np.stack([load["A"].ravel(), load["B"].ravel(), store.ravel()]),
                            np.array([max(cap["A"], 1), max(cap["B"], 1), max(cap["Out"], 1)], dtype=np.int64))
        schedule = TileSchedule(
            load_bytes=np.add.reduceat(loads.ravel(), starts),
            compute_cycles=np.add.reduceat(np.ascontiguousarray(cycles).ravel(), starts),
            store_bytes=np.add.reduceat(store.ravel(), starts),
            epilogue_cycles=int(epilogue),
        )

        base = self._array_counts(grid, stream, work, cfg, outer)
        counts = dataclasses.replace(
            base,
            sram_a_bytes=base.sram_a_bytes + int(load["A"].sum()),
            sram_b_bytes=base.sram_b_bytes + int(load["B"].sum()),
            sram_out_bytes=base.sram_out_bytes + int(store.sum()) + int(psum_read.sum()),
            dram_read_bytes=int(loads.sum()),
            dram_write_bytes=int(store.sum()),
        )
        macs_dense, eff = (base.macs_performed, base.macs_performed) if work is None else (work.macs_dense, work.macs_effectual)
        outer_dim = self.row_dim if outer == "row" else self.col_dim
        spills = int(psum_read.sum()) + int(store.sum()) - gemm.M * gemm.N * elem  # beyond the outputs once
        return Plan(self.name, gemm, schedule, counts, macs_dense, eff, fo * fi, outer_dim, psum_spill_bytes=spills)

    def _array_counts(self, grid: FoldGrid, stream: np.ndarray, work: SparseWork | None, cfg: AccelConfig,
                      outer: str, stationary_repeats: int = 1) -> EventCounts:
        """On-chip events of the array's own reads and writes (no DRAM fills), in fold order
        ``outer``. ``stationary_repeats``: how often each stationary block is read into the
        PEs (once per time chunk of the nest)."""
        rows_u, cols_u = grid.rows_used, grid.cols_used
        elem = cfg.array.element_bytes
        acc = cfg.array.accumulator_bytes
        reduction_inner = not self.kind.reduction_in_time
        scale = {"A": work.scale_a, "B": work.scale_b} if work is not None else {"A": 1.0, "B": 1.0}
        # SRAM traffic (elements -> bytes): stationary blocks once per fold, streamed ones per
        # streamed step; an operand kept compressed is read as its compressed block, whole.
        axes = self._operand_axes()
        compressed = {"A": work is not None and work.compressed_a, "B": work is not None and work.compressed_b,
                      "Out": False}
        sram = {}
        for op in ("A", "B", "Out"):
            s = axes[op]
            steps = grid.stream if compressed[op] else stream
            if len(s) == 2:
                n = rows_u * cols_u * (stationary_repeats if op != "Out" else 1)
            elif "row" in s:
                n = rows_u * steps
            else:
                n = cols_u * steps
            sram[op] = int(n.sum())
        out_bytes = sram["Out"] * (acc if reduction_inner else elem)
        if reduction_inner:  # read-modify-write of partial sums after the first K block
            later = (slice(1, None), slice(None)) if outer == "row" else (slice(None), slice(1, None))
            out_bytes += int((cols_u[later] * stream[later]).sum()) * acc
        # MAC slots the array executes; ineffectual ones are gated when zeros are detected.
        slots = int((rows_u * cols_u * stream).sum())
        if work is None:
            macs_dense = eff = performed = slots
            gated = 0
        else:
            macs_dense, eff = work.macs_dense, work.macs_effectual
            performed, gated = (eff, max(0, slots - eff)) if work.zero_aware else (slots, 0)
        sram_a = int(sram["A"] * elem * scale["A"])
        sram_b = int(sram["B"] * elem * scale["B"])
        meta_a = meta_b = 0
        if work is not None:  # the metadata share of the on-chip reads, priced on its own
            meta_a, meta_b = int(sram_a * work.meta_a), int(sram_b * work.meta_b)
            sram_a, sram_b = sram_a - meta_a, sram_b - meta_b
        return EventCounts(
            macs_performed=performed,
            macs_gated=gated,
            rf_accesses=3 * performed,  # two operand registers read, accumulator read-modify-write
            accumulator_rmw=performed,
            sram_a_bytes=sram_a,
            sram_b_bytes=sram_b,
            sram_out_bytes=out_bytes,
            metadata_a_bytes=meta_a,
            metadata_b_bytes=meta_b,
        )
