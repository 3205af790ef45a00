"""A sparsity setting applied inside a PyTorch model's forward pass, exactly as the replay applies it.

The replay reads a trace (each op's recorded input and weight) and transforms it: an activation
policy zeroes activations, N:M prunes weights. What the hardware gains is measured there; what
the model loses can only be measured by running the model with the same transformation. This
module installs it as hooks on a Hugging Face model, using the replay's own functions on the same
float32 numbers, so that the two paths make the same masks:

* ``nm`` (``mode: prune``): every ``nn.Linear`` weight the replay would prune (every Linear op of
  the trace, the LM head included) is replaced by :func:`~sparsesim.hardware.kernels.nm_prune`
  of it along input features, as the replay prunes a forward GEMM's weight. A tied LM head is
  untied first, so the embedding lookup keeps the dense matrix (it is no GEMM).
* ``act_policy`` at ``site: input`` (with ``ops``): each matched Linear's input becomes
  :meth:`~sparsesim.sparsity.activation_policy.ActivationPolicyConfig.apply` of it.
* ``act_policy`` at ``site: swiglu_gate``: before each gated MLP runs, its gate output is
  recomputed with :func:`~sparsesim.sparsity.gate_coupling.gate_output` from the block's input and
  gate weight (as the replay recomputes it from the trace), the live mask is taken as the replay
  takes it (the policy, or ``|h| > t`` with thresholds calibrated on calibration text), and the
  activation's output is multiplied by it, which zeroes the same elements of ``h = act(gate) * up``
  that the replay zeroes in ``down``'s input.
* ``zero_skip`` changes no value (skipping a zero is exact) and needs nothing here.

Every transformed operand is logged (:class:`MaskLog`): per Linear call, the op name and the zero
fraction of the input it computed with, so a pipeline can check them against the replay's rows
(``act_zero_fraction``) and refuse to report a quality figure made from other masks.

With ``predictor: trained`` the live mask is also ANDed with the trained predictor's (the same
:class:`~sparsesim.sparsity.predictor.Predictors` the trace carries, fitted by
:func:`fit_predictors` on calibration text), so a live neuron it misses is zeroed here as in the replay.

Anything the forward pass cannot mirror is refused in one line: delta encoding (its quality cost
is the sequence model's), ``predictor: lowrank`` (it recalls perfectly by definition: use
``trained``), ``mode: declared``,
an ``ops`` expression at ``site: input`` that is missing (the attention matmuls have no module
to hook).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from sparsesim.core.errors import InputError
from sparsesim.hardware.kernels import nm_prune
from sparsesim.sparsity.activation_policy import ActivationPolicyConfig
from sparsesim.sparsity.gate_coupling import calibrated_thresholds, gate_live, gate_output
from sparsesim.sparsity.nm import NMConfig

_MLP = re.compile(r"^(?P<block>.+\.mlp)$")


@dataclass
class MaskLog:
    """Per op name, the zero fraction of each call's input as the op computed with it, in call order."""

    zero_fractions: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    gate_live: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # trained predictor, per block: (neurons the policy keeps, of them the predictor predicted), summed
    recall: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    def clear(self) -> None:
        self.zero_fractions.clear()
        self.gate_live.clear()
        self.recall.clear()

    def predictor_recall(self) -> float | None:
        """The fraction of the neurons the policy kept that the predictor predicted, over every call."""
        kept = sum(k for k, _ in self.recall.values())
        return sum(p for _, p in self.recall.values()) / kept if kept else None


def setting_features(features: tuple) -> tuple[NMConfig | None, ActivationPolicyConfig | None]:
    """The N:M and activation-policy features of a setting; refuse what the forward cannot mirror."""
    nm = policy = None
    for f in features:
        if isinstance(f, NMConfig):
            if f.mode != "prune":
                raise InputError("--sparsity: codesign prunes the model itself: nm mode must be prune")
            nm = f
        elif isinstance(f, ActivationPolicyConfig):
            if f.predictor == "lowrank":
                raise InputError("--sparsity: act_policy predictor=lowrank recalls perfectly by definition, so it "
                                 "costs no quality; codesign fits a real one with predictor=trained")
            if f.predictor == "trained" and f.calibrate != "prefill":
                raise InputError("--sparsity: act_policy predictor=trained needs calibrate=prefill (the predictor "
                                 "is fitted on the calibration text, with the thresholds fixed there)")
            if f.site == "input" and f.method != "relu" and not f.ops:
                raise InputError("--sparsity: act_policy at site input needs ops=REGEX naming Linear layers in "
                                 "codesign (e.g. ops=down_proj); attention matmuls have no module to hook")
            policy = f
        elif f.kind == "delta":
            raise InputError("--sparsity: delta encoding is the sequence model's setting, not a decoder's")
        elif f.kind != "zero_skip":
            raise InputError(f"--sparsity: codesign cannot apply {f.kind} in the forward pass")
    return nm, policy


