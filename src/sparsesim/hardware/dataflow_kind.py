"""What a systolic dataflow is, as a frozen description every layer can ask.

A :class:`DataflowKind` says which GEMM dimension goes to the PE rows, which to the columns,
which streams through time, and which spatial block index is the outer fold loop; every other
fact the simulator needs about a dataflow follows from those (the stationary operand, whether
it is preloaded, whose zeros can remove a streamed step, the closed-form fold cycles). It lives
in ``hardware`` so that the cycle-by-cycle reference (:mod:`sparsesim.hardware.reference`) and
the mapper (:mod:`sparsesim.mapping`) take it without importing :mod:`sparsesim.dataflows`,
which builds its registered dataflows from these descriptions and re-exports the type.

GEMM ``Out[M x N] = A[M x K] . B[K x N]``; operands are named ``"A"``, ``"B"``, ``"Out"``.
The rest of the code asks the properties below and never compares a dataflow's name or its
``time_dim`` string.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

OPERAND_DIMS = {"A": ("M", "K"), "B": ("K", "N"), "Out": ("M", "N")}
"""GEMM dimensions of each operand."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DataflowKind:
    """A systolic dataflow: the mapping of the GEMM onto an ``R x C`` array, and what follows.

    ``row_dim``, ``col_dim``, ``time_dim`` are a permutation of ``"M"``, ``"N"``, ``"K"``;
    ``outer`` is ``"row"`` or ``"col"`` (which spatial block index the fold loop keeps outside);
    ``label`` is the text figures and tables show for it and ``rank`` its place among the
    dataflows there (figures keep one colour per dataflow in that order).
    """

    name: str
    label: str
    rank: int
    row_dim: str
    col_dim: str
    time_dim: str
    outer: str

    def __post_init__(self) -> None:
        if sorted((self.row_dim, self.col_dim, self.time_dim)) != ["K", "M", "N"]:
            raise ValueError(f"dataflow {self.name!r}: rows, columns and time must be a permutation of M, N, K")
        if self.outer not in ("row", "col"):
            raise ValueError(f"dataflow {self.name!r}: outer must be 'row' or 'col', got {self.outer!r}")

    # ------------------------------------------------------------ operands
    @property
    def stationary(self) -> str:
        """The operand held in the PEs: the one indexed by the two spatial dimensions."""
        spatial = {self.row_dim, self.col_dim}
        return next(op for op, ds in OPERAND_DIMS.items() if set(ds) == spatial)

    @property
    def preload(self) -> bool:
        """Whether the stationary block is shifted into the array before each fold (``R``
        cycles): an input operand is; outputs accumulate in place and drain after."""
        return self.stationary != "Out"

    @property
    def reduction_in_time(self) -> bool:
        """Whether the reduction ``K`` streams through time, so each PE holds its partial sum
        for the whole fold; otherwise ``K`` is spatial and partial sums cross the K folds."""
        return self.time_dim == "K"

    @property
    def zero_skippable(self) -> tuple[str, ...]:
        """Input operands whose zeros can remove a streamed step (lockstep skipping): the
        streamed ones. A stationary operand's zeros can only be gated."""
        return tuple(op for op in ("A", "B") if op != self.stationary)

    @property
    def outer_dim(self) -> str:
        """GEMM dimension of the outer fold loop."""
        return self.row_dim if self.outer == "row" else self.col_dim

    def extents(self, dims: dict[str, int]) -> tuple[int, int, int]:
        """``(row, column, time)`` extents of a GEMM given by its dimensions ``{"M", "N", "K"}``."""
        return dims[self.row_dim], dims[self.col_dim], dims[self.time_dim]

    # ------------------------------------------------------------ closed-form cycles
    def fold_shape(self, dims: dict[str, int], rows: int, cols: int) -> tuple[int, int]:
        """``(outer, inner)`` fold counts."""
        fr, fc = -(-dims[self.row_dim] // rows), -(-dims[self.col_dim] // cols)
        return (fr, fc) if self.outer == "row" else (fc, fr)

    def fold_cycles(self, stream: np.ndarray, rows: int, cols: int, overlap: bool) -> tuple[np.ndarray, int]:
        """Per-fold array occupancy in cycles (loop order) and the epilogue after the last fold,
        ``stream`` the elements each fold streams; the sum of both is the stall-free compute
        time (see :mod:`sparsesim.dataflows.base`)."""
        preload = rows if self.preload else 0
        skew = rows + cols - 2
        if not overlap:  # a fold with nothing to stream still takes a cycle on a 1x1 array
            return np.maximum(preload + stream + skew, 1), 0
        spacing = np.maximum(stream, rows)
        last = int(stream.flat[-1])
        # the last fold's drain is at least its share of the spacing (a fully skipped last
        # fold on an R x 1 array would otherwise end before its predecessor's drain)
        return spacing, max(0, preload + last + skew - int(spacing.flat[-1]))

    def compute_cycles(self, dims: dict[str, int], rows: int, cols: int, overlap: bool) -> int:
        """Stall-free dense compute cycles of one repetition (docs/design.md section 3.2)."""
        fo, fi = self.fold_shape(dims, rows, cols)
        folds = fo * fi
        L = dims[self.time_dim]
        preload = rows if self.preload else 0
        if not overlap:
            return folds * (preload + L + rows + cols - 2)
        return preload + (folds - 1) * max(L, rows) + L + rows + cols - 2

    def closed_form_cycles(self, M: int, N: int, K: int, rows: int, cols: int) -> int:
        """SCALE-Sim v3's dense cycles without fold overlap: ``os`` ``ceil(M/R) ceil(N/C)
        (K + R + C - 2)``, ``ws`` ``ceil(K/R) ceil(N/C) (M + 2R + C - 2)``, ``is`` ``ceil(K/R)
        ceil(M/C) (N + 2R + C - 2)`` (docs/design.md section 3.2)."""
        return self.compute_cycles({"M": M, "N": N, "K": K}, rows, cols, False)
