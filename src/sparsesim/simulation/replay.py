"""Sparse replay: real tensors through the sparse features, op by op and phase by phase.

The replay composes the switched-on features through their interface
(:mod:`sparsesim.sparsity.base`) and names none of them. For each (op, phase) it

1. takes the op's tensors (trace, or seeded synthetic ones for shape-only workloads),
2. passes the input activations through every feature's ``activations`` hook (an activation
   policy), then its ``encode`` hook (delta encoding), and the weights through its ``weights``
   hook (N:M pruning along this phase's reduction dimension, which also gives B's pattern),
3. lowers the tensors to the GEMM operands of the phase and takes their zero masks,
4. composes the features' operand effects (which operands are zero-aware, skipped, stored
   compressed, and whether the weight rows behind dead activations are fetched at all),
5. maps them with the dataflow (:mod:`sparsesim.dataflows.sparse`) and plans and times each
   group with the engine's GEMM-level :func:`~sparsesim.simulation.engine.run_gemm`, with the side work
   the features charge (delta state traffic, N:M selection and pre-generation),

and reports the dense run of the same op on the same hardware beside it. Once every row is
timed, each feature settles the jobs it placed on the run's timeline (overlapped N:M
pre-generation on the pruning unit) and what no work hides is added to the rows. Per-run state
lives in the features' run objects (:meth:`~sparsesim.sparsity.base.Feature.start`) and here,
never in a module.

What repeats is derived once per run, so a decode trace costs about its distinct work, not
steps x weights: what a row needs of a weight other ops share (a trace stores a decoder's
weights once; :class:`_WeightCache`, bounded in bytes, and the weight is then not read again),
the dense run of each GEMM shape, and the planned and timed outcome of each distinct sparse
GEMM (same shape, dataflow, side work and stream lengths). None of them changes a number.

A feature may claim whole ops and replay them around the same per-(op, phase) step
(:meth:`Replay.op_phase`): the activation policy at ``site: swiglu_gate`` does so for the ops of
each gated MLP block (:mod:`sparsesim.sparsity.gate_coupling`).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib

import numpy as np

from sparsesim.hardware.memory import memory_model
from sparsesim.hardware.config import AccelConfig
from sparsesim.hardware.energy import EnergyTable
from sparsesim.hardware.schedule import EventCounts
from sparsesim.sparsity import FEATURES, composed_effects, feature_labels, in_order
from sparsesim.sparsity.base import GemmEffects, NMPattern, RowView, state_groups
from sparsesim.dataflows import DATAFLOWS
from sparsesim.dataflows.sparse import OperandMasks, weight_fetch_skip
from sparsesim.simulation.engine import OpOutcome, SideWork, best_of, make_row, op_phases, run_gemm
from sparsesim.core.errors import InputError
from sparsesim.workloads.gemm import Gemm, Phase
from sparsesim.workloads.lowering import OPERAND_ROLES, a_operand, b_operand
from sparsesim.workloads.ops import Op, Workload
from sparsesim.workloads.synthetic_operands import SyntheticTensors

MAX_REPLAY_ELEMENTS = 400_000_000
"""Largest A plus B operand (elements, all groups) one op may have in a sparse replay."""

MAX_TIMED = 100_000
"""Distinct sparse GEMM outcomes a replay keeps for reuse (a few hundred bytes each)."""

WEIGHT_CACHE_BYTES = 2 << 30
"""Memory the replay may keep of what it derived from weights shared between ops (a
decoder's weights serve every decode step): see :class:`_WeightCache`."""

CORE_COLUMNS = {"act_zero_fraction": None, "weight_bytes_skipped": 0, "weight_fetch_bound_bytes": 0,
                "skip_bitmap_bytes": 0}
"""Columns of every sparse replay row that no feature owns: the zero fraction of the input
activations after the features' ``activations`` hooks (None where the phase has none as A), and
weight fetch skipping (see :meth:`Replay._weight_fetch`). The features' own columns follow."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Operand:
    """What one (op, phase) needs of its B operand: the N:M pattern the GEMM sees along K,
    the nonzero masks (None when no switched-on feature looks at B's zeros), the nonzero
    fraction of the stored tensor (None when no compression needs it) and, for delta replay's
    error, the weights this phase sees (else None)."""

    nm: NMPattern | None
    masks: tuple[np.ndarray, ...] | None  # per group, (K, N) uint8
    density: float | None
    seen: np.ndarray | None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (*(self.masks or ()), self.seen) if a is not None)


class _WeightCache:
    """Least-recently-used store of :class:`_Operand` derived from shared weights, keyed by
    (tensor name, phase, GEMM), holding at most ``max_bytes`` of arrays.

    A trace stores a decoder's weights once and every decode step's ops name them, so without
    it each step re-reads, converts, checks and masks every weight. Bounded: the oldest entries
    go first, and a weight whose entry went is read (and checked for NaN/Inf) again.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: collections.OrderedDict[tuple, _Operand] = collections.OrderedDict()
        self.held_bytes = 0

    def get(self, key: tuple) -> _Operand | None:
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
        return found

    def put(self, key: tuple, value: _Operand) -> None:
        if value.nbytes > self.max_bytes:
            return
        self.entries[key] = value
        self.held_bytes += value.nbytes
        while self.held_bytes > self.max_bytes:
            _, old = self.entries.popitem(last=False)
            self.held_bytes -= old.nbytes


class Replay:
    """One sparse replay run. Create, call :meth:`rows` once.

    It is the :class:`~sparsesim.sparsity.base.ReplayCore` its features are started with: they
    ask it for tensors, DRAM transfer times and weight fetch skipping, and a feature that claims
    ops replays them through :meth:`op_phase`.
    """

    def __init__(self, workload: Workload, cfg: AccelConfig, dataflow: str, features: tuple,
                 table: EnergyTable, weight_cache_bytes: int = WEIGHT_CACHE_BYTES) -> None:
        self.workload = workload
        self.cfg = cfg
        self.memory = memory_model(cfg)  # DRAM facts (burst, layout, bandwidth bound) come only from it
        self.dataflow = dataflow
        self.table = table
        self.label = feature_labels(features)
        self.features = in_order(features)
        self.source = workload.source or SyntheticTensors(workload.ops, cfg.seed,
                                                          workload.meta.get("act_sparsity"))
        self.dense: dict[Gemm, OpOutcome] = {}  # the dense run of each GEMM shape, which depends on nothing else
        # the timed outcome of each distinct sparse GEMM (shape, dataflow, side work and what the
        # features made of every group): a decode step whose masks give the same stream lengths
        # as an earlier step's (dense activations, for one) is not planned and timed again
        self.timed: collections.OrderedDict[tuple, OpOutcome] = collections.OrderedDict()
        self.shared = _WeightCache(weight_cache_bytes)
        self.names = getattr(self.source, "tensor_names", None)  # only sources that share tensors name them
        self.shared_names: set[str] = set()  # tensors that more than one op uses
        if self.names is not None and weight_cache_bytes > 0:
            seen: set[str] = set()
            for index in range(len(workload.ops)):
                name = (self.names(index) or {}).get("weight")
                if name is not None:
                    (self.shared_names if name in seen else seen).add(name)
        # every registered feature's columns, so that rows of runs with different features align
        self.columns = dict(CORE_COLUMNS)
        for kind in FEATURES:
            self.columns.update(FEATURES.get(kind).columns)
        for f in self.features:
            f.check_workload(workload)
        self.states = []
        for f in self.features:  # in order: a feature's start may look at the ones before it
            self.states.append(f.start(self))

    # ------------------------------------------------------------------ what features may ask (ReplayCore)
    def transfer_cycles(self, nbytes: int) -> int:
        return self.memory.bound_cycles(nbytes)

    def fetch_skip(self, live: np.ndarray, n_cols: int, layout: str):
        return weight_fetch_skip(live, n_cols, self.cfg.array.element_bytes, self.memory.burst_bytes, layout)

    def tensors(self, index: int, roles: frozenset[str] | None = None) -> dict:
        return self.source.tensors(index) if roles is None else self.source.tensors(index, roles)

    def shared_weight(self, index: int) -> str | None:
        name = None if self.names is None else (self.names(index) or {}).get("weight")
        return name if name in self.shared_names else None

    def weight_cache(self) -> _WeightCache:
        """A new bounded store of arrays (its own budget, the replay's weight cache size)."""
        return _WeightCache(self.shared.max_bytes)

    def pending(self, op: Op, phase: Phase, out: OpOutcome, dense: OpOutcome) -> _Pending:
        return _Pending(op, phase, out, dense, {})

    def idle(self, index: int, dense: OpOutcome, counts: EventCounts) -> OpOutcome:
        return OpOutcome(dense.dataflow, 0, 0, 0, counts, dense.macs_dense, 0, 0, 0, extra=self.extra_defaults(index))

    def stored_weight_ratio(self, length: int) -> float:
        ratio = 1.0
        for state in self.states:
            ratio *= state.stored_weight_ratio(length)
        return ratio

    def dense_of(self, gemm: Gemm) -> OpOutcome:
        dense = self.dense.get(gemm)
        if dense is None:  # identical shapes recur (decode steps, repeated blocks): plan and time once
            dense = self.dense[gemm] = best_of(self.dataflow, lambda name: run_gemm(gemm, self.cfg, name), self.cfg)
        return dense

    def extra_defaults(self, index: int) -> dict:
        """The feature columns of a row of op ``index`` before any feature fills them in."""
        return {"time_step": _time_step(self.workload, index), **self.columns}

    # ------------------------------------------------------------------ one op
    def _b_side(self, op: Op, phase: Phase, w: np.ndarray | None, master: np.ndarray | None, dy: np.ndarray | None,
                aware: bool, compressed: bool, keep_seen: bool) -> _Operand:
        """What this (op, phase) needs of its B operand (``aware``: its zeros are detected;
        ``compressed``: its stored density sizes it; ``keep_seen``: a feature needs the weights)."""
        pattern = None
        if OPERAND_ROLES[phase][1] == "weight":
            seen = w
            if w is not None:
                for state in self.states:
                    seen, own = state.weights(op, phase, seen, master)
                    pattern = pattern or own
        else:
            seen = dy
        B = b_operand(op, phase, seen, dy)
        masks = (tuple((B[g] != 0).view(np.uint8) for g in range(B.shape[0]))
                 if aware or pattern is not None else None)
        density = float(np.count_nonzero(seen)) / seen.size if compressed else None
        return _Operand(pattern, masks, density, seen if keep_seen else None)

    def op_phase(self, index: int, op: Op, phase: Phase, tensors: dict, key: tuple | None,
                 extra_read_bytes: int = 0, layout: str | None = None) -> _Pending:
        """One (op, phase). ``key``: where what it derives from a shared weight is kept (None:
        the weight is not shared); ``tensors`` then lacks the weight if that is already known.
        ``extra_read_bytes``: DRAM reads beside the GEMM's own, before its first tile (the partial
        bursts of a gathered weight); ``layout``: how its weight lies in DRAM when not as
        ``dram.weight_layout`` says."""
        cfg = self.cfg
        extra = self.extra_defaults(index)
        x, w, dy = tensors.get("input"), tensors.get("weight"), tensors.get("grad")
        x_now = x_seen = x
        if x is not None and phase is not Phase.BWD_DATA:
            for state in self.states:
                x_now = state.activations(op, phase, x_now, extra)
            extra["act_zero_fraction"] = float((x_now == 0).mean())
            x_seen = x_now
            for state in self.states:
                x_seen = state.encode(op, phase, x_seen, extra)
        roles = OPERAND_ROLES[phase]
        effects: GemmEffects = composed_effects(self.features, phase, roles)
        b_side = self.shared.get(key) if key is not None else None
        if b_side is None:
            b_side = self._b_side(op, phase, w, tensors.get("master_weight"), dy, effects.b.aware, effects.b.compress,
                                  any(state.keeps_b_seen(phase) for state in self.states))
            if key is not None:
                self.shared.put(key, b_side)
        nm = b_side.nm
        A = a_operand(op, phase, x_seen, dy)
        a_masks = [(A[g] != 0).view(np.uint8) for g in range(A.shape[0])]
        stored_a = {"input": x_seen, "grad": dy}[roles[0]]
        # the stored densities size compressed operands only
        density_a = float(np.count_nonzero(stored_a)) / stored_a.size if effects.a.compress else None
        gemm1 = op.gemm(phase)
        row = RowView(index, op, phase, roles, gemm1, effects, nm, x_now, x_seen, w, b_side.seen, a_masks, extra)
        # which switched-on features act on this row (N:M skips matmuls and bwd_weight; a
        # zero-skip target may be absent from a phase; delta is fwd only)
        extra["features_active"] = "+".join(f.kind for f, state in zip(self.features, self.states)
                                            if state.acts(row)) or "none"
        fetched = self._weight_fetch(roles, a_masks, gemm1, nm, effects.b.compress, effects.a.fetch_skip, extra,
                                     layout)
        # work beside the GEMM: what the features charge, and the skip bitmaps
        read, write, spread, select = extra_read_bytes, 0, False, 0
        counts = EventCounts(metadata_a_bytes=extra["skip_bitmap_bytes"])
        overhead = reserved = 0
        jobs: dict[str, int] = {}
        for f, state in zip(self.features, self.states):
            charge = state.side(row)
            if charge is None:
                continue
            read, write = read + charge.read_bytes, write + charge.write_bytes
            spread, select = spread or charge.spread, select + charge.select_cycles
            counts = counts + charge.counts
            overhead += charge.overhead_cycles
            reserved += charge.out_reserved_bytes
            if charge.job_cycles:
                jobs[f.kind] = charge.job_cycles
        side = SideWork(read_bytes=read, write_bytes=write, spread=spread, select_cycles=select)
        b_masks = b_side.masks

        def work(df) -> list:
            works = [df.work(gemm1, cfg, OperandMasks(a, None if b_masks is None else b_masks[g]), effects,
                             nm=nm, density_a=density_a, density_b=b_side.density, weight_skip=fetched[g])
                     for g, a in enumerate(a_masks)]
            if reserved:  # feature state kept in the output buffer: the GEMM maps around it
                works = [dataclasses.replace(w, out_reserved_bytes=reserved) for w in works]
            return works

        def part_work(df, part, sub: Gemm) -> list:
            """The work of one part of this GEMM split over the chip's cores: the slices of the
            masks it covers; a skipped weight's live rows sliced to its K range."""
            (m0, m1), (n0, n1), (k0, k1) = part.m, part.n, part.k
            works = []
            for g in range(*part.c):
                skip = fetched[g]
                if skip is not None:
                    skip = weight_fetch_skip(skip.live[k0:k1], sub.N, cfg.array.element_bytes, self.memory.burst_bytes,
                                             layout or self.memory.weight_layout)
                b = None if b_masks is None else b_masks[g][k0:k1, n0:n1]
                works.append(df.work(sub, cfg, OperandMasks(a_masks[g][m0:m1, k0:k1], b), effects, nm=nm,
                                     density_a=density_a, density_b=b_side.density, weight_skip=skip))
            if reserved:
                works = [dataclasses.replace(w, out_reserved_bytes=reserved) for w in works]
            return works

        def timed(name: str) -> OpOutcome:
            if cfg.chip.cores > 1:  # split over the cores, each part with its slices of the masks
                return run_gemm(gemm1, cfg, name, work, side, part_work, k_align=nm.m if nm is not None else 1,
                                k_ratio=nm.n / nm.m if nm is not None else 1.0)
            works = work(DATAFLOWS.get(name, "dataflow"))
            key = (gemm1, name, side, tuple(_work_key(w) for w in works))
            found = self.timed.get(key)
            if found is None:
                found = self.timed[key] = run_gemm(gemm1, cfg, name, lambda df: works, side)
                if len(self.timed) > MAX_TIMED:
                    self.timed.popitem(last=False)
            return found

        out = best_of(self.dataflow, timed, cfg)
        out = dataclasses.replace(out, cycles=out.cycles + overhead, counts=out.counts + counts, extra=extra,
                                  overhead_cycles=overhead)
        return _Pending(op, phase, out, self.dense_of(gemm1), jobs)

    def _weight_fetch(self, roles: tuple[str, str], a_masks: list[np.ndarray], gemm: Gemm,
                      nm: NMPattern | None, compress_b: bool, skipping: bool, extra: dict,
                      layout: str | None = None) -> list:
        """Each group's weight-row skipping (a :class:`WeightFetchSkip`, or None where the weight
        is fetched whole), and the row's weight-fetch columns.

        With the weights as B, every row gets the bound for its activation sparsity: the bytes
        of the weight rows whose activation column holds a nonzero (``weight_fetch_bound_bytes``,
        what any schedule must fetch at least once). Where ``skipping`` (a feature's
        ``fetch_skip`` on A: zero-skipping of the activations, or delta encoding, with
        ``weight_fetch``) applies to a dense stored B, the
        rows dead over the whole GEMM are skipped at ``dram.burst_bytes`` granularity in
        ``dram.weight_layout`` (:func:`~sparsesim.dataflows.sparse.weight_fetch_skip`). The
        dead set is taken over all of M: exact when M fits one tile (a decode GEMV, M = batch);
        where the mapper splits M, each tile could skip more, so the saving is a lower bound.
        The skip bitmap (one bit per reduction index) is read once per pass over the weights.
        """
        ones = [None] * len(a_masks)
        if roles[1] != "weight":
            return ones
        mem, elem = self.memory, self.cfg.array.element_bytes
        live = [a.any(axis=0) for a in a_masks]  # over all of M, which shares one fetch of B
        skips = [weight_fetch_skip(k, gemm.N, elem, mem.burst_bytes, layout or mem.weight_layout) for k in live]
        extra["weight_fetch_bound_bytes"] = sum(k.bound_bytes for k in skips)
        if not skipping or nm is not None or compress_b:  # N:M or compressed weights: no dense rows to skip
            return ones
        extra["weight_bytes_skipped"] = sum(k.skipped_bytes for k in skips)
        extra["skip_bitmap_bytes"] = sum(k.bitmap_bytes for k in skips)
        return [None if skip.live.all() else skip for skip in skips]

    # ------------------------------------------------------------------ run
    def _shared_keys(self, index: int, op: Op, phases: list[Phase]) -> dict[Phase, tuple]:
        """Cache keys of the phases of op ``index`` whose B operand is a weight other ops share:
        (tensor name, phase, GEMM); empty when its weight is its own."""
        if not self.shared_names:
            return {}
        name = self.names(index).get("weight")
        if name not in self.shared_names:
            return {}
        return {p: (name, p, op.gemm(p)) for p in phases if OPERAND_ROLES[p][1] == "weight"}

    def rows(self, indices=None) -> list[dict]:
        """One row per (op, phase), in op order. ``indices``: replay only those ops, each as in
        the whole run: they must hold, with any op, every op it shares run state with
        (:func:`~sparsesim.sparsity.base.state_groups`: all of a delta layer's time steps, all
        passes of a gated-MLP layer, the whole run under N:M), in op order."""
        pending = []
        if indices is not None:
            indices = list(indices)
            chosen = set(indices)
            if indices != sorted(chosen):
                raise ValueError("a replay of some of the ops takes them in op order, each once")
            for group in state_groups(self.workload, self.features):
                if not chosen.isdisjoint(group) and not chosen.issuperset(group):
                    raise ValueError(f"a replay of some of the ops must hold every op that shares run state with "
                                     f"one of them: ops {group[:4]}{'...' if len(group) > 4 else ''} share it")
        for index in range(len(self.workload.ops)) if indices is None else indices:
            op = self.workload.ops[index]
            phases = op_phases(self.workload, index)
            if not phases:
                continue
            biggest = max(op.gemm(p).count * (op.gemm(p).M + op.gemm(p).N) * op.gemm(p).K for p in phases)
            if biggest > MAX_REPLAY_ELEMENTS:
                raise InputError(f"{op.name}: its GEMM operands hold {biggest:,} elements; sparse replay "
                                 f"handles at most {MAX_REPLAY_ELEMENTS:,} per op (the dense engine has no such limit)")
            keys = self._shared_keys(index, op, phases)
            known = {phase: key is not None and self.shared.get(key) is not None for phase, key in keys.items()}
            owner = next((state for state in self.states if state.claims(index)), None)
            tensors = None if owner is None else owner.tensors(index)  # None: read as any op's
            if tensors is not None:
                pass
            elif keys and all(known.values()) and Phase.BWD_WEIGHT not in phases:
                tensors = self.source.tensors(index, frozenset({"input", "grad"}))  # the weight is not needed
            else:
                tensors = self.source.tensors(index)
            replay = self.op_phase if owner is None else owner.replay
            for phase in phases:
                pending.append(replay(index, op, phase, tensors, keys.get(phase)))
        added = [(0, {}) for _ in pending]
        for state in self.states:  # the jobs features placed on the run's timeline
            settled = state.settle(pending)
            if settled is not None:
                added = [(c0 + c, {**e0, **e}) for (c0, e0), (c, e) in zip(added, settled)]
        rows = []
        for p, (cycles, columns) in zip(pending, added):
            out = p.out
            if cycles:
                out = dataclasses.replace(out, cycles=out.cycles + cycles, overhead_cycles=out.overhead_cycles + cycles,
                                          extra={**out.extra, **columns})
            rows.append(make_row(p.op, p.phase, p.op.gemm(p.phase), out, p.dense, self.cfg, self.table, self.label))
        return rows


def _time_step(workload: Workload, index: int) -> int | None:
    """Op ``index``'s time step (a sequence frame, or a decode step), None without a time axis."""
    return None if workload.time_steps is None else workload.time_steps[index]


def _work_key(work) -> tuple:
    """Every field of a dataflow's work (:meth:`~sparsesim.dataflows.base.Dataflow.work`: all
    that planning and timing read of it), hashable: arrays (stream lengths, masks) by shape,
    dtype and a 128-bit digest, since their bytes would make the key as large as the fold grid."""
    key = []
    for f in dataclasses.fields(work):
        value = getattr(work, f.name)
        if isinstance(value, np.ndarray):
            value = (value.shape, value.dtype.str,
                     hashlib.blake2b(np.ascontiguousarray(value).data, digest_size=16).digest())
        key.append(value)
    return tuple(key)


@dataclasses.dataclass(frozen=True, slots=True)
class _Pending:
    """One (op, phase) replayed, before the run's pruning-unit timeline is known."""

    op: Op
    phase: Phase
    out: OpOutcome
    dense: OpOutcome
    jobs: dict  # feature kind -> cycles of a job released after this row (see FeatureRun.settle)
