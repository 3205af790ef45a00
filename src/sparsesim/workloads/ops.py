"""Workload ops (conv2d, linear, matmul) and their lowering to GEMMs per training phase.

Vocabulary: GEMM dimensions are ``M, N, K`` (``K`` reduces). Conv dimensions follow the
usual accelerator convention ``N, C, K, P, Q, R, S`` (batch, input channels, output
channels/filters, output height/width, filter height/width); in this module the attribute
names are spelled out (``batch``, ``in_channels``...) so the two ``N``/``K`` never clash.

Lowering (per group for grouped convs, ``Gemm.count = groups``):

============  ======================  ====================  ==================  =============
phase         GEMM                    M                     N                   K (reduction)
============  ======================  ====================  ==================  =============
fwd           Y = X . W               N*P*Q                 K/g                 (C/g)*R*S
bwd_data      dX = dY . W^T           N*P*Q                 (C/g)*R*S           K/g
bwd_weight    dW = X^T . dY           (C/g)*R*S             K/g                 N*P*Q
============  ======================  ====================  ==================  =============

``bwd_data`` produces the im2col-shaped gradient that a col2im scatter folds back into dX.
``prefill`` and ``decode`` (LLM inference) lower like ``fwd``.
The im2col correspondence itself (which input element feeds which row/column of ``A``) is
:func:`im2col`, used when real tensors are replayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import numpy as np

from sparsesim.core.errors import field_error
from sparsesim.workloads.gemm import ALL_PHASES, ConvGeometry, Gemm, Phase


def _positive(op: object, *names: str) -> None:
    for name in names:
        value = getattr(op, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise field_error(f"{getattr(op, 'name', '?')}.{name}", f"must be a positive integer, got {value!r}")


def _non_negative(op: object, *names: str) -> None:
    for name in names:
        value = getattr(op, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise field_error(f"{getattr(op, 'name', '?')}.{name}", f"must be a non-negative integer, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Conv2d:
    """A 2-D convolution over an NCHW input (padding given explicitly, zeros)."""

    kind: ClassVar[str] = "conv2d"
    name: str
    batch: int  # N
    in_channels: int  # C
    out_channels: int  # K
    in_h: int  # H
    in_w: int  # W
    kernel_h: int  # R
    kernel_w: int  # S
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    dilation_h: int = 1
    dilation_w: int = 1
    groups: int = 1
    # Output size rounds up instead of down, padding the bottom/right edge with zeros as
    # needed: SCALE-Sim's ``ceil((H - R + stride) / stride)``, so its topology files are read
    # with it on. (Unlike PyTorch pooling's ceil_mode, a last window that starts in the padding
    # is kept.)
    ceil_mode: bool = False

    def __post_init__(self) -> None:
        _positive(self, "batch", "in_channels", "out_channels", "in_h", "in_w", "kernel_h", "kernel_w",
                  "stride_h", "stride_w", "dilation_h", "dilation_w", "groups")
        _non_negative(self, "pad_h", "pad_w")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise field_error(f"{self.name}.groups", f"{self.groups} does not divide in_channels={self.in_channels} "
                              f"and out_channels={self.out_channels}")
        if self.out_h < 1 or self.out_w < 1:
            raise field_error(f"{self.name}.kernel_h", "filter larger than the padded input: no output pixels")

    def _out(self, size: int, pad: int, dilation: int, kernel: int, stride: int) -> int:
        span = size + 2 * pad - dilation * (kernel - 1) - 1
        if span < 0:
            return 0
        return (-(-span // stride) if self.ceil_mode else span // stride) + 1

    @property
    def out_h(self) -> int:
        """P, output height."""
        return self._out(self.in_h, self.pad_h, self.dilation_h, self.kernel_h, self.stride_h)

    @property
    def out_w(self) -> int:
        """Q, output width."""
        return self._out(self.in_w, self.pad_w, self.dilation_w, self.kernel_w, self.stride_w)

    @property
    def phases(self) -> tuple[Phase, ...]:
        return ALL_PHASES

    def gemm(self, phase: Phase) -> Gemm:
        g = self.groups
        pixels = self.batch * self.out_h * self.out_w
        window = (self.in_channels // g) * self.kernel_h * self.kernel_w
        filters = self.out_channels // g
        if phase.forward:
            return Gemm(pixels, filters, window, g, self.geometry("M"))
        if phase is Phase.BWD_DATA:
            return Gemm(pixels, window, filters, g)
        return Gemm(window, filters, pixels, g, self.geometry("K"))

    def geometry(self, pixels_dim: str) -> ConvGeometry:
        """The input feature map behind the im2col A operand (for the mapper's DRAM bytes)."""
        return ConvGeometry(self.batch, self.in_channels // self.groups, self.in_h, self.in_w, self.kernel_h,
                            self.kernel_w, self.stride_h, self.dilation_h, self.out_h, self.out_w, pixels_dim)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, self.kernel_h, self.kernel_w)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels, self.in_h, self.in_w)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.batch, self.out_channels, self.out_h, self.out_w)


@dataclass(frozen=True, slots=True, kw_only=True)
class Linear:
    """``y = x . W^T`` over ``tokens`` rows (batch times sequence positions)."""

    kind: ClassVar[str] = "linear"
    name: str
    tokens: int
    in_features: int
    out_features: int

    def __post_init__(self) -> None:
        _positive(self, "tokens", "in_features", "out_features")

    @property
    def phases(self) -> tuple[Phase, ...]:
        return ALL_PHASES

    def gemm(self, phase: Phase) -> Gemm:
        if phase.forward:
            return Gemm(self.tokens, self.out_features, self.in_features)
        if phase is Phase.BWD_DATA:
            return Gemm(self.tokens, self.in_features, self.out_features)
        return Gemm(self.in_features, self.out_features, self.tokens)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.out_features, self.in_features)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.tokens, self.in_features)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.tokens, self.out_features)


