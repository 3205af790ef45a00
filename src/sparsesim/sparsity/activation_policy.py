"""Activation sparsification policies applied at replay, to op inputs or to a gated MLP's gate output.

* ``relu``: the zeros as captured (nothing added; records the zero fraction).
* ``threshold``: zero every ``|x| < threshold`` (CATS, Lee et al. 2024, magnitude threshold
  on MLP activations).
* ``channel_threshold``: per input channel (feature), zero exactly ``floor(sparsity * n)`` of
  its ``n`` elements, the smallest magnitudes, i.e. a per-channel threshold at that quantile
  (CHESS, channel-wise thresholds). Rounding down means the policy never zeroes more than
  asked; a channel that already holds more zeros keeps them.
* ``topk``: per row (token / pixel), keep the ``ceil(keep_fraction * n)`` largest magnitudes
  (the Lazy Neuron phenomenon paper, Li et al. ICLR 2023, top-k activations).

The fraction of activations zeroed by the policy and its label go into every result row.

Where the policy acts (``site``):

* ``input`` (default): each op's own input activations.
* ``swiglu_gate``: the gate output ``act(x W_gate)`` of each gated MLP block
  ``down(act(gate(x)) * up(x))`` (SwiGLU with ``act`` SiLU, or the ReLU-fied FFN), as CATS
  (Lee et al. 2024) and CHESS sparsify it. A neuron zeroed there zeroes the
  matching element of ``h = act(gate) * up``, so ``up`` need not compute that output column
  and ``down``'s input has the zero (see :mod:`sparsesim.sparsity.gate_coupling`). ``gate_act``
  names the activation (``auto``: from the trace's capture settings or model name).
  ``predictor: lowrank`` adds a Deja Vu-style predictor (Liu et al., ICML 2023: a
  two-layer low-rank MLP ``d -> predictor_rank -> d_ff`` run before the MLP) that
  picks the live neurons before the gate is computed, so the gate GEMM too runs only them, and
  recalls exactly the neurons the policy keeps (an upper bound on its gain). ``predictor: trained``
  is such a predictor trained on calibration text, carried by the trace
  (:mod:`sparsesim.sparsity.predictor`): the gate runs the neurons it predicts, and a live neuron it
  misses is zeroed.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sparsesim.hardware.config import _param
from sparsesim.sparsity.base import FEATURES, Feature, FeatureRun, RowView
from sparsesim.sparsity.gate_coupling import COUPLING_COLUMNS, GateCoupling, mlp_blocks
from sparsesim.core.errors import InputError, field_error
from sparsesim.workloads.gemm import Phase
from sparsesim.workloads.ops import Conv2d


METHODS = ("relu", "threshold", "channel_threshold", "topk")
SITES = ("input", "swiglu_gate")
PREDICTORS = ("none", "lowrank", "trained")
GATE_ACTS = ("auto", "silu", "relu")
CALIBRATIONS = ("none", "prefill")

COLUMNS = {"policy": None, "policy_zeroed_fraction": None, "policy_inert": None, **COUPLING_COLUMNS}
"""``policy`` its label; ``policy_zeroed_fraction`` the fraction of the activations it zeroed;
``policy_inert`` True where no switched-on feature looks at the zeros it makes (A's zeros not
detected: cycles, bytes and energy are as without it); the ``swiglu_gate`` coupling's columns
(:data:`sparsesim.sparsity.gate_coupling.COUPLING_COLUMNS`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivationPolicyConfig(Feature):
    kind: ClassVar[str] = "act_policy"
    order: ClassVar[int] = 40
    columns: ClassVar[dict] = COLUMNS
    examples: ClassVar[tuple[str, ...]] = ("act_policy:topk:0.25", "act_policy:threshold:0.3", "act_policy:relu",
                                           "act_policy:channel_threshold:0.5")
    neutral: ClassVar[str | None] = "act_policy:threshold:0"
    method: str = _param("relu | threshold | channel_threshold | topk", default="relu", choices=METHODS)
    threshold: float = _param("magnitude threshold for method threshold", default=0.0, minimum=0.0, maximum=1e30)
    sparsity: float = _param("fraction zeroed per channel for channel_threshold", default=0.5,
                             minimum=0.0, maximum=1.0)
    keep_fraction: float = _param("fraction kept per row for topk", default=0.25, minimum=0.0, maximum=1.0)
    site: str = _param("where the policy acts: input (each op's input activations) or swiglu_gate "
                       "(act(gate) of each gated MLP block; up and down then skip the dead neurons)",
                       default="input", choices=SITES)
    gate_act: str = _param("swiglu_gate: the MLP's activation; auto reads it from the trace's capture "
                           "settings or model name", default="auto", choices=GATE_ACTS)
    predictor: str = _param("swiglu_gate: none (the gate runs dense), lowrank (a Deja Vu-style low-rank "
                            "predictor picks the live neurons first, so the gate runs only those; it "
                            "recalls exactly the neurons the policy keeps; its two GEMMs are charged on "
                            "the gate row) or trained (the trained predictor the trace carries: the gate "
                            "runs the neurons it predicts, and a live neuron it misses is zeroed)",
                            default="none", choices=PREDICTORS)
    predictor_rank: int = _param("lowrank or trained predictor's hidden size r (0: min(1024, d/4), i.e. 1024 at d=4096)",
                                 default=0, minimum=0, maximum=1 << 20)
    ops: str = _param("site input: a regular expression searched in op names; only the ops it matches are "
                      "sparsified (e.g. down_proj: the input of each MLP's down projection); empty: every op",
                      default="", recorded_at_default=False)
    calibrate: str = _param("swiglu_gate with threshold or channel_threshold: none (threshold as given; "
                            "channel_threshold counts within each GEMM, so a one-token decode GEMV zeroes "
                            "nothing) or prefill (thresholds fixed per layer from its prefill gate output, "
                            "zeroing the `sparsity` fraction of it, per channel for channel_threshold, and "
                            "applied to every pass, as CATS and CHESS calibrate offline)",
                            default="none", choices=CALIBRATIONS)

    def __post_init__(self) -> None:
        if self.method == "topk" and self.keep_fraction <= 0.0:
            raise field_error("sparsity.act_policy.keep_fraction", "must be > 0 for topk")
        if self.site != "swiglu_gate":
            for key, default in (("predictor", "none"), ("gate_act", "auto")):
                if getattr(self, key) != default:
                    raise field_error(f"sparsity.act_policy.{key}", "applies only with site: swiglu_gate")
        if self.ops:
            if self.site != "input":
                raise field_error("sparsity.act_policy.ops", "applies only with site: input")
            try:
                re.compile(self.ops)
            except re.error as exc:
                raise field_error("sparsity.act_policy.ops", f"not a regular expression: {exc}") from None
        if self.predictor == "none" and self.predictor_rank:
            raise field_error("sparsity.act_policy.predictor_rank", "applies only with predictor: lowrank or trained")
        if self.calibrate != "none" and (self.site != "swiglu_gate"
                                         or self.method not in ("threshold", "channel_threshold")):
            raise field_error("sparsity.act_policy.calibrate",
                              "applies only with site: swiglu_gate and method threshold or channel_threshold")

    def rank_for(self, dim: int) -> int:
        """The predictor's hidden size for model width ``dim`` (``predictor_rank``, or its default
        scaled to the width: Deja Vu's ~1k-wide predictors for 4k-12k-wide models)."""
        return self.predictor_rank or min(1024, max(1, dim // 4))

    @classmethod
    def from_cli(cls, fields: list[str]) -> dict:
        """``METHOD[:VALUE]``, e.g. ``topk:0.25``; the other keys come as ``key=value`` fields
        (``threshold:0.1:site=swiglu_gate:predictor=lowrank``), which the CLI parser adds."""
        if not fields:
            raise InputError("expected act_policy:METHOD[:VALUE], e.g. act_policy:topk:0.25")
        method = fields[0]
        if method not in METHODS:  # before the value: "magic:0.1" is an unknown policy, not a misplaced value
            close = difflib.get_close_matches(method, METHODS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise InputError(f"act_policy: unknown policy {method!r} ({hint}policies: {', '.join(METHODS)})")
        out: dict = {"kind": "act_policy", "method": method}
        if len(fields) > 2:
            raise InputError("act_policy takes at most one value")
        if len(fields) == 2:
            key = {"threshold": "threshold", "channel_threshold": "sparsity", "topk": "keep_fraction"}.get(fields[0])
            if key is None:
                raise InputError(f"act_policy:{fields[0]} takes no value")
            try:
                out[key] = float(fields[1])
            except ValueError:
                raise InputError(f"act_policy value must be a number, got {fields[1]!r}") from None
        return out

    def label(self) -> str:
        value = {"relu": "", "threshold": f"{self.threshold:g}", "channel_threshold": f"{self.sparsity:g}",
                 "topk": f"{self.keep_fraction:g}"}[self.method]
        site = "-gate" if self.site == "swiglu_gate" else ""
        predictor = f"-{self.predictor}{self.predictor_rank or 'auto'}" if self.predictor != "none" else ""
        if self.calibrate == "prefill":
            value = f"{self.sparsity:g}cal"
        ops = f"[{self.ops}]" if self.ops else ""
        return f"{self.method}{value}{site}{predictor}{ops}"

    def sparsifies(self, op_name: str) -> bool:
        """Whether the policy at ``site: input`` acts on the op called ``op_name`` (``ops``)."""
        return not self.ops or re.search(self.ops, op_name) is not None

    def start(self, run) -> FeatureRun:
        """At ``site: input`` a :class:`PolicyRun`; at ``swiglu_gate`` the coupling of the gated MLP
        blocks (:class:`~sparsesim.sparsity.gate_coupling.GateCoupling`), which replays their ops."""
        if self.site == "swiglu_gate":
            return GateCoupling(self, run)
        return PolicyRun(self, run)

    def run_warnings(self, features: tuple) -> tuple[str, ...]:
        if self.site == "swiglu_gate" or any("input" in f.zero_roles() for f in features):
            return ()
        # the zeros it makes reach no feature: every cost is the run's without the policy
        return (f"act_policy {self.label()} zeroes input activations, but no switched-on feature acts on those "
                "zeros (add zero_skip on the input, or delta): cycles, bytes and energy are as without it; "
                "only the zero fractions change (rows: policy_inert)",)

    def op_local(self) -> bool:
        """At ``site: input`` each op's activations are sparsified from that op's alone; the
        gated-MLP coupling carries a block's masks and calibrated thresholds between ops."""
        return self.site != "swiglu_gate"

    def state_keys(self, workload) -> list:
        """At ``site: swiglu_gate`` a block's mask, its layer's calibrated thresholds and its
        predictor are the layer's: keyed by the MLP block's name (every pass of a layer in one
        process, layers apart); ops outside a block, and every op at ``site: input``, by none."""
        if self.op_local():
            return [None] * len(workload.ops)
        blocks = mlp_blocks(workload)
        return [blocks[i][1].name if i in blocks else None for i in range(len(workload.ops))]

    def apply(self, x: np.ndarray, channel_axis: int) -> np.ndarray:
        """Return the sparsified activations (a new array; ``x`` is left alone).

        Counts are exact, never estimated from a quantile: ``channel_threshold`` zeroes the
        ``floor(sparsity * n)`` smallest magnitudes of each channel of ``n`` elements (the
        channel's own zeros come first, so a channel never ends with fewer zeros than it had);
        ``topk`` keeps the ``ceil(keep_fraction * n)`` largest magnitudes of each row (at least
        one). Ties go by position: the earlier element is zeroed first (``channel_threshold``)
        or kept first (``topk``), so the result is deterministic.
        """
        if self.method == "relu":
            return x
        if self.method == "threshold":
            return np.where(np.abs(x) < self.threshold, 0, x).astype(x.dtype)
        if self.method == "channel_threshold":
            lines = np.moveaxis(x, channel_axis, 0)
            flat = lines.reshape(lines.shape[0], -1).copy()
            k = _count(self.sparsity, flat.shape[1])
            if k:
                order = np.argsort(np.abs(flat), axis=1, kind="stable")[:, :k]
                np.put_along_axis(flat, order, 0, axis=1)
            return np.moveaxis(flat.reshape(lines.shape), 0, channel_axis)
        rows = np.moveaxis(x, channel_axis, -1)
        flat = rows.reshape(-1, rows.shape[-1])
        n = flat.shape[1]
        k = max(1, n - _count(1.0 - self.keep_fraction, n))
        if k >= n:
            return x.copy()
        idx = np.argsort(-np.abs(flat), axis=1, kind="stable")[:, :k]
        out = np.zeros_like(flat)
        np.put_along_axis(out, idx, np.take_along_axis(flat, idx, axis=1), axis=1)
        return np.moveaxis(out.reshape(rows.shape), -1, channel_axis)


def _count(fraction: float, n: int) -> int:
    """``floor(fraction * n)``, robust to the binary rounding of ``fraction`` (0.3 * 10 is 3)."""
    return min(n, int(np.floor(fraction * n + 1e-9)))


class PolicyRun(FeatureRun):
    """The policy at ``site: input``: each op's input activations sparsified before lowering."""

    config: ActivationPolicyConfig

    def activations(self, op, phase, x: np.ndarray, extra: dict) -> np.ndarray:
        if not self.config.sparsifies(op.name):
            return x
        before = x == 0
        x = self.config.apply(x, 1 if isinstance(op, Conv2d) else -1)
        after = x == 0
        extra["policy"] = self.config.label()
        extra["policy_zeroed_fraction"] = float((after & ~before).mean())
        return x

    def acts(self, row: RowView) -> bool:
        return row.x is not None and row.phase is not Phase.BWD_DATA and self.config.sparsifies(row.op.name)

    def side(self, row: RowView) -> None:
        if self.acts(row):  # the policy's zeros are in A (the input); inert unless a feature looks at A's zeros
            row.extra["policy_inert"] = not row.effects.a.aware


FEATURES.add("act_policy", ActivationPolicyConfig)