def gated_mlps(model: nn.Module) -> dict[str, nn.Module]:
    """``{block name: module}`` of every Llama-style gated MLP (``gate_proj``, ``up_proj``,
    ``down_proj``, ``act_fn``), named as the trace names its ops' block (``model.layers.3.mlp``)."""
    return {name: m for name, m in model.named_modules()
            if _MLP.match(name) and all(hasattr(m, a) for a in ("gate_proj", "up_proj", "down_proj", "act_fn"))}


def gate_act(model: nn.Module) -> str:
    """``silu`` or ``relu``: the gated MLP's activation, as the trace records it (``mlp_act``)."""
    act = str(getattr(model.config, "hidden_act", ""))
    if act in ("silu", "swish"):
        return "silu"
    if act == "relu":
        return "relu"
    raise InputError(f"--model: the MLP activation {act!r} is neither SiLU nor ReLU")


class ForwardTransform:
    """A setting applied to ``model`` while the context is open (weights restored on exit).

    ``thresholds``: ``{block: array}`` for ``calibrate: prefill`` (from :func:`calibrate`);
    ``predictors``: for ``predictor: trained`` (from :func:`fit_predictors`).
    """

    def __init__(self, model: nn.Module, features: tuple, thresholds: dict[str, np.ndarray] | None = None,
                 log: MaskLog | None = None, predictors=None) -> None:
        self.model = model
        self.nm, self.policy = setting_features(features)
        self.thresholds = thresholds or {}
        self.predictors = predictors
        if self.policy is not None and self.policy.predictor == "trained" and predictors is None:
            raise InputError("--sparsity: predictor=trained needs the fitted predictors (fit them on the "
                             "calibration text first)")
        self.log = MaskLog() if log is None else log
        self.handles: list = []
        self.saved: list[tuple[nn.Module, str, nn.Parameter]] = []
        self._live: dict[str, torch.Tensor] = {}
        if self.policy is not None and self.policy.site == "swiglu_gate":
            self.mlps = gated_mlps(model)
            if not self.mlps:
                raise InputError("--sparsity: act_policy site swiglu_gate needs a gated MLP (gate_proj, up_proj, "
                                 "down_proj); the model has none")
            self.act = gate_act(model)
            if self.policy.calibrate == "prefill":
                missing = sorted(set(self.mlps) - set(self.thresholds))
                if missing:
                    raise InputError(f"--sparsity: calibrate=prefill needs thresholds for {missing[0]} "
                                     "(calibrate on the calibration text first)")

    # --- hooks -----------------------------------------------------------------------------------

    def _linear_pre(self, name: str, sparsify: bool):
        def hook(module, args):
            x = args[0]
            if sparsify:
                arr = self.policy.apply(x.detach().numpy(), channel_axis=-1)
                x = torch.from_numpy(np.ascontiguousarray(arr))
                self.log.zero_fractions[name].append(float((arr == 0).mean()))
                return (x, *args[1:])
            # numpy's mean of a bool array (float64), as the replay computes act_zero_fraction
            self.log.zero_fractions[name].append(float((x.detach().numpy() == 0).mean()))
            return None

        return hook

    def _mlp_pre(self, name: str, mlp: nn.Module):
        weight = mlp.gate_proj.weight

        def hook(module, args):
            x = args[0].detach().numpy()
            h = gate_output(x, weight.detach().numpy(), self.act)
            if self.policy.calibrate == "prefill":
                live = np.abs(h) > self.thresholds[name]
            else:
                live = gate_live(h, self.policy)
            if self.predictors is not None:
                predicted = self.predictors.predict(name, x)
                counts = self.log.recall[name]
                counts[0] += int(live.sum())
                counts[1] += int((live & predicted).sum())
                live = live & predicted
            self._live[name] = torch.from_numpy(live.reshape(*x.shape[:-1], live.shape[-1]))
            self.log.gate_live[name].append(float(live.mean()))
            return None

        return hook

    def _act_post(self, name: str):
        def hook(module, args, out):
            return out * self._live.pop(name).to(out.dtype)

        return hook

    # --- context ---------------------------------------------------------------------------------

    def __enter__(self) -> ForwardTransform:
        linears = {name: m for name, m in self.model.named_modules() if isinstance(m, nn.Linear)}
        if self.nm is not None:
            for name, m in linears.items():
                w = m.weight.detach().numpy()
                pruned = nm_prune(np.ascontiguousarray(w, dtype=np.float32), self.nm.n, self.nm.m)
                self.saved.append((m, "weight", m.weight))
                m.weight = nn.Parameter(torch.from_numpy(pruned), requires_grad=False)  # unties a tied head
        input_site = self.policy is not None and self.policy.site == "input" and self.policy.method != "relu"
        for name, m in linears.items():
            sparsify = input_site and self.policy.sparsifies(name)
            self.handles.append(m.register_forward_pre_hook(self._linear_pre(name, sparsify)))
        if self.policy is not None and self.policy.site == "swiglu_gate":
            for name, mlp in self.mlps.items():
                self.handles.append(mlp.register_forward_pre_hook(self._mlp_pre(name, mlp)))
                self.handles.append(mlp.act_fn.register_forward_hook(self._act_post(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        for module, attr, param in reversed(self.saved):
            setattr(module, attr, param)
        self.saved.clear()
        self._live.clear()


def calibrate(model: nn.Module, policy: ActivationPolicyConfig, windows: list[torch.Tensor]) -> dict[str, np.ndarray]:
    """Per gated MLP block, the thresholds :func:`calibrated_thresholds` fixes from the gate outputs
    of every calibration token (all ``windows``, run dense), as ``calibrate: prefill`` fixes them from
    a trace's prefill pass. float32, as the replay compares them."""
    mlps = gated_mlps(model)
    act = gate_act(model)
    out = {}
    for name, xs in gate_inputs(model, mlps, windows).items():
        weight = mlps[name].gate_proj.weight.detach().numpy()
        h = np.concatenate([gate_output(x, weight, act) for x in xs])
        out[name] = np.asarray(calibrated_thresholds(h, policy), dtype=np.float32)
    return out


def gate_inputs(model: nn.Module, mlps: dict[str, nn.Module], windows: list[torch.Tensor]) -> dict[str, list]:
    """``{block: [input of each call]}``: every gated MLP's input (``tokens x d``, float32) over the
    ``windows`` run through the dense model, in call order."""
    seen: dict[str, list[np.ndarray]] = defaultdict(list)

    def pre(name):
        def hook(module, args):
            x = args[0].detach().numpy()
            seen[name].append(x.reshape(-1, x.shape[-1]))

        return hook

    handles = [mlp.register_forward_pre_hook(pre(name)) for name, mlp in mlps.items()]
    try:
        with torch.no_grad():
            for ids in windows:
                model(input_ids=ids)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def fit_predictors(model: nn.Module, thresholds: dict[str, np.ndarray], windows: list[torch.Tensor], rank: int):
    """Per gated MLP block, a rank-``rank`` predictor of the gate (:mod:`sparsesim.sparsity.predictor`)
    fitted on the calibration tokens of ``windows`` (run dense), with the block's calibrated
    ``thresholds`` as its decision thresholds.

    The fit is closed-form, not Deja Vu's SGD on a classification loss: ``A^T B^T`` is the rank-``r``
    matrix ``M`` that minimizes ``||X W_gate^T - X M||_F`` over the calibration inputs ``X`` (the
    gate's pre-activation predicted in least squares, weighted by how the inputs actually fall):
    with ``X^T X + eps I = L L^T`` (Cholesky; ``eps`` 1e-6 of its mean diagonal) and the SVD
    ``L^T W_gate^T = U S V^T``, ``A = U_r^T L^{-1}`` and ``B = V_r S_r``. Float64 arithmetic,
    stored as float32; the same tokens give the same predictor."""
    from sparsesim.sparsity.predictor import BlockPredictor, Predictors

    mlps = gated_mlps(model)
    act = gate_act(model)
    for name, mlp in mlps.items():  # refused before the forward passes
        if not 1 <= rank <= min(mlp.gate_proj.weight.shape):
            raise InputError(f"sparsity.act_policy.predictor_rank: {rank} is not within "
                             f"1..{min(mlp.gate_proj.weight.shape)} for {name}")
    seen = gate_inputs(model, mlps, windows)
    blocks = {}
    for name, mlp in mlps.items():
        x = np.concatenate(seen.pop(name)).astype(np.float64)
        w = mlp.gate_proj.weight.detach().numpy().astype(np.float64)  # [d_ff, d]
        cov = x.T @ x
        cov += np.eye(cov.shape[0]) * (1e-6 * max(float(np.trace(cov)) / cov.shape[0], 1e-30))
        chol = np.linalg.cholesky(cov)
        u, s, vt = np.linalg.svd(chol.T @ w.T, full_matrices=False)
        a = np.linalg.solve(chol.T, u[:, :rank]).T  # U_r^T L^{-1}: [r, d]
        b = vt[:rank].T * s[:rank]  # V_r S_r: [d_ff, r]
        t = np.broadcast_to(np.asarray(thresholds[name], dtype=np.float32), (w.shape[0],))
        blocks[name] = BlockPredictor(a.astype(np.float32), b.astype(np.float32), np.array(t), act)
    return Predictors(blocks)
