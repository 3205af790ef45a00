"""Bidirectional weight pruning (BDWP) for capture-time training (torch only here).

SAT trains N:M sparse networks with BDWP (Fang et al., "Efficient N:M Sparse DNN Training
Using Algorithm, Architecture, and Dataflow Co-Design", IEEE TCAD 2023, arXiv 2309.13015;
docs/design.md section 1). Every conv2d and linear layer keeps a *dense* master weight ``W`` and, at
every forward call, derives two N:M copies from it:

* ``W_fwd``: ``W`` pruned N:M along the input features, the reduction of the forward GEMM
  (for a conv weight ``[K, C/g, R, S]``: groups of ``m`` consecutive entries of each filter's
  flattened ``(c, r, s)``, the im2col order of :func:`sparsesim.workloads.ops.im2col`; for a linear
  ``[out, in]``: along ``in``);
* ``W_bwd``: the same ``W`` pruned N:M along the output features, the reduction of the
  backward-data GEMM ``dX = dY . W^T`` (conv: for each ``(c, r, s)``, groups of ``m``
  consecutive output channels within the channel group; linear: along ``out``).

The forward computes with ``W_fwd``, ``dX`` with ``W_bwd``, and ``dW`` densely from ``X``
and ``dY`` (straight-through), so an ordinary optimizer updates the dense ``W``, which is
never pruned in place. Masks are recomputed from the current ``W`` at every call; the rule
is that of :func:`sparsesim.hardware.kernels.nm_prune_ref` (keep the ``n`` largest magnitudes, ties to the
lower index, a ragged last group keeps at most ``n``).

:func:`conv2d` and :func:`linear` follow torch's ``__torch_function__`` protocol, so a
:class:`~torch.overrides.TorchFunctionMode` (the capture recorder) sees one call per layer
with ``W_fwd`` as its ``weight`` and the dense parameter as ``master``; the ``F.conv2d`` or
``F.linear`` they run inside is not seen again. :func:`install` swaps the ``forward`` of a
model's ``nn.Conv2d`` and ``nn.Linear`` modules for these; parameters and state dict are
unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair
from torch.overrides import handle_torch_function, has_torch_function


def nm_keep(rows: Tensor, n: int, m: int) -> Tensor:
    """Boolean mask of the ``n`` largest magnitudes in every ``m`` consecutive entries of the last axis.

    Ties go to the lower index (a stable descending sort), and a ragged last group keeps at
    most ``n``: the rule of :func:`sparsesim.hardware.kernels.nm_prune_ref`.
    """
    red = rows.shape[-1]
    magnitude = F.pad(rows.detach().abs(), (0, -red % m), value=-1.0)  # padding never beats a real weight
    groups = magnitude.reshape(*rows.shape[:-1], -1, m)
    top = groups.sort(dim=-1, descending=True, stable=True).indices[..., :n]
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, top, True)
    return keep.reshape(*rows.shape[:-1], -1)[..., :red]


@torch.no_grad()
def prune_input_features(weight: Tensor, n: int, m: int) -> Tensor:
    """``W_fwd``: ``weight`` ([K, C/g, R, S] or [out, in]) N:M along each row's input features; a new tensor."""
    rows = weight.reshape(weight.shape[0], -1)
    return (rows * nm_keep(rows, n, m)).reshape(weight.shape)


