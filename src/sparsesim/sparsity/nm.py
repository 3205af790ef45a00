"""N:M structured weight sparsity, trained with bidirectional weight pruning (SAT-style).

In every group of ``m`` consecutive weights along a GEMM's reduction dimension at most ``n``
are nonzero. The hardware stores the ``n`` values plus ``ceil(log2 m)``-bit indices and each
sparse MAC unit multiplexes the matching ``n`` activations out of ``m``, so the reduction is
``m/n`` times shorter (Fang et al., IEEE TCAD 2023, arXiv 2309.13015; docs/design.md section 1).

Bidirectional weight pruning (BDWP): ``fwd`` uses the dense weights pruned N:M along the
input-feature dimension, ``bwd_data`` a second N:M pruning of the same dense weights along
the output-feature dimension (the reduction dimension of ``dY . W^T``), and ``bwd_weight``
stays dense. With ``bidirectional: false`` the backward-data GEMM reuses the forward mask,
which is not N:M along its reduction dimension, so it runs dense (the baseline SAT improves on).

``mode: prune`` prunes by magnitude at replay; ``mode: declared`` asserts the weights already
are N:M and refuses a group with more than ``n`` nonzeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from sparsesim.hardware.config import _param
from sparsesim.hardware.kernels import nm_group_max_nonzeros, nm_prune
from sparsesim.sparsity.base import FEATURES
from sparsesim.core.errors import InputError, field_error


@dataclass(frozen=True, slots=True, kw_only=True)
class NMConfig:
    kind: ClassVar[str] = "nm"
    n: int = _param("nonzeros kept per group", minimum=1, maximum=64)
    m: int = _param("group size along the reduction dimension", minimum=2, maximum=64)
    target: str = _param("tensor role pruned (weights only)", default="weight", choices=("weight",))
    mode: str = _param("prune by magnitude at replay, or verify weights declared N:M", default="prune",
                       choices=("prune", "declared"))
    bidirectional: bool = _param("prune bwd_data along output features too (BDWP)", default=True)

    def __post_init__(self) -> None:
        if self.n >= self.m:
            raise field_error("sparsity.nm.n", f"N must be smaller than M, got {self.n}:{self.m}")

    @classmethod
    def from_cli(cls, fields: list[str]) -> dict:
        if len(fields) not in (2, 3):
            raise InputError("expected nm:N:M[:declared], e.g. nm:2:4")
        try:
            out = {"kind": "nm", "n": int(fields[0]), "m": int(fields[1])}
        except ValueError:
            raise InputError(f"nm:N:M needs integers, got {':'.join(fields)!r}") from None
        if len(fields) == 3:
            out["mode"] = fields[2]
        return out

    def label(self) -> str:
        return f"nm{self.n}:{self.m}"

    @property
    def index_bits(self) -> int:
        """Bits of metadata per kept weight (position within its group)."""
        return max(1, math.ceil(math.log2(self.m)))


FEATURES.add("nm", NMConfig)


def prune_rows(w2d: np.ndarray, cfg: NMConfig, where: str) -> np.ndarray:
    """Apply N:M along the last axis of ``w2d`` (prune, or verify if declared)."""
    if cfg.mode == "declared":
        worst = nm_group_max_nonzeros(w2d, cfg.m)
        if worst > cfg.n:
            raise InputError(f"{where}: declared {cfg.n}:{cfg.m} but a group holds {worst} nonzeros "
                             f"(use mode: prune to prune at replay)")
        return w2d
    return nm_prune(np.ascontiguousarray(w2d, dtype=np.float32), cfg.n, cfg.m)
