"""Delta / temporal sparsity (Delta Networks, Neil et al. ICML 2017; DeltaRNN; EdgeDRNN).

For inputs that arrive as a sequence, a layer processes only the changes: ``d = x_t - x_ref``
is sent where ``d != 0`` and ``|d| >= threshold``, ``x_ref`` is updated only where it fired,
and the output accumulates ``M += W[:, fired] . d[fired]``. The sparse GEMM on ``d`` is
zero-skipping on the delta tensor (same lockstep rules as :mod:`zero_skip`). Each step also
pays the encoder (subtract, compare, reference update per input element) and the reads and
writes of the reference and accumulator state, on chip where it fits in the output buffer,
else in DRAM. ``threshold = 0`` reproduces the dense outputs exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sparsesim.hardware.config import _param
from sparsesim.sparsity.base import FEATURES
from sparsesim.core.errors import InputError


@dataclass(frozen=True, slots=True, kw_only=True)
class DeltaConfig:
    kind: ClassVar[str] = "delta"
    threshold: float = _param("firing threshold theta on |x_t - x_ref| (same units as the activations)",
                              default=0.0, minimum=0.0, maximum=1e30)
    target: str = _param("the tensor that is delta-encoded", default="input", choices=("input",))
    weight_fetch: bool = _param("skip the weight rows behind activations that are zero in every row of the "
                                "GEMM: not fetched from DRAM (at dram.burst_bytes granularity), not read from "
                                "SRAM; the skip bitmap that drives the gather is charged", default=True)

    @classmethod
    def from_cli(cls, fields: list[str]) -> dict:
        if len(fields) != 1:
            raise InputError("expected delta:THRESHOLD, e.g. delta:0.05")
        try:
            return {"kind": "delta", "threshold": float(fields[0])}
        except ValueError:
            raise InputError(f"delta threshold must be a number, got {fields[0]!r}") from None

    def label(self) -> str:
        return f"delta{self.threshold:g}" + ("" if self.weight_fetch else "-nofetch")


FEATURES.add("delta", DeltaConfig)
