"""Sparse replay: real tensors through the sparse features, op by op and phase by phase.

For each (op, phase) the replay

1. takes the op's tensors (trace, or seeded synthetic ones for shape-only workloads),
2. applies the activation sparsification policy to the input activations,
3. prunes the weights N:M along this phase's reduction dimension (bidirectional pruning:
   ``fwd`` along input features, ``bwd_data`` along output features, ``bwd_weight`` dense),
4. delta-encodes sequence inputs against the layer's reference state (``fwd`` only),
5. lowers the tensors to the GEMM operands of the phase and takes their zero masks,
6. maps them with the dataflow (:mod:`sparsesim.dataflows.sparse`) and plans and times each
   group with the engine's GEMM-level :func:`~sparsesim.simulation.engine.run_gemm`, with the side work
   the features add (delta state traffic, N:M selection),

and reports the dense run of the same op on the same hardware beside it. Once every row is
timed, overlapped N:M pre-generation is placed on the run's pruning-unit timeline
(:func:`_exposed_pregen`) and what no work hides is added to the rows. Per-run state (the
delta references and sums) lives in the :class:`Replay` object, never in the module.

What repeats is derived once per run, so a decode trace costs about its distinct work, not
steps x weights: what a row needs of a weight other ops share (a trace stores a decoder's
weights once; :class:`_WeightCache`, bounded in bytes, and the weight is then not read again),
the dense run of each GEMM shape, and the planned and timed outcome of each distinct sparse
GEMM (same shape, dataflow, side work and stream lengths). None of them changes a number.

With the activation policy at ``site: swiglu_gate`` the policy acts on ``act(gate)`` of each
gated MLP block instead of on op inputs (:mod:`sparsesim.simulation.gate_coupling`); the ops of a block
are replayed by :meth:`Replay._coupled_op_phase` around the same per-(op, phase) step.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging

import numpy as np

from sparsesim.hardware.config import AccelConfig
from sparsesim.hardware.energy import EnergyTable, energy_breakdown_pj
from sparsesim.hardware.kernels import delta_step
from sparsesim.hardware.schedule import EventCounts
from sparsesim.sparsity import feature_labels
from sparsesim.sparsity.activation_policy import ActivationPolicyConfig
from sparsesim.sparsity.delta import DeltaConfig
from sparsesim.sparsity.nm import NMConfig, prune_rows
from sparsesim.sparsity.zero_skip import ZeroSkipConfig
from sparsesim.dataflows import DATAFLOWS
from sparsesim.dataflows.sparse import OperandMasks, SparseWork, sparse_work, weight_fetch_skip
from sparsesim.simulation.engine import OpOutcome, SideWork, best_of, make_row, op_phases, run_gemm
from sparsesim.simulation.gate_coupling import (MlpBlock, calibrated_thresholds, check_coupling, gate_live, gate_output, masked_h,
                                     mlp_activation, mlp_blocks)
from sparsesim.core.errors import InputError, field_error
from sparsesim.workloads.gemm import PHASES, Gemm, Phase
from sparsesim.workloads.lowering import OPERAND_ROLES, a_operand, b_operand, gemm_operands, weight_matrix
from sparsesim.workloads.ops import Conv2d, Linear, Op, Workload
from sparsesim.workloads.synthetic_operands import SyntheticTensors

log = logging.getLogger(__name__)

MAX_REPLAY_ELEMENTS = 400_000_000
"""Largest A plus B operand (elements, all groups) one op may have in a sparse replay."""

MAX_TIMED = 100_000
"""Distinct sparse GEMM outcomes a replay keeps for reuse (a few hundred bytes each)."""

WEIGHT_CACHE_BYTES = 2 << 30
"""Memory the replay may keep of what it derived from weights shared between ops (a
decoder's weights serve every decode step): see :class:`_WeightCache`."""

COUPLING_COLUMNS = {"mlp_role": None, "gate_act": None, "gate_live_fraction": None, "gate_live_columns": None,
                    "predictor_rank": None, "predictor_macs": None, "predictor_cycles": None,
                    "predictor_dram_bytes": None, "predictor_energy_pj": None}
"""Result columns of the swiglu_gate coupling (None on rows it does not act on):
``mlp_role`` gate/up/down; ``gate_act`` silu/relu; ``gate_live_fraction`` the fraction of
``act(gate)`` elements the policy kept; ``gate_live_columns`` the neurons live in some row (the
N that ``up``, and with a predictor the gate, runs); ``predictor_*`` the low-rank predictor's
charge on the gate row (its MACs are not in ``macs_effectual``, which counts the layer's own)."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Operand:
    """What one (op, phase) needs of its B operand: the N:M pattern the GEMM sees along K,
    the nonzero masks (None when no switched-on feature looks at B's zeros), the nonzero
    fraction of the stored tensor (None when no compression needs it) and, for delta replay's
    error, the weights this phase sees (else None)."""

    nm: tuple[int, int, int] | None
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


def _channel_axis(op: Op) -> int:
    return 1 if isinstance(op, Conv2d) else -1


class Replay:
    """One sparse replay run. Create, call :meth:`rows` once."""

    def __init__(self, workload: Workload, cfg: AccelConfig, dataflow: str, features: tuple,
                 table: EnergyTable, weight_cache_bytes: int = WEIGHT_CACHE_BYTES) -> None:
        self.workload = workload
        self.cfg = cfg
        self.dataflow = dataflow
        self.table = table
        self.label = feature_labels(features)
        by_kind = {type(f).kind: f for f in features}
        self.nm: NMConfig | None = by_kind.get("nm")
        self.zs: ZeroSkipConfig | None = by_kind.get("zero_skip")
        self.delta: DeltaConfig | None = by_kind.get("delta")
        self.policy: ActivationPolicyConfig | None = by_kind.get("act_policy")
        self.gate_policy: ActivationPolicyConfig | None = None  # the policy at site swiglu_gate
        self.blocks: dict[int, tuple[str, MlpBlock]] = {}  # op index -> (role, block) when coupled
        self.source = workload.source or SyntheticTensors(workload.ops, cfg.seed,
                                                          workload.meta.get("act_sparsity"))
        # delta state per layer name and input shape: an input that changes shape (attention
        # over a growing KV cache) starts again from a zero reference
        self.refs: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}  # delta reference state
        self.accs: dict[tuple[str, tuple[int, ...]], np.ndarray] = {}  # the sum of the deltas sent so far
        self.dense: dict[Gemm, OpOutcome] = {}  # the dense run of each GEMM shape, which depends on nothing else
        self.out_reserved = 0  # output-buffer bytes the current op's delta state holds
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
        if self.delta is not None:
            if workload.time_steps is None or all(t is None for t in workload.time_steps):
                raise InputError("sparsity.delta: the workload has no time axis; delta replay needs a "
                                 "sequence trace (e.g. `sparsesim trace capture --model video_cnn`)")
            if any(not p.forward for p in workload.phases):
                raise InputError("sparsity.delta: delta encoding applies to inference; simulate forward phases only")
        if self.policy is not None and self.policy.site == "swiglu_gate":
            self._init_coupling(workload)
        elif self.policy is not None and self.delta is None and not (self.zs and self.zs.target in ("input", "both")):
            # the zeros it makes reach no feature: every cost is the run's without the policy
            log.warning("act_policy %s zeroes input activations, but no switched-on feature acts on those zeros "
                        "(add zero_skip on the input, or delta): cycles, bytes and energy are as without it; "
                        "only the zero fractions change (rows: policy_inert)", self.policy.label())

    # ------------------------------------------------------------------ tensors
    def _weights(self, op: Op, w: np.ndarray, master: np.ndarray | None,
                 phase: Phase) -> tuple[np.ndarray, tuple[int, int, int] | None]:
        """The weights this phase sees, and ``(n, m, index_bits)`` if B is N:M along K.

        ``master`` is the dense weight a BDWP-trained trace recorded beside the pruned forward
        weight ``w``; both N:M copies are generated from it, as SAT's pre-generation does
        (re-pruning the forward copy along output features would prune twice). Without it,
        ``w`` is the dense weight.
        """
        nm = self.nm
        if nm is None or not isinstance(op, (Conv2d, Linear)) or phase is Phase.BWD_WEIGHT:
            return w, None
        where = f"{op.name}.weight"
        if phase.forward and nm.mode == "declared":
            wm = weight_matrix(op, w)
            prune_rows(wm.reshape(-1, wm.shape[2]), nm, where)  # verifies, refuses non-N:M
            return w, (nm.n, nm.m, nm.index_bits)
        dense = w if master is None else master
        wm = weight_matrix(op, dense)  # (g, out per group, reduction per group)
        g, kout, red = wm.shape
        # The backward copy is always generated by pruning (pre-generation); `declared` is a
        # claim about the forward weights only.
        prune = dataclasses.replace(nm, mode="prune") if master is not None or phase is Phase.BWD_DATA else nm
        if phase.forward or not nm.bidirectional:
            fwd = prune_rows(wm.reshape(g * kout, red), prune, where).reshape(w.shape)
            # without BDWP, bwd_data reuses the fwd mask, which is not N:M along output features
            return fwd, ((nm.n, nm.m, nm.index_bits) if phase.forward else None)
        t = np.ascontiguousarray(wm.transpose(0, 2, 1)).reshape(g * red, kout)
        bwd = prune_rows(t, prune, where).reshape(g, red, kout).transpose(0, 2, 1)
        return np.ascontiguousarray(bwd).reshape(w.shape), (nm.n, nm.m, nm.index_bits)

    def _input(self, index: int, op: Op, x: np.ndarray, phase: Phase, extra: dict) -> tuple[np.ndarray, np.ndarray]:
        """``(activations after the policy, what the GEMM sees)``: the second is the delta of
        the first against the layer's reference when delta encoding is on."""
        if self.policy is not None:
            before = x == 0
            x = self.policy.apply(x, _channel_axis(op))
            after = x == 0
            extra["policy"] = self.policy.label()
            extra["act_zero_fraction"] = float(after.mean())
            extra["policy_zeroed_fraction"] = float((after & ~before).mean())
        else:
            extra["act_zero_fraction"] = float((x == 0).mean())
        if self.delta is not None and phase.forward:
            ref = self.refs.setdefault((op.name, x.shape), np.zeros(x.size, dtype=np.float64))
            d = delta_step(np.ascontiguousarray(x, dtype=np.float64).ravel(), ref, self.delta.threshold)
            extra["delta_threshold"] = self.delta.threshold
            extra["delta_fired_fraction"] = float((d != 0).mean())
            return x, d.reshape(x.shape)
        return x, x

    # ------------------------------------------------------------------ one op
    def _b_side(self, op: Op, phase: Phase, w: np.ndarray | None, master: np.ndarray | None, dy: np.ndarray | None,
                aware: bool, compressed: bool, keep_seen: bool) -> _Operand:
        """What this (op, phase) needs of its B operand (``aware``: its zeros are detected;
        ``compressed``: its stored density sizes it; ``keep_seen``: delta error needs the weights)."""
        if OPERAND_ROLES[phase][1] == "weight":
            seen, nm = self._weights(op, w, master, phase) if w is not None else (w, None)
        else:
            seen, nm = dy, None
        B = b_operand(op, phase, seen, dy)
        masks = (tuple((B[g] != 0).view(np.uint8) for g in range(B.shape[0]))
                 if aware or nm is not None else None)
        density = float(np.count_nonzero(seen)) / seen.size if compressed else None
        return _Operand(nm, masks, density, seen if keep_seen else None)

    def _extra_defaults(self, index: int) -> dict:
        """The feature columns of a row of op ``index`` before any feature fills them in."""
        return {"policy": None, "act_zero_fraction": None, "policy_zeroed_fraction": None, "policy_inert": None,
                       "time_step": _time_step(self.workload, index), "delta_threshold": None,
                       "delta_fired_fraction": None,
                       "delta_err_max": None, "delta_err_mean": None, "pregen_cycles": None,
                       "pregen_select_cycles": None, "pregen_dram_bytes": None, "nm_select_cycles": None,
                       "weight_bytes_skipped": 0, "weight_fetch_bound_bytes": 0, "skip_bitmap_bytes": 0}

    def _op_phase(self, index: int, op: Op, phase: Phase, tensors: dict, key: tuple | None,
                  extra_read_bytes: int = 0, layout: str | None = None) -> _Pending:
        """One (op, phase). ``key``: where what it derives from a shared weight is kept (None:
        the weight is not shared); ``tensors`` then lacks the weight if that is already known.
        ``extra_read_bytes``: DRAM reads beside the GEMM's own, before its first tile (the partial
        bursts of a gathered weight, see :meth:`_narrowed`); ``layout``: how its weight lies in
        DRAM when not as ``dram.weight_layout`` says."""
        cfg = self.cfg
        extra = self._extra_defaults(index)
        x, w, dy = tensors.get("input"), tensors.get("weight"), tensors.get("grad")
        x_seen = x
        if x is not None and phase is not Phase.BWD_DATA:
            x_policy, x_seen = self._input(index, op, x, phase, extra)
        roles = OPERAND_ROLES[phase]
        on_a, on_b = self.zs.roles(roles) if self.zs else (False, False)
        skipping = self.zs is not None and self.zs.action == "skipping"
        compress = self.zs is not None and self.zs.compressed
        is_delta = self.delta is not None and phase.forward
        compress_a, compress_b = (on_a and compress) or is_delta, on_b and compress
        b_side = self.shared.get(key) if key is not None else None
        if b_side is None:
            b_side = self._b_side(op, phase, w, tensors.get("master_weight"), dy, on_b, compress_b, is_delta)
            if key is not None:
                self.shared.put(key, b_side)
        nm = b_side.nm
        A = a_operand(op, phase, x_seen, dy)
        a_masks = [(A[g] != 0).view(np.uint8) for g in range(A.shape[0])]
        stored_a = {"input": x_seen, "grad": dy}[roles[0]]
        # the stored densities size compressed operands only
        flags = {"density_a": float(np.count_nonzero(stored_a)) / stored_a.size if compress_a else None,
                 "density_b": b_side.density,
                 "skip_a": (on_a and skipping) or is_delta, "skip_b": on_b and skipping,
                 "aware_a": on_a or is_delta, "aware_b": on_b,
                 "compress_a": compress_a, "compress_b": compress_b}
        flags["nm_stored_dense"] = nm is not None and not cfg.training.pregen
        # which switched-on features act on this row (N:M skips matmuls and bwd_weight; a
        # zero-skip target may be absent from a phase; delta is fwd only)
        policy_acts = self.policy is not None and x is not None and phase is not Phase.BWD_DATA
        acting = [("nm", nm is not None), ("zero_skip", on_a or on_b), ("delta", is_delta), ("act_policy", policy_acts)]
        extra["features_active"] = "+".join(name for name, on in acting if on) or "none"
        if policy_acts:  # the policy's zeros are in A (the input); inert unless a feature looks at A's zeros
            extra["policy_inert"] = not flags["aware_a"]
        gemm1 = op.gemm(phase)
        fetched = self._weight_fetch(roles, a_masks, gemm1, nm, compress_b,
                                     (on_a and skipping and self.zs.weight_fetch) or
                                     (is_delta and self.delta.weight_fetch), extra, layout)
        side = SideWork(read_bytes=extra_read_bytes)
        # work beside the GEMM: delta encoding and state, N:M selection, the skip bitmaps
        counts = EventCounts(metadata_a_bytes=extra["skip_bitmap_bytes"])
        self.out_reserved = 0
        overhead = 0
        job = 0
        if is_delta:
            touched = sum(int(np.count_nonzero(m.any(axis=1))) for m in a_masks) * gemm1.N
            state, delta_counts = self._delta_costs(op, x_seen, touched, extra)
            counts = counts + delta_counts
            side = SideWork(read_bytes=state[0], write_bytes=state[1])
            self._delta_error(op, phase, x_seen, x_policy, b_side.seen, extra)
        if flags["nm_stored_dense"] and cfg.training.charge_pregen:  # beside any delta charges
            select, select_counts = self._on_the_fly_costs(op, phase, extra)
            side = dataclasses.replace(side, select_cycles=select.select_cycles)
            counts = counts + select_counts
        if phase is Phase.BWD_WEIGHT and self.nm is not None and w is not None and cfg.training.pregen \
                and cfg.training.charge_pregen and isinstance(op, (Conv2d, Linear)):
            side, counts, overhead, job = self._pregen_costs(op, w, extra)
        reserved = self.out_reserved
        b_masks = b_side.masks

        def work(df) -> list:
            works = [sparse_work(df, gemm1, cfg, OperandMasks(a, None if b_masks is None else b_masks[g]), nm=nm,
                                 weight_skip=fetched[g], **flags) for g, a in enumerate(a_masks)]
            if reserved:  # delta state kept in the output buffer: the GEMM maps around it
                works = [dataclasses.replace(w, out_reserved_bytes=reserved) for w in works]
            return works

        def timed(name: str) -> OpOutcome:
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
        dense = self.dense.get(gemm1)
        if dense is None:  # identical shapes recur (decode steps, repeated blocks): plan and time once
            dense = self.dense[gemm1] = best_of(self.dataflow, lambda name: run_gemm(gemm1, cfg, name), cfg)
        return _Pending(op, phase, out, dense, job)

    def _weight_fetch(self, roles: tuple[str, str], a_masks: list[np.ndarray], gemm: Gemm,
                      nm: tuple | None, compress_b: bool, skipping: bool, extra: dict,
                      layout: str | None = None) -> list:
        """Each group's weight-row skipping (a :class:`WeightFetchSkip`, or None where the weight
        is fetched whole), and the row's weight-fetch columns.

        With the weights as B, every row gets the bound for its activation sparsity: the bytes
        of the weight rows whose activation column holds a nonzero (``weight_fetch_bound_bytes``,
        what any schedule must fetch at least once). Where ``skipping`` (zero-skipping of the
        activations, or delta encoding, with ``weight_fetch``) applies to a dense stored B, the
        rows dead over the whole GEMM are skipped at ``dram.burst_bytes`` granularity in
        ``dram.weight_layout`` (:func:`~sparsesim.dataflows.sparse.weight_fetch_skip`). The
        dead set is taken over all of M: exact when M fits one tile (a decode GEMV, M = batch);
        where the mapper splits M, each tile could skip more, so the saving is a lower bound.
        The skip bitmap (one bit per reduction index) is read once per pass over the weights.
        """
        ones = [None] * len(a_masks)
        if roles[1] != "weight":
            return ones
        dram, elem = self.cfg.dram, self.cfg.array.element_bytes
        live = [a.any(axis=0) for a in a_masks]  # over all of M, which shares one fetch of B
        skips = [weight_fetch_skip(k, gemm.N, elem, dram.burst_bytes, layout or dram.weight_layout) for k in live]
        extra["weight_fetch_bound_bytes"] = sum(k.bound_bytes for k in skips)
        if not skipping or nm is not None or compress_b:  # N:M or compressed weights: no dense rows to skip
            return ones
        extra["weight_bytes_skipped"] = sum(k.skipped_bytes for k in skips)
        extra["skip_bitmap_bytes"] = sum(k.bitmap_bytes for k in skips)
        return [None if skip.live.all() else skip for skip in skips]

    def _select_cycles(self, groups: int) -> int:
        """Cycles of the pruning unit for ``groups`` groups of M: each of its lanes selects the
        top N of one group in M cycles (``training.pregen_lanes``; SAT reading note, assumption 7
        in ``sat.yaml``)."""
        return -(-groups // self.cfg.training.pregen_lanes) * self.nm.m

    def _copy_groups(self, op: Op, phase: Phase) -> tuple[int, int]:
        """``(groups, kept weights)`` of the N:M copy a phase uses: fwd groups along input
        features, bwd_data along output features (rows x groups along the reduction)."""
        nm = self.nm
        g, kout, red = weight_matrix(op, np.empty(op.weight_shape, dtype=np.float32)).shape
        rows, length = (g * kout, red) if phase.forward else (g * red, kout)
        return rows * -(-length // nm.m), rows * ((length // nm.m) * nm.n + min(nm.n, length % nm.m))

    def _selection_ops(self, groups: int) -> int:
        """Magnitude comparisons of selecting ``groups`` groups: M per group, log2(M) bits each."""
        return groups * self.nm.m * max(1, int(np.ceil(np.log2(self.nm.m))))

    def _on_the_fly_costs(self, op: Op, phase: Phase, extra: dict) -> tuple[SideWork, EventCounts]:
        """Pruning while loading (``training.pregen: false``): the GEMM loads the dense weights
        and the pruning unit selects N of every M as they stream into the weight buffer, for
        every fwd and bwd_data GEMM. Charged: the unit's comparisons (energy) and its busy time
        against the weight stream (a stall where it is the slower stage). Each weight is
        selected once per GEMM; a weight block that the dataflow refetches would be selected
        again, which this charge leaves out (it is a lower bound on the selection work).
        """
        groups, _ = self._copy_groups(op, phase)
        cycles = self._select_cycles(groups)
        extra["nm_select_cycles"] = cycles
        return SideWork(select_cycles=cycles), EventCounts(pregen_ops=self._selection_ops(groups))

    def _pregen_costs(self, op: Op, w: np.ndarray, extra: dict) -> tuple[SideWork, EventCounts, int, int]:
        """SAT pre-generation after the weight update: read the dense weights once, select the
        N:M survivors along both directions, write both compressed copies (values + indices).

        Returns ``(side traffic, events, serialized cycles, pruning-unit job cycles)``.
        Serialized, it adds ``max(selection cycles, transfer cycles)`` after the weight update.
        Overlapped (default), its DRAM traffic competes with this GEMM's, and its selection is a
        job for the pruning unit, which :meth:`rows` places on the run's timeline: it hides
        only behind the work that follows it (see :func:`_exposed_pregen`).
        """
        nm, cfg = self.nm, self.cfg
        elem = cfg.array.element_bytes
        groups_fwd, kept_fwd = self._copy_groups(op, Phase.FWD)
        groups_bwd, kept_bwd = self._copy_groups(op, Phase.BWD_DATA) if nm.bidirectional else (0, 0)
        groups = groups_fwd + groups_bwd
        reads = w.size * elem
        writes = int((kept_fwd + kept_bwd) * (elem + nm.index_bits / 8.0))
        select = self._select_cycles(groups)
        counts = EventCounts(pregen_ops=self._selection_ops(groups), sram_b_bytes=reads + writes)
        extra["pregen_dram_bytes"] = reads + writes
        extra["pregen_select_cycles"] = select
        if cfg.training.pregen_overlap:
            extra["pregen_cycles"] = 0  # set by the run's timeline
            return SideWork(read_bytes=reads, write_bytes=writes, spread=True), counts, 0, select
        transfer = 0 if cfg.dram.ideal else int(np.ceil((reads + writes) / cfg.dram.bandwidth_bytes_per_cycle))
        cycles = max(select, transfer)
        extra["pregen_cycles"] = cycles
        counts = counts + EventCounts(dram_read_bytes=reads, dram_write_bytes=writes)
        return SideWork(), counts, cycles, 0

    def _delta_costs(self, op: Op, d: np.ndarray, touched: int, extra: dict) -> tuple[tuple[int, int], EventCounts]:
        """Encoder work and reference/accumulator state traffic of one delta step.

        Per input element: one subtract and one compare, a reference read, and a reference
        write where it fired. Per output element that some fired input reaches (``touched``:
        the outputs of every row of A that is not all zero), a read-modify-write of its
        accumulator; untouched accumulators keep their value. The state (reference plus
        accumulators) lives in the output buffer's free half when it fits, else in DRAM.
        """
        cfg = self.cfg
        elem, acc = cfg.array.element_bytes, cfg.array.accumulator_bytes
        n_in, n_out = d.size, int(np.prod(op.output_shape))
        fired = int(np.count_nonzero(d))
        reads = n_in * elem + touched * acc
        writes = fired * elem + touched * acc
        # the state shares the output buffer with the GEMM's own double-buffered output tiles:
        # it may take at most half, and the GEMM is then mapped into what is left
        on_chip = n_in * elem + n_out * acc <= cfg.buffers.out.size_bytes // 2
        self.out_reserved = n_in * elem + n_out * acc if on_chip else 0
        counts = EventCounts(delta_state_bytes=reads + writes, encode_ops=2 * n_in)
        extra["delta_state_on_chip"] = on_chip
        extra["delta_state_bytes"] = n_in * elem + n_out * acc
        return ((0, 0) if on_chip else (reads, writes)), counts

    def _delta_error(self, op: Op, phase: Phase, sent: np.ndarray, x_now: np.ndarray, w: np.ndarray,
                     extra: dict) -> None:
        """Output error of the delta layer against the dense layer at this step.

        The error is that of what was actually sent: the layer's accumulator holds
        ``sum_t (delta_t . W)``, which by linearity is ``(sum_t delta_t) . W``, so the replay keeps
        the sum of the sent deltas (``sent`` is this step's) and evaluates ``(sum - x_t) . W``.
        A wrong delta therefore shows up as error. Keeping the sum in input space makes it exact
        in float64 for float32 data (each delta and each partial sum is representable), so
        threshold 0 gives exactly zero error; the rounding of a hardware accumulator is not
        modelled.
        """
        acc = self.accs.setdefault((op.name, x_now.shape), np.zeros(sent.size, dtype=np.float64))
        acc += sent.ravel()
        gap, b = gemm_operands(op, phase, acc.reshape(x_now.shape) - x_now.astype(np.float64), w, None)
        b = b.astype(np.float64)
        worst, total, count = 0.0, 0.0, 0
        rows = max(1, (1 << 22) // max(b.shape[2], 1))  # bound the temporaries to ~4M elements
        for g in range(gap.shape[0]):
            for r0 in range(0, gap.shape[1], rows):
                err = np.abs(gap[g, r0:r0 + rows] @ b[g])  # exact zero where every delta arrived
                if err.size:
                    worst, total, count = max(worst, float(err.max())), total + float(err.sum()), count + err.size
        extra["delta_err_max"] = worst
        extra["delta_err_mean"] = total / count if count else 0.0

    # ------------------------------------------------------------------ swiglu_gate coupling
    def _init_coupling(self, workload: Workload) -> None:
        """Move the policy to the gate outputs: it no longer acts on op inputs (``self.policy``
        None); find the MLP blocks and their activation, refusing what cannot be coupled."""
        self.gate_policy, self.policy = self.policy, None
        if self.delta is not None:
            raise InputError("sparsity.act_policy.site: swiglu_gate cannot be combined with delta encoding")
        self.blocks = mlp_blocks(workload)
        check_coupling(workload, self.blocks)
        self.gate_act = mlp_activation(workload, self.gate_policy.gate_act)
        self.gate_masks: dict[MlpBlock, np.ndarray] = {}  # live mask of the blocks being replayed
        self.gate_thresholds: dict[str, np.ndarray] = {}  # calibrate: prefill, per block name
        # gate and up weights as read, by stored name: a decode trace's steps share them, and the
        # gate's is needed for its mask and the narrowed GEMMs gather rows of them every step
        self.coupled_weights = _WeightCache(self.shared.max_bytes)

    def _coupled_tensors(self, index: int) -> dict:
        """The tensors of a gate or up op, its weight from :attr:`coupled_weights` when it is
        shared and already read."""
        name = None if self.names is None else (self.names(index) or {}).get("weight")
        name = name if name in self.shared_names else None
        weight = None if name is None else self.coupled_weights.get(name)
        if weight is None:
            tensors = self.source.tensors(index)
            if name is not None and tensors.get("weight") is not None:
                self.coupled_weights.put(name, tensors["weight"])
            return tensors
        return {**self.source.tensors(index, frozenset({"input", "grad", "master_weight"})), "weight": weight}

    def _gate_live(self, block: MlpBlock, index: int, phase: Phase, tensors: dict) -> np.ndarray:
        """The ``(M, d_ff)`` live mask of ``block``, recomputed from its gate op's tensors once.

        With ``calibrate: prefill`` the layer's thresholds come from its first prefill pass
        and hold for every pass after it (refused when a pass comes before any prefill)."""
        live = self.gate_masks.get(block)
        if live is None:
            own = tensors if index == block.gate else self.source.tensors(block.gate)
            h = gate_output(own["input"], own["weight"], self.gate_act)
            if self.gate_policy.calibrate == "prefill":
                limit = self.gate_thresholds.get(block.name)
                if limit is None:
                    if phase is not Phase.PREFILL:
                        raise field_error("sparsity.act_policy.calibrate",
                                          f"prefill: {block.name} has {phase} rows before any prefill pass to "
                                          "calibrate on (replay the prefill phase too)")
                    limit = self.gate_thresholds[block.name] = calibrated_thresholds(h, self.gate_policy)
                live = np.abs(h) > limit
            else:
                live = gate_live(h, self.gate_policy)
            self.gate_masks[block] = live
        return live

    def _dense_of(self, gemm: Gemm) -> OpOutcome:
        dense = self.dense.get(gemm)
        if dense is None:
            dense = self.dense[gemm] = best_of(self.dataflow, lambda name: run_gemm(gemm, self.cfg, name), self.cfg)
        return dense

    def _coupled_op_phase(self, index: int, op: Op, phase: Phase, tensors: dict, key: tuple | None) -> _Pending:
        """One (op, phase) of a gated MLP block under the swiglu_gate policy.

        gate: run dense (its output is what the policy reads), or, with a predictor, only its
        live columns plus the predictor's GEMMs; up: only its live columns; down: its recorded
        input ``h`` with the dead neurons zeroed, so the switched-on features act on the zeros.
        """
        role, block = self.blocks[index]
        live = self._gate_live(block, index, phase, tensors)
        columns = live.any(axis=0)
        extra = {"policy": self.gate_policy.label(), "mlp_role": role, "gate_act": self.gate_act,
                 "gate_live_fraction": float(live.mean()), "gate_live_columns": int(columns.sum())}
        if role == "down":
            x = tensors["input"]
            h = masked_h(x, live)
            extra["policy_zeroed_fraction"] = float(((h == 0) & (x != 0)).mean())
            pending = self._op_phase(index, op, phase, {**tensors, "input": h}, key)
            self.gate_masks.pop(block, None)
        elif role == "up" or self.gate_policy.predictor != "none":
            pending = self._narrowed(index, op, phase, tensors, columns, extra)
            if role == "gate":
                pending = self._with_predictor(pending, op, extra)
        else:
            pending = self._op_phase(index, op, phase, tensors, key)
        acting = pending.out.extra.get("features_active", "none")
        extra["features_active"] = "act_policy" if acting == "none" else f"{acting}+act_policy"
        return dataclasses.replace(pending, out=dataclasses.replace(pending.out, extra={**pending.out.extra, **extra}))

    def _narrowed(self, index: int, op: Linear, phase: Phase, tensors: dict, columns: np.ndarray,
                  extra: dict) -> _Pending:
        """``op`` computing only its output ``columns``: a GEMM with N = the live columns, whose
        weight is the gather of those rows of the ``[out, in]`` weight.

        Layout: one contiguous row per neuron, as PyTorch and the gathering kernels of CATS and
        Deja Vu store it, whatever ``dram.weight_layout`` says of the weights that input sparsity
        skips. DRAM moves whole ``dram.burst_bytes`` bursts, so a dead row saves only the bursts
        no live row shares (:func:`~sparsesim.dataflows.sparse.weight_fetch_skip` over neuron
        rows); the partial bursts of live rows are read beside the narrowed GEMM. The gather
        is driven by a bitmap of one bit per neuron, read beside the weights. The row keeps the
        op's shape and dense run; its work is the narrowed GEMM's, with weight fetch skipping of
        its own input on top, strided within the neuron rows as in ``n_major`` (those columns add to
        ``weight_bytes_skipped`` and the bitmap). N:M-compressed rows count at their stored size.
        """
        gemm = op.gemm(phase)
        dense = self._dense_of(gemm)
        n = int(columns.sum())
        elem, dram = self.cfg.array.element_bytes, self.cfg.dram
        rows = weight_fetch_skip(columns, op.in_features, elem, dram.burst_bytes, "k_major")
        stored = self._stored_weight_ratio(op.in_features)  # N:M-compressed neuron rows are shorter
        skipped = int(rows.skipped_bytes * stored) * gemm.count
        partial = int((rows.dense_bytes - rows.skipped_bytes - rows.bound_bytes) * stored) * gemm.count
        bitmap = rows.bitmap_bytes * gemm.count
        if n == 0:  # every neuron dead: the op does not run
            extra.update(weight_bytes_skipped=skipped, weight_fetch_bound_bytes=0, skip_bitmap_bytes=bitmap)
            out = OpOutcome(dense.dataflow, 0, 0, 0, EventCounts(metadata_b_bytes=bitmap), dense.macs_dense, 0, 0, 0,
                            extra=self._extra_defaults(index))
            return _Pending(op, phase, out, dense, 0)
        narrow, sliced = op, tensors
        if n < op.out_features:
            narrow = dataclasses.replace(op, out_features=n)
            sliced = {**tensors, **{role: tensors[role][columns] for role in ("weight", "master_weight")
                                    if tensors.get(role) is not None}}
        # its own input's zeros skip columns of those neuron rows: strided, as in n_major
        pending = self._op_phase(index, narrow, phase, sliced, None, extra_read_bytes=partial, layout="n_major")
        own = pending.out.extra  # the narrowed GEMM's own weight fetch skipping, behind its input's zeros
        extra.update(weight_bytes_skipped=own["weight_bytes_skipped"] + skipped,
                     weight_fetch_bound_bytes=own["weight_fetch_bound_bytes"],
                     skip_bitmap_bytes=own["skip_bitmap_bytes"] + bitmap)
        out = dataclasses.replace(pending.out, macs_dense=dense.macs_dense,
                                  counts=pending.out.counts + EventCounts(metadata_b_bytes=bitmap))
        return _Pending(op, phase, out, dense, pending.pregen_job_cycles)

    def _stored_weight_ratio(self, length: int) -> float:
        """Stored bytes of a weight row of ``length`` reduction elements over its dense bytes:
        below 1 where N:M pre-generation stores it compressed (values and indices)."""
        nm = self.nm
        if nm is None or not self.cfg.training.pregen:
            return 1.0
        kept = (length // nm.m) * nm.n + min(nm.n, length % nm.m)
        if kept >= length:
            return 1.0
        elem = self.cfg.array.element_bytes
        return kept * (elem + nm.index_bits / 8.0) / (length * elem)

    def _with_predictor(self, pending: _Pending, op: Linear, extra: dict) -> _Pending:
        """The gate row with the low-rank predictor's two dense GEMMs (``tokens x d -> r`` and
        ``tokens x r -> d_ff``; Deja Vu, Liu et al. ICML 2023, its MLP sparsity predictor) run before it on
        the same array: their cycles, DRAM traffic (the predictor's weights) and energy are
        added to the row. The predictor is assumed to recall exactly the neurons the policy
        keeps (Deja Vu reports high recall), so the row is an upper bound on the gain."""
        cfg = self.cfg
        rank = self.gate_policy.rank_for(op.in_features)
        runs = [self._dense_of(Gemm(op.tokens, rank, op.in_features)),
                self._dense_of(Gemm(op.tokens, op.out_features, rank))]
        counts = runs[0].counts + runs[1].counts
        cycles = sum(r.cycles for r in runs)
        extra.update(predictor_rank=rank, predictor_macs=sum(r.macs_dense for r in runs), predictor_cycles=cycles,
                     predictor_dram_bytes=counts.dram_read_bytes + counts.dram_write_bytes,
                     predictor_energy_pj=sum(sum(energy_breakdown_pj(r.counts, cfg, r.cycles, self.table).values())
                                             for r in runs))
        out = pending.out
        out = dataclasses.replace(out, cycles=out.cycles + cycles, counts=out.counts + counts,
                                  compute_cycles=out.compute_cycles + sum(r.compute_cycles for r in runs),
                                  stall_cycles=out.stall_cycles + sum(r.stall_cycles for r in runs))
        return dataclasses.replace(pending, out=out)

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

    def rows(self) -> list[dict]:
        pending = []
        for index, op in enumerate(self.workload.ops):
            phases = op_phases(self.workload, index)
            if not phases:
                continue
            biggest = max(op.gemm(p).count * (op.gemm(p).M + op.gemm(p).N) * op.gemm(p).K for p in phases)
            if biggest > MAX_REPLAY_ELEMENTS:
                raise InputError(f"{op.name}: its GEMM operands hold {biggest:,} elements; sparse replay "
                                 f"handles at most {MAX_REPLAY_ELEMENTS:,} per op (the dense engine has no such limit)")
            keys = self._shared_keys(index, op, phases)
            known = {phase: key is not None and self.shared.get(key) is not None for phase, key in keys.items()}
            if self.blocks.get(index, ("down",))[0] != "down":  # a gate or up: its weight is read below
                tensors = self._coupled_tensors(index)
            elif keys and all(known.values()) and Phase.BWD_WEIGHT not in phases:
                tensors = self.source.tensors(index, frozenset({"input", "grad"}))  # the weight is not needed
            else:
                tensors = self.source.tensors(index)
            replay = self._coupled_op_phase if index in self.blocks else self._op_phase
            for phase in phases:
                pending.append(replay(index, op, phase, tensors, keys.get(phase)))
        exposed = _exposed_pregen(pending)
        rows = []
        for i, p in enumerate(pending):
            out = p.out
            if exposed[i]:
                out = dataclasses.replace(out, cycles=out.cycles + exposed[i], overhead_cycles=exposed[i],
                                          extra={**out.extra, "pregen_cycles": exposed[i]})
            row = make_row(p.op, p.phase, p.op.gemm(p.phase), out, p.dense, self.cfg, self.table, self.label)
            for column, default in COUPLING_COLUMNS.items():
                row.setdefault(column, default)
            rows.append(row)
        return rows


def _time_step(workload: Workload, index: int) -> int | None:
    """Op ``index``'s time step (a sequence frame, or a decode step), None without a time axis."""
    return None if workload.time_steps is None else workload.time_steps[index]


def _work_key(work: SparseWork) -> tuple:
    """Every field of a :class:`SparseWork` (all that planning and timing read of it), hashable:
    arrays (the stream lengths) by shape, dtype and a 128-bit digest, since their bytes would
    make the key as large as the fold grid."""
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
    pregen_job_cycles: int  # overlapped pre-generation released after this row (bwd_weight)


def _exposed_pregen(pending: list[_Pending]) -> list[int]:
    """Cycles of overlapped pre-generation that no work hides, per row (charged to the
    bwd_weight row whose weight update released the job).

    The pruning unit is one resource shared by all layers. The rows run in execution order:
    every fwd in op order, then the backward pass in reverse op order (bwd_data, then
    bwd_weight). A layer's job is released when its bwd_weight row ends; the unit takes jobs in
    release order, one at a time. The workload is one training step of a steady state of
    identical steps: a layer's copies must be ready when the next step first uses them (its
    fwd, else its bwd_data, else the next step's start), and the array waits for them there.
    So a job hides only behind the work that runs between its release and that use, and only
    as much of it as is at least as long. A multi-step workload is treated as one long step.
    """
    if not any(p.pregen_job_cycles for p in pending):
        return [0] * len(pending)
    order = [i for i, p in enumerate(pending) if p.phase.forward]
    backward = [i for i, p in enumerate(pending) if not p.phase.forward]
    by_op: dict[str, list[int]] = {}
    for i in backward:
        by_op.setdefault(pending[i].op.name, []).append(i)
    seen = []
    for i in reversed(backward):
        name = pending[i].op.name
        if name not in seen:
            seen.append(name)
    for name in seen:  # ops in reverse order, each op's backward rows in phase order
        order += sorted(by_op[name], key=lambda i: PHASES.index(pending[i].phase))
    clock, unit_free = 0, 0
    done: dict[int, int] = {}  # row index of the releasing bwd_weight -> job completion time
    for i in order:
        clock += pending[i].out.cycles
        if pending[i].pregen_job_cycles:
            unit_free = max(unit_free, clock) + pending[i].pregen_job_cycles
            done[i] = unit_free
    step = clock
    first_use: dict[str, int] = {}  # layer -> first row of the next step that reads its copies
    for i in order:
        if pending[i].phase is not Phase.BWD_WEIGHT:
            first_use.setdefault(pending[i].op.name, i)
    waits: dict[int, list[int]] = {}  # row of the next step -> jobs it waits for
    for job in done:
        waits.setdefault(first_use.get(pending[job].op.name, order[0]), []).append(job)
    exposed = [0] * len(pending)
    clock = step
    for i in order:  # the next step, waiting where a copy is late
        for job in waits.get(i, ()):
            if done[job] > clock:
                exposed[job] += done[job] - clock
                clock = done[job]
        clock += pending[i].out.cycles
    return exposed
