"""GEMMs, the unit of work the simulator schedules, and the training phases.

Every conv, linear and matmul op lowers to ``Out[M x N] = A[M x K] . B[K x N]`` with ``K``
the reduction dimension (docs/design.md section 1). ``count`` independent GEMMs of the same shape
stand for conv groups or the batch of a ``bmm``; they run one after another on the array.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from sparsesim.core.errors import field_error


class Phase(str, Enum):
    """Phase of a GEMM: the three training phases (docs/design.md section 1) and the two of LLM inference.

    ``prefill`` and ``decode`` are forward GEMMs (``Y = X . W``, reduction over input
    features) lowered exactly like ``fwd``; they only say which part of autoregressive
    inference an op belongs to: the prompt's forward pass, or one generated token per
    sequence reading the KV cache.
    """

    FWD = "fwd"  # Y = X . W, reduction over input features
    BWD_DATA = "bwd_data"  # dX = dY . W^T, reduction over output features
    BWD_WEIGHT = "bwd_weight"  # dW = X^T . dY, reduction over batch x output pixels
    PREFILL = "prefill"  # inference forward over the prompt (all prompt tokens at once)
    DECODE = "decode"  # inference forward of one new token per sequence, attention over the KV cache

    def __str__(self) -> str:
        return self.value

    @property
    def forward(self) -> bool:
        """True for the phases whose GEMM is the forward ``Y = X . W``."""
        return self in (Phase.FWD, Phase.PREFILL, Phase.DECODE)


PHASES: tuple[Phase, ...] = (Phase.FWD, Phase.BWD_DATA, Phase.BWD_WEIGHT)
"""The training phases (``--training``)."""

INFERENCE_PHASES: tuple[Phase, ...] = (Phase.PREFILL, Phase.DECODE)
ALL_PHASES: tuple[Phase, ...] = PHASES + INFERENCE_PHASES
"""Every phase, in the canonical order rows and manifests list them."""


def parse_phase(text: str, field: str = "phase") -> Phase:
    """Turn ``"fwd"`` etc. into a :class:`Phase`, or raise an input error naming ``field``."""
    try:
        return Phase(text)
    except ValueError:
        raise field_error(field, f"unknown phase {text!r} (choose from {', '.join(map(str, ALL_PHASES))})") from None


@dataclass(frozen=True, slots=True)
class ConvGeometry:
    """How a convolution's A operand is the im2col expansion of a stored feature map.

    Conv vocabulary (say which where both meet): the feature map is ``batch x channels x
    in_h x in_w`` (one group's channels), filters are ``kernel_h x kernel_w``, output
    ``out_h x out_w``. ``pixels_dim`` names the GEMM dimension that runs over output pixels
    (``"M"`` in fwd, ``"K"`` in bwd_weight); the other dimension of A runs over the window
    ``channels * kernel_h * kernel_w``. Used by the mapper to count the DRAM bytes a tile of A
    needs as feature-map pixels (halo included) rather than as im2col rows.

    ``compacted`` ``(n, m)``: the GEMM's K runs over N:M-compacted MAC slots (``n`` per group of
    ``m`` reduction indices, B's kept weights), while A is still the whole feature map: N:M
    selects among activations already on chip (the sparse MAC unit's multiplexer picks ``n``
    of the ``m`` buffered activations, docs/design.md section 1); it does not change what is
    fetched from DRAM. A tile of ``k`` compacted slots therefore reads the activations of ``ceil(k/n)``
    whole groups, ``ceil(k/n) * m`` reduction indices of the dense operand.
    """

    batch: int
    channels: int
    in_h: int
    in_w: int
    kernel_h: int
    kernel_w: int
    stride_h: int
    dilation_h: int
    out_h: int
    out_w: int
    pixels_dim: str = "M"
    compacted: tuple[int, int] | None = None

    @property
    def k_dense(self) -> int:
        """Length of the dense reduction dimension (window or pixels) behind the GEMM's K."""
        if self.pixels_dim == "M":
            return self.channels * self.kernel_h * self.kernel_w
        return self.batch * self.out_h * self.out_w

    def dense_k_extent(self, ext_k):
        """Reduction indices of the dense operand behind ``ext_k`` of the GEMM's K (``ext_k``
        itself unless K is N:M-compacted; at most :attr:`k_dense`)."""
        ext_k = np.asarray(ext_k, dtype=np.int64)
        if self.compacted is None:
            return ext_k
        n, m = self.compacted
        return np.minimum(self.k_dense, -(-ext_k // n) * m)

    @property
    def kernel_taps(self) -> int:
        """Largest number of im2col entries one input element feeds."""
        return self.kernel_h * self.kernel_w

    def footprint(self, ext_m, ext_k):
        """Feature-map elements an A tile of ``ext_m x ext_k`` (broadcast arrays, GEMM extents:
        compacted K slots where :attr:`compacted` is set) touches: the
        channels of its window columns times the input rows its output pixels need (a pixel
        run may straddle one more output row; whole images beyond one image), full width."""
        ext_k = self.dense_k_extent(ext_k)
        pix, win = (ext_m, ext_k) if self.pixels_dim == "M" else (ext_k, ext_m)
        pix = np.asarray(pix, dtype=np.int64)
        win = np.asarray(win, dtype=np.int64)
        taps = self.kernel_h * self.kernel_w
        chans = np.minimum(self.channels, (win + taps - 1) // taps + (win % taps != 0))
        image = self.out_h * self.out_w
        out_rows = np.minimum(self.out_h, -(-pix // self.out_w) + 1)
        band = np.minimum(self.in_h, (out_rows - 1) * self.stride_h + (self.kernel_h - 1) * self.dilation_h + 1)
        images = np.minimum(self.batch, -(-pix // image) + (pix % image != 0))
        rows = np.where(pix >= image, images * self.in_h, band)
        return chans * rows * self.in_w


@dataclass(frozen=True, slots=True)
class Gemm:
    """``count`` independent GEMMs ``Out[M x N] = A[M x K] . B[K x N]``.

    ``conv`` (optional) tells the mapper that A is the im2col expansion of a feature map.
    """

    M: int
    N: int
    K: int
    count: int = 1
    conv: ConvGeometry | None = None

    def __post_init__(self) -> None:
        for name in ("M", "N", "K", "count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise field_error(name, f"must be a positive integer, got {value!r}")
            if value > 2**40:
                raise field_error(name, f"absurdly large ({value}); at most 2**40")

    @property
    def macs(self) -> int:
        """Dense multiply-accumulates of all ``count`` GEMMs."""
        return self.count * self.M * self.N * self.K