@torch.no_grad()
def prune_output_features(weight: Tensor, n: int, m: int, groups: int = 1) -> Tensor:
    """``W_bwd``: ``weight`` N:M along the output features (within each of ``groups`` channel groups); a new tensor.

    For each input position (``(c, r, s)`` of a conv, ``in`` of a linear) the output
    channels of one group, ``K/g`` of them, form the reduction of ``dX = dY . W^T``.
    """
    k = weight.shape[0]
    cols = weight.reshape(groups, k // groups, -1).transpose(1, 2)  # [g, C/g*R*S, K/g]
    return (cols * nm_keep(cols, n, m)).transpose(1, 2).reshape(weight.shape)


class _Conv2dFunction(torch.autograd.Function):
    """conv2d with ``W_fwd`` forward, ``dX`` from ``W_bwd``, dense ``dW`` routed to ``master``."""

    @staticmethod
    def forward(ctx, x, master, w_fwd, w_bwd, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(x, w_bwd)
        ctx.conv = (stride, padding, dilation, groups)
        ctx.weight_shape, ctx.has_bias = master.shape, bias is not None
        return F.conv2d(x, w_fwd, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, dy):
        x, w_bwd = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        need = [ctx.needs_input_grad[i] for i in (0, 1, 4)]  # x, master, bias
        # dW = X^T . dY does not read the weight's values; the weight argument only carries W_bwd for dX
        weight = w_bwd if w_bwd is not None else dy.new_zeros(ctx.weight_shape)
        dx, dw, db = torch.ops.aten.convolution_backward(
            dy, x, weight, [ctx.weight_shape[0]] if ctx.has_bias else None, list(stride), list(padding),
            list(dilation), False, [0, 0], groups, need)
        return dx, dw, None, None, db, None, None, None, None


class _LinearFunction(torch.autograd.Function):
    """linear with ``W_fwd`` forward, ``dX`` from ``W_bwd``, dense ``dW`` routed to ``master``."""

    @staticmethod
    def forward(ctx, x, master, w_fwd, w_bwd, bias):
        ctx.save_for_backward(x, w_bwd)
        return F.linear(x, w_fwd, bias)

    @staticmethod
    def backward(ctx, dy):
        x, w_bwd = ctx.saved_tensors
        dy2 = dy.reshape(-1, dy.shape[-1])
        dx = dy @ w_bwd if ctx.needs_input_grad[0] else None
        dw = dy2.T @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None
        db = dy2.sum(0) if ctx.needs_input_grad[4] else None
        return dx, dw, None, None, db


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1, *, master: Tensor, weight_bwd: Tensor | None) -> Tensor:
    """``F.conv2d(input, weight, ...)`` whose weight gradient goes densely to ``master``.

    ``weight`` is ``W_fwd`` and ``weight_bwd`` is ``W_bwd`` (both derived from ``master``;
    ``None`` if ``input`` needs no gradient). ``padding`` must be numbers, not a string.
    """
    if has_torch_function((input, weight, bias, master)):
        return handle_torch_function(conv2d, (input, weight, bias, master), input, weight, bias, stride, padding,
                                     dilation, groups, master=master, weight_bwd=weight_bwd)
    return _Conv2dFunction.apply(input, master, weight, weight_bwd, bias, _pair(stride), _pair(padding),
                                 _pair(dilation), groups)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None, *, master: Tensor,
           weight_bwd: Tensor | None) -> Tensor:
    """``F.linear(input, weight, bias)`` whose weight gradient goes densely to ``master`` (see :func:`conv2d`)."""
    if has_torch_function((input, weight, bias, master)):
        return handle_torch_function(linear, (input, weight, bias, master), input, weight, bias, master=master,
                                     weight_bwd=weight_bwd)
    return _LinearFunction.apply(input, master, weight, weight_bwd, bias)


FUNCTIONS = MappingProxyType({conv2d: "conv2d", linear: "linear"})
"""The BDWP layer calls and the op kind each lowers to; their ``weight`` is W_fwd, ``master`` the parameter."""


def _explicit_padding(module: nn.Conv2d, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    """The input and the numeric padding that realise ``module``'s padding (mode and 'same'/'valid')."""
    if module.padding_mode != "zeros":
        return F.pad(x, module._reversed_padding_repeated_twice, mode=module.padding_mode), (0, 0)
    if not isinstance(module.padding, str):
        return x, _pair(module.padding)
    if module.padding == "valid":
        return x, (0, 0)
    total = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size)]
    before = [t // 2 for t in total]
    if any(t % 2 for t in total):  # 'same' with an even filter pads one more at the bottom/right
        return F.pad(x, (before[1], total[1] - before[1], before[0], total[0] - before[0])), (0, 0)
    return x, (before[0], before[1])


@dataclass(frozen=True, slots=True)
class BDWPForward:
    """The ``forward`` :func:`install` puts on one ``nn.Conv2d`` or ``nn.Linear``: BDWP N:M with ``n`` of ``m``."""

    module: nn.Module
    n: int
    m: int

    def __call__(self, x: Tensor) -> Tensor:
        module, n, m = self.module, self.n, self.m
        weight = module.weight
        w_fwd = prune_input_features(weight, n, m)
        if isinstance(module, nn.Conv2d):
            x, padding = _explicit_padding(module, x)
            # W_bwd is pre-generated with W_fwd from the same weights (SAT's pre-generation), only if dX is needed
            w_bwd = prune_output_features(weight, n, m, module.groups) if _needs_grad(x) else None
            return conv2d(x, w_fwd, module.bias, module.stride, padding, module.dilation, module.groups,
                          master=weight, weight_bwd=w_bwd)
        w_bwd = prune_output_features(weight, n, m) if _needs_grad(x) else None
        return linear(x, w_fwd, module.bias, master=weight, weight_bwd=w_bwd)


def _needs_grad(x: Tensor) -> bool:
    return torch.is_grad_enabled() and x.requires_grad


def install(model: nn.Module, n: int, m: int) -> list[str]:
    """Train every ``nn.Conv2d`` and ``nn.Linear`` of ``model`` with BDWP N:M; returns their names.

    Replaces each module's ``forward`` (an instance attribute, so :func:`remove` restores the
    class's); weights stay dense parameters that any optimizer updates.
    """
    if not 0 < n <= m:
        raise ValueError(f"need 0 < n <= m, got {n}:{m}")
    names = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.forward = BDWPForward(module, n, m)
            names.append(name)
    return names


def remove(model: nn.Module) -> None:
    """Undo :func:`install`: the modules run their own dense ``forward`` again."""
    for module in model.modules():
        if isinstance(module.__dict__.get("forward"), BDWPForward):
            del module.forward