@dataclass(frozen=True, slots=True, kw_only=True)
class Matmul:
    """``Y[b] = A[b] . B[b]`` for ``batch`` pairs (``bmm``; ``batch=1`` is ``matmul``).

    Both operands may be activations (attention scores). ``bwd_data`` is the gradient of the
    first operand (``dA = dY . B^T``), ``bwd_weight`` that of the second (``dB = A^T . dY``).
    """

    kind: ClassVar[str] = "matmul"
    name: str
    batch: int = 1
    m: int
    n: int
    k: int

    def __post_init__(self) -> None:
        _positive(self, "batch", "m", "n", "k")

    @property
    def phases(self) -> tuple[Phase, ...]:
        return ALL_PHASES

    def gemm(self, phase: Phase) -> Gemm:
        if phase.forward:
            return Gemm(self.m, self.n, self.k, self.batch)
        if phase is Phase.BWD_DATA:
            return Gemm(self.m, self.k, self.n, self.batch)
        return Gemm(self.k, self.n, self.m, self.batch)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return (self.batch, self.k, self.n)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, self.m, self.k)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return (self.batch, self.m, self.n)


Op = Conv2d | Linear | Matmul


def gemm_op(name: str, M: int, N: int, K: int) -> Linear:
    """A plain GEMM ``M, N, K`` (``--gemm`` and GEMM topology rows) as a layer whose ``B``
    operand is its weights: ``Linear(tokens=M, in_features=K, out_features=N)``, so its fwd
    GEMM is exactly ``M x N x K`` and weight sparsity and the training phases apply."""
    return Linear(name=name, tokens=M, in_features=K, out_features=N)


def im2col(x: np.ndarray, conv: Conv2d) -> np.ndarray:
    """Lower an NCHW input to the fwd ``A`` operands, shape ``(groups, N*P*Q, (C/g)*R*S)``.

    Row ``n*P*Q + p*Q + q`` holds the receptive field of output pixel ``(n, p, q)``; column
    ``c*R*S + r*S + s`` is input channel ``c`` (within the group) at filter tap ``(r, s)``,
    matching ``weight.reshape(K, -1)`` so that ``Y = A . W^T`` per group.
    """
    if x.shape != conv.input_shape:
        raise field_error(f"{conv.name}.input", f"shape {tuple(x.shape)} does not match {conv.input_shape}")
    n, c, _, _ = x.shape
    g = conv.groups
    p, q = conv.out_h, conv.out_w
    # ceil_mode may need zeros past the bottom/right edge beyond the symmetric padding
    extra_h = max(0, conv.stride_h * (p - 1) + conv.dilation_h * (conv.kernel_h - 1) + 1 - (conv.in_h + 2 * conv.pad_h))
    extra_w = max(0, conv.stride_w * (q - 1) + conv.dilation_w * (conv.kernel_w - 1) + 1 - (conv.in_w + 2 * conv.pad_w))
    xp = np.pad(x, ((0, 0), (0, 0), (conv.pad_h, conv.pad_h + extra_h), (conv.pad_w, conv.pad_w + extra_w)))
    taps = np.empty((n, c, conv.kernel_h, conv.kernel_w, p, q), dtype=x.dtype)
    for r in range(conv.kernel_h):
        for s in range(conv.kernel_w):
            h0, w0 = r * conv.dilation_h, s * conv.dilation_w
            taps[:, :, r, s] = xp[:, :, h0:h0 + conv.stride_h * (p - 1) + 1:conv.stride_h,
                                  w0:w0 + conv.stride_w * (q - 1) + 1:conv.stride_w]
    cg = c // g
    # (n, g, cg, r, s, p, q) -> (g, n, p, q, cg, r, s)
    taps = taps.reshape(n, g, cg, conv.kernel_h, conv.kernel_w, p, q).transpose(1, 0, 5, 6, 2, 3, 4)
    return np.ascontiguousarray(taps.reshape(g, n * p * q, cg * conv.kernel_h * conv.kernel_w))


class TensorSource(Protocol):
    """Where a workload's real tensors come from (a trace, or synthetic operands)."""

    def tensors(self, index: int) -> dict[str, np.ndarray | None]:
        """Tensors of op ``index`` by role: ``input``, ``weight``, ``grad`` (None if absent).

        A source whose ops share stored tensors (a trace stores each weight once) also has
        ``tensor_names(index)`` (the stored name of each role's tensor) and takes
        ``tensors(index, roles)`` to read only those roles; the replay then derives what it
        needs of a shared weight once (see :class:`sparsesim.simulation.replay.Replay`).
        """


@dataclass(frozen=True, slots=True)
class Workload:
    """A named, ordered list of ops plus the phases to simulate for each.

    ``time_steps`` (aligned with ``ops``) marks sequence inputs: ops with the same name at
    increasing time steps are one layer seen at consecutive frames/steps (delta replay).
    ``source`` gives the real tensors, if any.
    """

    name: str
    ops: tuple[Op, ...]
    phases: tuple[Phase, ...] = (Phase.FWD,)
    time_steps: tuple[int | None, ...] | None = None
    source: TensorSource | None = field(default=None, compare=False)
    meta: dict = field(default_factory=dict, compare=False)
