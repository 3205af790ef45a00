"""GEMMs, the unit of work the simulator schedules, and the training phases.

Every conv, linear and matmul op lowers to ``Out[M x N] = A[M x K] . B[K x N]`` with ``K``
the reduction dimension (DESIGN section 1). ``count`` independent GEMMs of the same shape
stand for conv groups or the batch of a ``bmm``; they run one after another on the array.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sparsesim.workloads.errors import field_error


class Phase(str, Enum):
    """Training phase of a GEMM (DESIGN section 1)."""

    FWD = "fwd"  # Y = X . W, reduction over input features
    BWD_DATA = "bwd_data"  # dX = dY . W^T, reduction over output features
    BWD_WEIGHT = "bwd_weight"  # dW = X^T . dY, reduction over batch x output pixels

    def __str__(self) -> str:
        return self.value


PHASES: tuple[Phase, ...] = (Phase.FWD, Phase.BWD_DATA, Phase.BWD_WEIGHT)


def parse_phase(text: str, field: str = "phase") -> Phase:
    """Turn ``"fwd"`` etc. into a :class:`Phase`, or raise an input error naming ``field``."""
    try:
        return Phase(text)
    except ValueError:
        raise field_error(field, f"unknown phase {text!r} (choose from fwd, bwd_data, bwd_weight)") from None


@dataclass(frozen=True, slots=True)
class Gemm:
    """``count`` independent GEMMs ``Out[M x N] = A[M x K] . B[K x N]``."""

    M: int
    N: int
    K: int
    count: int = 1

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
