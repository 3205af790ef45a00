"""SwiGLU gate sparsity coupling for sparse replay: the gated MLP blocks of a workload, their
activation, and the neurons an activation policy on the gate output leaves alive.

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

This module is the part that needs no hardware: :func:`mlp_blocks` finds the ``(gate, up,
down)`` triple of each block from the op names (the zoo decoders and Hugging Face captures
both name them ``model.layers.N.mlp.gate_proj`` / ``up_proj`` / ``down_proj``; a name may carry
a trace step suffix ``@sK``), :func:`mlp_activation` tells SiLU from ReLU, and
:func:`gate_live` recomputes the gate output from the gate op's recorded input and weight (a
trace holds each op's input, weight and gradients, not its output), applies the activation and
the policy, and returns the live mask. The replay (:mod:`sparsesim.simulation.replay`) runs the GEMMs.
"""

from __future__ import annotations

import dataclasses
import logging
import re

import numpy as np

from sparsesim.sparsity.activation_policy import ActivationPolicyConfig
from sparsesim.core.errors import field_error
from sparsesim.workloads.llm_networks import DECODERS
from sparsesim.workloads.ops import Linear, Workload

ROLES = ("gate", "up", "down")
log = logging.getLogger(__name__)

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


def masked_h(x: np.ndarray, live: np.ndarray) -> np.ndarray:
    """``down``'s recorded input ``h`` (``..., d_ff``) with the dead neurons zeroed."""
    return np.where(live.reshape(x.shape), x, 0).astype(x.dtype)
