"""SwiGLU gate sparsity coupling: an activation policy at ``site: swiglu_gate`` acting on the
gate output of each gated MLP block, and the replay of the block's ops that follows from it.

A Llama-style MLP computes ``h = act(x W_gate^T) * (x W_up^T)`` and ``out = h W_down^T``
(SwiGLU, Shazeer 2020, ``act`` SiLU; the ProSparse-style ReLU-fied FFN, ``act`` ReLU).
CATS (Lee et al. 2024) thresholds ``|act(gate)|``, CHESS thresholds it per
channel, and top-k keeps the largest: where ``act(gate)`` is zeroed, ``h`` is zero whatever
``up`` computes, so

* ``up`` need not compute that output column (a neuron zeroed in every row of the GEMM is not
  computed and its weight row not fetched: one contiguous row of PyTorch's ``[out, in]``
  layout), and
* ``down``'s input ``h`` holds the zero, so zero-skipping and weight-fetch skipping of its
  input act on it.

:func:`mlp_blocks` finds the ``(gate, up, down)`` triple of each block from the op names (the
zoo decoders and Hugging Face captures both name them ``model.layers.N.mlp.gate_proj`` /
``up_proj`` / ``down_proj``; a name may carry a trace step suffix ``@sK``), :func:`mlp_activation`
tells SiLU from ReLU, and :func:`gate_live` recomputes the gate output from the gate op's
recorded input and weight (a trace holds each op's input, weight and gradients, not its
output), applies the activation and the policy, and returns the live mask. :class:`GateCoupling`
is the feature's state for one run: it claims the ops of every block and replays them through
the replay's own step (:class:`~sparsesim.sparsity.base.ReplayCore`), narrowed to the live neurons.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import TYPE_CHECKING

import numpy as np

from sparsesim.hardware.energy import energy_breakdown_pj
from sparsesim.hardware.schedule import EventCounts
from sparsesim.sparsity.base import FeatureRun
from sparsesim.core.errors import InputError, field_error
from sparsesim.workloads.gemm import Gemm, Phase
from sparsesim.workloads.llm_networks import DECODERS
from sparsesim.workloads.ops import Linear, Op, Workload

if TYPE_CHECKING:  # annotations only: the policy module imports this one
    from sparsesim.sparsity.activation_policy import ActivationPolicyConfig

ROLES = ("gate", "up", "down")
log = logging.getLogger(__name__)

COUPLING_COLUMNS = {"mlp_role": None, "gate_act": None, "gate_live_fraction": None, "gate_live_columns": None,
                    "predictor_rank": None, "predictor_macs": None, "predictor_cycles": None,
                    "predictor_dram_bytes": None, "predictor_energy_pj": None, "predictor_recall": None,
                    "predictor_live_columns": None}
"""Result columns of the swiglu_gate coupling (None on rows it does not act on):
``mlp_role`` gate/up/down; ``gate_act`` silu/relu; ``gate_live_fraction`` the fraction of
``act(gate)`` elements the policy kept; ``gate_live_columns`` the neurons live in some row (the
N that ``up``, and with a predictor the gate, runs); ``predictor_*`` the low-rank predictor's
charge on the gate row (its MACs are not in ``macs_effectual``, which counts the layer's own);
with a trained predictor, ``predictor_recall`` the fraction of the neurons the policy keeps that it
predicted (the rest are zeroed) and ``predictor_live_columns`` the neurons it predicted in some row
(the N that the gate runs)."""

# Llama-style blocks (``mlp.gate_proj`` ...) and Mixtral's experts (``experts.3.w1`` gate, ``w3``
# up, ``w2`` down, as Hugging Face names them)
_NAME = re.compile(r"^(?P<block>.+)\.(?:(?P<role>gate|up|down)_proj|(?P<expert>w1|w3|w2))(?P<step>@s\d+)?$")
_EXPERT_ROLES = {"w1": "gate", "w3": "up", "w2": "down"}
_ACT_NAMES = {"silu": "silu", "swish": "silu", "relu": "relu"}  # Hugging Face hidden_act -> ours


@dataclasses.dataclass(frozen=True, slots=True)
class MlpBlock:
    """One gated MLP block: the op indices of its gate, up and down projections (one forward
    pass of one layer), and the layer's block name (``model.layers.3.mlp``)."""

    gate: int
    up: int
    down: int
    name: str


def mlp_blocks(workload: Workload) -> dict[int, tuple[str, MlpBlock]]:
    """``{op index: (role, block)}`` for every op of a complete gated MLP block of ``workload``.

    Ops are grouped by block name (``model.layers.3.mlp``), trace step and time step; within a
    group the k-th gate, up and down form the k-th block (a trace records a layer's ops once per
    forward pass, in execution order). A block counts only when all three are Linear ops of
    matching shapes (gate and up ``tokens x d -> d_ff``, down ``tokens x d_ff -> d``); a partial
    one (a ``--layers`` capture that kept only some of them) is left uncoupled.
    """
    steps = workload.time_steps or (None,) * len(workload.ops)
    seen: dict[tuple, dict[str, list[int]]] = {}
    for index, op in enumerate(workload.ops):
        match = _NAME.match(op.name)
        if match is None or not isinstance(op, Linear):
            continue
        key = (match["block"], match["step"], steps[index])
        role = match["role"] or _EXPERT_ROLES[match["expert"]]
        seen.setdefault(key, {r: [] for r in ROLES})[role].append(index)
    out: dict[int, tuple[str, MlpBlock]] = {}
    for (name, _, _), roles in seen.items():
        for gate, up, down in zip(roles["gate"], roles["up"], roles["down"]):
            g, u, d = (workload.ops[i] for i in (gate, up, down))
            if (g.tokens, g.in_features, g.out_features) == (u.tokens, u.in_features, u.out_features) \
                    and (d.tokens, d.in_features) == (g.tokens, g.out_features):
                block = MlpBlock(gate, up, down, name)
                out.update({gate: ("gate", block), up: ("up", block), down: ("down", block)})
    return out


def check_coupling(workload: Workload, blocks: dict) -> None:
    """Refuse what ``site: swiglu_gate`` cannot replay, naming the field."""
    if not blocks:
        raise field_error("sparsity.act_policy.site",
                          f"swiglu_gate needs gated MLP blocks (Linear ops named *.gate_proj, *.up_proj and "
                          f"*.down_proj, or Mixtral's experts *.w1, *.w3 and *.w2, of matching shapes); "
                          f"{workload.name} has none")
    if any(not p.forward for p in workload.phases):
        raise field_error("sparsity.act_policy.site", "swiglu_gate applies to inference (forward passes); "
                          "simulate forward phases only (fwd, prefill or decode)")
    loose = [op.name for i, op in enumerate(workload.ops)
             if i not in blocks and isinstance(op, Linear) and _NAME.match(op.name)]
    if loose:  # a --layers capture that kept part of a block: those ops see no coupling
        log.warning("act_policy site swiglu_gate: %d MLP op(s) outside a complete gate/up/down block are "
                    "replayed uncoupled (e.g. %s)", len(loose), loose[0])


def mlp_activation(workload: Workload, requested: str) -> str:
    """``silu`` or ``relu``: ``requested`` unless it is ``auto``, else what the workload records:
    the trace's capture setting ``mlp_act`` (zoo decoders and Hugging Face captures write it),
    else the ``ffn`` of the zoo or shape-only decoder the workload names."""
    if requested != "auto":
        return requested
    capture = workload.meta.get("capture") or {}
    recorded = capture.get("mlp_act")
    if recorded is not None:
        act = _ACT_NAMES.get(str(recorded))
        if act is None:
            raise field_error("sparsity.act_policy.gate_act",
                              f"the trace's MLP activation {recorded!r} is neither SiLU nor ReLU; "
                              "give gate_act: silu or relu to replay it as one of them")
        return act
    names = [capture.get("model") if capture.get("source") == "zoo" else None,
             (workload.meta.get("llm") or {}).get("decoder")]
    for name in names:
        if name is not None and name in DECODERS:
            return "relu" if DECODERS.get(name).ffn == "relu" else "silu"
    raise field_error("sparsity.act_policy.gate_act",
                      "auto: the workload records no MLP activation (no capture setting mlp_act, no zoo "
                      "decoder name); give gate_act: silu or relu")


def activation(act: str, g: np.ndarray) -> np.ndarray:
    """``silu(g) = g * sigmoid(g)`` (written with tanh, which does not overflow) or ``relu(g)``."""
    if act == "relu":
        return np.maximum(g, 0)
    return g * (0.5 * (1.0 + np.tanh(0.5 * g)))


def gate_output(x: np.ndarray, w: np.ndarray, act: str) -> np.ndarray:
    """``act(x W^T)`` as ``(M, d_ff)``: ``x`` the gate op's recorded input (``..., d``), ``w`` its
    ``[d_ff, d]`` weight, recomputed in float32 (the captured model's precision)."""
    a = np.asarray(x, dtype=np.float32).reshape(-1, w.shape[1])
    return activation(act, a @ np.asarray(w, dtype=np.float32).T)


def gate_live(h: np.ndarray, policy: ActivationPolicyConfig) -> np.ndarray:
    """``(M, d_ff)`` bool: True where the gate output ``h`` is nonzero after ``policy``, which
    acts per row and per channel (neuron) as it would on an op's input."""
    return policy.apply(h, channel_axis=-1) != 0


def calibrated_thresholds(h: np.ndarray, policy: ActivationPolicyConfig) -> np.ndarray:
    """Magnitude thresholds fixed from a calibration pass ``h`` (``M x d_ff``): one for the
    layer (``threshold``, as CATS calibrates a layer's threshold to a target sparsity) or one
    per channel (``channel_threshold``, as CHESS), each the ``k``-th smallest magnitude with
    ``k = floor(sparsity * n)`` of its ``n`` elements, so that ``|h| <= t`` zeroes at least that
    fraction of the calibration pass (ties at the threshold go too); -1 (nothing zeroed) where
    ``k`` is 0."""
    mags = np.abs(h) if policy.method == "channel_threshold" else np.abs(h).reshape(-1, 1)
    n = mags.shape[0]
    k = min(n, int(np.floor(policy.sparsity * n + 1e-9)))
    if k == 0:
        return np.full(mags.shape[1], -1.0)
    return np.partition(mags, k - 1, axis=0)[k - 1]


def recorded_thresholds(workload: Workload, policy: ActivationPolicyConfig) -> dict[str, np.ndarray]:
    """Thresholds a trace carries for ``policy`` (``calibrate: prefill``), calibrated on other text
    than the trace's own prefill: ``capture.gate_thresholds[label][block]`` (``sparsesim codesign``
    writes them, fixed on its calibration text, so the replay and the quality run use the same
    ones). Empty when the trace carries none for this policy's label: the prefill calibrates."""
    if policy.calibrate != "prefill":
        return {}
    recorded = ((workload.meta.get("capture") or {}).get("gate_thresholds") or {}).get(policy.label()) or {}
    return {block: np.asarray(values, dtype=np.float32) for block, values in recorded.items()}


def masked_h(x: np.ndarray, live: np.ndarray) -> np.ndarray:
    """``down``'s recorded input ``h`` (``..., d_ff``) with the dead neurons zeroed."""
    return np.where(live.reshape(x.shape), x, 0).astype(x.dtype)


class GateCoupling(FeatureRun):
    """The policy at ``site: swiglu_gate`` in one run: it no longer acts on op inputs; it claims
    the ops of every gated MLP block and replays them. Per-run state: the live mask of the
    block being replayed, the prefill-calibrated thresholds, and the gate and up weights as read."""

    config: ActivationPolicyConfig

    def __init__(self, config: ActivationPolicyConfig, run) -> None:
        super().__init__(config, run)
        if any(f.encodes_input for f in run.features):
            raise InputError("sparsity.act_policy.site: swiglu_gate cannot be combined with delta encoding")
        self.blocks = mlp_blocks(run.workload)  # op index -> (role, block)
        check_coupling(run.workload, self.blocks)
        self.gate_act = mlp_activation(run.workload, config.gate_act)
        self.gate_masks: dict[MlpBlock, np.ndarray] = {}  # live mask of the blocks being replayed
        self.gate_thresholds: dict[str, np.ndarray] = {}  # calibrate: prefill, per block name
        self.recorded_thresholds = recorded_thresholds(run.workload, config)
        self.predictors = None
        if config.predictor == "trained":
            from sparsesim.sparsity.predictor import trace_predictors

            self.predictors = trace_predictors(run.workload, config.label())
        # trained predictor: its mask of the block being replayed and its recall of the policy's live neurons
        self.predicted: dict[MlpBlock, tuple[np.ndarray, float]] = {}
        # gate and up weights as read, by stored name: a decode trace's steps share them, and the
        # gate's is needed for its mask and the narrowed GEMMs gather rows of them every step
        self.coupled_weights = run.weight_cache()

    def acts(self, row) -> bool:
        return False  # on ops outside a block the policy does nothing; a block's rows say act_policy themselves

    def claims(self, index: int) -> bool:
        return index in self.blocks

    def tensors(self, index: int) -> dict | None:
        """The tensors of a gate or up op, its weight from :attr:`coupled_weights` when it is
        shared and already read; None for a down op (read as any op)."""
        if self.blocks[index][0] == "down":
            return None
        name = self.run.shared_weight(index)
        weight = None if name is None else self.coupled_weights.get(name)
        if weight is None:
            tensors = self.run.tensors(index)
            if name is not None and tensors.get("weight") is not None:
                self.coupled_weights.put(name, tensors["weight"])
            return tensors
        return {**self.run.tensors(index, frozenset({"input", "grad", "master_weight"})), "weight": weight}

    def _gate_live(self, block: MlpBlock, index: int, phase: Phase, tensors: dict) -> np.ndarray:
        """The ``(M, d_ff)`` live mask of ``block``, recomputed from its gate op's tensors once.

        With ``calibrate: prefill`` the layer's thresholds come from the trace's recorded ones
        (:func:`recorded_thresholds`), else from its first prefill pass, and hold for every pass
        after it (refused when a pass comes before any prefill)."""
        live = self.gate_masks.get(block)
        if live is None:
            own = tensors if index == block.gate else self.run.tensors(block.gate)
            h = gate_output(own["input"], own["weight"], self.gate_act)
            if self.config.calibrate == "prefill":
                limit = self.gate_thresholds.get(block.name)
                if limit is None and block.name in self.recorded_thresholds:
                    limit = self.gate_thresholds[block.name] = self.recorded_thresholds[block.name]
                if limit is None:
                    if phase is not Phase.PREFILL:
                        raise field_error("sparsity.act_policy.calibrate",
                                          f"prefill: {block.name} has {phase} rows before any prefill pass to "
                                          "calibrate on (replay the prefill phase too)")
                    limit = self.gate_thresholds[block.name] = calibrated_thresholds(h, self.config)
                live = np.abs(h) > limit
            else:
                live = gate_live(h, self.config)
            if self.predictors is not None:
                predicted = self.predictors.predict(block.name, own["input"])
                recall = float((live & predicted).sum() / live.sum()) if live.any() else 1.0
                self.predicted[block] = (predicted, recall)
                live = live & predicted
            self.gate_masks[block] = live
        return live

    def replay(self, index: int, op: Op, phase: Phase, tensors: dict, key: tuple | None):
        """One (op, phase) of a gated MLP block.

        gate: run dense (its output is what the policy reads), or, with a predictor, only its
        live columns plus the predictor's GEMMs; up: only its live columns; down: its recorded
        input ``h`` with the dead neurons zeroed, so the switched-on features act on the zeros.
        """
        role, block = self.blocks[index]
        live = self._gate_live(block, index, phase, tensors)
        columns = live.any(axis=0)
        extra = {"policy": self.config.label(), "mlp_role": role, "gate_act": self.gate_act,
                 "gate_live_fraction": float(live.mean()), "gate_live_columns": int(columns.sum())}
        if role == "down":
            x = tensors["input"]
            h = masked_h(x, live)
            extra["policy_zeroed_fraction"] = float(((h == 0) & (x != 0)).mean())
            pending = self.run.op_phase(index, op, phase, {**tensors, "input": h}, key)
            self.gate_masks.pop(block, None)
            self.predicted.pop(block, None)
        elif role == "up" or self.config.predictor != "none":
            if role == "gate" and self.predictors is not None:  # the gate runs what the predictor predicts
                predicted, recall = self.predicted[block]
                columns = predicted.any(axis=0)
                extra.update(predictor_recall=recall, predictor_live_columns=int(columns.sum()))
            pending = self._narrowed(index, op, phase, tensors, columns, extra)
            if role == "gate":
                pending = self._with_predictor(pending, op, extra)
        else:
            pending = self.run.op_phase(index, op, phase, tensors, key)
        acting = pending.out.extra.get("features_active", "none")
        extra["features_active"] = "act_policy" if acting == "none" else f"{acting}+act_policy"
        return dataclasses.replace(pending, out=dataclasses.replace(pending.out, extra={**pending.out.extra, **extra}))

    def _narrowed(self, index: int, op: Linear, phase: Phase, tensors: dict, columns: np.ndarray, extra: dict):
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
        run = self.run
        gemm = op.gemm(phase)
        dense = run.dense_of(gemm)
        n = int(columns.sum())
        rows = run.fetch_skip(columns, op.in_features, "k_major")
        stored = run.stored_weight_ratio(op.in_features)  # N:M-compressed neuron rows are shorter
        skipped = int(rows.skipped_bytes * stored) * gemm.count
        partial = int((rows.dense_bytes - rows.skipped_bytes - rows.bound_bytes) * stored) * gemm.count
        bitmap = rows.bitmap_bytes * gemm.count
        if n == 0:  # every neuron dead: the op does not run
            extra.update(weight_bytes_skipped=skipped, weight_fetch_bound_bytes=0, skip_bitmap_bytes=bitmap)
            return run.pending(op, phase, run.idle(index, dense, EventCounts(metadata_b_bytes=bitmap)), dense)
        narrow, sliced = op, tensors
        if n < op.out_features:
            narrow = dataclasses.replace(op, out_features=n)
            sliced = {**tensors, **{role: tensors[role][columns] for role in ("weight", "master_weight")
                                    if tensors.get(role) is not None}}
        # its own input's zeros skip columns of those neuron rows: strided, as in n_major
        pending = run.op_phase(index, narrow, phase, sliced, None, extra_read_bytes=partial, layout="n_major")
        own = pending.out.extra  # the narrowed GEMM's own weight fetch skipping, behind its input's zeros
        extra.update(weight_bytes_skipped=own["weight_bytes_skipped"] + skipped,
                     weight_fetch_bound_bytes=own["weight_fetch_bound_bytes"],
                     skip_bitmap_bytes=own["skip_bitmap_bytes"] + bitmap)
        out = dataclasses.replace(pending.out, macs_dense=dense.macs_dense,
                                  counts=pending.out.counts + EventCounts(metadata_b_bytes=bitmap))
        return dataclasses.replace(pending, op=op, out=out, dense=dense)

    def _with_predictor(self, pending, op: Linear, extra: dict):
        """The gate row with the low-rank predictor's two dense GEMMs (``tokens x d -> r`` and
        ``tokens x r -> d_ff``; Deja Vu, Liu et al. ICML 2023, its MLP sparsity predictor) run before it on
        the same array: their cycles, DRAM traffic (the predictor's weights) and energy are
        added to the row. ``lowrank`` assumes it recalls exactly the neurons the policy keeps
        (Deja Vu reports high recall), so the row is an upper bound on the gain; ``trained`` is the
        trace's own predictor, at its own rank (``predictor_rank``, if given, must equal it)."""
        run = self.run
        rank = self.config.rank_for(op.in_features)
        if self.predictors is not None:
            if self.config.predictor_rank and self.config.predictor_rank != self.predictors.rank:
                raise field_error("sparsity.act_policy.predictor_rank",
                                  f"{self.config.predictor_rank}, but the trace's trained predictor has rank "
                                  f"{self.predictors.rank}")
            rank = self.predictors.rank
        runs = [run.dense_of(Gemm(op.tokens, rank, op.in_features)),
                run.dense_of(Gemm(op.tokens, op.out_features, rank))]
        counts = runs[0].counts + runs[1].counts
        cycles = sum(r.cycles for r in runs)
        extra.update(predictor_rank=rank, predictor_macs=sum(r.macs_dense for r in runs), predictor_cycles=cycles,
                     predictor_dram_bytes=counts.dram_read_bytes + counts.dram_write_bytes,
                     predictor_energy_pj=sum(sum(energy_breakdown_pj(r.counts, run.cfg, r.cycles, run.table).values())
                                             for r in runs))
        out = pending.out
        out = dataclasses.replace(out, cycles=out.cycles + cycles, counts=out.counts + counts,
                                  compute_cycles=out.compute_cycles + sum(r.compute_cycles for r in runs),
                                  stall_cycles=out.stall_cycles + sum(r.stall_cycles for r in runs))
        return dataclasses.replace(pending, out=out)
