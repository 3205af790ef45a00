"""Sparse replay: real tensors through the sparse features, op by op and phase by phase.

For each (op, phase) the replay

1. takes the op's tensors (trace, or seeded synthetic ones for shape-only workloads),
2. applies the activation sparsification policy to the input activations,
3. prunes the weights N:M along this phase's reduction dimension (bidirectional pruning:
   ``fwd`` along input features, ``bwd_data`` along output features, ``bwd_weight`` dense),
4. delta-encodes sequence inputs against the layer's reference state (``fwd`` only),
5. lowers the tensors to the GEMM operands of the phase and takes their zero masks,
6. maps them with the dataflow (:mod:`sparsesim.dataflows.sparse`), plans, times and prices each group,

and reports the dense run of the same op on the same hardware beside it. Per-run state (the
delta references) lives in the :class:`Replay` object, never in the module.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sparsesim.accel.config import AccelConfig
from sparsesim.accel.energy import EnergyTable
from sparsesim.accel.kernels import delta_step
from sparsesim.accel.schedule import EventCounts, TileSchedule, back_to_back
from sparsesim.accel.sparsity import feature_labels
from sparsesim.accel.sparsity.activation_policy import ActivationPolicyConfig
from sparsesim.accel.sparsity.delta import DeltaConfig
from sparsesim.accel.sparsity.nm import NMConfig, prune_rows
from sparsesim.accel.sparsity.zero_skip import ZeroSkipConfig
from sparsesim.dataflows import DATAFLOWS
from sparsesim.dataflows.sparse import OperandMasks, sparse_work
from sparsesim.engine import OpOutcome, best_of, make_row, memory_columns, op_phases, run_gemm, time_schedule
from sparsesim.workloads.errors import InputError
from sparsesim.workloads.gemm import Gemm, Phase
from sparsesim.workloads.lowering import OPERAND_ROLES, gemm_operands, weight_matrix
from sparsesim.workloads.ops import Conv2d, Linear, Op, Workload
from sparsesim.workloads.synthetic_operands import SyntheticTensors


MAX_REPLAY_ELEMENTS = 400_000_000
"""Largest A plus B operand (elements, all groups) one op may have in a sparse replay."""


def _with_side_traffic(schedule: TileSchedule, nbytes: tuple[int, int], spread: bool) -> TileSchedule:
    """Add DRAM traffic beside the GEMM's own: ``(read, write)`` bytes.

    ``spread`` shares it out over the tiles in proportion to their compute time (background
    traffic such as overlapped pre-generation, competing for bandwidth); otherwise reads
    come before the first tile and writes after the last (delta state brought in and out).
    """
    load = schedule.load_bytes.copy()
    store = schedule.store_bytes.copy()
    if spread:
        share = schedule.compute_cycles / max(int(schedule.compute_cycles.sum()), 1)
        load += np.floor(share * nbytes[0]).astype(np.int64)
        store += np.floor(share * nbytes[1]).astype(np.int64)
        load[0] += nbytes[0] - int(np.floor(share * nbytes[0]).sum())
        store[-1] += nbytes[1] - int(np.floor(share * nbytes[1]).sum())
    else:
        load[0] += nbytes[0]
        store[-1] += nbytes[1]
    return dataclasses.replace(schedule, load_bytes=load, store_bytes=store)


def _channel_axis(op: Op) -> int:
    return 1 if isinstance(op, Conv2d) else -1


class Replay:
    """One sparse replay run. Create, call :meth:`rows` once."""

    def __init__(self, workload: Workload, cfg: AccelConfig, dataflow: str, features: tuple,
                 table: EnergyTable) -> None:
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
        self.source = workload.source or SyntheticTensors(workload.ops, cfg.seed)
        self.refs: dict[str, np.ndarray] = {}  # delta reference state per layer name
        self.out_reserved = 0  # output-buffer bytes the current op's delta state holds
        if self.delta is not None:
            if workload.time_steps is None or all(t is None for t in workload.time_steps):
                raise InputError("sparsity.delta: the workload has no time axis; delta replay needs a "
                                 "sequence trace (e.g. `sparsesim trace capture --model video_cnn`)")
            if any(p is not Phase.FWD for p in workload.phases):
                raise InputError("sparsity.delta: delta encoding applies to inference; use --phases fwd")

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
        if phase is Phase.FWD and nm.mode == "declared":
            wm = weight_matrix(op, w)
            prune_rows(wm.reshape(-1, wm.shape[2]), nm, where)  # verifies, refuses non-N:M
            return w, (nm.n, nm.m, nm.index_bits)
        dense = w if master is None else master
        wm = weight_matrix(op, dense)  # (g, out per group, reduction per group)
        g, kout, red = wm.shape
        # The backward copy is always generated by pruning (pre-generation); `declared` is a
        # claim about the forward weights only.
        prune = dataclasses.replace(nm, mode="prune") if master is not None or phase is Phase.BWD_DATA else nm
        if phase is Phase.FWD or not nm.bidirectional:
            fwd = prune_rows(wm.reshape(g * kout, red), prune, where).reshape(w.shape)
            # without BDWP, bwd_data reuses the fwd mask, which is not N:M along output features
            return fwd, ((nm.n, nm.m, nm.index_bits) if phase is Phase.FWD else None)
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
        if self.delta is not None and phase is Phase.FWD:
            ref = self.refs.setdefault(op.name, np.zeros(x.size, dtype=np.float64))
            d = delta_step(np.ascontiguousarray(x, dtype=np.float64).ravel(), ref, self.delta.threshold)
            extra["time_step"] = self.workload.time_steps[index]
            extra["delta_threshold"] = self.delta.threshold
            extra["delta_fired_fraction"] = float((d != 0).mean())
            return x, d.reshape(x.shape)
        return x, x

    # ------------------------------------------------------------------ one op
    def _attempt(self, name: str, op: Op, phase: Phase, A: np.ndarray, B: np.ndarray,
                 nm: tuple[int, int, int] | None, flags: dict, state_bytes: tuple[int, int]) -> OpOutcome:
        df = DATAFLOWS.get(name)
        cfg = self.cfg
        gemm1 = op.gemm(phase)
        gemm1 = dataclasses.replace(gemm1, count=1)  # one group; keeps the conv geometry
        total = EventCounts(dram_read_bytes=state_bytes[0], dram_write_bytes=state_bytes[1])
        dense_macs = eff = folds = 0
        schedules, plans = [], []
        for g in range(A.shape[0]):  # groups run back to back, each with its own masks
            masks = OperandMasks((A[g] != 0).view(np.uint8), (B[g] != 0).view(np.uint8))
            work = sparse_work(df, gemm1, cfg, masks, nm=nm, **flags)
            if self.out_reserved:  # delta state kept in the output buffer: the GEMM maps around it
                work = dataclasses.replace(work, out_reserved_bytes=self.out_reserved)
            plan = df.plan(gemm1, cfg, work)
            plans.append(plan)
            schedules.append(plan.schedule)
            total = total + plan.counts
            dense_macs += plan.macs_dense
            eff += plan.macs_effectual
            folds += plan.folds
        schedule = back_to_back(schedules)
        if any(state_bytes):
            schedule = _with_side_traffic(schedule, state_bytes, spread=self.delta is None)
        cycles, compute, stall = time_schedule(schedule, cfg)
        return OpOutcome(name, cycles, compute, stall, total, dense_macs, eff, folds, len(schedule),
                         memory=memory_columns(plans))

    def _op_phase(self, index: int, op: Op, phase: Phase, tensors: dict) -> dict:
        cfg = self.cfg
        extra: dict = {"policy": None, "act_zero_fraction": None, "policy_zeroed_fraction": None,
                       "time_step": None, "delta_threshold": None, "delta_fired_fraction": None,
                       "delta_err_max": None, "delta_err_mean": None, "pregen_cycles": None,
                       "pregen_dram_bytes": None}
        x, w, dy = tensors.get("input"), tensors.get("weight"), tensors.get("grad")
        x_seen = x
        if x is not None and phase is not Phase.BWD_DATA:
            x_policy, x_seen = self._input(index, op, x, phase, extra)
        w_seen, nm = (self._weights(op, w, tensors.get("master_weight"), phase) if w is not None else (w, None))
        A, B = gemm_operands(op, phase, x_seen, w_seen, dy)
        roles = OPERAND_ROLES[phase]
        on_a, on_b = self.zs.roles(roles) if self.zs else (False, False)
        skipping = self.zs is not None and self.zs.action == "skipping"
        compress = self.zs is not None and self.zs.compressed
        is_delta = self.delta is not None and phase is Phase.FWD
        stored = {"input": x_seen, "weight": w_seen, "grad": dy}
        density = [float(np.count_nonzero(stored[r])) / stored[r].size if stored[r] is not None else None
                   for r in roles]
        flags = {"density_a": density[0], "density_b": density[1],
                 "skip_a": (on_a and skipping) or is_delta, "skip_b": on_b and skipping,
                 "aware_a": on_a or is_delta, "aware_b": on_b,
                 "compress_a": (on_a and compress) or is_delta, "compress_b": on_b and compress}
        flags["nm_stored_dense"] = nm is not None and not cfg.training.pregen
        # which switched-on features act on this row (N:M skips matmuls and bwd_weight; a
        # zero-skip target may be absent from a phase; delta is fwd only)
        acting = [("nm", nm is not None), ("zero_skip", on_a or on_b), ("delta", is_delta),
                  ("act_policy", self.policy is not None and x is not None and phase is not Phase.BWD_DATA)]
        extra["features_active"] = "+".join(name for name, on in acting if on) or "none"
        state = (0, 0)
        self.out_reserved = 0
        side = EventCounts()  # work beside the GEMM: delta encoding and state, N:M pre-generation
        overhead = 0
        if is_delta:
            touched = sum(int(np.count_nonzero((A[g] != 0).any(axis=1))) for g in range(A.shape[0])) * B.shape[2]
            state, side = self._delta_costs(op, x_seen, touched, extra)
            self._delta_error(op, phase, x_policy, w_seen, extra)
        if phase is Phase.BWD_WEIGHT and self.nm is not None and w is not None and cfg.training.pregen \
                and cfg.training.charge_pregen and isinstance(op, (Conv2d, Linear)):
            state, side, overhead = self._pregen_costs(op, w, extra)
        out = best_of(self.dataflow, lambda name: self._attempt(name, op, phase, A, B, nm, flags, state), cfg)
        out = OpOutcome(out.dataflow, out.cycles + overhead, out.compute_cycles, out.stall_cycles,
                        out.counts + side, out.macs_dense, out.macs_effectual, out.folds, out.tiles, extra,
                        overhead_cycles=overhead, memory=out.memory)
        gemm = op.gemm(phase)
        dense = best_of(self.dataflow, lambda name: run_gemm(gemm, cfg, name), cfg)
        return make_row(op, phase, gemm, out, dense, cfg, self.table, self.label)

    def _pregen_costs(self, op: Op, w: np.ndarray, extra: dict) -> tuple[tuple[int, int], EventCounts, int]:
        """SAT pre-generation after the weight update: read the dense weights once, select the
        N:M survivors along both directions, write both compressed copies (values + indices).

        Overlapped (default), only its DRAM traffic competes with the GEMM's; serialized, it
        adds ``max(selection cycles, transfer cycles)`` after the weight update.
        """
        nm, cfg = self.nm, self.cfg
        elem = cfg.array.element_bytes
        g, kout, red = weight_matrix(op, w).shape

        def copy(rows: int, length: int) -> tuple[int, int]:
            """(groups, kept weights) of one compressed copy: rows x groups along length."""
            groups = rows * -(-length // nm.m)
            return groups, rows * ((length // nm.m) * nm.n + min(nm.n, length % nm.m))

        groups_fwd, kept_fwd = copy(g * kout, red)
        groups_bwd, kept_bwd = copy(g * red, kout) if nm.bidirectional else (0, 0)
        groups = groups_fwd + groups_bwd
        reads = w.size * elem
        writes = int((kept_fwd + kept_bwd) * (elem + nm.index_bits / 8.0))
        select = -(-groups // cfg.training.pregen_lanes) * nm.m
        counts = EventCounts(pregen_ops=groups * nm.m * max(1, int(np.ceil(np.log2(nm.m)))),
                             sram_b_bytes=reads + writes)
        extra["pregen_dram_bytes"] = reads + writes
        if cfg.training.pregen_overlap:
            extra["pregen_cycles"] = 0
            return (reads, writes), counts, 0
        transfer = 0 if cfg.dram.ideal else int(np.ceil((reads + writes) / cfg.dram.bandwidth_bytes_per_cycle))
        cycles = max(select, transfer)
        extra["pregen_cycles"] = cycles
        counts = counts + EventCounts(dram_read_bytes=reads, dram_write_bytes=writes)
        return (0, 0), counts, cycles

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

    def _delta_error(self, op: Op, phase: Phase, x_now: np.ndarray, w: np.ndarray, extra: dict) -> None:
        """Output error of the delta layer against the dense layer at this step.

        By linearity the accumulator equals ``W . x_ref``, so it is evaluated that way (exact
        at threshold 0, where ``x_ref`` equals ``x``).
        """
        ref = self.refs[op.name].reshape(x_now.shape)
        a_ref, b = gemm_operands(op, phase, ref, w, None)
        a_now, _ = gemm_operands(op, phase, x_now.astype(np.float64), w, None)
        b = b.astype(np.float64)
        worst, total, count = 0.0, 0.0, 0
        rows = max(1, (1 << 22) // max(b.shape[2], 1))  # bound the temporaries to ~4M elements
        for g in range(a_ref.shape[0]):
            for r0 in range(0, a_ref.shape[1], rows):
                # linearity: W . x_ref - W . x = W . (x_ref - x); exact zero where they agree
                err = np.abs((a_ref[g, r0:r0 + rows] - a_now[g, r0:r0 + rows]) @ b[g])
                if err.size:
                    worst, total, count = max(worst, float(err.max())), total + float(err.sum()), count + err.size
        extra["delta_err_max"] = worst
        extra["delta_err_mean"] = total / count if count else 0.0

    # ------------------------------------------------------------------ run
    def rows(self) -> list[dict]:
        rows = []
        for index, op in enumerate(self.workload.ops):
            phases = op_phases(self.workload, index)
            if not phases:
                continue
            biggest = max(op.gemm(p).count * (op.gemm(p).M + op.gemm(p).N) * op.gemm(p).K for p in phases)
            if biggest > MAX_REPLAY_ELEMENTS:
                raise InputError(f"{op.name}: its GEMM operands hold {biggest:,} elements; sparse replay "
                                 f"handles at most {MAX_REPLAY_ELEMENTS:,} per op (the dense engine has no such limit)")
            tensors = self.source.tensors(index)
            for phase in phases:
                rows.append(self._op_phase(index, op, phase, tensors))
        return rows
